#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pmufilterctl's online verbs against the built daemon on a private
dbus-daemon: status (with and without the daemon), list, show, profile
list/show/set/reset, reload, reapply, monitor, their --json forms, the
one-line errors and exit statuses, and the bash completion.  The bus is
busharness.SystemBus (system bus defaults and the shipped policy; the tests
run as root).  The VMs are real (/dev/kvm); their VMM is busharness.AutoPeer,
which applies every APPLY with KVM_SET_PMU_EVENT_FILTER on its own VM fd and
answers what the kernel said."""

import errno
import json
import os
import re
import signal
import subprocess
import time

import harness
from busharness import AutoPeer, Lines, SystemBus
from harness import CTL, Daemon, check

CONFIG = """\
version: 1
settings:
  attach_timeout_ms: 1500
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ instructions, cycles ]
  gold:
    tier: tenant
    extends: minimal
    events: [ branches ]
  deny-shared:
    tier: trusted
    events:
      - { select: 0x2e, umask: any }
      - { select: 0x43, mask: 0xff, match: 0x01, exclude: true }
rules:
  - match: { label.tier: gold }
    profile: gold
"""

SRC_COMPLETION = os.path.join(harness.SRC, "shell-completion/bash/pmufilterctl")


def applies(v):
    """(APPLY message, errno) of each filter v's VMM applied, in order."""
    with v.cond:
        return [(msg, err) for _, msg, err in v.applies if msg is not None]


def ctl(bus, *args, env=None, timeout=90):
    """Run pmufilterctl on the private bus: (exit status, stdout, stderr)."""
    cmd = [CTL] + (["--bus-address=" + bus.address] if bus else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def ok(bus, *args):
    rc, out, err = ctl(bus, *args)
    check(rc == 0, "pmufilterctl %s: exit %d, stderr: %s" % (" ".join(args), rc, err))
    return out


def fails(bus, args, rx, status=1):
    """The command fails with `status` and one line on stderr matching rx."""
    rc, out, err = ctl(bus, *args)
    check(rc == status, "pmufilterctl %s: expected exit %d, got %d (%s)" % (" ".join(args), status, rc, err))
    check(err.count("\n") == 1 and re.search(rx, err),
          "pmufilterctl %s: expected one line matching %r, got %r" % (" ".join(args), rx, err))
    return err


def field(out, label):
    """The value of `Label:   value` in a human view."""
    m = re.search(r"^%s: +(.*)$" % re.escape(label), out, re.M)
    check(m, "no '%s:' line in:\n%s" % (label, out))
    return m.group(1)


def setup(config=CONFIG):
    harness.need_kvm()
    harness.need_root()
    harness.need(CTL, "pmufilterctl")
    bus = SystemBus()
    d = None
    try:
        d = Daemon(config_text=config, bus=bus.address)
        # The socket exists before the name is taken: wait for the name.
        deadline = time.time() + 10
        while ctl(bus, "status")[0] != 0:
            check(time.time() < deadline, "pmufilterd did not take its bus name:\n" + d.log())
            time.sleep(0.05)
    except BaseException:
        if d:
            d.stop()
        bus.stop()
        raise
    return bus, d


class Running:
    """A private bus and the daemon on it, for a `with` block."""

    def __init__(self, config=CONFIG):
        self.config = config

    def __enter__(self):
        self.bus, self.d = setup(self.config)
        self.vms = []
        return self

    def vm(self, name=None, **labels):
        """A filtered VM; .id is its id, applies(v) what its VMM applied."""
        attach = dict(("label_" + k, v) for k, v in labels.items())
        if name:
            attach["name"] = name
        v = AutoPeer(self.d.socket, **attach)
        self.vms.append(v)
        v.id = "%d-%d" % (os.getpid(), v.vm)
        v.wait_applies(1)
        # The peer records an APPLY before it answers: wait for the daemon
        # to have the answer.
        deadline = time.time() + 10
        while json.loads(ok(self.bus, "show", v.id, "--json"))["state"] != "filtered":
            check(time.time() < deadline, "VM %s not filtered:\n%s" % (v.id, self.d.log()))
            time.sleep(0.05)
        return v

    def __exit__(self, *exc):
        # A failing daemon (a sanitizer's report at exit) must not leave
        # the bus behind.
        try:
            for v in self.vms:
                v.close()
            self.d.stop()
        finally:
            self.bus.stop()


def test_status_with_daemon():
    with Running() as r:
        r.vm("vm-1", tier="gold")
        out = ok(r.bus, "status")
        check(re.match(r"pmufilterd: +running, version \d+\.\d+\.\d+, on bus unix:path=", out), "first line: %r" % out)
        check(field(out, "Default") == "minimal", "default profile minimal:\n" + out)
        # The daemon watches the whole host: other VMs may be counted too.
        check(re.match(r"[1-9]\d* \((\d+ \w+, )*\d+ filtered(, \d+ \w+)*\)$", field(out, "VMs")),
              "VMs counted by state, ours filtered:\n" + out)
        check(field(out, "Lockdown") == "no", "not in lockdown:\n" + out)
        check(field(out, "Last error") == "n/a", "no error:\n" + out)
        check(field(out, "Config files") == r.d.config, "the daemon's config file:\n" + out)
        check(field(out, "Event filter").startswith("supported"), "KVM has the filter here:\n" + out)
        host_pmu = field(out, "Host PMU").split(" ")[0]

        j = json.loads(ok(r.bus, "status", "--json"))
        check(j["running"] is True and j["version"] == field(out, "pmufilterd").split("version ")[1].split(",")[0],
              "JSON: running, same version: %r" % j)
        check(j["host_pmu"] == host_pmu and j["default_profile"] == "minimal" and j["nvms"] >= 1,
              "JSON: same PMU, default, count: %r" % j)
        # NVMs and ListVMs are two calls: another VM of the host may come between.
        check(sum(j["vms_by_state"].values()) >= 1 and j["vms_by_state"]["filtered"] >= 1,
              "JSON: counts by state: %r" % j)
        check(j["lockdown"] is False and j["config_files"] == [r.d.config] and j["last_error"] == "",
              "JSON: lockdown, files, error: %r" % j)
        check(j["filter_supported"] is True and isinstance(j["masked_events_supported"], bool)
              and isinstance(j["host_pmu_enabled"], bool), "JSON: kernel support as booleans: %r" % j)


def test_status_in_lockdown():
    with Running(config="version: 1\nprofiles: [ broken\n") as r:
        out = ok(r.bus, "status")
        check(re.match(r"pmufilterd: +running IN LOCKDOWN, ", out), "first line says lockdown: %r" % out)
        check(field(out, "Lockdown").startswith("YES: the policy failed to load"), "lockdown explained:\n" + out)
        check("pmufilterd.yaml" in field(out, "Last error"), "the error names the file:\n" + out)
        j = json.loads(ok(r.bus, "status", "--json"))
        check(j["lockdown"] is True and j["last_error"] == field(out, "Last error"), "JSON: lockdown, same error: %r" % j)
        check(ok(r.bus, "profile", "list", "--no-legend") == "", "no profiles in lockdown")
        fails(r.bus, ["profile", "set", "minimal"], r"^pmufilterctl: Failed to set the default profile to 'minimal': .*lockdown")


def test_status_without_daemon():
    harness.need(CTL, "pmufilterctl")
    with SystemBus() as bus:
        rc, out, err = ctl(bus, "status")
        check(rc == 1, "no daemon: exit 1, got %d (%s)" % (rc, err))
        check(re.match(r"pmufilterd: +not running \(nobody owns org\.pmufilterd1 on bus unix:path=", out),
              "first line says not running and why: %r" % out)
        host_pmu = field(out, "Host PMU")
        check(field(out, "Kernel") and field(out, "Event filter") and field(out, "Host vPMU"),
              "local kernel facts:\n" + out)

        j = json.loads(ctl(bus, "status", "--json")[1])
        check(j["running"] is False and "nobody owns" in j["reason"], "JSON says not running: %r" % j)
        check(host_pmu.startswith(j["host_pmu"] + " "), "JSON: same host PMU as the table: %r vs %r" % (j, host_pmu))
        check(isinstance(j["filter_supported"], bool) and isinstance(j["max_events"], int), "JSON: typed facts: %r" % j)

    # No bus at all, found through DBUS_SYSTEM_BUS_ADDRESS as the system bus.
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/pmufilterd-test-bus")
    rc, out, err = ctl(None, "status", env=env)
    check(rc == 1 and re.match(r"pmufilterd: +not running \(cannot connect to the system bus: ", out),
          "no bus: exit 1, says it cannot connect: %d %r %r" % (rc, out, err))
    check(field(out, "Host PMU") == host_pmu, "the same local facts")
    # The other verbs just fail, in one line.
    rc, out, err = ctl(None, "list", env=env)
    check(rc == 1 and err.count("\n") == 1 and "Failed to connect to the system bus" in err,
          "list without a bus: one line, exit 1: %d %r" % (rc, err))


def test_list_and_json_agree():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        out = ok(r.bus, "list")
        lines = out.splitlines()
        check(re.match(r"ID +NAME +PROFILE +SOURCE +STATE +PID$", lines[0]), "header: %r" % lines[0])
        check(lines[-1] == "%d VMs listed." % (len(lines) - 3), "footer counts the rows: %r" % lines[-1])
        # The daemon watches the whole host: other VMs may be listed too.
        rows = {l.split()[0]: l.split() for l in lines[1:-2]}
        check(rows.get(a.id) == [a.id, "vm-1", "gold", "rule:1", "filtered", str(os.getpid())],
              "row of vm-1: %r" % rows)
        check(rows.get(b.id) == [b.id, "vm-2", "minimal", "default", "filtered", str(os.getpid())],
              "row of vm-2: %r" % rows)

        vms = json.loads(ok(r.bus, "list", "--json"))["vms"]
        mine = [v for v in vms if v["pid"] == os.getpid()]
        check(sorted(v["id"] for v in mine) == sorted([a.id, b.id]), "JSON: the same VMs: %r" % vms)
        for v in mine:
            row = rows[v["id"]]
            check([v["id"], v["name"], v["profile"], v["source"], v["state"], str(v["pid"])] == row
                  and isinstance(v["pid"], int), "JSON row %r = table row %r" % (v, row))

        out = ok(r.bus, "list", "--no-legend")
        check(all(re.match(r"\d+-\d+ ", l) for l in out.splitlines()) and {a.id, b.id} <= {l.split()[0] for l in out.splitlines()},
              "--no-legend: rows only, ours among them: %r" % out)


def test_show_vm():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        apply, _ = applies(a)[0]
        for name in ("vm-1", a.id):
            out = ok(r.bus, "show", name)
            check(field(out, "VM") == a.id and field(out, "Name") == "vm-1", "identity:\n" + out)
            check(field(out, "Labels") == "tier=gold" and field(out, "State") == "filtered", "labels, state:\n" + out)
            check(field(out, "Profile") == "gold (from rule:1)", "profile and source:\n" + out)
            check(field(out, "Action").startswith("allow") and field(out, "Entries") == "3", "filter:\n" + out)
            check(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", field(out, "Applied")), "applied time:\n" + out)
            for event in ("instructions", "cycles", "branches"):
                check(re.search(r"^ *\d+ +0x[0-9a-f]+ .* %s\b" % event, out, re.M), "entry %s decoded:\n%s" % (event, out))

        j = json.loads(ok(r.bus, "show", "vm-1", "--json"))
        check(j["id"] == a.id and j["name"] == "vm-1" and j["state"] == "filtered" and j["profile"] == "gold"
              and j["profile_source"] == "rule:1" and j["labels"] == {"tier": "gold"} and j["pid"] == os.getpid(),
              "JSON properties: %r" % j)
        check(j["events"] == apply["EVENTS"].split(",") and j["action"] == "allow" and j["applied_usec"] > 0,
              "JSON: the words the VMM applied: %r vs %r" % (j, apply))


def test_show_tells_verified_facts_from_claims():
    """show says which facts of a VM the daemon read from the kernel and
    systemd, which the VMM claimed, and what a change would be bound to."""
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        out = ok(r.bus, "show", "vm-1")
        verified, claimed = field(out, "Verified"), field(out, "Claimed")
        check("uid=%d" % os.getuid() in verified and "comm=" in verified and "exe=" in verified,
              "verified facts:\n" + out)
        check("name=" not in verified and "label." not in verified, "no claim among the verified:\n" + out)
        check("name=vm-1" in claimed and "label.tier=gold" in claimed and "client=" in claimed,
              "claimed facts:\n" + out)
        check(field(out, "Bound to") == "uid %d with the claimed name 'vm-1'" % os.getuid(),
              "the binding:\n" + out)
        j = json.loads(ok(r.bus, "show", a.id, "--json"))
        check(j["verified_facts"]["uid"] == str(os.getuid()) and j["claimed_facts"]["name"] == "vm-1"
              and j["claimed_facts"]["label.tier"] == "gold"
              and j["bound_to"] == "uid %d with the claimed name 'vm-1'" % os.getuid(), "JSON: %r" % j)
        # A trusted tier on claims alone is called out; a tenant one is not.
        rc, out, err = ctl(r.bus, "profile", "set", "deny-shared", "vm-1", "--runtime")
        check(rc == 0 and re.search(r"warning: trusted-tier profile 'deny-shared' on VM vm-1 is bound to uid %d "
                                    r"with the claimed name 'vm-1'" % os.getuid(), err), "warning: %r" % err)
        rc, out, err = ctl(r.bus, "profile", "set", "minimal", "vm-1", "--runtime")
        check(rc == 0 and err == "", "no warning for a tenant tier: %r" % err)


def test_explain_says_why_a_vm_has_its_profile():
    """explain: the VM's facts, verified and claimed; every rule in order
    with its file:line and, where it failed, the key that failed and why;
    the override and what it is bound to; the default; the result."""
    with Running() as r:
        r.vm("vm-1", tier="silver")             # no rule matches: the default
        g = r.vm("vm-2", tier="gold")
        out = ok(r.bus, "explain", "vm-1")
        check(re.search(r"uid=%d" % os.getuid(), out) and re.search(r"label.tier=silver", out),
              "facts, verified and claimed:\n" + out)
        check(re.search(r"^ +1\. +%s:\d+ +no: label.tier 'silver' does not match 'gold'$" % re.escape(r.d.config),
                        out, re.M), "the rule, where it is, and why it failed:\n" + out)
        check(field(out, "Override") == "none" and field(out, "Default") == "minimal"
              and field(out, "Result") == "minimal (from default)", "override, default, result:\n" + out)
        out = ok(r.bus, "explain", g.id)
        check(re.search(r"^ +1\. +\S+:\d+ +matched$", out, re.M) and field(out, "Result") == "gold (from rule:1)",
              "the rule that decides:\n" + out)
        ok(r.bus, "profile", "set", "minimal", "vm-2", "--runtime")
        j = json.loads(ok(r.bus, "explain", "vm-2", "--json"))
        check(j["override"] == "minimal" and j["override_scope"] == "runtime"
              and j["bound_to"] == "uid %d with the claimed name 'vm-2'" % os.getuid()
              and j["profile_source"] == "runtime" and j["rules"][0]["matched"] is True
              and j["rules"][0]["location"].startswith(r.d.config + ":"), "JSON: %r" % j)


def test_reload_dry_run_shows_what_would_change():
    """reload --dry-run: the edited policy loaded, not applied; per VM the
    profile now and after, whether the filter bytes change; exit 3 when
    something would change, 0 when nothing would, 1 when it does not load."""
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 0 and re.search(r"^%s +vm-1 +gold +gold +same$" % a.id, out, re.M),
              "nothing would change (exit 0):\n%s%s" % (out, err))
        r.d.write_config(CONFIG.replace("events: [ branches ]", "events: [ branches, instructions, 0xc5 ]")
                         .replace("profile: gold", "profile: deny-shared"))
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 3 and re.search(r"^%s +vm-1 +gold +deny-shared +changes$" % a.id, out, re.M),
              "what would change (exit 3):\n%s%s" % (out, err))
        check(json.loads(ok(r.bus, "show", "vm-1", "--json"))["profile"] == "gold", "nothing was applied")
        r.d.write_config("")
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 1 and "the policy file is empty" in err, "a policy that does not load: %r" % err)


def test_profile_list_and_show():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        out = ok(r.bus, "profile", "list")
        rows = {l.split()[0]: l.split() for l in out.splitlines()[1:-2]}
        check(rows == {"minimal": ["minimal", "tenant", "allow", "2", "yes"],
                       "gold": ["gold", "tenant", "allow", "3", "no"],
                       "deny-shared": ["deny-shared", "trusted", "deny", "2", "no"]}, "profile rows: %r" % rows)
        j = json.loads(ok(r.bus, "profile", "list", "--json"))["profiles"]
        check({p["name"]: [p["name"], p["tier"], p["action"], str(p["entries"]), "yes" if p["default"] else "no"]
               for p in j} == rows, "JSON profiles = table: %r" % j)

        out = ok(r.bus, "profile", "show", "gold")
        check(field(out, "Profile") == "gold (tier tenant)" and field(out, "VMs") == a.id, "gold and its VM:\n" + out)
        check(field(out, "Source") == r.d.config and field(out, "Entries") == "3", "source, entries:\n" + out)
        out = ok(r.bus, "profile", "show", "deny-shared")
        check(field(out, "Flags") == "1 (KVM_PMU_EVENT_FLAG_MASKED_EVENTS)" and field(out, "VMs") == "none",
              "masked denylist:\n" + out)
        check(re.search(r"^ *\d+ +0x[0-9a-f]+ +0x43 +0xff +0x01 +yes", out, re.M), "the exclude entry decoded:\n" + out)
        j = json.loads(ok(r.bus, "profile", "show", "deny-shared", "--json"))
        check(j["name"] == "deny-shared" and j["tier"] == "trusted" and j["action"] == "deny" and len(j["entries"]) == 2
              and len(j["entry_names"]) == 2 and j["vms"] == [], "JSON profile: %r" % j)


def test_profile_set_vm_runtime_then_reset():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        n = len(applies(a))
        ok(r.bus, "profile", "set", "deny-shared", "vm-1", "--runtime")
        # The call returned after APPLIED: the VMM has seen and applied it.
        check(len(applies(a)) == n + 1, "profile set returned before the VMM applied (%d APPLY)" % len(applies(a)))
        apply, err = applies(a)[-1]
        check(apply["PROFILE"] == "deny-shared" and apply["FLAGS"] == "1" and err == 0,
              "the kernel took the masked denylist: %r errno %d" % (apply, err))
        out = ok(r.bus, "show", "vm-1")
        check(field(out, "Profile") == "deny-shared (from runtime)" and field(out, "State") == "filtered",
              "show after set:\n" + out)
        check(field(out, "Flags") == "1 (KVM_PMU_EVENT_FLAG_MASKED_EVENTS)", "masked:\n" + out)
        check(os.path.exists(os.path.join(r.d.dir, "run/state.yaml")), "--runtime wrote the runtime state")

        ok(r.bus, "profile", "reset", "vm-1", "--runtime")
        check(len(applies(a)) == n + 2, "reset applied before returning")
        out = ok(r.bus, "show", "vm-1", "--json")
        j = json.loads(out)
        check(j["profile"] == "gold" and j["profile_source"] == "rule:1", "back to the rule: %r" % j)

        # Persistent: the state file under the state directory.
        ok(r.bus, "profile", "set", "minimal", a.id)
        check(json.loads(ok(r.bus, "show", a.id, "--json"))["profile_source"] == "persistent", "persistent source")


def test_profile_set_default():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        na, nb = len(applies(a)), len(applies(b))
        ok(r.bus, "profile", "set", "gold")
        check(field(ok(r.bus, "status"), "Default") == "gold", "DefaultProfile changed")
        # vm-2 follows the default, and has it when the call returns; vm-1's rule wins.
        check(len(applies(b)) == nb + 1 and applies(b)[-1][0]["PROFILE"] == "gold", "vm-2 got gold: %r" % applies(b)[-1][0])
        check(len(applies(a)) == na, "vm-1 kept its rule's profile, no push")
        j = json.loads(ok(r.bus, "show", "vm-2", "--json"))
        check(j["profile"] == "gold" and j["profile_source"] == "default", "vm-2: gold from default: %r" % j)
        rows = ok(r.bus, "profile", "list", "--no-legend")
        check(re.search(r"^gold .* yes$", rows, re.M), "profile list marks gold as default:\n" + rows)


def test_reload():
    with Running() as r:
        r.d.write_config(CONFIG.replace("profiles:\n", "profiles:\n  extra:\n    tier: tenant\n    events: [ branches ]\n", 1))
        ok(r.bus, "reload")
        check("extra" in ok(r.bus, "profile", "list"), "the reloaded policy's new profile is listed")
        r.d.write_config("version: 1\nprofiles: [ broken\n")
        fails(r.bus, ["reload"], r"^pmufilterctl: Failed to reload the policy: The policy was not reloaded, the old one stays: ")
        check("extra" in ok(r.bus, "profile", "list"), "the old policy stays")
        check(field(ok(r.bus, "status"), "Last error") != "n/a", "status shows the error")


def test_reapply():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        na, nb = len(applies(a)), len(applies(b))
        ok(r.bus, "reapply", "vm-1")
        check(len(applies(a)) == na + 1 and len(applies(b)) == nb, "only vm-1 again, done on return")
        ok(r.bus, "reapply")
        check(len(applies(a)) == na + 2 and len(applies(b)) == nb + 1, "every VM again, done on return")


def human_monitor(r, a, out):
    """One sentence per event: "HH:MM:SS VM <id> (<name>) ..."."""
    def line(rx, what, timeout=10):
        return out.wait(lambda l: re.fullmatch(r"\d\d:\d\d:\d\d " + rx, l), what, timeout)

    out.wait(lambda l: l.startswith("Monitoring org.pmufilterd1 on bus "), "header line")
    # vm-1 attached before the monitor started: named from ListVMs.
    ok(r.bus, "reapply", "vm-1")
    line(r"VM %s \(vm-1\) filter applied: profile gold" % a.id, "vm-1 applied")
    # A new VM: added (its VMM has claimed nothing yet), then applied, named.
    b = r.vm("vm-2")
    line(r"VM %s added" % b.id, "vm-2 added")
    line(r"VM %s \(vm-2\) filter applied: profile minimal" % b.id, "vm-2 applied")
    # The kernel refuses a filter.
    a.force_errno = errno.EINVAL
    check(ctl(r.bus, "reapply", "vm-1")[0] == 1, "the refused reapply fails")
    line(r"VM %s \(vm-1\) filter FAILED: profile gold: KVM_SET_PMU_EVENT_FILTER failed: Invalid argument" % a.id,
         "vm-1 failed")
    a.force_errno = None
    # The default profile, told against the one before.
    ok(r.bus, "profile", "set", "gold")
    line(r"default profile changed: gold \(was minimal\)", "default profile change")
    line(r"VM %s \(vm-2\) filter applied: profile gold" % b.id, "vm-2 follows the default")
    # Reloads, good and bad (the default set over D-Bus stays).
    ok(r.bus, "reload")
    line(r"policy reloaded", "a good reload")
    r.d.write_config("version: 1\nprofiles: [ broken\n")
    ctl(r.bus, "reload")
    line(r"policy reload FAILED, the policy in force stays: .*pmufilterd\.yaml:.*", "a bad reload")
    r.d.write_config(CONFIG)
    # A VM whose VMM never attaches: unmanaged (by id: there is no name).
    kvm, vm = harness.kvm_create_vm()
    try:
        vm_id = "%d-%d" % (os.getpid(), vm)
        line(r"VM %s added" % vm_id, "the unattached VM added")
        line(r"VM %s unmanaged: its VMM did not attach, its guest PMU is not filtered" % vm_id, "unmanaged", 15)
    finally:
        os.close(vm)
        os.close(kvm)
    line(r"VM %s removed" % vm_id, "the unattached VM removed")
    # A VM that goes keeps its name to the end.
    r.vms.remove(b)
    b.close()
    line(r"VM %s \(vm-2\) removed" % b.id, "vm-2 removed")
    # Nothing but these sentences: no raw signal, no PropertiesChanged.
    check(not [l for l in out.text().split("\n")[1:] if not re.match(r"\d\d:\d\d:\d\d (VM|default|policy|pmufilterd|lockdown)", l)],
          "only sentences:\n" + out.text())


def test_monitor():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        for json_mode in (False, True):
            args = [CTL, "--bus-address=" + r.bus.address, "monitor"] + (["--json"] if json_mode else [])
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out = Lines(proc.stdout)
            try:
                if json_mode:
                    # No header to wait for: push until the subscription sees one.
                    deadline = time.time() + 20
                    while True:
                        ok(r.bus, "reapply", "vm-1")
                        try:
                            applied = json.loads(out.wait(lambda l: '"FilterApplied"' in l, "FilterApplied", 1))
                            break
                        except harness.Failure:
                            check(time.time() < deadline, "monitor --json printed no FilterApplied")
                    check(applied["vm"] == a.id and applied["profile"] == "gold" and applied["ok"] is True
                          and applied["error"] == "" and applied["time_usec"] > 0, "JSON FilterApplied: %r" % applied)
                    # The VM's properties change with every APPLIED.
                    changed = json.loads(out.wait(lambda l: '"PropertiesChanged"' in l and '"vm":"%s"' % a.id in l,
                                                  "PropertiesChanged of the VM"))
                    check(changed["interface"] == "org.pmufilterd1.VM" and changed["changed"]["state"] == "filtered"
                          and changed["changed"]["profile"] == "gold", "JSON PropertiesChanged: %r" % changed)
                    with out.cond:
                        for l in out.lines:
                            json.loads(l)
                else:
                    human_monitor(r, a, out)
                proc.send_signal(signal.SIGTERM)
                check(proc.wait(10) == 0, "monitor exits 0 on SIGTERM: %s" % proc.stderr.read())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_errors_are_one_line():
    with Running() as r:
        r.vm("vm-1", tier="gold")
        fails(r.bus, ["show", "no-such-vm"], r"^pmufilterctl: Failed to look up VM no-such-vm: No VM 'no-such-vm'")
        fails(r.bus, ["profile", "show", "nope"], r"^pmufilterctl: Failed to look up profile nope: No profile 'nope'")
        fails(r.bus, ["profile", "set", "nope", "vm-1"],
              r"^pmufilterctl: Failed to set profile of VM vm-1: No profile 'nope' in the policy \(see ListProfiles\)$")
        fails(r.bus, ["profile", "set", "nope"], r"^pmufilterctl: Failed to set the default profile to 'nope': No profile 'nope'")
        fails(r.bus, ["profile", "set", "gold", "no-such-vm"], r"^pmufilterctl: Failed to set profile of VM no-such-vm: No VM")
        # Each VM on its own: the one that fails does not keep the other from its profile.
        fails(r.bus, ["profile", "set", "minimal", "no-such-vm", "vm-1", "--runtime"],
              r"^pmufilterctl: Failed to set profile of VM no-such-vm: No VM")
        j = json.loads(ok(r.bus, "show", "vm-1", "--json"))
        check(j["profile"] == "minimal" and j["profile_source"] == "runtime", "vm-1 changed all the same: %r" % j)
        fails(r.bus, ["profile", "reset", "no-such-vm"], r"^pmufilterctl: Failed to reset the profile of VM no-such-vm: No VM")
        fails(r.bus, ["reapply", "no-such-vm"], r"^pmufilterctl: Failed to reapply the filter of VM no-such-vm: No VM")
        # A VM whose VMM never attached: the daemon sees it but cannot change its filter.
        kvm, vm = harness.kvm_create_vm()
        try:
            vm_id = "%d-%d" % (os.getpid(), vm)
            deadline = time.time() + 10
            while ctl(r.bus, "show", vm_id)[0] != 0:
                check(time.time() < deadline, "the daemon never saw VM %s:\n%s" % (vm_id, r.d.log()))
                time.sleep(0.05)
            fails(r.bus, ["profile", "set", "gold", vm_id],
                  r"^pmufilterctl: Failed to set profile of VM %s: VM %s has no session with pmufilterd" % (vm_id, vm_id))
        finally:
            os.close(vm)
            os.close(kvm)
        # Usage errors: exit 2.
        fails(r.bus, ["show"], r"too few arguments for 'show'", status=2)
        fails(r.bus, ["show", "a", "b"], r"too many arguments for 'show'", status=2)
        fails(r.bus, ["profile", "reset"], r"too few arguments for 'profile reset'", status=2)
        fails(r.bus, ["list", "--runtime"], r"--runtime does not apply to 'list'", status=2)
        fails(r.bus, ["monitor", "extra"], r"too many arguments for 'monitor'", status=2)
        fails(r.bus, ["-H", "somewhere", "status"], r"--host and --bus-address exclude each other", status=2)
        fails(r.bus, ["reload", "--json"], r"--json does not apply to 'reload'", status=2)


def complete(bus, *words):
    """What the bash completion offers for the last (partial) word."""
    harness.need(SRC_COMPLETION, "the bash completion")
    line = ["pmufilterctl", "--bus-address=" + bus.address] + list(words)
    script = ('PATH=%s:$PATH; source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; '
              'COMP_POINT=${#COMP_LINE}; _pmufilterctl; printf "%%s\\n" "${COMPREPLY[@]}"') % (
        os.path.dirname(CTL), SRC_COMPLETION, " ".join("'%s'" % w for w in line), len(line) - 1)
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "completion failed: %s" % p.stderr)
    return set(p.stdout.split())


def test_bash_completion():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        check({"status", "list", "show", "profile", "reload", "reapply", "monitor", "check", "compile", "events"}
              <= complete(r.bus, ""), "verbs offered")
        check(complete(r.bus, "profile", "") == {"list", "show", "set", "reset"}, "profile sub-verbs")
        check({"--json", "--no-legend", "--runtime", "--bus-address"} <= complete(r.bus, "--"), "options")
        check({"vm-1", a.id} <= complete(r.bus, "show", ""), "VM names and ids from the daemon")
        check(complete(r.bus, "profile", "set", "") == {"minimal", "gold", "deny-shared"}, "profile names")
        check(complete(r.bus, "profile", "set", "gold", "v") == {"vm-1"}, "VMs after the profile")
        check(complete(r.bus, "profile", "show", "de") == {"deny-shared"}, "a profile by prefix")


if __name__ == "__main__":
    harness.main(globals())
