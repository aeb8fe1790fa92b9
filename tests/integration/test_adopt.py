#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Adoption by injection (issue 8): with settings.adopt: ptrace, VMMs that
never attach get their filter through their own thread, by ptrace.  The
built daemon, real /dev/kvm, helper VMMs that check their own sleeps and
polls, and real QEMU without the shim."""

import os
import re
import shutil
import subprocess
import time

import harness
from harness import Daemon, check, need, need_kvm, need_root

CONFIG = """\
version: 1
settings:
  attach_timeout_ms: 300
  adopt: ptrace
  unmanaged: warn
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ %s ]
  traced:
    tier: tenant
    events: [ 0x00c0 ]
rules:
  - match: { client: ptrace, comm: "polly-vmm" }
    profile: traced
"""

HELPERS = os.path.join(harness.BUILD, "tests/helpers")


def config(events="0x00c0, 0x00c4"):
    return CONFIG % events


def helper(name, *args):
    path = os.path.join(HELPERS, name)
    need(path, name)
    p = subprocess.Popen([path] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    check(line.startswith("vm-fds:"), "%s started: %r %s" % (name, line, p.stderr.read() if p.poll() is not None else ""))
    return p


def finish(p):
    """Close stdin: the helper stops and reports whether its own calls were unharmed."""
    out, err = p.communicate(timeout=30)
    return p.returncode, out, err


def adopted(d, pid, count=1, timeout=15):
    return d.wait_records("applied", count, timeout=timeout,
                          where=lambda r: r.pid == pid and "applied by injection" in r.message)


def test_sleeping_and_polling_vmms_are_adopted_unharmed():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        sleepy = helper("sleepy-vmm", "--sleep-ms=100")
        polly = helper("polly-vmm")
        try:
            r = adopted(d, sleepy.pid)[0]
            check(r.profile == "minimal", "default profile injected: %r" % r)
            r = adopted(d, polly.pid)[0]
            check(r.profile == "traced", "client: ptrace + comm selects the profile: %r" % r)
            time.sleep(0.5)         # let both run rounds after the injection
        finally:
            for p in (sleepy, polly):
                rc, out, err = finish(p)
                check(rc == 0 and "OK" in out, "%s's own calls unharmed: rc=%d %r %r" % (p.args[0], rc, out, err))
        check(not [r for r in d.records("unmanaged") if r.pid in (sleepy.pid, polly.pid)], "none unmanaged")


def test_reload_and_runtime_change_inject_again():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        p = helper("sleepy-vmm", "--sleep-ms=50")
        try:
            adopted(d, p.pid)
            d.write_config(config("0x00c0, 0x00c4, 0x00c5"))
            d.reload()
            adopted(d, p.pid, 2)
            d.wait_line(r"applied by injection \(thread \d+ held \d+ µs, allow, 3 entries\)")
        finally:
            rc, out, err = finish(p)
        check(rc == 0, "the VMM never noticed: %r %r" % (out, err))


def test_seccomp_vmm_is_refused_and_stays_alive():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        p = helper("seccomp-vmm", "--deny=kill")
        try:
            d.wait_records("refused", 1, where=lambda r: r.pid == p.pid and "seccomp" in r.message)
            u = d.wait_records("unmanaged", 1, where=lambda r: r.pid == p.pid)[0]
            # Its LastError, which the record says: the timeout, then why the injection was refused.
            check(re.search(r"is unmanaged: no ATTACH within \d+ ms; adoption by ptrace refused: .*seccomp", u.message),
                  "the unmanaged record says both reasons: %r" % u)
            check(p.poll() is None, "the VMM is alive (an injected ioctl would have killed it)")
        finally:
            rc, out, err = finish(p)
        check(rc == 0, "seccomp-vmm ran on: %r %r" % (out, err))


def test_traced_vmm_is_refused_cleanly():
    need_kvm(); need_root()
    strace = shutil.which("strace")
    if not strace:
        raise harness.Skip("strace is not installed (the tracer in this test)")
    with Daemon(config_text=config(), start=False) as d:
        p = helper("sleepy-vmm", "--sleep-ms=100")
        tracer = subprocess.Popen([strace, "-p", str(p.pid), "-o", "/dev/null"], stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            d.start()
            r = d.wait_records("refused", 1, where=lambda r: r.pid == p.pid)[0]
            check("traced" in r.message, "the reason names the tracer: %r" % r)
            d.wait_records("unmanaged", 1, where=lambda r: r.pid == p.pid)
        finally:
            tracer.terminate(); tracer.wait(10)
            rc, out, err = finish(p)
        check(rc == 0, "the VMM ran on: %r %r" % (out, err))


def test_hundred_unattached_vms_in_one_and_many_processes_all_adopted():
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        one = helper("sleepy-vmm", "--vms=100", "--sleep-ms=50")
        many = [helper("sleepy-vmm", "--vms=10", "--sleep-ms=50") for _ in range(10)]
        procs = [one] + many
        try:
            for p in procs:
                n = 100 if p is one else 10
                recs = adopted(d, p.pid, n, timeout=60)
                check(len({r.vm for r in recs}) == n, "%d distinct VMs adopted in %d: %d" % (n, p.pid, len(recs)))
        finally:
            results = [finish(p) for p in procs]
        check(all(rc == 0 for rc, _, _ in results), "every VMM unharmed: %r" % [r for r in results if r[0]])


QEMU = shutil.which("qemu-system-x86_64")


def test_running_qemu_without_shim_is_adopted_and_keeps_running():
    need_kvm(); need_root()
    if not QEMU:
        raise harness.Skip("qemu-system-x86_64 is not installed")
    with Daemon(config_text=config()) as d:
        q = subprocess.Popen([QEMU, "-accel", "kvm", "-name", "adoptee", "-machine", "q35", "-m", "64", "-display",
                              "none", "-nodefaults", "-no-user-config", "-smp", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            adopted(d, q.pid, timeout=30)
            d.write_config(config("0x00c0, 0x00c5"))
            d.reload()
            adopted(d, q.pid, 2, timeout=30)
            time.sleep(1)
            check(q.poll() is None, "QEMU keeps running after two injections")
        finally:
            q.terminate()
            q.wait(10)
        check(q.returncode in (0, -15), "QEMU shut down cleanly: %r" % q.returncode)


if __name__ == "__main__":
    harness.main(globals())
