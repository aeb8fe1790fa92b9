#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The D-Bus API (pmufilterd(8), D-BUS API) through real clients, busctl and gdbus, on a
private dbus-daemon that enforces the shipped bus policy: every method,
property and signal, the errors, who may change what (refused at the bus,
and by the daemon when the bus lets it through), persistence across a
restart, and the interface XML against the live introspection.  VMs are
real (/dev/kvm); their VMM is busharness.AutoPeer, which applies every
filter with the real ioctl."""

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
import types

import harness
from busharness import NAME, AutoPeer, SystemBus, compare_interfaces, interface_shapes, need_bus_tools
from harness import SRC, Daemon, Peer, attach_msg, check, kvm_create_vm

MGR_PATH = "/org/pmufilterd1"
MGR = "org.pmufilterd1.Manager"
VM = "org.pmufilterd1.VM"
PROFILE = "org.pmufilterd1.Profile"
PROPS = "org.freedesktop.DBus.Properties"
OBJMGR = "org.freedesktop.DBus.ObjectManager"

CONFIG = """\
version: 1
settings:
  attach_timeout_ms: 1000
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ 0x00c0, { select: 0xc4, umask: 0x00 } ]
  gold:
    tier: tenant
    extends: minimal
    events: [ 0x00c5 ]
  trusted:
    tier: trusted
    events: [ { select: 0xb7, umask: any } ]
rules:
  - match: { label.tier: gold }
    profile: gold
"""


@contextlib.contextmanager
def world(relaxed=False, config=CONFIG):
    """A private bus with the shipped policy, the daemon on it, and
    w.attach(name, ...) to add a filtered VM."""
    harness.need_kvm()
    harness.need_root()
    need_bus_tools()
    with SystemBus(relaxed) as b, Daemon(config_text=config, bus=b.address) as d:
        w = types.SimpleNamespace(bus=b, d=d, peers=[])

        def attach(name, **kw):
            p = AutoPeer(d.socket, name=name, **kw)
            w.peers.append(p)
            p.wait_applies(1)
            p.id = "%d-%d" % (os.getpid(), p.vm)
            p.path = b.call(MGR_PATH, MGR, "GetVM", "s", p.id)[0]
            b.wait_property(p.path, VM, "State", lambda s: s == "filtered", "filtered")
            return p

        w.attach = attach
        try:
            yield w
        finally:
            for p in w.peers:
                p.close()


def events_of(apply):
    return [int(e, 16) for e in apply.get("EVENTS", "").split(",") if e]


def last_apply(p):
    return p.applies[-1][1]


def state_file(d, runtime=False):
    path = os.path.join(d.dir, "run" if runtime else "state", "state.yaml")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


# -- the interface XML ------------------------------------------------------

def test_interface_xml_matches_live_introspection():
    with open(os.path.join(SRC, "dbus/org.pmufilterd1.xml")) as f:
        shipped = interface_shapes(f.read(), (MGR, VM, PROFILE))
    check(sorted(shipped) == sorted([MGR, VM, PROFILE]), "the XML describes %s" % sorted(shipped))
    with world() as w:
        b = w.bus
        p = w.attach("vm1")
        gold = b.call(MGR_PATH, MGR, "GetProfile", "s", "gold")[0]
        live = {}
        for path, iface in ((MGR_PATH, MGR), (p.path, VM), (gold, PROFILE)):
            for tool, xml_text in (("busctl", b.busctl_ok("introspect", "--xml-interface", NAME, path)),
                                   ("gdbus", b.gdbus_ok("introspect", "--xml", "--dest", NAME, "--object-path", path))):
                got = interface_shapes(xml_text, (iface,))
                check(iface in got, "%s introspect %s: no interface %s" % (tool, path, iface))
                compare_interfaces(shipped, got, "%s introspect %s" % (tool, path))
                live.update(got)
        check(OBJMGR in b.busctl_ok("introspect", NAME, MGR_PATH), "%s carries %s" % (MGR_PATH, OBJMGR))
        check(sorted(live) == sorted(shipped), "live interfaces %s" % sorted(live))


# -- reading ----------------------------------------------------------------

def test_reads_through_busctl_and_gdbus():
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", uuid="8e6b1e34-3c0e-4e8f-a2b4-5b0f1a2c3d4e", label_tier="gold")
        pid = os.getpid()
        apply = last_apply(p)

        # Manager methods, busctl
        vms = {v[0]: v for v in b.call(MGR_PATH, MGR, "ListVMs")[0]}
        check(vms.get(p.id) == [p.id, "vm1", "gold", "filtered", pid, p.path], "ListVMs: %r" % vms.get(p.id))
        for key in (p.id, "vm1", "8e6b1e34-3c0e-4e8f-a2b4-5b0f1a2c3d4e"):
            check(b.call(MGR_PATH, MGR, "GetVM", "s", key)[0] == p.path, "GetVM(%s)" % key)
        profiles = {x[0]: x for x in b.call(MGR_PATH, MGR, "ListProfiles")[0]}
        check(sorted(profiles) == ["gold", "minimal", "trusted"], "ListProfiles: %r" % profiles)
        check(profiles["gold"][1:4] == ["tenant", "allow", 3], "gold: %r" % profiles["gold"])
        check(profiles["minimal"][1:4] == ["tenant", "allow", 2], "minimal: %r" % profiles["minimal"])
        check(profiles["trusted"][1:4] == ["trusted", "deny", 1], "trusted: %r" % profiles["trusted"])
        gold = b.call(MGR_PATH, MGR, "GetProfile", "s", "gold")[0]
        check(gold == profiles["gold"][4], "GetProfile(gold) %s, ListProfiles %s" % (gold, profiles["gold"][4]))

        # Properties, busctl
        m = b.props(MGR_PATH, MGR)
        check(re.fullmatch(r"\d+\.\d+\.\d+", m["Version"]), "Version %r" % m["Version"])
        check(m["DefaultProfile"] == "minimal" and m["ConfigFiles"] == [d.config], "Manager: %r" % m)
        check(m["NVMs"] >= 1 and m["Lockdown"] is False and m["LastError"] == "", "Manager: %r" % m)
        check(m["HostPMU"] and m["FilterSupported"] is True, "Manager: %r" % m)
        check(isinstance(m["MaskedEventsSupported"], bool) and isinstance(m["HostPMUEnabled"], bool), "%r" % m)
        v = b.props(p.path, VM)
        want = {"Id": p.id, "Name": "vm1", "UUID": "8e6b1e34-3c0e-4e8f-a2b4-5b0f1a2c3d4e", "PID": pid,
                "Labels": {"tier": "gold"}, "Client": "library", "State": "filtered", "Profile": "gold",
                "ProfileSource": "rule:1", "Action": "allow", "Events": events_of(apply),
                "FixedCounterBitmap": int(apply["FIXED"], 16), "LastError": ""}
        for k, val in want.items():
            check(v[k] == val, "VM %s is %r, expected %r" % (k, v[k], val))
        check(len(v["Events"]) == 3, "gold compiles to 3 entries: %r" % v["Events"])
        check(abs(v["AppliedUSec"] - time.time() * 1e6) < 60e6, "AppliedUSec %d is not now" % v["AppliedUSec"])
        pr = b.props(gold, PROFILE)
        check(pr["Name"] == "gold" and pr["Tier"] == "tenant" and pr["Action"] == "allow", "Profile: %r" % pr)
        check(pr["Entries"] == v["Events"] and len(pr["EntryNames"]) == 3, "Profile entries: %r" % pr)
        check(pr["Source"] == d.config and pr["VMs"] == [p.path], "Profile: %r" % pr)
        check(b.get(p.path, VM, "Profile") == "gold", "get-property Profile")

        # the object tree
        objs = b.call(MGR_PATH, OBJMGR, "GetManagedObjects")[0]
        check(objs.get(p.path, {}).get(VM, {}).get("Profile", {}).get("data") == "gold",
              "GetManagedObjects: %r" % objs.get(p.path))
        for name, x in profiles.items():
            check(objs.get(x[4], {}).get(PROFILE, {}).get("Name", {}).get("data") == name,
                  "GetManagedObjects lists profile %s" % name)
        tree = b.busctl_ok("tree", NAME)
        check(p.path in tree and gold in tree, "busctl tree:\n" + tree)

        # the same through gdbus
        out = b.gcall_ok(MGR_PATH, MGR + ".ListVMs")
        check(re.search(r"\('%s', 'vm1', 'gold', 'filtered', (uint32 )?%d, (objectpath )?'%s'\)" %
                        (p.id, pid, re.escape(p.path)), out), "gdbus ListVMs: " + out)
        check(b.gcall_ok(MGR_PATH, MGR + ".GetVM", "vm1").strip() == "(objectpath '%s',)" % p.path, "gdbus GetVM")
        out = b.gcall_ok(MGR_PATH, MGR + ".ListProfiles")
        check(re.search(r"\('gold', 'tenant', 'allow', (uint32 )?3, (objectpath )?'%s'\)" % re.escape(gold), out),
              "gdbus ListProfiles: " + out)
        check(b.gcall_ok(MGR_PATH, MGR + ".GetProfile", "gold").strip() == "(objectpath '%s',)" % gold,
              "gdbus GetProfile")
        out = b.gcall_ok(p.path, PROPS + ".GetAll", VM)
        for s in ("'Profile': <'gold'>", "'State': <'filtered'>", "'Labels': <{'tier': 'gold'}>"):
            check(s in out, "gdbus GetAll VM lacks %s: %s" % (s, out))
        check(b.gcall_ok(MGR_PATH, PROPS + ".Get", MGR, "DefaultProfile").strip() == "(<'minimal'>,)",
              "gdbus Get DefaultProfile")
        out = b.gcall_ok(gold, PROPS + ".GetAll", PROFILE)
        check("'Tier': <'tenant'>" in out and p.path in out, "gdbus GetAll Profile: " + out)
        out = b.gcall_ok(MGR_PATH, OBJMGR + ".GetManagedObjects")
        check(p.path in out and gold in out, "gdbus GetManagedObjects: " + out)
        out = b.gdbus_ok("introspect", "--dest", NAME, "--object-path", p.path)
        check("readonly s Profile = 'gold';" in out, "gdbus introspect VM:\n" + out)
        check(b.gcall_ok(MGR_PATH, "org.freedesktop.DBus.Peer.Ping").strip() == "()", "Ping")


# -- changing, as root --------------------------------------------------------

def test_changes_as_root_apply_and_record():
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")

        def applied(what, profile, source, n_before, t_before):
            v = b.props(p.path, VM)
            check(v["Profile"] == profile and v["ProfileSource"] == source and v["State"] == "filtered",
                  "%s: VM is %s/%s/%s, expected %s/%s/filtered" % (what, v["Profile"], v["ProfileSource"],
                                                                 v["State"], profile, source))
            check(v["AppliedUSec"] > t_before, "%s: AppliedUSec did not move (%d)" % (what, v["AppliedUSec"]))
            check(len(p.applies) == n_before + 1, "%s: %d APPLY, expected %d" % (what, len(p.applies), n_before + 1))
            a = last_apply(p)
            check(a["PROFILE"] == profile and p.applies[-1][2] == 0,
                  "%s: APPLY %r, errno %r" % (what, a, p.applies[-1][2]))
            check(events_of(a) == v["Events"], "%s: Events %r, APPLY %r" % (what, v["Events"], a))
            return v["AppliedUSec"]

        t = b.get(p.path, VM, "AppliedUSec")
        check(t > 0, "AppliedUSec after attach")
        n = len(p.applies)
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        t = applied("SetVMProfile runtime (busctl)", "minimal", "runtime", n, t)
        check('"uid:%d/name:vm1": "minimal"' % os.getuid() in state_file(d, runtime=True), "runtime state: " + state_file(d, True))
        check("vm1" not in state_file(d), "a runtime change stays out of the persistent state")

        n = len(p.applies)
        b.gcall_ok(MGR_PATH, MGR + ".SetVMProfile", "vm1", "trusted", "false")
        t = applied("SetVMProfile persistent (gdbus)", "trusted", "persistent", n, t)
        a = last_apply(p)
        check(a["ACTION"] == "deny" and int(a["FLAGS"], 0) == 1, "trusted is a masked denylist: %r" % a)
        check('"uid:%d/name:vm1": "trusted"' % os.getuid() in state_file(d), "persistent state: " + state_file(d))
        check("vm1" not in state_file(d, runtime=True), "the runtime entry must not shadow it: " + state_file(d, True))

        n = len(p.applies)
        b.call(MGR_PATH, MGR, "ResetVMProfile", "sb", "vm1", "false")
        t = applied("ResetVMProfile", "gold", "rule:1", n, t)
        check("vm1" not in state_file(d), "reset removes the entry: " + state_file(d))

        n = len(p.applies)
        b.call(p.path, VM, "SetProfile", "sb", "minimal", "true")
        t = applied("VM.SetProfile", "minimal", "runtime", n, t)
        n = len(p.applies)
        b.gcall_ok(p.path, VM + ".Reapply")
        t = applied("VM.Reapply (gdbus)", "minimal", "runtime", n, t)
        n = len(p.applies)
        b.gcall_ok(MGR_PATH, MGR + ".Reapply", "@as []")
        t = applied("Reapply([]) (gdbus)", "minimal", "runtime", n, t)
        n = len(p.applies)
        b.call(MGR_PATH, MGR, "Reapply", "as", "1", "vm1")
        t = applied("Reapply([vm1])", "minimal", "runtime", n, t)

        # The default profile reaches a VM no rule matches.
        q = w.attach("plain")
        check(b.get(q.path, VM, "ProfileSource") == "default" and b.get(q.path, VM, "Profile") == "minimal",
              "plain starts on the default profile")
        n_q, t_q = len(q.applies), b.get(q.path, VM, "AppliedUSec")
        b.call(MGR_PATH, MGR, "SetDefaultProfile", "sb", "gold", "true")
        check(b.get(MGR_PATH, MGR, "DefaultProfile") == "gold", "DefaultProfile after SetDefaultProfile")
        check(b.get(q.path, VM, "Profile") == "gold" and b.get(q.path, VM, "ProfileSource") == "default",
              "plain follows the default profile")
        check(len(q.applies) == n_q + 1 and b.get(q.path, VM, "AppliedUSec") > t_q, "plain got the new filter")
        check('default_profile: "gold"' in state_file(d, runtime=True), "runtime state: " + state_file(d, True))
        b.gcall_ok(MGR_PATH, MGR + ".SetDefaultProfile", "minimal", "false")
        check('default_profile: "minimal"' in state_file(d), "persistent state: " + state_file(d))
        check(b.get(q.path, VM, "Profile") == "minimal", "plain back on minimal")

        # Reload: a changed profile is pushed to the VMs that use it.
        n_q = len(q.applies)
        d.write_config(CONFIG.replace("events: [ 0x00c0, { select: 0xc4, umask: 0x00 } ]",
                                      "events: [ 0x00c0, 0x00c2, { select: 0xc4, umask: 0x00 } ]"))
        b.call(MGR_PATH, MGR, "Reload")
        check(len(q.applies) > n_q and len(events_of(last_apply(q))) == 3, "Reload pushed the new minimal to plain")
        check(len(b.get(q.path, VM, "Events")) == 3, "plain's Events after Reload")
        check({x[0]: x[3] for x in b.call(MGR_PATH, MGR, "ListProfiles")[0]}["minimal"] == 3,
              "minimal has 3 entries after Reload")
        check(b.get(MGR_PATH, MGR, "LastError") == "", "LastError after a good reload")


def test_changes_reply_only_after_applied():
    # The daemon waits attach_timeout_ms for an APPLIED: longer than the delays.
    with world(config=CONFIG.replace("attach_timeout_ms: 1000", "attach_timeout_ms: 2500")) as w:
        b = w.bus
        p = w.attach("vm1", label_tier="gold")
        q = w.attach("vm2")
        p.delay, q.delay = 1.0, 1.5

        t0 = time.monotonic()
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        t1 = time.monotonic()
        answered = p.applies[-1][0]
        check(t1 - t0 >= 1.0, "SetVMProfile replied after %.3f s, before the VMM's 1 s answer" % (t1 - t0))
        check(answered <= t1, "the reply came before the VMM answered APPLIED")
        check(b.get(p.path, VM, "Profile") == "minimal", "the change is in force when the reply comes")

        t0 = time.monotonic()
        b.gcall_ok(MGR_PATH, MGR + ".Reapply", "['vm1', 'vm2']")
        t1 = time.monotonic()
        check(t1 - t0 >= 1.5, "Reapply of two VMs replied after %.3f s, before the slower (1.5 s) one" % (t1 - t0))
        check(q.applies[-1][0] <= t1 and p.applies[-1][0] <= t1, "Reapply replied before both answered")

        # A VMM that does not answer in time fails the call; it does not hang.
        q.delay = 4.0
        t0 = time.monotonic()
        b.gcall_error(MGR_PATH, MGR + ".Reapply", "['vm2']", error="org.pmufilterd1.ApplyFailed",
                      message="no APPLIED")
        t1 = time.monotonic()
        check(2.4 <= t1 - t0 < 4.0, "ApplyFailed after %.3f s, expected attach_timeout_ms (2.5 s)" % (t1 - t0))
        check(b.get(q.path, VM, "State") == "failed", "the silent VM is failed")
        check(b.get(p.path, VM, "State") == "filtered", "the other VM is untouched")


def test_unanswered_applies_time_out_each_at_its_own_deadline():
    """One timer serves every session's APPLY timeout.  An APPLY sent later
    with a shorter timeout (a reload changed it) fails first, the earlier
    one still at its own deadline, and a VM that answers is not failed."""
    import subprocess
    import threading
    config = CONFIG.replace("attach_timeout_ms: 1000", "attach_timeout_ms: 1600")
    with world(config=config) as w:
        b, d = w.bus, w.d
        p, q, r = w.attach("vm1"), w.attach("vm2"), w.attach("vm3")
        p.delay, q.delay = 3.0, 3.0
        ends = {}

        def reapply(vm):
            # gdbus's own timeout is 25 s: it waits for the daemon's answer.
            rc, out, err = b.gcall(MGR_PATH, MGR + ".Reapply", "['%s']" % vm)
            ends[vm] = (time.monotonic(), rc, err)

        t0 = time.monotonic()
        first = threading.Thread(target=reapply, args=("vm1",))
        first.start()
        time.sleep(0.2)
        d.write_config(config.replace("attach_timeout_ms: 1600", "attach_timeout_ms: 400"))
        b.call(MGR_PATH, MGR, "Reload")
        t1 = time.monotonic()
        second = threading.Thread(target=reapply, args=("vm2",))
        second.start()
        b.call(MGR_PATH, MGR, "Reapply", "as", "1", "vm3")        # answers at once
        first.join(10)
        second.join(10)
        check("vm1" in ends and "vm2" in ends, "both calls returned: %s" % ends)
        for vm, start, timeout in (("vm1", t0, 1.6), ("vm2", t1, 0.4)):
            t, rc, err = ends[vm]
            check(rc != 0 and "no APPLIED" in err, "%s: expected ApplyFailed (no APPLIED), got rc %d: %s"
                  % (vm, rc, err.strip()))
            check(timeout - 0.05 <= t - start < timeout + 0.8, "%s failed %.3f s after its APPLY, expected %.1f s"
                  % (vm, t - start, timeout))
        check(ends["vm2"][0] < ends["vm1"][0], "the later, shorter timeout fired first")
        check(b.get(r.path, VM, "State") == "filtered", "the VM that answered is filtered")
        check(b.get(p.path, VM, "State") == "failed" and b.get(q.path, VM, "State") == "failed",
              "both silent VMs are failed")


# -- signals ----------------------------------------------------------------

def test_signals_seen_by_gdbus_and_busctl_monitor():
    import json
    with world() as w:
        b, d = w.bus, w.d
        mg, mb = b.monitor("gdbus"), b.monitor("busctl")
        try:
            def both(member, args_g, data, what):
                mg.wait(lambda l: ("%s.%s (%s)" % (MGR, member, args_g)) in l, what + " (gdbus monitor)")

                def is_it(line):
                    try:
                        j = json.loads(line)
                    except ValueError:
                        return False
                    return j.get("member") == member and j.get("payload", {}).get("data") == data
                mb.wait(is_it, what + " (busctl monitor)")

            def path_changed(path):
                return path + ": " + PROPS + ".PropertiesChanged ('%s'" % VM

            def vm_changed(path, needle, what):
                mg.wait(lambda l: l.startswith(path_changed(path)) and needle in l, what + " (gdbus monitor)")

            p = w.attach("vm1", label_tier="gold")
            both("VMNew", "'%s', objectpath '%s'" % (p.id, p.path), [p.id, p.path], "VMNew")
            both("FilterApplied", "'%s', 'gold', true, ''" % p.id, [p.id, "gold", True, ""], "FilterApplied")
            # Announced with its VMM's answer (unless that took longer than
            # the announcement's delay), InterfacesAdded carries the state it
            # reached, and no PropertiesChanged repeats it.
            mg.wait(lambda l: OBJMGR + ".InterfacesAdded (objectpath '%s'" % p.path in l, "InterfacesAdded")
            mg.wait(lambda l: ((OBJMGR + ".InterfacesAdded (objectpath '%s'" % p.path in l and "'Name': <'vm1'>" in l)
                               or l.startswith(path_changed(p.path))) and "'State': <'filtered'>" in l,
                    "State=filtered in InterfacesAdded or PropertiesChanged")

            b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
            vm_changed(p.path, "'ProfileSource': <'runtime'>", "PropertiesChanged ProfileSource=runtime")
            both("FilterApplied", "'%s', 'minimal', true, ''" % p.id, [p.id, "minimal", True, ""],
                 "FilterApplied minimal")

            b.call(MGR_PATH, MGR, "SetDefaultProfile", "sb", "gold", "true")
            mg.wait(lambda l: l.startswith(MGR_PATH + ": " + PROPS + ".PropertiesChanged ('%s'" % MGR) and
                    "'DefaultProfile': <'gold'>" in l, "PropertiesChanged DefaultProfile=gold")

            b.call(MGR_PATH, MGR, "Reload")
            both("Reloaded", "true, ''", [True, ""], "Reloaded ok")
            d.write_config("version: 1\nprofiles: [ unclosed\n")
            b.busctl("call", NAME, MGR_PATH, MGR, "Reload")
            # gdbus quotes a string holding ' with ".
            mg.wait(lambda l: "%s.Reloaded (false, " % MGR in l and "pmufilterd.yaml:3:1" in l, "Reloaded failed")
            mg.wait(lambda l: "PropertiesChanged ('%s'" % MGR in l and "'LastError': <\"/" in l,
                    "PropertiesChanged LastError")
            d.write_config(CONFIG)

            # A VM nobody attaches: unmanaged after attach_timeout_ms, then gone.
            kvm, vm = kvm_create_vm()
            vid = "%d-%d" % (os.getpid(), vm)
            vpath = mg.wait(lambda l: ".VMNew ('%s'," % vid in l, "VMNew of the unattached VM")
            vpath = re.search(r"objectpath '([^']+)'", vpath).group(1)
            both("VMUnmanaged", "'%s', objectpath '%s'" % (vid, vpath), [vid, vpath], "VMUnmanaged")
            vm_changed(vpath, "'State': <'unmanaged'>", "PropertiesChanged State=unmanaged")
            os.close(vm)
            os.close(kvm)
            both("VMRemoved", "'%s', objectpath '%s'" % (vid, vpath), [vid, vpath], "VMRemoved")
            mg.wait(lambda l: OBJMGR + ".InterfacesRemoved (objectpath '%s'" % vpath in l, "InterfacesRemoved")

            # The VMM closes its session but keeps its VM: detached, the filter stays.
            p.detach()
            vm_changed(p.path, "'State': <'detached'>", "PropertiesChanged State=detached")
        finally:
            mg.stop()
            mb.stop()


# -- errors -----------------------------------------------------------------

def test_errors_have_clear_names():
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")

        for method, args in (("GetVM", ["nope"]), ("SetVMProfile", ["nope", "gold", "true"]),
                             ("ResetVMProfile", ["nope", "true"]), ("Reapply", ["['nope']"])):
            b.gcall_error(MGR_PATH, MGR + "." + method, *args, error="org.pmufilterd1.NoSuchVM", message="nope")
        r = b.busctl("call", NAME, MGR_PATH, MGR, "GetVM", "s", "nope")
        check(r.returncode == 1 and "No VM 'nope'" in r.stderr, "busctl GetVM nope: %r" % r.stderr)

        for path, method, args in ((MGR_PATH, MGR + ".GetProfile", ["nope"]),
                                   (MGR_PATH, MGR + ".SetVMProfile", ["vm1", "nope", "true"]),
                                   (MGR_PATH, MGR + ".SetDefaultProfile", ["nope", "true"]),
                                   (p.path, VM + ".SetProfile", ["nope", "false"])):
            b.gcall_error(path, method, *args, error="org.pmufilterd1.NoSuchProfile", message="nope")

        # A VM the daemon sees but whose VMM never attached.
        kvm, vm = kvm_create_vm()
        try:
            vid = "%d-%d" % (os.getpid(), vm)
            deadline = time.time() + 10
            while b.busctl("call", NAME, MGR_PATH, MGR, "GetVM", "s", vid).returncode != 0:
                check(time.time() < deadline, "the daemon never saw VM %s" % vid)
                time.sleep(0.05)
            vpath = b.call(MGR_PATH, MGR, "GetVM", "s", vid)[0]
            for path, method, args in ((MGR_PATH, MGR + ".SetVMProfile", [vid, "gold", "true"]),
                                       (MGR_PATH, MGR + ".ResetVMProfile", [vid, "true"]),
                                       (MGR_PATH, MGR + ".Reapply", ["['%s']" % vid]),
                                       (vpath, VM + ".SetProfile", ["gold", "true"]),
                                       (vpath, VM + ".Reapply", [])):
                b.gcall_error(path, method, *args, error="org.pmufilterd1.NotManaged", message="attach|session")
        finally:
            os.close(vm)
            os.close(kvm)

        for argv in (["GetVM", "u", "42"], ["SetVMProfile", "ss", "vm1", "gold"], ["Reload", "s", "x"]):
            r = b.busctl("call", NAME, MGR_PATH, MGR, *argv)
            check(r.returncode == 1 and "Invalid arguments" in r.stderr, "busctl %s: %r" % (argv, r.stderr))
        b.gcall_error(MGR_PATH, MGR + ".GetVM", "a", "b", error="org.freedesktop.DBus.Error.InvalidArgs")
        b.gcall_error(MGR_PATH, MGR + ".SetVMProfile", "vm1", "", "true",
                      error="org.freedesktop.DBus.Error.InvalidArgs", message="ResetVMProfile")
        b.gcall_error(MGR_PATH, MGR + ".NoSuchMethod", error="org.freedesktop.DBus.Error.UnknownMethod")
        b.gcall_error(MGR_PATH, PROPS + ".Set", MGR, "DefaultProfile", "<'gold'>",
                      error="org.freedesktop.DBus.Error.PropertyReadOnly")

        # The VMM's kernel refuses: the call says so, and the VM shows it.
        p.force_errno = errno.EINVAL
        b.gcall_error(MGR_PATH, MGR + ".SetVMProfile", "vm1", "minimal", "true",
                      error="org.pmufilterd1.ApplyFailed", message="Invalid argument")
        check(b.get(p.path, VM, "State") == "failed" and "Invalid argument" in b.get(p.path, VM, "LastError"),
              "the VM shows the failure")
        p.force_errno = None
        b.call(p.path, VM, "Reapply")
        check(b.get(p.path, VM, "State") == "filtered", "Reapply recovers the VM")

        # A broken policy is refused; the old one keeps answering.
        d.write_config(CONFIG.replace("events: [ 0x00c5 ]", "events: [ no-such-event ]"))
        msg = b.gcall_error(MGR_PATH, MGR + ".Reload", error="org.pmufilterd1.InvalidConfig",
                            message="old one stays")
        check("no-such-event" in msg, "InvalidConfig says what is wrong: " + msg)
        check("no-such-event" in b.get(MGR_PATH, MGR, "LastError"), "LastError after a failed reload")
        check(b.get(MGR_PATH, MGR, "Lockdown") is False, "a failed reload is not lockdown")
        check(sorted(x[0] for x in b.call(MGR_PATH, MGR, "ListProfiles")[0]) == ["gold", "minimal", "trusted"],
              "the old profiles are still listed")
        gold = b.call(MGR_PATH, MGR, "GetProfile", "s", "gold")[0]
        check(len(b.get(gold, PROFILE, "Entries")) == 3, "the old gold still answers")
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "gold", "true")
        check(b.get(p.path, VM, "Profile") == "gold" and len(b.get(p.path, VM, "Events")) == 3,
              "the old policy's gold is applied after the failed reload")


# -- authorisation ----------------------------------------------------------

def mutations(vm_path):
    """(path, interface, member, busctl args, gdbus args) of every change."""
    return [
        (MGR_PATH, MGR, "SetVMProfile", ["ssb", "vm1", "minimal", "false"], ["vm1", "minimal", "false"]),
        (MGR_PATH, MGR, "SetVMProfileFor", ["sst", "vm1", "minimal", "60000000"],
         ["vm1", "minimal", "uint64 60000000"]),
        (MGR_PATH, MGR, "ResetVMProfile", ["sb", "vm1", "false"], ["vm1", "false"]),
        (MGR_PATH, MGR, "SetDefaultProfile", ["sb", "gold", "false"], ["gold", "false"]),
        (MGR_PATH, MGR, "Reapply", ["as", "0"], ["@as []"]),
        (MGR_PATH, MGR, "Reload", [], []),
        (vm_path, VM, "SetProfile", ["sb", "minimal", "false"], ["minimal", "false"]),
        (vm_path, VM, "Reapply", [], []),
    ]


def check_reads_as_nobody(b, p):
    check(any(v[0] == p.id for v in b.call(MGR_PATH, MGR, "ListVMs", nobody=True)[0]), "nobody: ListVMs")
    check(b.call(MGR_PATH, MGR, "GetVM", "s", "vm1", nobody=True)[0] == p.path, "nobody: GetVM")
    check(len(b.call(MGR_PATH, MGR, "ListProfiles", nobody=True)[0]) == 3, "nobody: ListProfiles")
    gold = b.call(MGR_PATH, MGR, "GetProfile", "s", "gold", nobody=True)[0]
    check(b.props(gold, PROFILE, nobody=True)["Name"] == "gold", "nobody: Profile GetAll")
    check(b.props(p.path, VM, nobody=True)["Profile"] == "gold", "nobody: VM GetAll")
    check(b.get(MGR_PATH, MGR, "DefaultProfile", nobody=True) == "minimal", "nobody: Get")
    check(p.path in b.call(MGR_PATH, OBJMGR, "GetManagedObjects", nobody=True)[0], "nobody: GetManagedObjects")
    check("SetVMProfile" in b.busctl_ok("introspect", NAME, MGR_PATH, nobody=True), "nobody: Introspect")
    b.call(MGR_PATH, "org.freedesktop.DBus.Peer", "Ping", nobody=True)
    check("SetProfile" in b.gdbus_ok("introspect", "--dest", NAME, "--object-path", p.path, nobody=True),
          "nobody: gdbus introspect")
    check("'gold'" in b.gcall_ok(p.path, PROPS + ".Get", VM, "Profile", nobody=True), "nobody: gdbus Get")


def check_all_refused(w, p, message):
    """Every change, called as nobody, is refused with AccessDenied whose
    message matches message(member); nothing changed; reads still work."""
    b, d = w.bus, w.d
    n = len(p.applies)
    for path, iface, member, bargs, gargs in mutations(p.path):
        r = b.busctl("call", NAME, path, iface, member, *bargs, nobody=True)
        check(r.returncode == 1 and "Access denied" in r.stderr, "nobody busctl %s: %r" % (member, r.stderr))
        b.gcall_error(path, iface + "." + member, *gargs, nobody=True,
                      error="org.freedesktop.DBus.Error.AccessDenied", message=message(member))
    v = b.props(p.path, VM)
    check(v["Profile"] == "gold" and v["ProfileSource"] == "rule:1",
          "VM changed: %s/%s" % (v["Profile"], v["ProfileSource"]))
    check(len(p.applies) == n, "the VMM got %d APPLY after refused calls" % (len(p.applies) - n))
    check(b.get(MGR_PATH, MGR, "DefaultProfile") == "minimal", "DefaultProfile changed")
    check(state_file(d) == "" and state_file(d, runtime=True) == "", "a state file was written")
    check(not d.records("reload"), "a refused Reload reloaded")
    check_reads_as_nobody(b, p)


def test_non_root_refused_at_the_bus():
    with world() as w:
        b = w.bus
        p = w.attach("vm1", label_tier="gold")
        check_all_refused(w, p, lambda member: r'^Rejected send message.*member="%s".*destination="%s"' %
                          (member, NAME))
        b.gcall_error(MGR_PATH, PROPS + ".Set", MGR, "DefaultProfile", "<'gold'>", nobody=True,
                      error="org.freedesktop.DBus.Error.AccessDenied", message="^Rejected send message")

        # Signals reach everyone.
        mon = b.monitor("gdbus", nobody=True)
        try:
            b.call(p.path, VM, "Reapply")
            mon.wait(lambda l: "%s.FilterApplied ('%s', 'gold', true, '')" % (MGR, p.id) in l,
                     "FilterApplied as nobody")
        finally:
            mon.stop()


def test_non_root_refused_by_the_daemon():
    with world(relaxed=True) as w:
        b = w.bus
        p = w.attach("vm1", label_tier="gold")
        check_all_refused(w, p, lambda member: r"needs root.*uid 65534")
        # The same calls as root go through on this bus.
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        check(b.get(p.path, VM, "Profile") == "minimal", "root can still change")


# -- persistence ------------------------------------------------------------

def test_persistent_profile_survives_restart():
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        q = w.attach("vm2", label_tier="gold")
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "false")
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm2", "trusted", "true")
        check('"uid:%d/name:vm1": "minimal"' % os.getuid() in state_file(d), "state.yaml: " + state_file(d))
        check('"uid:%d/name:vm2": "trusted"' % os.getuid() in state_file(d, runtime=True),
              "runtime state: " + state_file(d, True))
        for x in (p, q):
            w.peers.remove(x)
            x.close()

        d.restart()
        p = w.attach("vm1", label_tier="gold")
        v = b.props(p.path, VM)
        check(v["Profile"] == "minimal" and v["ProfileSource"] == "persistent" and v["AppliedUSec"] > 0,
              "vm1 after the restart: %s/%s" % (v["Profile"], v["ProfileSource"]))
        check(last_apply(p)["PROFILE"] == "minimal", "the first APPLY carries the persisted profile")
        q = w.attach("vm2", label_tier="gold")
        check(b.get(q.path, VM, "Profile") == "trusted" and b.get(q.path, VM, "ProfileSource") == "runtime",
              "vm2 keeps its runtime profile while /run lives")
        other = w.attach("vm3", label_tier="gold")
        check(b.get(other.path, VM, "Profile") == "gold", "a VM of another name follows the rules")

        b.call(MGR_PATH, MGR, "ResetVMProfile", "sb", "vm1", "false")
        check(b.get(p.path, VM, "ProfileSource") == "rule:1" and "vm1" not in state_file(d),
              "reset forgets vm1: " + state_file(d))


def test_change_not_written_is_not_in_force():
    """A change state.yaml could not keep is refused (PersistFailed) and
    undone: a VM attaching later under that name follows the rules, and
    the default profile stays."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        state = os.path.join(d.dir, "state")
        shutil.rmtree(state, ignore_errors=True)
        with open(state, "w") as f:             # a file where the directory goes
            f.write("not a directory\n")
        b.gcall_error(MGR_PATH, MGR + ".SetVMProfile", "vm1", "minimal", "false",
                      error="org.pmufilterd1.PersistFailed", message="state.yaml")
        b.gcall_error(MGR_PATH, MGR + ".SetDefaultProfile", "trusted", "false",
                      error="org.pmufilterd1.PersistFailed", message="state.yaml")
        check(b.get(MGR_PATH, MGR, "DefaultProfile") == "minimal", "the default profile did not change")
        check(b.get(p.path, VM, "ProfileSource") == "rule:1", "vm1 still follows the rules")
        w.peers.remove(p)
        p.close()
        os.unlink(state)
        q = w.attach("vm1", label_tier="gold")
        v = b.props(q.path, VM)
        check(v["Profile"] == "gold" and v["ProfileSource"] == "rule:1",
              "vm1 attached again follows the rules: %s/%s" % (v["Profile"], v["ProfileSource"]))


OPS_UUID = "6f1c2d3e-0000-4000-8000-0000000000aa"


def attach_as_nobody(socket_path, **claims):
    """A VMM running as nobody (it opened /dev/kvm and connected as root,
    as a privileged launcher would, then dropped to nobody before creating
    its VM): the first APPLY it got."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
            peer = Peer(socket_path)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            vm = fcntl.ioctl(kvm, harness.KVM_CREATE_VM, 0)
            peer.send(attach_msg(vm, **claims), [vm])
            msg = peer.recv() or {}
            if msg.get("_verb") == "PMUFILTER/1 APPLY":
                peer.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % msg["SERIAL"])
            os.write(w, json.dumps(msg).encode())
            os.close(w)
            time.sleep(0.3)
        finally:
            os._exit(0)
    os.close(w)
    got = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        got += chunk
    os.close(r)
    os.waitpid(child, 0)
    check(got, "the VMM as nobody said nothing")
    return json.loads(got)


def test_override_follows_verified_identity_not_claims():
    """The theft a hostile test found: a persistent change set on ops-db
    (its VMM root) reached any VMM claiming the same name or UUID (also in
    capitals).  Now it is bound to the uid and the claim together: a VMM of
    another uid claiming both gets the rules; root's own VMM again gets it."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("ops-db", uuid=OPS_UUID)
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "ops-db", "trusted", "false")
        check('"uid:%d/uuid:%s": "trusted"' % (os.getuid(), OPS_UUID) in state_file(d),
              "state.yaml shows what the change is bound to: " + state_file(d))
        d.wait_line(r"profile set to 'trusted' over D-Bus \(persistent\), bound to uid %d with the claimed uuid "
                    r"'%s', by uid \d+.*; CAUTION: a trusted-tier profile bound to a claimed identity" % (os.getuid(), OPS_UUID))
        w.peers.remove(p)
        p.close()
        for claims in ({"name": "tenant-evil", "uuid": OPS_UUID.upper()}, {"name": "ops-db"},
                       {"name": "ops-db", "uuid": OPS_UUID}):
            apply = attach_as_nobody(d.socket, **claims)
            check(apply.get("_verb") == "PMUFILTER/1 APPLY" and apply.get("PROFILE") == "minimal",
                  "a VMM as nobody claiming %s gets the default, not the override: %r" % (claims, apply))
        q = w.attach("ops-db", uuid=OPS_UUID.upper())
        v = b.props(q.path, VM)
        check(v["Profile"] == "trusted" and v["ProfileSource"] == "persistent" and v["UUID"] == OPS_UUID,
              "root's VMM claiming it again gets it, the UUID in one case: %s/%s %s" %
              (v["Profile"], v["ProfileSource"], v["UUID"]))


def test_claimed_uuid_of_a_live_vm_is_refused_and_names_ambiguous():
    """A second live VM of another process claiming a UUID a live VM holds
    is refused at ATTACH and reported unmanaged with the reason; a name two
    live VMs claim is refused by GetVM and SetVMProfile with the candidates."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("ops-db", uuid=OPS_UUID)
        r, wr = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(r)
                kvm, vm = kvm_create_vm()
                peer = Peer(d.socket)
                peer.send(attach_msg(vm, name="copycat", uuid=OPS_UUID.upper()), [vm])
                msg = peer.recv() or {}
                os.write(wr, (json.dumps(msg) + "\n%d" % vm).encode())
                os.close(wr)
                time.sleep(3)
            finally:
                os._exit(0)
        os.close(wr)
        got = os.read(r, 65536).decode()
        os.close(r)
        msg, vm = json.loads(got.rsplit("\n", 1)[0]), int(got.rsplit("\n", 1)[1])
        check(msg.get("_verb") == "PMUFILTER/1 ERROR" and
              "UUID %s is held by VM %s" % (OPS_UUID, p.id) in msg.get("MESSAGE", ""),
              "the copycat is refused, naming the holder: %r" % msg)
        copy_path = b.call(MGR_PATH, MGR, "GetVM", "s", "%d-%d" % (child, vm))[0]
        b.wait_property(copy_path, VM, "State", lambda s: s == "unmanaged", "unmanaged")
        check("is held by VM %s" % p.id in b.get(copy_path, VM, "LastError"), "the reason is its LastError")
        os.kill(child, 9)
        os.waitpid(child, 0)

        q = w.attach("twin", label_tier="gold")
        t = w.attach("twin")
        for method, args in (("GetVM", ["twin"]), ("SetVMProfile", ["twin", "trusted", "true"])):
            b.gcall_error(MGR_PATH, MGR + "." + method, *args, error="org.pmufilterd1.AmbiguousVM",
                          message=r"'twin' names 2 VMs \(%s, %s\)" % (q.id, t.id))
        check(b.get(q.path, VM, "Profile") == "gold", "nothing changed on either")


def test_old_state_file_is_migrated_to_verified_bindings():
    """state.yaml of version 1 keyed changes by claims alone: at start each
    is bound to the one running VM that claims it, or dropped, each with a
    warning that says which."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        os.makedirs(os.path.join(d.dir, "state"), exist_ok=True)
        with open(os.path.join(d.dir, "state", "state.yaml"), "w") as f:
            f.write('version: 1\nvms:\n  "name:vm1": trusted\n  "name:gone": minimal\n')
        if os.path.exists(d.socket):
            os.unlink(d.socket)
        d.start()
        d.wait_line(r"the change 'name:vm1' \(profile trusted\) is now bound to uid %d with the claimed name "
                    r"'vm1', what VM %s is" % (os.getuid(), p.id))
        d.wait_line(r"the change 'name:gone' \(profile minimal\) is dropped: no running VM claims it")
        # Said first, then written (with its fsyncs): wait for the file.
        deadline = time.time() + 10
        text = state_file(d)
        while "version: 2" not in text and time.time() < deadline:
            time.sleep(0.05)
            text = state_file(d)
        check("version: 2" in text and '"uid:%d/name:vm1": "trusted"' % os.getuid() in text and "gone" not in text,
              "state.yaml migrated: " + text)
        b.wait_property(p.path, VM, "Profile", lambda v: v == "trusted", "trusted")
        check(b.get(p.path, VM, "ProfileSource") == "persistent", "from the migrated change")


STATE_FILE_MAX = 16 * 1024 * 1024       # lib/state.h


def test_change_that_would_outgrow_the_state_file_is_refused():
    """A change that would make state.yaml larger than the daemon reads
    back is refused (PersistFailed, saying so and how to make room: the
    changes of VMs that are gone cannot be reset over D-Bus) and undone:
    the file stays byte for byte, the VM keeps its profile; a change
    elsewhere (the runtime file) is still made."""
    with world() as w:
        b, d = w.bus, w.d
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        os.makedirs(os.path.join(d.dir, "state"), exist_ok=True)
        # Exactly as the daemon writes it, a few bytes short of the limit.
        head = "# Written by pmufilterd: changes made over D-Bus. Do not edit while it runs.\nversion: 2\nvms:\n"
        lines, size, i = [], len(head), 0
        while True:
            line = '  "uid:0/name:%s%06d": "minimal"\n' % ("n" * 200, i)
            if size + len(line) > STATE_FILE_MAX - 10:
                break
            lines.append(line)
            size += len(line)
            i += 1
        pad = STATE_FILE_MAX - 10 - size - len('  "uid:0/name:": "minimal"\n')
        if pad > 0:
            lines.append('  "uid:0/name:%s": "minimal"\n' % ("p" * pad))
        text = head + "".join(lines)
        check(STATE_FILE_MAX - 30 < len(text) <= STATE_FILE_MAX, "%d bytes" % len(text))
        path = os.path.join(d.dir, "state", "state.yaml")
        with open(path, "w") as f:
            f.write(text)
        if os.path.exists(d.socket):
            os.unlink(d.socket)
        d.start()
        p = w.attach("vm1", label_tier="gold")
        b.wait_property(p.path, VM, "Profile", lambda v: v == "gold", "gold")
        b.gcall_error(MGR_PATH, MGR + ".SetVMProfile", "vm1", "minimal", "false",
                      error="org.pmufilterd1.PersistFailed", message=r"state\.yaml would be over 16 MiB.*running VMs.*"
                      r"VMs that are gone from the file while pmufilterd is stopped")
        with open(path) as f:
            check(f.read() == text, "state.yaml is as it was")
        v = b.props(p.path, VM)
        check(v["Profile"] == "gold" and v["ProfileSource"] == "rule:1",
              "vm1 still follows the rules: %s/%s" % (v["Profile"], v["ProfileSource"]))
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        b.wait_property(p.path, VM, "Profile", lambda v: v == "minimal", "minimal")
        check(b.get(p.path, VM, "ProfileSource") == "runtime", "a runtime change is still made")


def test_migrated_state_file_not_written_says_why():
    """A migrated state.yaml that cannot be written back is said so in the
    journal with the reason (here: a value of tabs, each written as an
    escape, makes it larger than the daemon reads back)."""
    with world() as w:
        d = w.d
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        os.makedirs(os.path.join(d.dir, "state"), exist_ok=True)
        with open(os.path.join(d.dir, "state", "state.yaml"), "w") as f:
            f.write('version: 1\nvms:\n  "name:gone": minimal\n  "uid:0/name:tabs": "%s"\n' % ("\t" * (5 << 20)))
        if os.path.exists(d.socket):
            os.unlink(d.socket)
        d.start()
        d.wait_line(r"the change 'name:gone' \(profile minimal\) is dropped")
        d.wait_line(r"Failed to write \S+/state\.yaml after its migration: File too large")


def test_state_file_that_would_not_write_back_is_said_at_start():
    """A state.yaml edited by hand that reads in but, as the daemon writes
    it, would be over the limit (a value of tabs, each an escape) is said
    at start-up: every change that writes it will be refused."""
    with world() as w:
        d = w.d
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        os.makedirs(os.path.join(d.dir, "state"), exist_ok=True)
        path = os.path.join(d.dir, "state", "state.yaml")
        with open(path, "w") as f:
            f.write('version: 2\nvms:\n  "uid:0/name:tabs": "%s"\n' % ("\t" * (5 << 20)))
        if os.path.exists(d.socket):
            os.unlink(d.socket)
        d.start()
        d.wait_line(re.escape(path) + r": as pmufilterd writes it, it would be over 16 MiB: every change that "
                    r"writes it is refused")
        check(d.alive(), "the daemon runs")


def test_change_records_say_who_asked():
    """Every change's audit record carries the caller's uid, pid and bus
    name, the VM's name and what decided its profile before."""
    with world() as w:
        b, d = w.bus, w.d
        p = w.attach("vm1", label_tier="gold")
        b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "true")
        line = d.wait_line(r"VM %s \(vm1\): profile set to 'minimal' over D-Bus" % p.id)
        check(re.search(r"\[MESSAGE_ID=5c1e0b0e2f6d4c4f9a3e7d2b8f1a6c30 VM_ID=%s PROFILE=minimal PID=\d+ "
                        r"CALLER_UID=0 CALLER_PID=\d+ (CALLER_UNIT=\S+ )?CALLER_BUS_NAME=:\S+ VM_NAME=vm1 "
                        r"DECIDED_BY=rule:1 DECIDED_BY_LOCATION=%s:\d+\]$" % (p.id, re.escape(d.config)), line), "the record: " + line)
        # The attach's record names the rule by file and line too.
        line = d.wait_line(r"VM %s attached by " % p.id)
        check(re.search(r"\): profile '\S+' \(rule:1 at %s:\d+\)" % re.escape(d.config), line),
              "the attach record names the rule's FILE:LINE: " + line)
        b.call(MGR_PATH, MGR, "SetDefaultProfile", "sb", "gold", "true")
        line = d.wait_line(r"Default profile set to 'gold' over D-Bus \(runtime\), by uid 0")
        check(re.search(r"CALLER_UID=0 CALLER_PID=\d+ .*CALLER_BUS_NAME=:", line), "the record: " + line)


def test_attach_is_written_before_a_change_made_while_its_vmm_applies():
    """The attach's record waits for the VMM's answer (pmufilterd(8), AUDIT
    TRAIL); a change of the VM's profile made while it waits comes after
    the attach, in the trail as in time, not before it."""
    with world() as w:
        b, d = w.bus, w.d
        kvm, vm = kvm_create_vm()
        vm_id = "%d-%d" % (os.getpid(), vm)
        p = Peer(d.socket)
        try:
            p.send(attach_msg(vm, name="slow"), [vm])
            first = p.recv()
            check(first and first["_verb"] == "PMUFILTER/1 APPLY", "expected APPLY, got %r" % first)
            # SetVMProfile replies when the VMM has applied the change.
            call = subprocess.Popen(["busctl", "--address=" + b.address, "call", NAME, MGR_PATH, MGR,
                                     "SetVMProfile", "ssb", "slow", "gold", "true"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            second = p.recv()
            check(second and second.get("PROFILE") == "gold", "expected the APPLY of gold, got %r" % second)
            changed = r"VM %s \(slow\): profile set to 'gold' over D-Bus" % vm_id
            d.wait_line(changed)
            p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % first["SERIAL"])
            p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % second["SERIAL"])
            check(call.wait(10) == 0, "SetVMProfile: %s" % call.stderr.read())
            d.wait_line(r"VM %s.*: filter of profile 'gold' applied" % vm_id)
            with d.lock:
                attached = [i for i, l in enumerate(d.lines) if "VM %s attached by " % vm_id in l]
                set_at = [i for i, l in enumerate(d.lines) if re.search(changed, l)]
            check(len(attached) == 1 and "profile 'minimal'" in d.lines[attached[0]],
                  "the attach is written once, with the profile it was given:\n%s" % d.log())
            check(attached[0] < set_at[0], "the attach is written before the change made after it:\n%s" % d.log())
        finally:
            p.close()
            os.close(vm)
            os.close(kvm)


def test_corrupt_state_file_is_set_aside():
    harness.need_kvm()
    harness.need_root()
    need_bus_tools()
    with SystemBus() as b, Daemon(config_text=CONFIG, bus=b.address, start=False) as d:
        garbage = "version: 1\nvms: [ this is not a mapping\n"
        paths = []
        for sub in ("state", "run"):
            os.makedirs(os.path.join(d.dir, sub))
            paths.append(os.path.join(d.dir, sub, "state.yaml"))
            with open(paths[-1], "w") as f:
                f.write(garbage)
        d.start()
        for path in paths:
            d.wait_line(re.escape(path) + r": .*set aside as " + re.escape(path) + r"\.corrupt")
            check(not os.path.exists(path), "%s is still in place" % path)
            with open(path + ".corrupt") as f:
                check(f.read() == garbage, "%s.corrupt holds the old contents" % path)
        check(d.alive(), "the daemon runs")
        p = AutoPeer(d.socket, name="vm1", label_tier="gold")
        try:
            p.wait_applies(1)
            path = b.call(MGR_PATH, MGR, "GetVM", "s", "vm1")[0]
            b.wait_property(path, VM, "State", lambda s: s == "filtered", "filtered")
            check(b.get(path, VM, "ProfileSource") == "rule:1", "vm1 follows the rules")
            b.call(MGR_PATH, MGR, "SetVMProfile", "ssb", "vm1", "minimal", "false")
            check('"uid:%d/name:vm1": "minimal"' % os.getuid() in state_file(d),
                  "a new state.yaml is written: " + state_file(d))
        finally:
            p.close()


def test_unreadable_state_file_stops_the_start_and_stays():
    """A state file that cannot be read now (here: mode 000 and a daemon
    without CAP_DAC_OVERRIDE) is not corrupt: the daemon does not start
    without its changes, which its next change would write over, and
    leaves the file where it is."""
    harness.need_root()
    if not shutil.which("setpriv"):
        raise harness.Skip("setpriv (util-linux) is not installed")
    with Daemon(config_text=CONFIG, start=False) as d:
        path = os.path.join(d.dir, "state", "state.yaml")
        os.makedirs(os.path.dirname(path))
        text = 'version: 2\nvms:\n  "uid:0/name:vm1": minimal\n'
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0)
        r = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", harness.DAEMON,
                            "--config", d.config, "--socket", d.socket] + d.args,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode != 0, "the daemon started without its state file:\n" + r.stderr)
        check(not harness.SANITIZER_REPORT.search(r.stderr), "the sanitizer reported:\n" + r.stderr)
        check(re.search(r"Failed to read %s: Permission denied" % re.escape(path), r.stderr),
              "the error names the file and why:\n" + r.stderr)
        check(not os.path.exists(path + ".corrupt"), "the file was set aside as corrupt")
        os.chmod(path, 0o600)
        with open(path) as f:
            check(f.read() == text, "the file is as it was")


def test_state_file_that_is_a_socket_is_set_aside():
    """A socket where the state file goes cannot even be opened (ENXIO): it
    is not a regular file, set aside as one, not an unreadable file that
    stops the start."""
    import socket
    harness.need_root()
    with Daemon(config_text=CONFIG, start=False) as d:
        path = os.path.join(d.dir, "state", "state.yaml")
        os.makedirs(os.path.dirname(path))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
            d.start()
            d.wait_line(r"not a regular file: set aside as " + re.escape(path + ".corrupt"))
            check(os.path.exists(path + ".corrupt") and not os.path.exists(path), "the socket was set aside")
        finally:
            s.close()


def comm_vmm(comm):
    """A VMM that names itself comm (bytes: prctl(PR_SET_NAME) takes any but
    NUL), creates a VM, prints its fd and waits."""
    return ("import ctypes, fcntl, os, sys\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(%r), 0, 0, 0)\n"
            "kvm = os.open('/dev/kvm', os.O_RDWR)\n"
            "print(fcntl.ioctl(kvm, 0xAE01, 0), flush=True)\n"
            "sys.stdin.read()\n" % comm)


# Bytes that are no UTF-8, then U+FFFE.
NON_UTF8_VMM = comm_vmm(b"\xff\xfeevil\xe2\x82\xef\xbf\xbe")


def test_facts_that_are_no_utf8_are_shown_escaped():
    """D-Bus strings must be UTF-8, and sd-bus refuses a whole reply for one
    that is not: a VMM whose comm is no UTF-8 must not hide its VM's
    verified facts or its explanation from the operator, nor the daemon's
    log lines about it from the journal (a message that is no UTF-8 is a
    blob journalctl does not show).  Each such byte is written \\xNN."""
    import subprocess
    import sys
    config = CONFIG + "  - match: { comm: qemu-system-x86 }\n    profile: trusted\n"
    with world(config=config) as w:
        b, d = w.bus, w.d
        c = subprocess.Popen([sys.executable, "-c", NON_UTF8_VMM], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            vm = "%d-%d" % (c.pid, int(c.stdout.readline()))
            path = b.call(MGR_PATH, MGR, "GetVM", "s", vm)[0]
            facts = b.get(path, VM, "VerifiedFacts")
            # a cut character, then U+FFFE: a noncharacter sd-bus refuses too
            want = "\\xff\\xfeevil\\xe2\\x82\\xef\\xbf\\xbe"
            check(facts.get("comm") == want, "VerifiedFacts comm: %r" % facts)
            check(facts.get("exe", "").endswith("python3") or "python" in facts.get("exe", ""),
                  "the rest of the facts is there: %r" % facts)
            # The rule on comm quotes it: cut or not, the reason is UTF-8.
            explained = b.call(path, VM, "Explain")
            check(len(explained) == 7 and explained[4] == "minimal", "Explain answers: %r" % explained)
            reasons = [r[3] for r in explained[0]]
            check(any("comm '%s' does not match" % want in r for r in reasons), "Explain's reasons: %r" % reasons)
            check(vm in [v[0] for v in b.call(MGR_PATH, MGR, "ListVMs")[0]], "ListVMs lists it")
            # Unmanaged after the attach timeout: the line names its comm, escaped.
            line = d.wait_line(re.escape(vm) + r" .*unmanaged", timeout=10)
            check(want in line, "the log line escapes the comm: %r" % line)
        finally:
            c.stdin.close()
            c.wait(10)


# A terminal's escape sequence: ESC [31m, then BEL.
ESCAPE_VMM = comm_vmm(b"\x1b[31mRED\x07")


def test_facts_with_control_characters_are_shown_escaped():
    """A fact a process chose (its comm) with control characters reaches
    D-Bus with each written \\xNN, so that pmufilterctl never puts a
    VMM's escape sequences on the operator's terminal (show, explain)."""
    import subprocess
    import sys
    with world() as w:
        b = w.bus
        c = subprocess.Popen([sys.executable, "-c", ESCAPE_VMM], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            vm = "%d-%d" % (c.pid, int(c.stdout.readline()))
            path = b.call(MGR_PATH, MGR, "GetVM", "s", vm)[0]
            comm = b.get(path, VM, "VerifiedFacts").get("comm")
            check(comm == "\\x1b[31mRED\\x07", "VerifiedFacts comm: %r" % comm)
            for verb in (["show", vm], ["explain", vm], ["list"]):
                r = subprocess.run([harness.CTL, "--bus-address=" + b.address] + verb, capture_output=True,
                                   timeout=60)
                out = r.stdout + r.stderr
                check(r.returncode == 0 and b"RED" in out, "pmufilterctl %s: %r" % (verb[0], out[-300:]))
                check(b"\x1b" not in out and b"\x07" not in out,
                      "pmufilterctl %s put a control character on the terminal: %r" % (verb[0], out[-300:]))
        finally:
            c.stdin.close()
            c.wait(10)


def test_claims_with_c1_control_characters_are_shown_escaped():
    """ATTACH takes a NAME or label value without C0 or DEL, but a C1
    control (U+0080..U+009F: U+009B is a CSI to a terminal) is UTF-8 and
    passes: every D-Bus string that carries a claim writes it \\xNN as
    bus_utf8() does (ListVMs, Labels, PreviewReload, not only Name and
    ClaimedFacts), so that pmufilterctl never puts it on a terminal."""
    import subprocess
    claim = "c1\u009b31mRED\u0085"
    want = "c1\\xc2\\x9b31mRED\\xc2\\x85"
    with world() as w:
        b = w.bus
        p = w.attach(claim, label_note=claim)
        check(b.get(p.path, VM, "Name") == want, "Name: %r" % b.get(p.path, VM, "Name"))
        check(b.get(p.path, VM, "ClaimedFacts").get("label.note") == want, "ClaimedFacts")
        labels = b.get(p.path, VM, "Labels")
        check(labels.get("note") == want, "Labels: %r" % labels)
        names = [v[1] for v in b.call(MGR_PATH, MGR, "ListVMs")[0] if v[0] == p.id]
        check(names == [want], "ListVMs: %r" % names)
        preview = [v[1] for v in b.call(MGR_PATH, MGR, "PreviewReload")[0] if v[0] == p.id]
        check(preview == [want], "PreviewReload: %r" % preview)
        for verb in (["show", p.id], ["list"], ["reload", "--dry-run"]):
            r = subprocess.run([harness.CTL, "--bus-address=" + b.address] + verb, capture_output=True,
                               timeout=60)
            out = r.stdout + r.stderr
            check(b"RED" in out, "pmufilterctl %s: %r" % (verb[0], out[-300:]))
            check(b"\xc2\x9b" not in out and b"\xc2\x85" not in out,
                  "pmufilterctl %s put a C1 control on the terminal: %r" % (" ".join(verb), out[-300:]))


def test_policy_file_named_with_any_bytes_is_shown_escaped():
    """A policy file's name may be any bytes (a conf.d fragment's, or
    --config's): the properties, objects and errors that quote it write each
    byte that is no UTF-8 as \\xNN, where sd-bus would refuse the whole
    reply (Manager.ConfigFiles and Rules, a Profile's Source,
    GetManagedObjects, Explain's rule locations, a failed Reload's
    error)."""
    import tempfile
    harness.need_kvm()
    harness.need_root()
    need_bus_tools()
    tmp = tempfile.mkdtemp(prefix="pmufilterd-test.")
    config = os.path.join(tmp, "policy-\udcff.yaml")      # the byte 0xff on disk
    with open(config, "w") as f:
        f.write(CONFIG)
    shown = os.path.join(tmp, "policy-\\xff.yaml")
    try:
        with SystemBus() as b, Daemon(config=config, bus=b.address) as d:
            check(b.get(MGR_PATH, MGR, "ConfigFiles") == [shown], "ConfigFiles: %r" % b.get(MGR_PATH, MGR, "ConfigFiles"))
            gold = b.call(MGR_PATH, MGR, "GetProfile", "s", "gold")[0]
            check(b.get(gold, PROFILE, "Source") == shown, "Source: %r" % b.get(gold, PROFILE, "Source"))
            rules = b.get(MGR_PATH, MGR, "Rules")
            check(rules and all(r[1].startswith(shown + ":") for r in rules), "Rules: %r" % rules)
            check("Rules" in b.props(MGR_PATH, MGR), "GetAll of the Manager answers")
            p = AutoPeer(d.socket, name="vm1", label_tier="gold")
            try:
                p.wait_applies(1)
                path = b.call(MGR_PATH, MGR, "GetVM", "s", "vm1")[0]
                b.wait_property(path, VM, "State", lambda v: v == "filtered", "filtered")
                check(b.get(path, VM, "ProfileSourceLocation").startswith(shown + ":"),
                      "ProfileSourceLocation: %r" % b.get(path, VM, "ProfileSourceLocation"))
                rules = b.call(path, VM, "Explain")[0]
                check(rules and rules[0][1].startswith(shown + ":"), "Explain's rule location: %r" % rules)
                objects = b.call(MGR_PATH, OBJMGR, "GetManagedObjects")[0]
                check(path in objects and gold in objects, "GetManagedObjects answers: %r" % sorted(objects)[:4])
                with open(config, "w") as f:
                    f.write("version: 1\nprofiles: [ this is not a mapping\n")
                b.gcall_error(MGR_PATH, MGR + ".Reload", error="org.pmufilterd1.InvalidConfig",
                              message=r"the old one stays: .*" + re.escape(shown))
            finally:
                p.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_state_file_strings_that_dbus_refuses_are_shown_escaped():
    """A state file edited by hand may hold, through YAML's escapes, a
    non-character (U+FFFE, U+FDD0) that libyaml takes and sd-bus refuses:
    the default profile and an override it names must not make the
    Manager's properties, or Explain, fail."""
    harness.need_kvm()
    harness.need_root()
    need_bus_tools()
    with SystemBus() as b, Daemon(config_text=CONFIG, bus=b.address, start=False) as d:
        path = os.path.join(d.dir, "state", "state.yaml")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write('version: 2\ndefault_profile: "x\\uFFFE"\nvms:\n  "uid:0/name:vm1": "y\\uFDD0"\n')
        d.start()
        check("DefaultProfile" in b.props(MGR_PATH, MGR), "GetAll of the Manager answers")
        check(b.get(MGR_PATH, MGR, "DefaultProfile") == "x\\xef\\xbf\\xbe",
              "DefaultProfile: %r" % b.get(MGR_PATH, MGR, "DefaultProfile"))
        p = AutoPeer(d.socket, name="vm1", label_tier="gold")
        try:
            p.wait_applies(1)
            vm = b.call(MGR_PATH, MGR, "GetVM", "s", "vm1")[0]
            explained = b.call(vm, VM, "Explain")
            check(explained[1] == "y\\xef\\xb7\\x90", "Explain's override: %r" % explained[1:])
        finally:
            p.close()


if __name__ == "__main__":
    harness.main(globals())
