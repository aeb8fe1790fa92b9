#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Start-up and deployment edges (issue 18): a daemon that always comes up
where the host expects it.  Every start succeeds while VMs come and go;
lockdown serves the configured socket, or the last good policy's; a
missing socket group is said; a
relative --config is shown absolute; VMs of another PID namespace are
counted, not rescanned for.  The built daemon, real /dev/kvm, no bus."""

import os
import re
import subprocess
import tempfile
import threading
import time

import harness
from harness import DAEMON, Daemon, Peer, attach_msg, check, kvm_create_vm, need, need_kvm, need_root
from test_vmm import config, restart


def churn(stop, counts):
    """Create and close VMs in a tight loop until stop is set."""
    while not stop.is_set():
        try:
            kvm, vm = kvm_create_vm()
            os.close(vm)
            os.close(kvm)
            counts[0] += 1
        except OSError:
            counts[1] += 1


def test_every_start_succeeds_while_vms_come_and_go():
    """Start-up died on a /proc race (fdopendir() ENOENT of a process that
    exited mid-scan) in about one start in sixty.  100 restarts while four
    threads of two processes create and close VMs: every one comes up."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        stop, counts = threading.Event(), [0, 0]
        workers = [threading.Thread(target=churn, args=(stop, counts)) for _ in range(2)]
        helper = subprocess.Popen(["python3", "-c",
                                   "import fcntl, os\n"
                                   "while True:\n"
                                   "    k = os.open('/dev/kvm', os.O_RDWR)\n"
                                   "    v = fcntl.ioctl(k, 0xAE01, 0)\n"
                                   "    os.close(v); os.close(k)\n"])
        for w in workers:
            w.start()
        try:
            for i in range(100):
                restart(d, 15 if i % 2 else 9)
                d.wait_line(r"pmufilterd .* running", timeout=20)
                check(d.alive(), "start %d failed:\n%s" % (i + 1, d.log()))
                check(not any("Failed to scan /proc" in l for l in d.lines), "start %d:\n%s" % (i + 1, d.log()))
        finally:
            stop.set()
            for w in workers:
                w.join()
            helper.kill()
            helper.wait()
        print("RESULT: 100 starts, all up, beside %d VMs created and closed by this process" % counts[0])


def start_plain(directory, config_path, extra=()):
    """The daemon as a unit without socket activation starts it: no
    --socket, so it binds what the policy (or lockdown) says."""
    need(DAEMON, "pmufilterd")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen([DAEMON, "--config", config_path, "--no-bus", "-v",
                             "--state-dir", os.path.join(directory, "state"),
                             "--runtime-dir", os.path.join(directory, "run")] + list(extra),
                            stderr=subprocess.PIPE, text=True, env=env)


def read_until(proc, pattern, timeout=10):
    """stderr lines of proc until one matches: (the line, all lines read)."""
    if not hasattr(proc, "lines"):
        proc.lines, proc.cond = [], threading.Condition()

        def reader():
            for line in proc.stderr:
                with proc.cond:
                    proc.lines.append(line.rstrip("\n"))
                    proc.cond.notify_all()
        threading.Thread(target=reader, daemon=True).start()
    rx, deadline = re.compile(pattern), time.time() + timeout
    with proc.cond:
        while True:
            for line in proc.lines:
                if rx.search(line):
                    return line, list(proc.lines)
            left = deadline - time.time()
            if left <= 0:
                raise harness.Failure("no line matching %r:\n%s" % (pattern, "\n".join(proc.lines[-40:])))
            proc.cond.wait(left)


def attach_gets_lockdown(sock, who):
    """A VM attached on sock gets the lockdown filter: an empty allowlist."""
    kvm, vm = kvm_create_vm()
    peer = Peer(sock)
    try:
        peer.send(attach_msg(vm, name="in-lockdown"), [vm])
        apply = peer.recv()
        check(apply and apply.get("PROFILE") == "lockdown" and apply.get("EVENTS") == "",
              "%s gets the lockdown filter: %r" % (who, apply))
    finally:
        peer.close()
        os.close(vm)
        os.close(kvm)


def test_lockdown_serves_the_configured_socket():
    """With a policy that does not load at start, lockdown bound the
    default socket, not settings.socket: VMMs pointed at the configured path
    could not attach (with the shim: not start).  Now lockdown keeps the
    settings that still parse, says which socket it serves and why, and a
    VMM on the configured path gets the lockdown filter."""
    need_kvm(); need_root()
    with tempfile.TemporaryDirectory(prefix="pmufilterd-test.") as tmp:
        sock = os.path.join(tmp, "elsewhere", "vmm.sock")
        path = os.path.join(tmp, "pmufilterd.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nsettings:\n  socket: %s\nprofiles:\n  broken:\n    tier: tenant\n"
                    "    events: [ no-such-event-anywhere ]\n" % sock)
        p = start_plain(tmp, path)
        try:
            line, _ = read_until(p, r"Lockdown serves the VMM socket")
            check(sock in line and "settings.socket" in line, "says which socket and why: " + line)
            attach_gets_lockdown(sock, "a VMM on the configured path")
        finally:
            p.terminate()
            p.wait(10)


def test_lockdown_serves_the_last_good_policys_socket():
    """A policy that does not parse at all (not even its settings) at
    start: lockdown serves the socket of the last good policy this runtime
    directory saw, says so, and a VMM there gets the lockdown filter.  A
    kept file that does not load either leaves the default, said."""
    need_kvm(); need_root()
    with tempfile.TemporaryDirectory(prefix="pmufilterd-test.") as tmp:
        sock = os.path.join(tmp, "elsewhere", "vmm.sock")
        path = os.path.join(tmp, "pmufilterd.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nsettings:\n  socket: \"%s\"\n  attach_timeout_ms: 700\n"
                    "profiles:\n  p:\n    tier: tenant\n    events: [ instructions ]\n" % sock)
        p = start_plain(tmp, path)
        try:
            read_until(p, r"pmufilterd .* running")
        finally:
            p.terminate()
            p.wait(10)
        kept = os.path.join(tmp, "run", "settings.last-good.yaml")
        check(os.path.exists(kept), "a good load keeps its settings in the runtime directory")
        with open(path, "w") as f:
            f.write("version: 1\nsettings: [ this is: not\n")      # no settings parse
        p = start_plain(tmp, path)
        try:
            line, _ = read_until(p, r"Lockdown serves the VMM socket")
            check(sock in line and "last good policy" in line, "the last good policy's socket, said: " + line)
            attach_gets_lockdown(sock, "a VMM on the last good path")
        finally:
            p.terminate()
            p.wait(10)
        # A kept file that is garbage: the default socket, and a warning.
        with open(kept, "wb") as f:
            f.write(b"\x00\xff: [\n")
        p = start_plain(tmp, path, ["--socket", os.path.join(tmp, "given.sock")])
        try:
            line, lines = read_until(p, r"Lockdown serves the VMM socket")
            check(any("do not load either" in l for l in lines), "a bad kept file is said:\n" + "\n".join(lines))
            check("given with --socket" in line, "and --socket serves: " + line)
        finally:
            p.terminate()
            p.wait(10)


def test_missing_socket_group_is_said():
    """Without the socket's group the socket silently stayed root:root and
    non-root VMMs could not connect.  Now it is said, once, with what it
    means (and in pmufilterctl status: Manager.Warnings)."""
    need_kvm(); need_root()
    with tempfile.TemporaryDirectory(prefix="pmufilterd-test.") as tmp:
        sock = os.path.join(tmp, "vmm.sock")
        path = os.path.join(tmp, "pmufilterd.yaml")
        with open(path, "w") as f:
            f.write(config().replace("settings:\n", "settings:\n  socket: %s\n  socket_group: no-such-group-here\n"
                                     % sock, 1))
        p = start_plain(tmp, path)
        try:
            line, lines = read_until(p, r"does not exist")
            check("group 'no-such-group-here'" in line and "cannot connect" in line, "what it means: " + line)
            read_until(p, r"pmufilterd .* running")
        finally:
            p.terminate()
            p.wait(10)


def test_relative_config_path_is_made_absolute():
    """--config policy.yaml was kept as given and named no file once read
    from elsewhere.  Now the daemon makes it absolute (messages, D-Bus)."""
    need_kvm(); need_root()
    with tempfile.TemporaryDirectory(prefix="pmufilterd-test.") as tmp:
        with open(os.path.join(tmp, "policy.yaml"), "w") as f:
            f.write("version: 1\nprofiles:\n  p:\n    tier: tenant\n    events: [ no-such-event ]\n")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        p = subprocess.Popen([DAEMON, "--config", "policy.yaml", "--no-bus", "-v", "--socket",
                              os.path.join(tmp, "vmm.sock"), "--state-dir", os.path.join(tmp, "state"),
                              "--runtime-dir", os.path.join(tmp, "run")], cwd=tmp, stderr=subprocess.PIPE, text=True,
                             env=env)
        try:
            line, _ = read_until(p, r"no-such-event")
            check(line.split(": ", 2)[-1].startswith(os.path.join(tmp, "policy.yaml") + ":"),
                  "the file named whole: " + line)
        finally:
            p.terminate()
            p.wait(10)


def test_vms_of_another_pid_namespace_are_counted_not_rescanned():
    """In a container, each VM created on the host cost a log line and a
    full /proc rescan.  Now they are counted and said once a minute, and
    the rescans that find the container's own VMs (whose uevents look the
    same from inside) come at most once a second."""
    need_kvm(); need_root()
    need("/usr/bin/unshare", "unshare (util-linux)")
    with tempfile.TemporaryDirectory(prefix="pmufilterd-test.") as tmp:
        path = os.path.join(tmp, "pmufilterd.yaml")
        with open(path, "w") as f:
            f.write(config())
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", DAEMON, "--config", path, "--no-bus",
                              "-v", "--socket", os.path.join(tmp, "vmm.sock"),
                              "--state-dir", os.path.join(tmp, "state"), "--runtime-dir", os.path.join(tmp, "run")],
                             stderr=subprocess.PIPE, text=True, env=env)
        try:
            _, before = read_until(p, r"pmufilterd .* running")
            for _ in range(5):
                kvm, vm = kvm_create_vm()
                time.sleep(0.1)
                os.close(vm)
                os.close(kvm)
            line, lines = read_until(p, r"VMs so far were created by processes this daemon cannot see")
            time.sleep(1.5)
            _, lines = read_until(p, r".")
            scans = sum("Scanned /proc" in l for l in lines) - sum("Scanned /proc" in l for l in before)
            # Five VMs in half a second: at most one rescan a second (a VM
            # of this namespace would look the same from here), not five.
            check(1 <= scans <= 2, "%d rescans for 5 foreign VMs in 0.5 s:\n%s" % (scans, "\n".join(lines)))
        finally:
            # The daemon is PID 1 of its namespace, where SIGTERM from
            # outside does not reach a process that blocks it: kill unshare,
            # and --kill-child takes the daemon with it.
            p.kill()
            p.wait(10)


if __name__ == "__main__":
    harness.main(globals())
