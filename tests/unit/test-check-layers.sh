#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-check-layers.sh — tools/check-layers can fail: on a tiny fake tree
# compiled here (an upward call, a cycle inside one layer, lib/ using the
# daemon, a folder that is no layer) it names each problem and its symbols;
# a clean tree passes, even when a test target compiles a daemon file again
# with other calls; no compile_commands.json is exit 2.  Output is TAP.
#
# usage: test-check-layers.sh CHECK_LAYERS
set -euo pipefail

checker=${1:?usage: test-check-layers.sh CHECK_LAYERS}
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0 passed=0 failed=0 skipped=0
rc=0 out= err= last_cmd=

pass() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
fail() {
        n=$((n + 1)); failed=$((failed + 1))
        echo "not ok $n - $1"
        echo "# $2" | sed '2,$s/^/# /'
        echo "#   command: ${last_cmd}"
        echo "#   exit: $rc"
        echo "#   stdout: ${out//$'\n'/$'\n'#           }"
        echo "#   stderr: ${err//$'\n'/$'\n'#           }"
}

# run ARGS...: run check-layers, keep exit status, stdout and stderr.
run() {
        last_cmd="check-layers $*"
        rc=0
        "$checker" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
        out=$(cat "$tmp/out")
        err=$(cat "$tmp/err")
}

check() {
        if eval "$2"; then pass "$1"; else fail "$1" "$3"; fi
}

has_line() { grep -Fxq -- "$1" <<<"$out"; }

if ! command -v "$cc" >/dev/null || ! command -v nm >/dev/null; then
        echo "1..0 # SKIP no C compiler ($cc) or nm"
        exit 0
fi

# tree ROOT: start a fake source tree ROOT with its build directory
# ROOT/build, laid out as meson does (objects under the build directory's
# mirror of the source folder, paths relative to the build directory).
tree() {
        mkdir -p "$1/build"
        echo "[" >"$1/build/compile_commands.json"
}

# unit ROOT SRC OBJ CODE [CFLAGS]: write ROOT/SRC, compile it to
# ROOT/build/OBJ and list it in compile_commands.json.
unit() {
        local root=$1 src=$2 obj=$3 code=$4 cflags=${5:-}
        mkdir -p "$(dirname "$root/$src")" "$(dirname "$root/build/$obj")"
        [ -e "$root/$src" ] || printf '%s\n' "$code" >"$root/$src"
        # shellcheck disable=SC2086
        (cd "$root/build" && "$cc" $cflags -c "../$src" -o "$obj")
        [ "$(wc -l <"$root/build/compile_commands.json")" -eq 1 ] || echo "," >>"$root/build/compile_commands.json"
        printf '{"directory": "%s", "file": "../%s", "output": "%s", "command": "%s %s -c ../%s -o %s"}\n' \
                "$root/build" "$src" "$obj" "$cc" "$cflags" "$src" "$obj" >>"$root/build/compile_commands.json"
}

end_tree() { echo "]" >>"$1/build/compile_commands.json"; }

# The clean pair: the top layer logs through base, and both use lib/.  A
# test compiles base/log.c once more with a hook into main.c: were that
# copy taken for the daemon's, it would make an upward call and a cycle.
clean_pair() {
        local root=$1
        unit "$root" lib/util.c lib/libfake.a.p/util.c.o 'int util_fn(void); int util_fn(void) { return 1; }'
        unit "$root" daemon/base/log.c daemon/base/libbase.a.p/log.c.o '
int util_fn(void);
void log_it(void);
#ifdef UNDER_TEST
void main_hook(void);
#endif
void log_it(void) {
        (void) util_fn();
#ifdef UNDER_TEST
        main_hook();
#endif
}'
        unit "$root" daemon/main.c daemon/fakedaemon.p/main.c.o '
void log_it(void);
int util_fn(void);
void main_hook(void);
void main_hook(void) { }
int main(void) { log_it(); return util_fn(); }'
        unit "$root" daemon/base/log.c tests/unit/test-log.p/.._.._daemon_base_log.c.o '' -DUNDER_TEST
}

# ---- a broken tree ------------------------------------------------------------

b=$tmp/broken
tree "$b"
clean_pair "$b"
unit "$b" daemon/bus/y.c daemon/bus/libbus.a.p/y.c.o 'void bus_notify(void); void bus_notify(void) { }'
unit "$b" daemon/registry/x.c daemon/registry/libregistry.a.p/x.c.o '
void bus_notify(void);
void registry_add(void);
void registry_add(void) { bus_notify(); }'
unit "$b" daemon/detect/p.c daemon/detect/libdetect.a.p/p.c.o '
int q_fn(int);
int p_fn(int);
int p_fn(int i) { return i ? q_fn(i - 1) : 0; }'
unit "$b" daemon/detect/q.c daemon/detect/libdetect.a.p/q.c.o '
int p_fn(int);
int q_fn(int);
int q_fn(int i) { return i ? p_fn(i - 1) : 1; }'
unit "$b" lib/bad.c lib/libfake.a.p/bad.c.o '
void log_it(void);
void lib_bad(void);
void lib_bad(void) { log_it(); }'
unit "$b" daemon/extra/z.c daemon/extra/libextra.a.p/z.c.o 'int extra_z(void); int extra_z(void) { return 0; }'
end_tree "$b"

run --source-root "$b" "$b/build"
check "broken tree: exit 1" '[ $rc -eq 1 ]' "expected exit 1"
check "upward call named with its symbol" \
        'has_line "upward call: daemon/registry/x.c -> daemon/bus/y.c (bus_notify)"' \
        "expected: upward call: daemon/registry/x.c -> daemon/bus/y.c (bus_notify)"
check "cycle inside one layer named with its symbols" \
        'has_line "cycle: daemon/detect/p.c -> daemon/detect/q.c (q_fn) -> daemon/detect/p.c (p_fn)"' \
        "expected: cycle: daemon/detect/p.c -> daemon/detect/q.c (q_fn) -> daemon/detect/p.c (p_fn)"
check "lib/ using the daemon named with its symbol" \
        'has_line "lib uses daemon: lib/bad.c -> daemon/base/log.c (log_it)"' \
        "expected: lib uses daemon: lib/bad.c -> daemon/base/log.c (log_it)"
check "a folder that is no layer is named" \
        'grep -q "^unknown layer: daemon/extra/z.c " <<<"$out"' \
        "expected a line: unknown layer: daemon/extra/z.c (...)"
check "nothing else is reported (the clean pair and the test's copy are not)" \
        '[ "$(grep -vc "^check-layers: FAILED" <<<"$out")" -eq 4 ]' \
        "expected exactly the 4 problems above and a FAILED summary"
check "the summary counts them" \
        'has_line "check-layers: FAILED: 1 cycle(s), 1 upward call(s), 1 lib/ use(s) of daemon/, 1 file(s) in an unknown layer in 7 daemon files"' \
        "expected the FAILED summary line with each count"

# ---- a clean tree -----------------------------------------------------------------

c=$tmp/clean
tree "$c"
clean_pair "$c"
end_tree "$c"

run --source-root "$c" "$c/build"
check "clean tree: exit 0, one summary line" \
        '[ $rc -eq 0 ] && [ "$out" = "check-layers: 2 daemon files in 2 layers, no cycle, no upward call" ] && [ -z "$err" ]' \
        "expected exit 0 and: check-layers: 2 daemon files in 2 layers, no cycle, no upward call"

# The same tree, the object named only by -o in "command".
sed -i 's/"output": "[^"]*", //' "$c/build/compile_commands.json"
run --source-root "$c" "$c/build"
check "object found from -o when there is no \"output\"" '[ $rc -eq 0 ]' "expected exit 0"

# ---- cannot check: exit 2 -----------------------------------------------------------

rm "$c/build/compile_commands.json"
run --source-root "$c" "$c/build"
check "no compile_commands.json: exit 2, one line" \
        '[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "compile_commands.json" <<<"$err"' \
        "expected exit 2 and one line naming compile_commands.json"

run
check "no BUILDDIR: exit 2" '[ $rc -eq 2 ]' "expected exit 2"

echo "1..$n"
echo "# $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
