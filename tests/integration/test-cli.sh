#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-cli.sh — pmufilterctl as a person or a script runs it: exit statuses
# 0/1/2, one-line errors, file:line:column diagnostics from `check` (also
# as JSON), the JSON shape of `compile --json` in its modes, `events`,
# `--pmu`, -q, and --help and `help VERB` naming every verb and the options
# each takes.  Runs the built binary; needs no daemon.  Output is TAP.
# (The JSON of every verb against pmufilterctl(1)'s tables, with the daemon:
# tests/integration/test_cli_bus.py.)
#
# usage: test-cli.sh PMUFILTERCTL [SOURCE_ROOT]
set -euo pipefail

ctl=${1:?usage: test-cli.sh PMUFILTERCTL [SOURCE_ROOT]}
srcdir=${2:-}
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
skip() { n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n - $1 # SKIP $2"; }

# run ARGS...: run pmufilterctl, keep exit status, stdout and stderr.
run() {
        last_cmd="pmufilterctl $*"
        rc=0
        "$ctl" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
        out=$(cat "$tmp/out")
        err=$(cat "$tmp/err")
}

# check NAME CONDITION MESSAGE: CONDITION is evaluated by bash; what it
# prints on stderr (a Python assertion) is shown only when it fails.
check() {
        if eval "$2" 2>"$tmp/check-err"; then
                pass "$1"
        else
                fail "$1" "$3"
                sed 's/^/#   check: /' "$tmp/check-err"
        fi
}

stderr_lines() { [ -z "$err" ] && echo 0 || printf '%s\n' "$err" | wc -l; }

# ---- usage: exit 2, one line on stderr -------------------------------------

run --help
check "--help exits 0" '[ $rc -eq 0 ]' "expected exit 0"
for verb in status list show "profile list" "profile show" "profile set" \
            "profile reset" reload reapply monitor check compile events; do
        check "--help names '$verb'" 'grep -q "^  $verb\b" <<<"$out"' \
                "verb '$verb' missing from --help"
done
for opt in --config --pmu --json=MODE --no-legend --full --quiet --verbose --no-pager --state \
           --host --bus-address --runtime --for=DURATION --dry-run --version; do
        check "--help names $opt" 'grep -q -- "$opt" <<<"$out"' "option $opt missing from --help"
done
check "--help names the help verb" 'grep -q "^  help \[COMMAND...\]" <<<"$out"' "no 'help [COMMAND...]' in --help"

full_help=$out
run help
check "'help' is --help" '[ $rc -eq 0 ] && [ "$out" = "$full_help" ]' "expected the same text as --help"

run compile --help
compile_help=$out
check "compile --help: the verb's synopsis and options" \
        '[ $rc -eq 0 ] && head -n1 <<<"$out" | grep -qx "pmufilterctl \[OPTIONS...\] compile PROFILE" && grep -q -- "--config=FILE" <<<"$out" && grep -q -- "--json=MODE" <<<"$out" && ! grep -q -- "--runtime" <<<"$out" && ! grep -q -- "--bus-address" <<<"$out"' \
        "expected 'pmufilterctl [OPTIONS...] compile PROFILE', --config and --json, not --runtime or --bus-address"
run help compile
check "help compile = compile --help" '[ $rc -eq 0 ] && [ "$out" = "$compile_help" ]' "expected the same text"
run help profile reset
check "help profile reset: its synopsis, --runtime" \
        '[ $rc -eq 0 ] && head -n1 <<<"$out" | grep -qx "pmufilterctl \[OPTIONS...\] profile reset VM..." && grep -q -- "--runtime" <<<"$out"' \
        "expected the synopsis of profile reset and --runtime"
run help nonsense
check "help of an unknown verb: exit 2, one line" '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ]' "expected exit 2, one line"

run --version
check "--version prints the version" '[ $rc -eq 0 ] && grep -Eq "^pmufilterctl [0-9]+\.[0-9]+" <<<"$out"' \
        "expected 'pmufilterctl X.Y.Z', exit 0"

run frobnicate
check "unknown verb: exit 2, one line" \
        '[ $rc -eq 2 ] && [ "$err" = "pmufilterctl: unknown verb '"'"'frobnicate'"'"'. See --help." ]' \
        "expected exit 2 and exactly: pmufilterctl: unknown verb 'frobnicate'. See --help."

run --frobnicate check
check "unknown option: exit 2, one line" '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q -- "--frobnicate" <<<"$err"' \
        "expected exit 2 and one line naming --frobnicate"

run compile
check "compile without PROFILE: exit 2" '[ $rc -eq 2 ] && grep -q "compile PROFILE" <<<"$err"' \
        "expected exit 2 and the usage 'compile PROFILE'"

run events a b
check "events with two globs: exit 2" '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ]' "expected exit 2, one line"

run check --runtime
check "option not for the verb: exit 2" '[ $rc -eq 2 ] && grep -q -- "--runtime does not apply to .check." <<<"$err"' \
        "expected exit 2: --runtime does not apply to 'check'"

run profile frobnicate
check "unknown profile sub-verb: exit 2" '[ $rc -eq 2 ] && grep -q "unknown verb .profile frobnicate." <<<"$err"' \
        "expected exit 2 naming 'profile frobnicate'"

run --pmu= events
check "empty --pmu: exit 2" '[ $rc -eq 2 ]' "expected exit 2"

run --json=xml events
check "unknown --json mode: exit 2, one line" \
        '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q "expected pretty, short or off" <<<"$err"' \
        "expected exit 2: unknown JSON mode 'xml': expected pretty, short or off"

# --for: a strict time span (pmufilterctl(1), TIME SPANS), for profile set VM only.
for bad in "" 1.5h 90 -5min 5fortnights 0s 32d 99999999999999999999s; do
        run profile set gold vm1 "--for=$bad"
        check "--for='$bad': exit 2, one line" \
                '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q -- "--for .$bad.: .*See --help.$" <<<"$err"' \
                "expected exit 2 and one line: invalid --for '$bad': why. See --help."
done
run profile set gold vm1 --for 1h30
check "--for without a unit says so" '[ $rc -eq 2 ] && grep -q "a number needs a unit" <<<"$err"' \
        "expected 'a number needs a unit'"
run profile set gold --for 2h
check "--for without a VM: exit 2" \
        '[ $rc -eq 2 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q -- "--for needs a VM" <<<"$err"' \
        "expected exit 2: --for needs a VM"
run show vm1 --for 2h
check "--for on show: exit 2" '[ $rc -eq 2 ] && grep -q -- "--for does not apply to .show." <<<"$err"' \
        "expected exit 2: --for does not apply to 'show'"
run profile reset vm1 --for 2h
check "--for on profile reset: exit 2" '[ $rc -eq 2 ] && grep -q -- "--for does not apply to .profile reset." <<<"$err"' \
        "expected exit 2: --for does not apply to 'profile reset'"
run help profile set
check "help profile set names --for" '[ $rc -eq 0 ] && grep -q -- "--for=DURATION" <<<"$out"' "expected --for=DURATION"

# ---- online verbs without a bus: exit 1, one line ----------------------------
# (With the daemon: tests/integration/test_cli_bus.py.)

export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmp/no-bus"
for verb in list "show vm1" "profile list" "profile show p" "profile set p" "profile reset vm1" \
            reload reapply monitor; do
        # shellcheck disable=SC2086
        run $verb
        check "'$verb' without a bus: exit 1, one line" \
                '[ $rc -eq 1 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q "Failed to connect to the system bus" <<<"$err"' \
                "expected exit 1 and one line: Failed to connect to the system bus: ..."
done
run --bus-address="unix:path=$tmp/no-bus" list
check "--bus-address names the bus it failed to reach" \
        '[ $rc -eq 1 ] && grep -q "Failed to connect to bus unix:path=$tmp/no-bus" <<<"$err"' \
        "expected the address in the message"
run
check "no verb runs 'status': without the daemon it shows this host, exit 1" \
        '[ $rc -eq 1 ] && grep -q "^pmufilterd: *not running (cannot connect" <<<"$out" && grep -q "^Host PMU:" <<<"$out"' \
        "expected 'pmufilterd: not running (...)' and the host PMU"
unset DBUS_SYSTEM_BUS_ADDRESS

# ---- check ----------------------------------------------------------------------

cat >"$tmp/good.yaml" <<'EOF'
version: 1
settings:
  default_profile: small
profiles:
  small:
    tier: tenant
    events: [ instructions, cycles ]
  wide:
    tier: trusted
    events:
      - { select: 0xb7, umask: any }
rules:
  - match: { uid: "0" }
    profile: wide
EOF

cat >"$tmp/fragment.yaml" <<'EOF'
profiles:
  extra:
    extends: small
    events: [ branches ]
rules:
  - match: { uid: "1000" }
    profile: extra
EOF

cat >"$tmp/unknown-key.yaml" <<'EOF'
version: 1
profiles:
  a:
    tier: tenant
    colour: blue
EOF

cat >"$tmp/bad-event.yaml" <<'EOF'
version: 1
profiles:
  a:
    tier: tenant
    events:
      - instructions
      - NO_SUCH_EVENT_XYZZY
EOF

cat >"$tmp/bad-rule.yaml" <<'EOF'
version: 1
profiles:
  a:
    tier: tenant
    events: [ instructions ]
rules:
  - match: { uid: "0" }
    profile: nope
EOF

run check "$tmp/good.yaml"
check "check of a good file: exit 0, summary" \
        '[ $rc -eq 0 ] && [ "$out" = "$tmp/good.yaml: 2 profiles, 1 rule: OK" ]' \
        "expected exit 0 and '$tmp/good.yaml: 2 profiles, 1 rule: OK'"
check "check of a good file: no diagnostics" '! grep -Eq "error|warning" <<<"$err"' "expected no error or warning"

run check "$tmp/good.yaml" "$tmp/fragment.yaml"
check "check with a fragment merges it" \
        '[ $rc -eq 0 ] && [ "$out" = "$tmp/good.yaml: 3 profiles, 2 rules (2 files): OK" ]' \
        "expected exit 0 and '3 profiles, 2 rules (2 files): OK'"

run --config "$tmp/good.yaml" check
check "check --config reads that file" '[ $rc -eq 0 ] && grep -q "2 profiles, 1 rule: OK" <<<"$out"' \
        "expected exit 0 and the summary of good.yaml"

run --config "$tmp/good.yaml" check "$tmp/good.yaml"
check "check with --config and FILE: exit 2" '[ $rc -eq 2 ]' "expected exit 2"

run check "$tmp/unknown-key.yaml"
check "unknown key: exit 1, file:line:column" \
        '[ $rc -eq 1 ] && grep -Eq "^$tmp/unknown-key.yaml:5:5: error: .*colour" <<<"$err"' \
        "expected exit 1 and '$tmp/unknown-key.yaml:5:5: error: ...colour...'"
check "unknown key: summary says FAILED" 'grep -q "FAILED" <<<"$out"' "expected FAILED on stdout"

run check "$tmp/bad-event.yaml"
check "unknown event name: exit 1, file:line:column" \
        '[ $rc -eq 1 ] && grep -Eq "^$tmp/bad-event.yaml:7:9: error: .*NO_SUCH_EVENT_XYZZY" <<<"$err"' \
        "expected exit 1 and '$tmp/bad-event.yaml:7:9: error: ...NO_SUCH_EVENT_XYZZY...'"

run check "$tmp/bad-rule.yaml"
check "rule naming an unknown profile: exit 1, file:line:column" \
        '[ $rc -eq 1 ] && grep -Eq "^$tmp/bad-rule.yaml:8:[0-9]+: error: .*nope" <<<"$err"' \
        "expected exit 1 and '$tmp/bad-rule.yaml:8:N: error: ...nope...'"

run -q check "$tmp/good.yaml"
check "check -q of a good file: nothing printed, exit 0" '[ $rc -eq 0 ] && [ -z "$out" ] && [ -z "$err" ]' \
        "expected exit 0 and no output"
run -q check "$tmp/bad-event.yaml"
check "check -q of a bad file: the diagnostic, no summary, exit 1" \
        '[ $rc -eq 1 ] && [ -z "$out" ] && grep -q "NO_SUCH_EVENT_XYZZY" <<<"$err"' \
        "expected exit 1, the error on stderr, nothing on stdout"

run check "$tmp/bad-event.yaml" --json
check "check --json: exit 1, the diagnostic in the JSON, nothing on stderr" \
        '[ $rc -eq 1 ] && [ -z "$err" ] && python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d[\"ok\"] is False and d[\"n_errors\"] == 1 and d[\"n_profiles\"] == 1, d
e = d[\"diagnostics\"][0]
assert e[\"level\"] == \"error\" and (e[\"line\"], e[\"column\"]) == (7, 9) and \"NO_SUCH_EVENT_XYZZY\" in e[\"message\"], e
" "$out"' "expected ok false, the error at 7:9 in diagnostics"

# Three mistakes of three kinds, planted in one file: one run reports all
# three, each at its place, in the order of the file, and nothing they
# cause (the rule naming the broken profile, its child's tier).
cat >"$tmp/three.yaml" <<'EOF'
version: 1
settings:
  attach_timeout_ms: 0
profiles:
  a:
    tier: tennant
    events: [ instructions ]
  b:
    extends: a
  c:
    tier: tenant
    event: [ cycles ]
rules:
  - match: { uid: "0" }
    profile: a
EOF
run check "$tmp/three.yaml"
check "three planted mistakes: three errors in one run, each at its place" \
        '[ $rc -eq 1 ] && [ "$err" = "$tmp/three.yaml:3:22: error: attach_timeout_ms: expected an integer 1-3600000, got '"'"'0'"'"'
$tmp/three.yaml:6:11: error: tier: expected tenant or trusted, got '"'"'tennant'"'"'
$tmp/three.yaml:12:5: error: profile: unknown key '"'"'event'"'"' (expected description, tier, extends, events, optional, fixed_counters, pmu or acknowledge_shared); did you mean '"'"'events'"'"'?" ]' \
        "expected exactly the three errors at 3:22, 6:11 and 12:5, and exit 1"
check "three planted mistakes: the summary counts three" \
        '[ "$out" = "$tmp/three.yaml: 3 errors, 0 warnings: FAILED" ]' "expected '$tmp/three.yaml: 3 errors, 0 warnings: FAILED'"

# A mistake in each of two files: both reported; the fragment's rule names
# a profile the broken main file may have defined, and is not called
# undefined.
printf 'profiles:\n  a: { tier: tenant\n' >"$tmp/broken-main.yaml"
printf 'rules:\n  - { match: { uid: "0" }, profile: a }\n  - { match: {}, profle: a }\n' >"$tmp/broken-frag.yaml"
run check "$tmp/broken-main.yaml" "$tmp/broken-frag.yaml"
check "a mistake in each of two files: both, in one run" \
        '[ $rc -eq 1 ] && [ "$(stderr_lines)" -eq 2 ] && grep -q "^$tmp/broken-main.yaml:3:1: error: YAML: " <<<"$err" && grep -q "^$tmp/broken-frag.yaml:3:18: error: rule: unknown key .profle." <<<"$err"' \
        "expected a YAML error in broken-main.yaml and the unknown key at broken-frag.yaml:3:18, nothing else"

# An unknown event name, with the closest name of the PMU in force; and a
# schema error elsewhere does not keep it from being found.
cat >"$tmp/typo-event.yaml" <<'EOF'
version: 1
profiles:
  a:
    tier: tenant
    events:
      - instructions
      - cylces
  b:
    tier: trusted
    evnets: [ branches ]
EOF
run --pmu intel check "$tmp/typo-event.yaml"
check "unknown event: did you mean the closest name, in the same run as a schema error" \
        '[ $rc -eq 1 ] && [ "$err" = "$tmp/typo-event.yaml:10:5: error: profile: unknown key '"'"'evnets'"'"' (expected description, tier, extends, events, optional, fixed_counters, pmu or acknowledge_shared); did you mean '"'"'events'"'"'?
$tmp/typo-event.yaml:7:9: error: unknown event '"'"'cylces'"'"' for PMU intel; did you mean '"'"'cycles'"'"'?" ]' \
        "expected the unknown key at 10:5 and 'cylces' at 7:9 with their suggestions"

# perf's spellings: r412e and cpu/event=...,umask=.../ compile to the words
# of 0x412e and { select, umask }; a term the filter cannot compare is an
# error naming it.
cat >"$tmp/perf.yaml" <<'EOF'
version: 1
profiles:
  p:
    tier: trusted
    events:
      - r412e
      - cpu/event=0x2e,umask=0x4f,name=llc-refs/
EOF
cat >"$tmp/perf-bad.yaml" <<'EOF'
version: 1
profiles:
  bad:
    tier: trusted
    events:
      - cpu/event=0x2e,umask=0x41,cmask=1/
EOF
run --pmu intel check "$tmp/perf-bad.yaml"
check "perf spellings: a term the filter cannot compare is an error at its place" \
        '[ $rc -eq 1 ] && [ "$err" = "$tmp/perf-bad.yaml:6:9: error: event: '"'"'cpu/event=0x2e,umask=0x41,cmask=1/'"'"': term '"'"'cmask'"'"' cannot be filtered: KVM'"'"'s filter compares only the event select (event=) and unit mask (umask=)" ]' \
        "expected exactly the cmask error at 6:9"
run --pmu intel --config "$tmp/perf.yaml" compile p --json
check "perf spellings: r412e and cpu/event=0x2e,umask=0x4f/ are the words 0x412e and 0x4f2e" \
        '[ $rc -eq 0 ] && grep -q "\"events\":\[\"0x412e\",\"0x4f2e\"\]" <<<"$out"' \
        "expected events [0x412e, 0x4f2e]"

run check "$tmp/does-not-exist.yaml"
check "missing file: exit 1, names it" '[ $rc -eq 1 ] && grep -q "does-not-exist.yaml" <<<"$err"' \
        "expected exit 1 and the file named on stderr"

# The shipped policy checks quiet on Intel and AMD alike, and on this host:
# nothing on stderr (but the note of a machine without /dev/kvm, which is
# about the machine), OK on stdout.  What its optional events skip is for
# --verbose.
policy_diags() { grep -v "^note: /dev/kvm not available" <<<"$err" || true; }
if [ -n "$srcdir" ] && [ -f "$srcdir/conf/pmufilterd.yaml" ]; then
        for pmu in intel amd host; do
                if [ $pmu = host ]; then
                        run check "$srcdir/conf/pmufilterd.yaml"
                else
                        run --pmu $pmu check "$srcdir/conf/pmufilterd.yaml"
                fi
                check "check of the shipped conf/pmufilterd.yaml on $pmu: exit 0, OK, prints nothing else" \
                        '[ $rc -eq 0 ] && [ -z "$(policy_diags)" ] && [ "$out" = "$srcdir/conf/pmufilterd.yaml: 4 profiles, 3 rules: OK" ]' \
                        "expected exit 0, the OK line and nothing on stderr"
        done
        run --pmu amd check --verbose "$srcdir/conf/pmufilterd.yaml"
        check "check --verbose of the shipped policy: a note for each optional event skipped" \
                '[ $rc -eq 0 ] && grep -Eq "^$srcdir/conf/pmufilterd.yaml:[0-9]+:9: note: event '"'"'ref-cycles'"'"' is optional and skipped: PMU amd does not name it$" <<<"$err" && [ "$(policy_diags | grep -c ": note: ")" -eq 5 ] && [ "$(policy_diags | wc -l)" -eq 5 ]' \
                "expected five notes (ref-cycles, stalled-cycles-*, cache-*) and nothing else"
        run --pmu intel -v check "$srcdir/conf/pmufilterd.yaml"
        check "check -v of the shipped policy on intel: the AMD-only names noted" \
                '[ $rc -eq 0 ] && [ "$(policy_diags | grep -c "optional and skipped: PMU intel does not name it$")" -eq 2 ]' \
                "expected notes for stalled-cycles-frontend and -backend"
else
        skip "check of the shipped conf/pmufilterd.yaml" "conf/pmufilterd.yaml not found (source root '${srcdir}')"
fi

# The leak lint: a tenant tier that allows an event observing what other
# tenants share is warned about where the entry is written, and check still
# passes (exit 0: warnings never fail a configuration); an acknowledged one
# is a note.  --pmu makes the vendor's table the same on every host.
cat >"$tmp/leaky.yaml" <<'EOF'
version: 1
profiles:
  tenant-a:
    tier: tenant
    events:
      - instructions
      - { select: 0x43, umask: 0x08 }
    optional:
      - cache-misses
  tenant-hpc:
    tier: tenant
    events: [ instructions ]
    optional: [ cache-misses ]
    acknowledge_shared: [ cache-misses ]
  trusted:
    tier: trusted
    optional: [ cache-misses, cache-references ]
EOF

run --pmu intel check "$tmp/leaky.yaml"
check "leak lint: check warns, exit 0, summary counts it" \
        '[ $rc -eq 0 ] && [ "$out" = "$tmp/leaky.yaml: 3 profiles, 0 rules: OK, 1 warning" ]' \
        "expected exit 0 and '$tmp/leaky.yaml: 3 profiles, 0 rules: OK, 1 warning'"
check "leak lint: the warning names the profile, the event and its place" \
        'grep -Fxq "$tmp/leaky.yaml:9:9: warning: profile '"'"'tenant-a'"'"' (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e): it observes the last-level cache, shared with other tenants; add the entry to the profile'"'"'s acknowledge_shared if that is intended" <<<"$err"' \
        "expected the warning at $tmp/leaky.yaml:9:9 for cache-misses (LONGEST_LAT_CACHE.MISS)"
check "leak lint: an acknowledged event is a note, a denylist nothing" \
        'grep -q "^$tmp/leaky.yaml:13:17: note: profile .tenant-hpc. (tier tenant) allows LONGEST_LAT_CACHE.MISS (0x412e): .*; acknowledged$" <<<"$err" && [ "$(grep -c ": warning: " <<<"$err")" -eq 1 ]' \
        "expected one note for tenant-hpc and no warning but tenant-a's"

run --pmu amd check "$tmp/leaky.yaml"
check "leak lint: the AMD table on --pmu amd" \
        '[ $rc -eq 0 ] && grep -Fq "$tmp/leaky.yaml:7:9: warning: profile '"'"'tenant-a'"'"' (tier tenant) allows LsDmndFillsFromSys (0x0843): it observes the caches and memory that served its loads" <<<"$err" && [ "$(grep -c ": warning: " <<<"$err")" -eq 1 ]' \
        "expected exit 0 and one warning at 7:9 for LsDmndFillsFromSys (0x0843)"

# Kernel support: probed through /dev/kvm where it can be opened, assumed
# (and said so) where not.  Both sides are tested where the machine allows.
run check "$tmp/good.yaml"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        check "with /dev/kvm, check probes the kernel (no assumption note)" \
                '! grep -q "/dev/kvm not available" <<<"$err"' "expected no assumption note"
else
        skip "with /dev/kvm, check probes the kernel" "/dev/kvm not accessible here"
fi

# Without /dev/kvm: hide it in a private mount namespace (needs root).
if unshare -m true 2>/dev/null; then
        nokvm() {
                last_cmd="(no /dev/kvm) pmufilterctl $*"
                rc=0
                unshare -m bash -c 'mount -t tmpfs none /dev && exec "$@"' - "$ctl" "$@" \
                        >"$tmp/out" 2>"$tmp/err" || rc=$?
                out=$(cat "$tmp/out")
                err=$(cat "$tmp/err")
        }
        nokvm check "$tmp/good.yaml"
        check "without /dev/kvm, check passes and says what it assumed" \
                '[ $rc -eq 0 ] && [ "$(stderr_lines)" -eq 1 ] && grep -q "^note: /dev/kvm not available (.*): checked against assumed kernel support" <<<"$err"' \
                "expected exit 0 and one note naming the assumption"
        nokvm --config "$tmp/good.yaml" compile wide --json
        check "without /dev/kvm, masked entries are assumed supported" \
                '[ $rc -eq 0 ] && grep -q "\"flags\":1" <<<"$out"' "expected flags 1 (masked) in the JSON"
else
        skip "without /dev/kvm, check says what it assumed" "cannot hide /dev/kvm: unshare -m needs root"
        skip "without /dev/kvm, masked entries are assumed supported" "cannot hide /dev/kvm: unshare -m needs root"
fi

# ---- compile ----------------------------------------------------------------------

run --config "$tmp/good.yaml" compile small --json
check "compile --json: exit 0, one line" '[ $rc -eq 0 ] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ]' \
        "expected exit 0 and one line of JSON"
check "compile --json parses as JSON" 'python3 -m json.tool <<<"$out" >/dev/null' "python3 -m json.tool rejected it"
check "compile --json has exactly the agreed keys and types" \
        'python3 -c "
import json, re, sys
d = json.loads(sys.argv[1])
assert list(d) == [\"profile\", \"tier\", \"pmu\", \"action\", \"flags\", \"fixed_counter_bitmap\", \"events\",
                   \"n_events\", \"event_names\"], list(d)
assert d[\"profile\"] == \"small\" and d[\"tier\"] == \"tenant\" and d[\"pmu\"] == \"on\" and d[\"action\"] == \"allow\"
assert type(d[\"flags\"]) is int and type(d[\"fixed_counter_bitmap\"]) is int and d[\"n_events\"] == 2
assert len(d[\"events\"]) == 2 and all(re.fullmatch(\"0x[0-9a-f]+\", e) for e in d[\"events\"]), d[\"events\"]
assert sorted(d[\"event_names\"]) == [\"cycles\", \"instructions\"], d[\"event_names\"]
" "$out"' "keys, order or types differ from {profile, tier, pmu, action, flags, fixed_counter_bitmap, events, n_events, event_names}"

short=$out
run --config "$tmp/good.yaml" compile small --json=short
check "--json=short is plain --json" '[ $rc -eq 0 ] && [ "$out" = "$short" ]' "expected the same line"
run --config "$tmp/good.yaml" compile small --json=pretty
check "--json=pretty: the same object, indented" \
        '[ $rc -eq 0 ] && [ "$(printf "%s\n" "$out" | wc -l)" -gt 1 ] && grep -q "^  \"profile\": \"small\",$" <<<"$out" && python3 -c "
import json, sys
assert json.loads(sys.argv[1]) == json.loads(sys.argv[2])
" "$out" "$short"' "expected several lines, two-space indent, equal to --json=short"

run --config "$tmp/good.yaml" compile wide --json
check "compile --json of a masked denylist" \
        'python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d[\"action\"] == \"deny\" and d[\"flags\"] == 1 and len(d[\"events\"]) == 1, d
" "$out"' "expected action deny, flags 1 (masked), one entry"

run --config "$tmp/good.yaml" compile small
check "compile: human view has the header and one row per entry" \
        '[ $rc -eq 0 ] && grep -q "^Action: *allow" <<<"$out" && grep -q "^Fixed counters:" <<<"$out" && [ "$(grep -Ec "^ *[0-9]+ +0x" <<<"$out")" -eq 2 ]' \
        "expected Action/Fixed counters lines and two entry rows"

run --config "$tmp/good.yaml" compile small --no-legend
check "compile --no-legend: rows only" \
        '[ $rc -eq 0 ] && ! grep -q "Action:" <<<"$out" && [ "$(printf "%s\n" "$out" | wc -l)" -eq 2 ]' \
        "expected exactly the two entry rows"

run --config "$tmp/good.yaml" compile nope
check "compile of an unknown profile: exit 1, lists the known ones" \
        '[ $rc -eq 1 ] && [ "$err" = "pmufilterctl: Unknown profile '"'"'nope'"'"'; known: small, wide" ]' \
        "expected: pmufilterctl: Unknown profile 'nope'; known: small, wide"

if "$ctl" --version | grep -q '^+libpfm4'; then
        cat >"$tmp/pfm.yaml" <<'EOF'
version: 1
profiles:
  p:
    tier: tenant
    events: [ "INST_RETIRED:ANY_P" ]
EOF
        run --pmu skx --config "$tmp/pfm.yaml" compile p --json
        check "--pmu skx compiles a libpfm4 name" \
                '[ $rc -eq 0 ] && python3 -c "
import json, sys
assert json.loads(sys.argv[1])[\"events\"] == [\"0xc0\"]
" "$out"' "expected INST_RETIRED:ANY_P -> 0xc0 on skx"
else
        skip "--pmu skx compiles a libpfm4 name" "built without libpfm4"
fi

run --pmu no-such-pmu events
check "unknown --pmu: exit 1, names it" '[ $rc -eq 1 ] && grep -q "no-such-pmu" <<<"$err"' \
        "expected exit 1 naming no-such-pmu"

# ---- events -----------------------------------------------------------------------

run events
check "events lists instructions" '[ $rc -eq 0 ] && grep -Eq "^instructions +0x[0-9a-f]+ +0x[0-9a-f]+ +0x[0-9a-f]+ +yes" <<<"$out"' \
        "expected a row 'instructions 0x…'"
check "events has a header" 'head -n1 <<<"$out" | grep -q "^NAME"' "expected NAME header"

run events --no-legend 'instr*'
check "events --no-legend GLOB: no header, only matches" \
        '[ $rc -eq 0 ] && ! grep -q "^NAME" <<<"$out" && ! grep -viq "^instr" <<<"$out"' \
        "expected rows starting 'instr' only"

run events --json instructions
check "events --json: typed objects" \
        '[ $rc -eq 0 ] && python3 -c "
import json, sys
e = json.loads(sys.argv[1])[\"events\"]
assert e[0][\"name\"] == \"instructions\" and e[0][\"generic\"] is True, e
assert e[0][\"code\"].startswith(\"0x\")
" "$out"' "expected {\"events\": [{\"name\": \"instructions\", \"generic\": true, \"code\": \"0x…\"}]}"

run events 'no-such-event-*'
check "events GLOB matching nothing: exit 1" '[ $rc -eq 1 ] && [ "$(stderr_lines)" -eq 1 ]' "expected exit 1, one line"

echo "1..$n"
echo "# $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
