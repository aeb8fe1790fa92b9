#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what pmufilterd needs on Debian 12, only when something is missing
# (so a ready machine does not touch the network).
#
# usage: tools/install-deps.sh [--list | --dry-run] [demo | tests]
#   demo      what ./run-demo needs: the build, a private bus, QEMU
#   tests     (the default) what ./run-tests needs: the demo's, and every
#             test suite's, fuzzing's and the system test's tools
#   --list    print the packages of the set, one a line, and install nothing
#   --dry-run print those of the set that are missing (what would be
#             installed), one a line, and install nothing
set -euo pipefail

# Building pmufilterd, its daemon and the demo's helpers (tests/helpers are
# built without cmocka).
build=(
        gcc pkg-config meson ninja-build
        libyaml-dev libsystemd-dev
        libpfm4-dev libsmartcols-dev
)
# ./run-demo: the build, a private system bus (dbus-daemon; busctl comes with
# systemd), and QEMU under the preload shim.
demo=(
        "${build[@]}"
        dbus qemu-system-x86
)
# ./run-tests: the demo's, and
tests=(
        "${demo[@]}"
        # the unit tests
        libcmocka-dev
        # man page lint, a second bus client (gdbus, beside busctl), the
        # adoption tests' tracer and process tools
        mandoc libglib2.0-bin util-linux procps strace
        # zsh for pmufilterctl's zsh completion; a second reader of the
        # metrics file (tests/integration/test_metrics.py)
        zsh python3-prometheus-client
        # fuzzing (-Dfuzz=true, tests/fuzz; run-tests' libFuzzer pass):
        # clang, and libclang-rt-14-dev, which holds libFuzzer
        # (-fsanitize=fuzzer) and clang's sanitizer runtimes but which
        # clang-14 only recommends (through libclang-common-14-dev)
        clang libclang-rt-14-dev
        # the system test (tests/system): a Debian tree booted under
        # systemd-nspawn
        systemd-container debootstrap
        # ... and the Debian packages it installs there (debian/: built with
        # dpkg-buildpackage, checked with lintian)
        dpkg-dev debhelper lintian
)

usage() {
        echo "usage: $0 [--list | --dry-run] [demo | tests]" >&2
        exit 2
}

mode=install set=tests
for arg in "$@"; do
        case $arg in
        --list) mode=list ;;
        --dry-run) mode=dry-run ;;
        demo | tests) set=$arg ;;
        -h | --help)
                sed -n '/^# usage:/,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'
                exit 0 ;;
        *) usage ;;
        esac
done
declare -n packages=$set

if [ $mode = list ]; then
        printf '%s\n' "${packages[@]}"
        exit 0
fi

missing=()
for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
                missing+=("$p")
        fi
done

if [ $mode = dry-run ]; then
        [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
        exit 0
fi

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
