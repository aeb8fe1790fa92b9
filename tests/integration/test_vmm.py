#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon's spine end to end (issue 4): real VMs from the cooperating
test VMM (libpmufilter-client) and from unmodified QEMU (with and without
the preload shim), matched, filtered, reloaded, and watched when they never
attach.  The built daemon, real /dev/kvm."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import harness
from harness import Daemon, check, need, need_kvm, need_root

def config(timeout=800, unmanaged="warn", minimal="0x00c0, 0x00c4"):
    return harness.policy(timeout=timeout, unmanaged=unmanaged, minimal=minimal)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def vmm(d, *args, check_rc=True):
    """Run the test VMM to completion; its JSON lines."""
    need(harness.VMM, "the test VMM")
    p = subprocess.run([harness.VMM, "--socket", d.socket, "--json"] + list(args), capture_output=True, text=True,
                       timeout=120, preexec_fn=raise_nofile)
    if check_rc:
        check(p.returncode == 0, "test-vmm %s failed (%d): %s\n%s" % (args, p.returncode, p.stderr, d.log()))
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


class Held:
    """A test VMM holding its VMs and answering pushes, read as it goes."""

    def __init__(self, d, *args):
        need(harness.VMM, "the test VMM")
        self.p = subprocess.Popen([harness.VMM, "--socket", d.socket, "--json", "--hold", "-1"] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
        self.lines = []
        import threading
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            if line.startswith("{"):
                with self.cv:
                    self.lines.append(json.loads(line))
                    self.cv.notify_all()

    def wait(self, pred, count=1, timeout=15):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                got = [l for l in self.lines if pred(l)]
                if len(got) >= count:
                    return got
                check(time.time() < deadline, "test-vmm: expected %d matching lines, got %r" % (count, self.lines))
                self.cv.wait(0.1)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(10)


def test_cooperating_vmm_gets_the_profile_its_labels_and_facts_select():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        r = vmm(d, "--name", "plain")
        check(r[0]["profile"] == "minimal" and r[0]["errno"] == 0, "default profile applied: %r" % r)
        r = vmm(d, "--name", "st", "--label", "kind=steady")
        check(r[0]["profile"] == "steady" and r[0]["errno"] == 0, "label rule: %r" % r)
        r = vmm(d, "--name", "ex", "--label", "kind=exe")
        check(r[0]["profile"] == "by-exe" and r[0]["errno"] == 0, "exe fact + label rule: %r" % r)
        recs = d.wait_records("applied", 3, where=lambda x: x.profile in ("by-exe", "minimal", "steady"))
        check(sorted(x.profile for x in recs) == ["by-exe", "minimal", "steady"], "daemon agrees: %r" % recs)


def test_shipped_policy_with_the_cooperating_vmm():
    need_kvm(); need_root()
    with Daemon() as d:
        check(vmm(d, "--name", "a")[0]["profile"] == "tenant-minimal", "default of the shipped policy")
        r = vmm(d, "--name", "b", "--label", "tier=trusted")[0]
        check(r["profile"] == "trusted" and r["errno"] == 0, "uid 0 + label.tier=trusted -> trusted: %r" % r)
        r = vmm(d, "--name", "c", "--label", "pmu=off")[0]
        check(r["profile"] == "no-pmu" and r["errno"] == 0, "pmu off profile: %r" % r)
        # kvm.enable_pmu=N here: the vPMU cannot be switched off, the fallback stands.
        check(r["pmu_errno"] in (0, 22), "PMU=off answered: %r" % r)


def test_reload_pushes_only_changed_filters_and_bad_reload_keeps_policy():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "h")
        held2 = Held(d, "--name", "s", "--label", "kind=steady")
        first = held.wait(lambda l: l["event"] == "attach")[0]
        held2.wait(lambda l: l["event"] == "attach")
        check(first["errno"] == 0 and first["profile"] == "minimal", "attached: %r" % first)

        d.write_config(config(minimal="0x00c0, 0x00c4, 0x00c5"))
        d.reload()
        push = held.wait(lambda l: l["event"] == "apply")[0]
        check(push["errno"] == 0 and push["serial"] > first["serial"], "reload pushed a new filter: %r" % push)
        d.wait_line(r"filter of profile 'minimal' applied \(allow, 3 entries\)")
        time.sleep(0.3)
        check(not [l for l in held2.lines if l["event"] == "apply"], "the unchanged profile was not pushed")

        d.write_config("version: 1\nprofiles:\n  minimal: { tier: tenant, events: [ no-such-event ] }\n")
        d.reload()
        d.wait_line(r"Reload failed, keeping the current policy: .*no-such-event")
        check(vmm(d, "--name", "after-bad")[0]["profile"] == "minimal", "old policy still decides")
        check(len(held.lines) == 2, "a bad reload pushes nothing: %r" % held.lines)
        held.stop(); held2.stop()


def test_lockdown_at_start_until_a_good_reload():
    need_kvm(); need_root()
    with Daemon(config_text="version: 1\nprofiles: [ not a mapping ]\n") as d:
        d.wait_records("lockdown", 1)
        held = Held(d, "--name", "locked")
        a = held.wait(lambda l: l["event"] == "attach")[0]
        check(a["profile"] == "lockdown" and a["errno"] == 0, "lockdown filter applied: %r" % a)
        d.wait_line(r"filter of profile 'lockdown' applied \(allow, 0 entries\)")
        d.write_config(config())
        d.reload()
        push = held.wait(lambda l: l["event"] == "apply")[0]
        check(push["profile"] == "minimal" and push["errno"] == 0, "left lockdown: %r" % push)
        d.wait_line(r"leaving lockdown")
        held.stop()


def test_thousand_vms_from_one_process_all_filtered():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        r = vmm(d, "--count", "1000", "--name", "bulk")
        check(len(r) == 1000, "1000 attach lines, got %d" % len(r))
        bad = [x for x in r if x["errno"] != 0 or x["profile"] != "minimal"]
        check(not bad, "every VM filtered with its profile; failures: %r" % bad[:3])
        pids = {x["pid"] for x in r}
        d.wait_records("applied", 1000, timeout=60, where=lambda x: x.pid in pids)
        check(not [x for x in d.records("unmanaged") if x.pid in pids], "none missed or unmanaged")


def test_vms_without_client_are_detected_and_unmanaged():
    need_kvm(); need_root()
    with Daemon(config_text=config(timeout=500)) as d:
        held = Held(d, "--no-attach", "--count", "20", "--name", "silent")
        held.wait(lambda l: l["event"] == "created", 20)
        mine = lambda r: r.pid == held.p.pid
        recs = d.wait_records("unmanaged", 20, timeout=20, where=mine)
        check(len({r.vm for r in recs}) == 20, "20 distinct VMs unmanaged: %r" % recs)
        check(held.p.poll() is None, "warn mode leaves the VMM alone")
        held.stop()
        d.wait_records("gone", 20, where=mine)


DUP_VMM = r"""
import os, sys, time
sys.path.insert(0, sys.argv[2])
from busharness import apply_filter
from harness import Peer, attach_msg, kvm_create_vm
kvm, vm = kvm_create_vm()
dup = os.dup(vm)        # the VM under another number, the first one closed
os.close(vm)
p = Peer(sys.argv[1])
p.send(attach_msg(dup, name="dupped"), [dup])
msg = p.recv()
err = apply_filter(dup, msg)
p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=%d\n" % (msg["SERIAL"], err))
print("applied %d %d" % (err, dup), flush=True)
time.sleep(60)
"""


def test_vmm_attaching_with_a_dup_is_not_taken_for_unmanaged():
    # A VMM may move its VM fd to another number before it attaches: the
    # number its uevent named is then closed, but the VM lives and is
    # filtered.  In kill mode, taking it for unmanaged would kill it.
    need_kvm(); need_root()
    with Daemon(config_text=config(timeout=400, unmanaged="kill")) as d:
        vmm = subprocess.Popen([sys.executable, "-c", DUP_VMM, d.socket, os.path.dirname(harness.__file__)],
                               stdout=subprocess.PIPE, text=True)
        try:
            line = vmm.stdout.readline().split()
            check(line[:2] == ["applied", "0"], "the VMM applied its filter: %r" % line)
            mine = lambda r: r.pid == vmm.pid
            d.wait_records("applied", 1, where=mine)
            time.sleep(1.5)                             # well past attach_timeout_ms
            check(vmm.poll() is None, "the VMM was killed (status %r):\n%s" % (vmm.returncode, d.log()))
            check(not [r for r in d.records("unmanaged") if mine(r)],
                  "a VM of the VMM was reported unmanaged:\n%s" % d.log())
        finally:
            vmm.kill()
            vmm.wait()


def test_daemon_started_after_the_vms_finds_them_in_proc():
    need_kvm(); need_root()
    need(harness.VMM, "the test VMM")
    d = Daemon(config_text=config(timeout=500), start=False)
    held = Held(d, "--no-attach", "--count", "5", "--name", "early")
    try:
        held.wait(lambda l: l["event"] == "created", 5)
        d.start()
        d.wait_line(r"Scanned /proc: \d+ VM fds, \d+ VMs newly found")
        recs = d.wait_records("unmanaged", 5, timeout=10, where=lambda r: r.pid == held.p.pid)
        check(len({r.vm for r in recs}) == 5, "all 5 found in the VMM's process: %r" % recs)
    finally:
        held.stop()
        d.stop()


def restart(d, how):
    """Stop the daemon (SIGTERM or SIGKILL) and start it on the same dirs."""
    d.proc.send_signal(how)
    d.proc.wait(10)
    with d.lock:
        d.lines.clear()
    os.unlink(d.socket)
    d.start()


def test_restart_and_crash_keep_every_vm_and_its_profile():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--count", "3", "--name", "keep", "--label", "kind=steady")
        first = held.wait(lambda l: l["event"] == "attach", 3)
        check(all(l["profile"] == "steady" and l["errno"] == 0 for l in first), "attached: %r" % first)
        ids = sorted(l["vm_id"] for l in first)
        for how in (signal.SIGTERM, signal.SIGKILL):
            restart(d, how)
            d.wait_line(r"Restored 3 of 3 VM records")
            # Without systemd's fd store the connections die with the daemon:
            # the client library reconnects and attaches again by itself.
            recs = d.wait_records("applied", 3, timeout=20, where=lambda r: r.pid == held.p.pid)
            check(sorted(r.vm for r in recs) == ids, "the same VMs, by id: %r vs %r" % (recs, ids))
            check(all(r.profile == "steady" for r in recs), "with their profile: %r" % recs)
            check(not [r for r in d.records("unmanaged") if r.pid == held.p.pid], "none unmanaged after the restart")
        check(held.p.poll() is None, "the VMM never noticed enough to fail")
        held.stop()


QEMU = shutil.which("qemu-system-x86_64")


def qemu(name, preload=None, sock=None):
    if not QEMU:
        raise harness.Skip("qemu-system-x86_64 is not installed")
    env = dict(os.environ)
    if preload:
        env.update(LD_PRELOAD=preload, PMUFILTER_SOCKET=sock)
    return subprocess.Popen([QEMU, "-accel", "kvm", "-name", name, "-machine", "q35", "-m", "64", "-display", "none",
                             "-nodefaults", "-no-user-config", "-S"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_qemu_with_the_preload_shim_is_filtered():
    need_kvm(); need_root(); need(harness.SHIM, "the preload shim")
    with Daemon(config_text=config()) as d:
        q = qemu("shimmed", harness.SHIM, d.socket)
        try:
            recs = d.wait_records("applied", 1, timeout=30, where=lambda r: r.pid == q.pid)
            check(recs[0].profile == "minimal", "QEMU's VM filtered: %r" % recs)
            check("(shimmed)" in recs[0].message, "name taken from -name: %r" % recs[0].message)
            d.wait_line(r"attached by qemu-system-x86 .*preload, name shimmed")
            time.sleep(1)
            check(q.poll() is None, "QEMU keeps running: %s" % (q.stderr.read() if q.poll() is not None else ""))
        finally:
            q.terminate(); q.wait(10)


def test_qemu_without_the_shim_is_unmanaged_then_killed_in_kill_mode():
    need_kvm(); need_root()
    with Daemon(config_text=config(timeout=1000)) as d:
        q = qemu("bare")
        try:
            d.wait_records("unmanaged", 1, timeout=30, where=lambda r: r.pid == q.pid)
            check(q.poll() is None, "warn mode: QEMU still runs")
        finally:
            q.terminate(); q.wait(10)
    with Daemon(config_text=config(timeout=1000, unmanaged="kill")) as d:
        q = qemu("doomed")
        try:
            q.wait(30)
        except subprocess.TimeoutExpired:
            q.kill()
            raise harness.Failure("QEMU was not killed:\n" + d.log())
        check(q.returncode == -signal.SIGKILL, "QEMU died of SIGKILL, got %r" % q.returncode)
        rs = d.wait_records("unmanaged", 1, where=lambda r: r.pid == q.pid)
        check("killed its VMM" in rs[0].message, "the record says so: %r" % rs[0])


if __name__ == "__main__":
    harness.main(globals())
