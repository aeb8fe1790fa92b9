#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time-limited grants (pmufilterd(8), TIME-LIMITED GRANTS): `pmufilterctl
profile set PROFILE VM --for DURATION` and Manager.SetVMProfileFor give a
VM a runtime profile that ends by itself.  Real parts: a private
dbus-daemon with the shipped bus policy (busharness.SystemBus), the built
daemon, busctl and gdbus, VMs on /dev/kvm whose VMM (busharness.AutoPeer)
applies every APPLY with KVM_SET_PMU_EVENT_FILTER.  Each test says what the
VMM received, what show and the D-Bus property say, what the runtime state
file holds and what the audit trail records, at the start and at the end
of a grant, across a restart, and for a grant that ended while the daemon
was down."""

import json
import os
import re
import signal
import time

import harness
from busharness import AutoPeer, SystemBus, need_bus_tools
from harness import Daemon, check
from test_bus import CONFIG, MGR, MGR_PATH, VM, last_apply, state_file, world
from test_cli_bus import ctl, field, ok

# The audit record of a change, and of its end (MID_RUNTIME).
GRANTED = (r"VM %s \(vm1\): profile set to 'minimal' granted until (\S+) \(for %s\) over D-Bus \(runtime\), "
           r"bound to uid \d+ with the claimed name 'vm1', by uid 0.*\[MESSAGE_ID=5c1e0b0e2f6d4c4f9a3e7d2b8f1a6c30 "
           r"VM_ID=%s PROFILE=minimal PID=\d+ CALLER_UID=0 CALLER_PID=\d+ (CALLER_UNIT=\S+ )?CALLER_BUS_NAME=:\S+ "
           r"VM_NAME=vm1 DECIDED_BY=rule:1 DECIDED_BY_LOCATION=/\S+\.yaml:\d+\]$")
EXPIRED = (r"Grant of profile 'minimal' to VM %s \(vm1\) expired%s; now 'gold' \(from rule:1 at /\S+\.yaml:\d+\) "
           r"\[MESSAGE_ID=5c1e0b0e2f6d4c4f9a3e7d2b8f1a6c30 VM_ID=%s PROFILE=gold ")


def profiles_applied(p):
    with p.cond:
        return [(t, m["PROFILE"]) for t, m, _ in p.applies if m is not None]


def wait_apply_of(p, profile, n_before, timeout):
    """The time (monotonic) the VMM answered an APPLY of profile, after its first n_before."""
    deadline = time.time() + timeout
    while True:
        got = [(t, prof) for t, prof in profiles_applied(p)[n_before:] if prof == profile]
        if got:
            return got[0][0]
        check(time.time() < deadline, "no APPLY of %s within %ss; the VMM got %r" %
              (profile, timeout, profiles_applied(p)))
        time.sleep(0.05)


def runtime_expiry(d):
    m = re.search(r'^expires_usec:\n  "uid:\d+/name:vm1": (\d+)$', state_file(d, runtime=True), re.M)
    return int(m.group(1)) if m else None


def test_grant_from_the_cli_ends_by_itself():
    """profile set --for 2s: the VMM applies the grant, show and --json and
    the property say when it ends, the runtime state keeps the expiry,
    and after it the VMM gets the rule's profile again, with a record at
    either end."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        check(last_apply(p)["PROFILE"] == "gold", "the rule's profile first")
        n = len(profiles_applied(p))
        start = time.time()
        rc, out, err = ctl(b, "profile", "set", "minimal", "vm1", "--for", "2s")
        check(rc == 0, "profile set --for: exit %d: %s" % (rc, err))
        check(re.search(r"^VM vm1: profile minimal applied$", out, re.M), "the answer line: %r" % out)
        check(re.search(r"^VM vm1: the grant ends \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(in [01]s\)$", out, re.M),
              "the expiry line: %r" % out)
        check(profiles_applied(p)[n:] and profiles_applied(p)[n][1] == "minimal",
              "the VMM got the grant: %r" % profiles_applied(p))

        expires = b.get(p.path, VM, "ProfileExpiresUSec")
        check(start * 1e6 + 1.5e6 < expires <= time.time() * 1e6 + 2e6,
              "ProfileExpiresUSec %d about 2 s after %d" % (expires, start * 1e6))
        check(b.get(p.path, VM, "ProfileSource") == "runtime", "the grant is a runtime change")
        check(runtime_expiry(d) == expires, "the runtime state keeps the expiry:\n" + state_file(d, True))
        j = json.loads(ok(b, "show", "vm1", "--json"))
        check(j["profile_expires_usec"] == expires and j["profile"] == "minimal", "show --json: %r" % j)
        check(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(in [01]s\)$", field(ok(b, "show", "vm1"), "Expires")),
              "show's Expires line")
        line = d.wait_line(GRANTED % (p.id, "2s", p.id))
        check(re.search(r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line), "an ISO time: " + line)

        t = wait_apply_of(p, "gold", n + 1, timeout=10)
        check(time.time() - start >= 1.9, "reverted after %.2fs, before the grant ended" % (time.time() - start))
        check(t, "the VMM got the rule's profile back")
        d.wait_line(EXPIRED % (p.id, "", p.id))
        b.wait_property(p.path, VM, "State", lambda s: s == "filtered", "filtered")
        v = b.props(p.path, VM)
        check(v["Profile"] == "gold" and v["ProfileSource"] == "rule:1" and v["ProfileExpiresUSec"] == 0,
              "after the grant: %s/%s/%s" % (v["Profile"], v["ProfileSource"], v["ProfileExpiresUSec"]))
        check("vm1" not in state_file(d, True) and "expires_usec" not in state_file(d, True),
              "the runtime state forgot the grant:\n" + state_file(d, True))
        j = json.loads(ok(b, "show", "vm1", "--json"))
        check(j["profile_expires_usec"] is None, "no expiry in --json: %r" % j["profile_expires_usec"])
        check("Expires:" not in ok(b, "show", "vm1"), "no Expires line without a grant")


def test_grant_over_dbus_root_only_and_checked():
    """SetVMProfileFor through busctl: refused to a non-root caller (by the
    bus, and by the daemon when the bus lets it through), InvalidArgs for
    0 and for more than 31 days, and as root it grants."""
    for relaxed, denied in ((False, r"^Rejected send message.*member=\"SetVMProfileFor\""),
                            (True, r"needs root.*uid 65534")):
        with world(relaxed=relaxed) as w:
            b, d = w.bus, w.d
            p = w.attach("vm1", label_tier="gold")
            n = len(p.applies)
            r = b.busctl("call", "org.pmufilterd1", MGR_PATH, MGR, "SetVMProfileFor", "sst", "vm1", "minimal",
                         "60000000", nobody=True)
            check(r.returncode == 1 and "Access denied" in r.stderr, "nobody busctl: %r" % r.stderr)
            b.gcall_error(MGR_PATH, MGR + ".SetVMProfileFor", "vm1", "minimal", "uint64 60000000", nobody=True,
                          error="org.freedesktop.DBus.Error.AccessDenied", message=denied)
            check(len(p.applies) == n and b.get(p.path, VM, "Profile") == "gold", "a refused grant changed the VM")
            check(state_file(d, True) == "", "a refused grant wrote the runtime state")

    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        n = len(p.applies)
        for usec, rx in (("0", r"more than 0"), (str(32 * 86400 * 10**6), r"at most 31 days")):
            b.gcall_error(MGR_PATH, MGR + ".SetVMProfileFor", "vm1", "minimal", "uint64 " + usec,
                          error="org.freedesktop.DBus.Error.InvalidArgs", message=rx)
        check(len(p.applies) == n and state_file(d, True) == "", "a grant of a bad length changed the VM")
        before = time.time()
        b.call(MGR_PATH, MGR, "SetVMProfileFor", "sst", "vm1", "minimal", str(3600 * 10**6))
        check(last_apply(p)["PROFILE"] == "minimal", "the call returned after the VMM applied the grant")
        expires = b.get(p.path, VM, "ProfileExpiresUSec")
        check(abs(expires - (before + 3600) * 1e6) < 5e6, "ends an hour later: %d" % expires)
        d.wait_line(GRANTED % (p.id, "1h", p.id))
        # A plain change replaces the grant: no expiry any more.
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        check(b.get(p.path, VM, "ProfileExpiresUSec") == 0 and runtime_expiry(d) is None,
              "SetVMProfile ends the grant:\n" + state_file(d, True))


def restart(d, how):
    d.proc.send_signal(how)
    d.proc.wait(10)
    os.unlink(d.socket)
    d.start()


def test_grant_survives_a_restart():
    """The daemon killed during a grant: started again on the same runtime
    directory, it still shows the expiry and still ends the grant, with
    an APPLY of the rule's profile to the VMM attached then."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        ok(b, "profile", "set", "minimal", "vm1", "--for", "5s")
        expires = b.get(p.path, VM, "ProfileExpiresUSec")
        w.peers.remove(p)
        p.close()

        restart(d, signal.SIGKILL)
        q = AutoPeer(d.socket, name="vm1", label_tier="gold")
        w.peers.append(q)
        q.wait_applies(1)
        q.id = "%d-%d" % (os.getpid(), q.vm)
        q.path = b.call(MGR_PATH, MGR, "GetVM", "s", q.id)[0]
        check(last_apply(q)["PROFILE"] == "minimal", "the grant holds after the restart: %r" % last_apply(q))
        check(b.get(q.path, VM, "ProfileExpiresUSec") == expires, "the same expiry after the restart")
        check(field(ok(b, "show", q.id), "Expires").endswith("s)"), "show says when it ends")
        check(time.time() * 1e6 < expires, "the test took too long to see the grant before its end")

        wait_apply_of(q, "gold", 1, timeout=15)
        check(time.time() * 1e6 >= expires - 0.2e6, "reverted before the grant's end")
        d.wait_line(EXPIRED % (q.id, "", q.id))
        check(runtime_expiry(d) is None, "the runtime state forgot the grant")


def test_grant_that_ended_while_down_ends_at_start():
    """A grant whose time ran out while the daemon was stopped is ended at
    start: said in the audit trail, gone from the runtime state, and the
    VM restored from its record and a VM attaching anew get the rule's
    profile."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        ok(b, "profile", "set", "minimal", "vm1", "--for", "3s")
        check(runtime_expiry(d), "the grant is in the runtime state")
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        check(runtime_expiry(d) > time.time() * 1e6, "the daemon stopped before the grant's end")
        p.detach()
        time.sleep(max(0, runtime_expiry(d) / 1e6 - time.time()) + 0.3)
        os.unlink(d.socket)
        with d.lock:
            d.lines.clear()
        d.start()
        d.wait_line(EXPIRED % (p.id, r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ while pmufilterd was not running",
                               p.id))
        check(runtime_expiry(d) is None and "vm1" not in state_file(d, True),
              "the runtime state forgot the grant:\n" + state_file(d, True))
        b.wait_property(p.path, VM, "Profile", lambda v: v == "gold", "the restored VM back on its rule")
        check(b.get(p.path, VM, "ProfileExpiresUSec") == 0, "no expiry on the restored VM")
        q = w.attach("vm1", label_tier="gold")
        check(last_apply(q)["PROFILE"] == "gold" and b.get(q.path, VM, "ProfileSource") == "rule:1",
              "a VM attaching anew follows the rule")


def test_grant_in_the_persistent_state_is_refused():
    """expires_usec in /var/lib's state.yaml (grants are never persistent)
    sets that file aside, as any corrupt one, rather than keep a grant
    that would never end; the runtime file's grant is read."""
    harness.need_kvm()
    harness.need_root()
    need_bus_tools()
    with SystemBus() as b, Daemon(config_text=CONFIG, bus=b.address, start=False) as d:
        text = ('version: 2\nvms:\n  "uid:0/name:vm1": "minimal"\nexpires_usec:\n'
                '  "uid:0/name:vm1": %d\n' % int((time.time() + 3600) * 1e6))
        for sub in ("state", "run"):
            os.makedirs(os.path.join(d.dir, sub))
            with open(os.path.join(d.dir, sub, "state.yaml"), "w") as f:
                f.write(text.replace("vm1", "vm2") if sub == "run" else text)
        d.start()
        path = os.path.join(d.dir, "state", "state.yaml")
        d.wait_line(re.escape(path) + r": 'expires_usec': a grant ends with the runtime state, it is never "
                    r"persistent: set aside as " + re.escape(path) + r"\.corrupt")
        check(not os.path.exists(path) and os.path.exists(path + ".corrupt"), "the persistent file set aside")
        p = AutoPeer(d.socket, name="vm1", label_tier="gold")
        q = AutoPeer(d.socket, name="vm2", label_tier="gold")
        try:
            p.wait_applies(1)
            q.wait_applies(1)
            check(last_apply(p)["PROFILE"] == "gold", "vm1 follows the rule: %r" % last_apply(p))
            check(last_apply(q)["PROFILE"] == "minimal", "vm2 has the runtime grant: %r" % last_apply(q))
            path = b.call(MGR_PATH, MGR, "GetVM", "s", "vm2")[0]
            check(b.get(path, VM, "ProfileExpiresUSec") > time.time() * 1e6, "vm2's grant ends in an hour")
        finally:
            p.close()
            q.close()


if __name__ == "__main__":
    harness.main(globals())
