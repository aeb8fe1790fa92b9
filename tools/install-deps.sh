#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what building and testing pmufilterd needs on Debian 12, only when
# something is missing (so a ready machine does not touch the network).
set -euo pipefail

packages=(
        # build
        gcc pkg-config meson ninja-build
        libyaml-dev libsystemd-dev libudev-dev libcmocka-dev
        libpfm4-dev libsmartcols-dev
        # tests: man page lint, a real bus and its clients (busctl comes
        # with systemd, gdbus with libglib2.0-bin), a real unmodified VMM
        mandoc dbus libglib2.0-bin qemu-system-x86 util-linux procps strace
        # fuzzing (-Dfuzz=true, tests/fuzz; run-tests' libFuzzer pass):
        # clang, and libclang-rt-14-dev, which holds libFuzzer
        # (-fsanitize=fuzzer) and clang's sanitizer runtimes but which
        # clang-14 only recommends (through libclang-common-14-dev)
        clang libclang-rt-14-dev
        # the system test (tests/system): a Debian tree booted under
        # systemd-nspawn
        systemd-container debootstrap
)

missing=()
for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
                missing+=("$p")
        fi
done

if [ ${#missing[@]} -eq 0 ]; then
        exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]}; run as root (or install them) first" >&2
        exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
