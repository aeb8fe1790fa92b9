# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the fault and load tests (test_faults.py): the policy they
switch between, the daemon's fds, record counting that keeps up with tens
of thousands of log lines, the daemon's uevent socket reached from outside,
and VMMs in their own processes to kill mid-handshake."""

import contextlib
import ctypes
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import harness
from harness import Peer, check, need, policy  # noqa: F401 (policy: for test_faults.py)


def result(text):
    print("RESULT: " + text, flush=True)


def write_atomically(path, text):
    """The whole file or the old one, never half: a reload may read it any time."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def fds_of(pid, scratch=None):
    """The daemon's open fds: number -> what it is.  Files under scratch
    (its state and runtime dirs) are left out: a record being written at
    that instant is not a leak."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if not (scratch and target.startswith(scratch + "/")):
            out[int(fd)] = target
    return out


def daemon_fds(d):
    return fds_of(d.proc.pid, d.dir)


def fd_kinds(fds):
    """'socket:[123]' -> 'socket', 'anon_inode:[timerfd]' -> itself: for messages."""
    kinds = {}
    for target in fds.values():
        k = re.sub(r":\[\d+\]$", "", target)
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def wait_fds(d, want, timeout=10):
    """The daemon settles back to `want` open fds (its cleanup runs from the loop)."""
    deadline = time.time() + timeout
    while True:
        now = daemon_fds(d)
        if len(now) == len(want):
            return now
        if time.time() > deadline:
            raise harness.Failure("pmufilterd has %d fds, expected %d as before: now %r, before %r\n%s" %
                                  (len(now), len(want), fd_kinds(now), fd_kinds(want), d.log()))
        time.sleep(0.1)


class Tally:
    """Records of one kind, parsed once as lines arrive.  Daemon.records()
    and wait_records() re-read every line on every new line, which at tens
    of thousands of lines makes the test, not the daemon, the bottleneck
    (and the daemon then blocks writing to stderr)."""

    def __init__(self, d, kind=None, where=lambda r: True, pattern=None):
        self.d, self.mid, self.where, self.pos, self.found = d, kind and harness.MID[kind], where, 0, []
        self.pattern = pattern and re.compile(pattern)

    def update(self):
        with self.d.lock:
            new = self.d.lines[self.pos:]
            self.pos += len(new)
        for line in new:
            if self.pattern:
                if self.pattern.search(line):
                    self.found.append(line)
                continue
            m = harness.RECORD.match(line)
            if m:
                r = harness.Record(*m.groups())
                if r.mid == self.mid and self.where(r):
                    self.found.append(r)
        return self.found

    def wait(self, n=1, timeout=10, what=""):
        deadline = time.time() + timeout
        while len(self.update()) < n:
            if time.time() > deadline:
                raise harness.Failure("expected %d %s within %ss, got %d:\n%s" %
                                      (n, what or self.mid or self.pattern.pattern, timeout, len(self.found),
                                       self.d.log()))
            time.sleep(0.2)
        return self.found


def held_wait(h, pred, n, timeout):
    """Held.wait() without its wake-up per line: poll the lines read so far."""
    deadline = time.time() + timeout
    while True:
        with h.cv:
            got = [l for l in h.lines if pred(l)]
        if len(got) >= n:
            return got
        check(time.time() < deadline and h.p.poll() is None,
              "test-vmm %d: expected %d lines, got %d (exit %r)" % (h.p.pid, n, len(got), h.p.poll()))
        time.sleep(0.2)


@contextlib.contextmanager
def on_tmpfs():
    """The daemon's dirs on tmpfs, as /run is on a real host: 10,000 VM
    records created and removed on this machine's ext4 /tmp cost more than
    the daemon's own work."""
    saved = tempfile.tempdir
    tempfile.tempdir = "/dev/shm" if os.path.isdir("/dev/shm") else saved
    try:
        yield
    finally:
        tempfile.tempdir = saved


def ready(d, timeout=100):
    """The daemon serves: its start-up /proc scan is done.  The socket
    exists before that scan, and the scan's cost grows with every VM on the
    host (other people's too), so a test waits for it before timing."""
    Tally(d, pattern=r"pmufilterd \S+ running: ").wait(1, timeout, "the start-up scan to end")
    return d


def peer(d):
    """A hand-written VMM session, patient: this machine is shared."""
    p = Peer(d.socket)
    p.s.settimeout(30)
    return p


def count_records(d, kind, pids):
    return len([r for r in d.records(kind) if r.pid in pids])


def push_check(d, good):
    """The well-behaved VMM still answers a push: a reload that changes its
    filter reaches it and is applied."""
    before = len([l for l in good.lines if l["event"] == "apply"])
    write_atomically(d.config, policy(minimal="0x00c0, 0x00c4, 0x00c5, 0x00c6"))
    d.reload()
    lines = good.wait(lambda l: l["event"] == "apply", before + 1, timeout=20)
    check(lines[-1]["errno"] == 0, "the good VMM applied the push: %r" % lines[-1])
    check(d.alive(), "pmufilterd is still running")


SYS_pidfd_getfd = 438
NETLINK_KOBJECT_UEVENT = 15


def uevent_socket_fd(pid):
    """The daemon's kernel uevent socket, as its fd number in the daemon."""
    inodes = set()
    with open("/proc/net/netlink") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1]) == NETLINK_KOBJECT_UEVENT:
                inodes.add(cols[-1])
    for fd, target in fds_of(pid).items():
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m and m.group(1) in inodes:
            return fd
    raise harness.Failure("pmufilterd %d has no NETLINK_KOBJECT_UEVENT socket" % pid)


def set_receive_buffer(pid, size):
    """SO_RCVBUF of the daemon's uevent socket, set from outside through a
    pidfd_getfd() copy (one socket, two fds): what the daemon gets where it
    lacks CAP_NET_ADMIN and net.core.rmem_max is the kernel default.
    Returns the size the kernel granted (twice the request)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        fd = libc.syscall(SYS_pidfd_getfd, pidfd, uevent_socket_fd(pid), 0)
        if fd < 0:
            raise harness.Skip("pidfd_getfd on pmufilterd: %s" % os.strerror(ctypes.get_errno()))
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=fd)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, size)       # SO_RCVBUFFORCE: past rmem_max, as root
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        s.close()


CHILD = r"""
import os, sys
sys.path.insert(0, %(here)r)
from harness import Peer, attach_msg, kvm_create_vm
stage = sys.argv[2]
kvm, vm = kvm_create_vm()
p = Peer(sys.argv[1])
p.s.settimeout(30)
if stage != "connected":
    p.send(attach_msg(vm, name="doomed-%%d" %% os.getpid()), [vm])
if stage == "applying":
    m = p.recv()
    assert m and m["_verb"] == "PMUFILTER/1 APPLY", m
print(stage, flush=True)
os.read(0, 1)       # until killed
"""


def child(d, stage):
    """A VMM in its own process, stopped at stage, its VM seen by the daemon."""
    c = subprocess.Popen([sys.executable, "-c", CHILD % {"here": os.path.dirname(os.path.abspath(__file__))},
                          d.socket, stage], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    check(c.stdout.readline().strip() == stage, "the child VMM reached %s" % stage)
    # Killed before the daemon read its create uevent, the VM would be
    # nobody's to clean up: not the case under test.
    d.wait_line(r"VM %d-\d+ detected" % c.pid)
    return c


def compiled(config_text, profile):
    """The kernel words `pmufilterctl compile --json` gives for profile."""
    import json
    need(harness.CTL, "pmufilterctl")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(config_text)
        f.flush()
        p = subprocess.run([harness.CTL, "compile", "--config", f.name, "--json", profile],
                           capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "pmufilterctl compile %s: %s" % (profile, p.stderr))
    return tuple(int(e, 16) for e in json.loads(p.stdout)["events"])
