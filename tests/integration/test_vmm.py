#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon's spine end to end (issue 4): real VMs from the cooperating
test VMM (libpmufilter-client) and from unmodified QEMU (with and without
the preload shim), matched, filtered, reloaded, and watched when they never
attach; and neither hands its VM to a fake daemon that runs as nobody.  The
built daemon, real /dev/kvm."""

import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import harness
from busharness import NOBODY
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


def qemu(name, preload=None, sock=None, **env_add):
    if not QEMU:
        raise harness.Skip("qemu-system-x86_64 is not installed")
    env = dict(os.environ)
    if preload:
        env.update(LD_PRELOAD=preload, PMUFILTER_SOCKET=sock)
    env.update(env_add)
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


# A fake pmufilterd, as anyone may run one: listens on argv[1] ('@' first:
# abstract), answers every ATTACH with a permissive filter (deny nothing,
# every fixed counter) and prints one JSON line per thing it sees.
IMPOSTOR = r"""
import array, json, os, socket, sys
path = sys.argv[1]
APPLY = (b"PMUFILTER/1 APPLY\nVM=evil\nSERIAL=1\nPROFILE=permissive\nPMU=on\nACTION=deny\n"
         b"FLAGS=0\nFIXED=0xffffffff\nEVENTS=\n")
def say(**kw):
    print(json.dumps(kw), flush=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\0" + path[1:] if path.startswith("@") else path)
s.listen(8)
say(event="listening", uid=os.geteuid(), pid=os.getpid())
while True:
    c, _ = s.accept()
    c.settimeout(10)
    say(event="connection")
    while True:
        try:
            msg, anc, _, _ = c.recvmsg(65536, socket.CMSG_SPACE(8 * 4))
        except OSError:
            break
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        kinds = []
        for fd in fds:
            kinds.append(os.readlink("/proc/self/fd/%d" % fd))
            os.close(fd)
        if not msg and not kinds:
            say(event="closed")
            break
        verb = msg.split(b"\n", 1)[0].decode(errors="replace")
        say(event="message", verb=verb, fds=kinds)
        if verb == "PMUFILTER/1 ATTACH":
            c.send(APPLY)
    c.close()
"""


class Impostor:
    """IMPOSTOR as nobody, on a path in nobody's own directory (path None) or
    on the given one; .seen is what it printed."""

    def __init__(self, path=None):
        need_root()
        if not shutil.which("setpriv"):
            raise harness.Skip("setpriv (util-linux) is not installed: cannot run the impostor as nobody")
        nobody = pwd.getpwnam("nobody")
        if nobody.pw_uid == harness.DAEMON_UID:
            raise harness.Skip("built with -Ddaemon_uid=%d: nobody is the daemon's uid" % nobody.pw_uid)
        self.uid = nobody.pw_uid
        self.dir = None
        if path is None:
            self.dir = tempfile.mkdtemp(prefix="pmufilterd-impostor.")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            path = os.path.join(self.dir, "vmm.sock")
        self.path = path
        self.seen = []
        self.cv = threading.Condition()
        self.p = subprocess.Popen(NOBODY + [sys.executable, "-c", IMPOSTOR, path], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait("listening")
        self.pid = self.seen[0]["pid"]
        check(self.seen[0]["uid"] == self.uid, "the impostor runs as nobody: %r" % self.seen[0])

    def _read(self):
        for line in self.p.stdout:
            with self.cv:
                self.seen.append(json.loads(line))
                self.cv.notify_all()

    def wait(self, event, count=1, timeout=10):
        deadline = time.time() + timeout
        with self.cv:
            while len([e for e in self.seen if e["event"] == event]) < count:
                check(self.p.poll() is None, "the impostor exited (%r) having seen %r" % (self.p.returncode, self.seen))
                check(time.time() < deadline, "impostor: expected %d '%s', saw %r" % (count, event, self.seen))
                self.cv.wait(0.1)

    def refusal(self):
        """What the VMM side says when it meets this impostor."""
        return "refusing to attach: the peer on %s is uid %d (pid %d), not pmufilterd's uid %d" % (
            self.path, self.uid, self.pid, harness.DAEMON_UID)

    def check_given_nothing(self, connections):
        """Reached by each of `connections` attaches, and no message, let
        alone a VM fd, ever came in."""
        self.wait("closed", connections)
        with self.cv:
            check(not [e for e in self.seen if e["event"] == "message"],
                  "the impostor received nothing: %r" % self.seen)

    def stop(self):
        self.p.kill()
        self.p.wait(10)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def test_qemu_with_the_shim_refuses_a_daemon_that_is_not_root():
    # A fake daemon on the socket QEMU is pointed at: KVM_CREATE_VM fails
    # (EPERM) before the VM fd can be sent, and QEMU does not start; with
    # PMUFILTER_REQUIRED=0 it starts without a filter, still sending nothing.
    need_kvm(); need(harness.SHIM, "the preload shim")
    if not QEMU:
        raise harness.Skip("qemu-system-x86_64 is not installed")
    m = Impostor()
    try:
        q = qemu("fooled", harness.SHIM, m.path)
        try:
            q.wait(30)
        except subprocess.TimeoutExpired:
            q.kill(); q.wait()
            raise harness.Failure("QEMU started on the impostor's filter: %r" % m.seen)
        err = q.stderr.read()
        check(q.returncode != 0, "QEMU failed to start, got %r:\n%s" % (q.returncode, err))
        check("pmufilter-preload: refusing KVM_CREATE_VM: " + m.refusal() in err,
              "the shim says why:\n%s" % err)
        check("Operation not permitted" in err, "QEMU's own error is EPERM:\n%s" % err)
        m.check_given_nothing(1)

        q = qemu("unfiltered", harness.SHIM, m.path, PMUFILTER_REQUIRED="0")
        try:
            time.sleep(1)
            check(q.poll() is None, "QEMU runs with PMUFILTER_REQUIRED=0: %s" %
                  (q.stderr.read() if q.poll() is not None else ""))
        finally:
            q.terminate(); q.wait(10)
        err = q.stderr.read()
        check(m.refusal() in err and "runs without a PMU event filter (PMUFILTER_REQUIRED=0)" in err,
              "the shim warns:\n%s" % err)
        m.check_given_nothing(2)
    finally:
        m.stop()


def test_cooperating_vmm_refuses_a_daemon_that_is_not_root():
    # The same through the library, on an abstract name: anyone can bind one.
    need_kvm(); need(harness.VMM, "the test VMM")
    m = Impostor("@pmufilterd-impostor-%d" % os.getpid())
    try:
        p = subprocess.run([harness.VMM, "--socket", m.path, "--json", "--name", "fooled"], capture_output=True,
                           text=True, timeout=60)
        lines = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        check(p.returncode == 1, "test-vmm failed, got %d: %s\n%s" % (p.returncode, p.stdout, p.stderr))
        check(len(lines) == 1 and lines[0]["event"] == "attach" and lines[0]["errno"] == 1 and
              not lines[0]["attached"], "the attach failed with EPERM: %r" % lines)
        check(m.refusal() in lines[0]["error"], "the error says why: %r" % lines[0]["error"])
        m.check_given_nothing(1)
    finally:
        m.stop()


if __name__ == "__main__":
    harness.main(globals())
