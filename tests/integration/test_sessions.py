#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VMM socket against hostile and broken clients: each gets ERROR with a
reason and loses its own session only; a good VM attached meanwhile keeps
working.  The built daemon, real /dev/kvm, the protocol spoken by hand."""

import os
import socket
import time

import harness
from harness import Daemon, Peer, attach_msg, check, kvm_create_vm

CONFIG = """\
version: 1
settings:
  attach_timeout_ms: 1500
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ 0x00c0, { select: 0xc4, umask: 0x00 } ]
  gold:
    tier: tenant
    extends: minimal
    events: [ 0x00c5 ]
rules:
  - match: { label.tier: gold }
    profile: gold
"""


def good_session(d):
    """A well-behaved VMM session, attached and filtered: (peer, vm fds)."""
    kvm, vm = kvm_create_vm()
    p = Peer(d.socket)
    p.send(attach_msg(vm, name="good", label_tier="gold"), [vm])
    apply = p.recv()
    check(apply and apply["_verb"] == "PMUFILTER/1 APPLY", "expected APPLY, got %r" % apply)
    check(apply.get("PROFILE") == "gold", "label.tier=gold selects profile gold, got %r" % apply)
    check(apply.get("EVENTS") == "0xc0,0xc4,0xc5" or apply.get("EVENTS", "").count(",") == 2,
          "gold has 3 events: %r" % apply)
    p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % apply["SERIAL"])
    return p, (kvm, vm), apply


def expect_error(p, reason_rx, what):
    msg = p.recv()
    check(msg is not None and msg["_verb"] == "PMUFILTER/1 ERROR", "%s: expected ERROR, got %r" % (what, msg))
    import re
    check(re.search(reason_rx, msg.get("MESSAGE", "")), "%s: reason %r does not match %r" % (what, msg.get("MESSAGE"), reason_rx))
    check(p.closed(), "%s: the daemon must close the session after ERROR" % what)
    return msg


def attached_until_apply(d, name):
    """A new VM attached under name and its APPLY received, not answered:
    (kvm fd, vm fd, VM id, peer, APPLY)."""
    kvm, vm = kvm_create_vm()
    p = Peer(d.socket)
    p.send(attach_msg(vm, name=name), [vm])
    apply = p.recv()
    check(apply and apply["_verb"] == "PMUFILTER/1 APPLY", "%s: expected APPLY, got %r" % (name, apply))
    return kvm, vm, "%d-%d" % (os.getpid(), vm), p, apply


def test_hostile_clients_lose_only_their_session():
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        good, fds, _ = good_session(d)
        d.wait_records("applied", 1, where=lambda r: r.pid == os.getpid())

        p = Peer(d.socket)
        p.send(b"\x00\xffgarbage")
        expect_error(p, "malformed", "garbage")

        kvm, vm = kvm_create_vm()
        p = Peer(d.socket)
        p.send(attach_msg(vm))
        expect_error(p, "exactly one fd", "ATTACH without an fd")

        r, w = os.pipe()
        p = Peer(d.socket)
        p.send(attach_msg(r), [r])
        expect_error(p, "not a KVM VM fd", "a pipe instead of a VM")

        p = Peer(d.socket)
        p.send(attach_msg(kvm), [vm])
        expect_error(p, "VMFD=%d is not the VM fd" % kvm, "VMFD naming another fd")

        p = Peer(d.socket)
        p.send("PMUFILTER/1 ATTACH\nVMFD=%d\nNAME=%s\n" % (vm, "x" * 20000), [vm])
        expect_error(p, "larger than 16384", "an oversized message")

        p = Peer(d.socket)
        p.send("PMUFILTER/1 APPLIED\nSERIAL=1\nERRNO=0\n")
        expect_error(p, "before ATTACH", "APPLIED before ATTACH")

        # The good session is untouched: it still answers pushes.
        d.reload()
        check(d.alive(), "daemon survived the hostile clients")
        good.send("PMUFILTER/1 DETACH\n")
        os.close(vm); os.close(kvm); os.close(r); os.close(w)
        me = os.getpid()
        d.wait_records("refused", 6, where=lambda r: r.pid == me)
        time.sleep(0.2)
        check(len([r for r in d.records("refused") if r.pid == me]) == 6, "exactly six refusals recorded:\n" + d.log())
        check(not [r for r in d.records("failed") if r.pid == me], "no VM failed:\n" + d.log())


def pidfd_getfd(pid, fd):
    """A copy of another process's fd (pidfd_getfd(2), root)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)           # SYS_pidfd_getfd
        check(got >= 0, "pidfd_getfd: %s" % os.strerror(ctypes.get_errno()))
        return got
    finally:
        os.close(pidfd)


def test_vm_fd_taken_from_its_creator_cannot_be_attached():
    """Only the creator attaches: a root process that took another's VM fd
    with pidfd_getfd() and claims a name and labels of its own gets ERROR,
    no VM entry, and the creator's own attach still works."""
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            kvm, vm = kvm_create_vm()
            os.write(w, b"%d\n" % vm)
            time.sleep(60)
            os._exit(0)
        os.close(w)
        try:
            vm = int(os.read(r, 64).decode())
            vm_id = "%d-%d" % (child, vm)
            d.wait_line(r"VM %s detected" % vm_id)
            stolen = pidfd_getfd(child, vm)
            p = Peer(d.socket)
            p.send(attach_msg(stolen, name="thief", label_tier="gold"), [stolen])
            expect_error(p, r"VM %s was created by pid %d, not by pid %d" % (vm_id, child, os.getpid()), "a stolen VM fd")
            thief_id = "%d-%d" % (os.getpid(), stolen)
            check(not any(thief_id in line for line in d.lines if "detected" in line or "attached" in line),
                  "no VM entry for the thief: %s" % d.log())
            check(not d.records("attach"), "nothing was attached: %r" % d.records("attach"))
            os.close(stolen)
            check(d.alive(), "the daemon runs")
        finally:
            os.kill(child, 9)
            os.waitpid(child, 0)
            os.close(r)
        good, fds, _ = good_session(d)
        d.wait_records("applied", 1, where=lambda rec: rec.pid == os.getpid())
        good.close()


def test_client_that_never_answers_apply():
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        kvm, vm = kvm_create_vm()
        p = Peer(d.socket)
        p.send(attach_msg(vm, name="mute"), [vm])
        apply = p.recv()
        check(apply["_verb"] == "PMUFILTER/1 APPLY", "got APPLY")
        t0 = time.time()
        msg = p.recv()          # never answer: the daemon gives up
        check(msg and msg["_verb"] == "PMUFILTER/1 ERROR" and msg.get("ERRNO") == "110",
              "ETIMEDOUT ERROR after the timeout, got %r" % msg)
        check(time.time() - t0 >= 1.0, "not before attach_timeout_ms (1500 ms)")
        check("no APPLIED" in msg.get("MESSAGE", ""), "reason names the missing APPLIED: %r" % msg)
        good, fds, _ = good_session(d)
        d.wait_records("applied", 1, where=lambda r: r.pid == os.getpid())
        os.close(vm); os.close(kvm)


def test_attach_is_written_with_its_answer():
    """While a VMM applies its filter the daemon writes nothing (its writes
    would hold the CPU the VMM's ioctl wakes up on): the attach's audit
    record comes with the answer, before it, and with whatever else ends
    the wait, a closed session or no answer in time, never lost."""
    harness.need_kvm()
    harness.need_root()

    def said(d, vm_id):
        with d.lock:
            return [i for i, l in enumerate(d.lines) if "VM %s attached by " % vm_id in l]

    with Daemon(config_text=CONFIG) as d:
        fds = []
        for how in ("answers", "hangs up", "never answers"):
            kvm, vm, vm_id, p, apply = attached_until_apply(d, "quiet-" + how.replace(" ", "-"))
            fds += [vm, kvm]
            time.sleep(0.3)
            check(not said(d, vm_id), "%s: nothing of the attach is written before the VMM answers:\n%s"
                  % (how, d.log()))
            log = os.path.join(d.dir, "run", "records")
            data = open(log, "rb").read() if os.path.exists(log) else b""
            check(all(e[0] != vm_id for e in harness.records_log_entries(data)[0]),
                  "%s: the VM's record is not written before its answer either" % how)
            if how == "answers":
                p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % apply["SERIAL"])
                d.wait_line(r"VM %s.*: filter of profile 'minimal' applied" % vm_id)
                with d.lock:
                    applied = [i for i, l in enumerate(d.lines) if "VM %s" % vm_id in l and "applied" in l]
                check(said(d, vm_id) and said(d, vm_id)[0] < applied[0],
                      "the attach's record is written, before the APPLIED's:\n%s" % d.log())
                d.wait_records("applied", 1, where=lambda r: r.vm == vm_id)
            elif how == "hangs up":
                p.close()
                d.wait_line(r"VM %s: session closed" % vm_id)
                check(said(d, vm_id), "a session closed before its answer still has its attach written")
            else:
                msg = p.recv()
                check(msg and msg.get("ERRNO") == "110", "no answer in time: ETIMEDOUT, got %r" % msg)
                d.wait_line(r"VM %s attached by " % vm_id)
                d.wait_line(r"Refused VMM session .*no APPLIED")
                with d.lock:
                    refused = [i for i, l in enumerate(d.lines) if "Refused VMM session" in l and "no APPLIED" in l]
                check(refused and said(d, vm_id)[0] < refused[-1],
                      "the attach is written before the refusal that ends it:\n%s" % d.log())
            check(len(said(d, vm_id)) == 1, "%s: the attach is written once" % how)
            p.close()
        for fd in fds:
            os.close(fd)


def test_vm_applying_at_stop_keeps_its_record():
    """A VMM that has its APPLY and has not answered when the daemon stops
    (a restart) has its VM's record written at the stop, as any attached
    VM has, and its session goes to the fd store with it: the next start
    restores the VM and sends the APPLY again (pmufilterd(8), RESTART).
    The record waited for the answer, and the stop wrote only records that
    waited for nothing: the VM came back as new, its session lost."""
    harness.need_kvm()
    harness.need_root()
    import signal
    with Daemon(config_text=CONFIG) as d:
        kvm, vm, vm_id, p, apply = attached_until_apply(d, "applying")
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        log = os.path.join(d.dir, "run", "records")
        data = open(log, "rb").read() if os.path.exists(log) else b""
        mine = [e for e in harness.records_log_entries(data)[0] if e[0] == vm_id]
        check(mine and mine[-1][3] is not None and (b"SERIAL=%s\n" % apply["SERIAL"].encode()) in mine[-1][3],
              "the stop writes the record of the VM, its APPLY unanswered: %r\n%s" % (mine, d.log()))
        check(len(d.records("attach", vm=vm_id)) == 1, "the attach is written once, at the stop:\n%s" % d.log())
        with d.lock:
            d.lines.clear()
        os.unlink(d.socket)
        d.start()
        d.wait_line(r"VM %s: restored without a session" % vm_id)
        p.close()
        os.close(vm)
        os.close(kvm)


def test_attach_is_written_before_a_reload_while_its_vmm_applies():
    """The attach's record waits for the VMM's answer; a reload meanwhile
    comes after the attach in the trail, as in time: the attach's profile
    and the rule that chose it are the policy's before the reload."""
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        kvm, vm, vm_id, p, apply = attached_until_apply(d, "reloaded")
        d.write_config(CONFIG.replace("default_profile: minimal", "default_profile: gold"))
        d.reload()
        d.wait_line(r"Reloaded the policy")
        again = p.recv()
        check(again and again.get("PROFILE") == "gold", "the reload pushes gold, got %r" % again)
        p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % again["SERIAL"])
        d.wait_line(r"VM %s.*: filter of profile 'gold' applied" % vm_id)
        with d.lock:
            attached = [i for i, l in enumerate(d.lines) if "VM %s attached by " % vm_id in l]
            reloaded = [i for i, l in enumerate(d.lines) if "Reloaded the policy" in l]
        check(len(attached) == 1 and "profile 'minimal'" in d.lines[attached[0]],
              "the attach is written once, with the profile it was given:\n%s" % d.log())
        check(attached[0] < reloaded[0], "the attach is written before the reload after it:\n%s" % d.log())
        p.close()
        os.close(vm)
        os.close(kvm)


def test_vm_detected_then_unmanaged_then_attached():
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        kvm, vm = kvm_create_vm()
        vm_id = "%d-%d" % (os.getpid(), vm)
        d.wait_records("unmanaged", 1, timeout=10, where=lambda r: r.vm == vm_id)
        # A late ATTACH still gets the VM filtered.
        p = Peer(d.socket)
        p.send(attach_msg(vm, name="late"), [vm])
        apply = p.recv()
        check(apply["_verb"] == "PMUFILTER/1 APPLY" and apply.get("VM") == vm_id, "APPLY for %s: %r" % (vm_id, apply))
        p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % apply["SERIAL"])
        d.wait_records("applied", 1, where=lambda r: r.vm == vm_id)
        os.close(vm)
        d.wait_records("gone", 1, where=lambda r: r.vm == vm_id)
        os.close(kvm)


def test_kernel_refusal_is_reported_as_failed():
    harness.need_kvm()
    harness.need_root()
    with Daemon(config_text=CONFIG) as d:
        kvm, vm = kvm_create_vm()
        p = Peer(d.socket)
        p.send(attach_msg(vm), [vm])
        apply = p.recv()
        p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=22\n" % apply["SERIAL"])
        rs = d.wait_records("failed", 1, where=lambda r: r.pid == os.getpid())
        check("Invalid argument" in rs[0].message, "the record says what the kernel said: %r" % rs[0])
        os.close(vm); os.close(kvm)


def test_what_a_session_said_before_its_vm_went_is_heard():
    """An APPLIED, then the VM closed and the session with it, all queued
    while the daemon was not looking (stopped): its next wake-up sees the
    session and the DESTROY uevent ready together.  The APPLIED came first
    and must be recorded, not lost to the DESTROY freeing the session."""
    harness.need_kvm()
    harness.need_root()
    import signal
    with Daemon(config_text=CONFIG) as d:
        kvm, vm, vm_id, p, apply = attached_until_apply(d, "brief")
        # The ATTACH handled: the daemon is back asleep in its loop (the
        # attach's record waits for the answer, pmufilterd(8) AUDIT TRAIL).
        deadline = time.time() + 10
        while open("/proc/%d/stat" % d.proc.pid).read().rsplit(")", 1)[1].split()[0] != "S":
            check(time.time() < deadline, "the daemon never went back to sleep")
            time.sleep(0.01)
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=0\n" % apply["SERIAL"])
            os.close(vm)            # the last reference: the kernel queues DESTROY
            p.close()
            time.sleep(0.1)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.wait_records("gone", 1, where=lambda r: r.vm == vm_id)
        d.wait_records("applied", 1, timeout=2, where=lambda r: r.vm == vm_id)
        d.wait_records("attach", 1, timeout=2, where=lambda r: r.vm == vm_id)
        os.close(kvm)


if __name__ == "__main__":
    harness.main(globals())
