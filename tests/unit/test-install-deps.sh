#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-install-deps.sh — tools/install-deps.sh installs for each job what it
# needs: the package sets as the script itself lists them (--list), what it
# would install on a machine that has nothing (--dry-run, against a stub
# dpkg-query, with an apt-get that must not run), and the set run-demo and
# run-tests ask for.  The demo's set lacks the tests' tools (clang,
# debootstrap, systemd-container, cmocka); the tests' set has everything.
# Output is TAP.
#
# usage: test-install-deps.sh SOURCE_ROOT
set -euo pipefail

root=${1:?usage: test-install-deps.sh SOURCE_ROOT}
script=$root/tools/install-deps.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0 failed=0
rc=0 out= err= last_cmd=

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
        n=$((n + 1)); failed=$((failed + 1))
        echo "not ok $n - $1"
        echo "# $2"
        echo "#   command: ${last_cmd}"
        echo "#   exit: $rc"
        echo "#   stdout: ${out//$'\n'/ }"
        echo "#   stderr: ${err//$'\n'/ }"
}
check() { if eval "$2"; then pass "$1"; else fail "$1" "$3"; fi; }

# A machine on which nothing is installed, and where apt-get records that it
# was called (it must not be, in these modes).
mkdir "$tmp/bin"
cat >"$tmp/bin/dpkg-query" <<'EOF'
#!/bin/sh
exit 1
EOF
cat >"$tmp/bin/apt-get" <<EOF
#!/bin/sh
echo "\$*" >>"$tmp/apt-get-called"
EOF
chmod +x "$tmp/bin/dpkg-query" "$tmp/bin/apt-get"

run() {
        last_cmd="install-deps.sh $*"
        rc=0
        PATH="$tmp/bin:$PATH" "$script" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
        out=$(cat "$tmp/out")
        err=$(cat "$tmp/err")
}
has() { grep -qx -- "$1" <<<"$out"; }

run --list demo
demo=$out
check "--list demo: exit 0, packages one a line" '[ $rc -eq 0 ] && [ -n "$out" ] && ! grep -q " " <<<"$out"' \
        "expected exit 0 and one package name a line"
for p in meson gcc libyaml-dev libsystemd-dev libpfm4-dev dbus qemu-system-x86; do
        check "the demo's set has $p" 'has $p' "run-demo builds, runs a private bus and QEMU: $p missing"
done
for p in clang libclang-rt-14-dev debootstrap systemd-container libcmocka-dev mandoc strace; do
        check "the demo's set lacks $p" '! has $p' "$p is for the tests only"
done

run --list tests
tests=$out
for p in clang libclang-rt-14-dev debootstrap systemd-container libcmocka-dev mandoc libglib2.0-bin strace dbus qemu-system-x86 meson; do
        check "the tests' set has $p" 'has $p' "run-tests needs $p"
done
check "the tests' set holds the demo's" \
        '[ -z "$(comm -23 <(sort <<<"$demo") <(sort <<<"$tests"))" ]' "a package of the demo is missing from the tests' set"

run --list
check "no set named: the tests' (everything)" '[ $rc -eq 0 ] && [ "$out" = "$tests" ]' "expected the tests' set"

rm -f "$tmp/apt-get-called"
run --dry-run demo
check "--dry-run demo on a bare machine: the demo's set, nothing installed" \
        '[ $rc -eq 0 ] && [ "$out" = "$demo" ] && [ ! -e "$tmp/apt-get-called" ]' \
        "expected exactly the demo's packages and no apt-get call"
run demo --dry-run
check "--dry-run may follow the set" '[ $rc -eq 0 ] && [ "$out" = "$demo" ] && [ ! -e "$tmp/apt-get-called" ]' \
        "expected the same"

run frobnicate
check "an unknown set: exit 2" '[ $rc -eq 2 ] && grep -q "^usage:" <<<"$err" && [ ! -e "$tmp/apt-get-called" ]' \
        "expected exit 2 and the usage"

# What the two entry points ask for.
args_of() { sed -n 's|^tools/install-deps.sh||p' "$1" | head -n1 | sed 's|#.*||'; }
demo_args=$(args_of "$root/run-demo")
tests_args=$(args_of "$root/run-tests")
# shellcheck disable=SC2086
run --dry-run $demo_args
check "run-demo installs the demo's set: no clang, no debootstrap" \
        '[ "$out" = "$demo" ] && ! has clang && ! has debootstrap' \
        "run-demo asks for '$demo_args', which would install: ${out//$'\n'/ }"
# shellcheck disable=SC2086
run --dry-run $tests_args
check "run-tests installs everything the tests need" '[ "$out" = "$tests" ]' \
        "run-tests asks for '$tests_args', which would install: ${out//$'\n'/ }"

echo "1..$n"
[ "$failed" -eq 0 ]
