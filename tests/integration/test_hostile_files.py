#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every file the daemon keeps and every peer is hostile input (issue 14):
a record with a second EVENTS= line, a FIFO where state.yaml goes, a file
name that would forge a log line, running out of fds, idle connections, an
empty policy reloaded, a state file truncated to a comment, a start that
died restoring.  Each case failed (crash, hang, spin, silent loosening) on
the daemon before the fixes.  The built daemon, real /dev/kvm, no bus."""

import os
import re
import signal
import subprocess
import time

import harness
from harness import (Daemon, Peer, attach_msg, check, kvm_create_vm, need_kvm, need_root, parse_records_log,
                     read_records, records_log_entry as entry)
from test_vmm import Held, config, restart


def log_path(d):
    return os.path.join(d.dir, "run", "records")


def wait_record(d, timeout=5):
    """(id, record) of the first VM in the records log, once written."""
    deadline = time.time() + timeout
    while not read_records(d) and time.time() < deadline:
        time.sleep(0.05)
    recs = read_records(d)
    check(recs, "a record is written")
    return sorted(recs.items())[0]


def kill_and_start(d, change):
    """SIGKILL the daemon, change() its files, start it again."""
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    change()
    with d.lock:
        d.lines.clear()
    os.unlink(d.socket)
    d.start()


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_record_with_a_second_events_line_does_not_crash_the_daemon():
    """Finding 1: a record holding a second EVENTS= line crashed every start
    (a heap overflow).  Now the later line replaces the first."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "rec", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach")
            vm_id, body = wait_record(d)

            def second_events_line():
                # A long line, then a short one: appended at the long one's
                # count, the short one's values went far past their buffer.
                # In the log: the same entry again, its length right.
                with open(log_path(d), "ab") as f:
                    f.write(entry(vm_id, body + "EVENTS=" + ",".join("0x%x" % i for i in range(1, 5000)) +
                                  "\nEVENTS=0x1\n"))
            kill_and_start(d, second_events_line)
            d.wait_line(r"pmufilterd .* running")
            time.sleep(0.5)
            check(d.alive(), "the daemon runs after reading the record:\n" + d.log())
            d.wait_line(r"Restored 1 of 1 VM records")
        finally:
            held.stop()


def test_fd_exhaustion_neither_spins_nor_floods_the_log():
    """Finding 2: out of fds, accept() failed with EMFILE at once, again and
    again: a full core and 450,000 log lines a second.  Now the daemon stops
    polling the socket until a session closes (or a back-off ends), logs
    it once, closes connections that never send ATTACH, and a real VMM
    attaches once they are gone."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        d.wait_line(r"pmufilterd .* running")
        # Room for 20 of the 60 connections below (two fds each: the socket, a pidfd).
        limit = len(os.listdir("/proc/%d/fd" % d.proc.pid)) + 40
        subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--nofile=%d:%d" % (limit, limit)], check=True)
        idle = []
        try:
            for _ in range(60):
                try:
                    idle.append(Peer(d.socket))
                except OSError:
                    break
            time.sleep(0.5)
            before, lines = cpu_seconds(d.proc.pid), len(d.lines)
            time.sleep(2)
            spent = cpu_seconds(d.proc.pid) - before
            # Lines of the episode: VMs of other tests on the host, which
            # this daemon sees and calls unmanaged, add their own lines.
            logged = sum("Too many open files" in l or "accept" in l for l in d.lines[lines:])
            print("RESULT: out of fds for 2 s: %.3f s of the daemon's CPU, %d log lines" % (spent, logged))
            check(spent < 0.2, "the daemon spins out of fds: %.2f s of CPU in 2 s" % spent)
            check(logged < 10, "the daemon floods the log out of fds: %d lines in 2 s" % logged)
            check(sum("Cannot accept VMM connections" in l for l in d.lines) == 1,
                  "said once per episode:\n" + d.log())
            # Connections that never send ATTACH are closed within 5 s ...
            got = idle[0].recv()
            check(got and got["_verb"] == "PMUFILTER/1 ERROR" and "no ATTACH within 5 s" in got.get("MESSAGE", ""),
                  "an idle connection is told why it is closed: %r" % got)
        finally:
            for p in idle:
                p.close()
        # ... and then a VMM attaches.
        kvm, vm = kvm_create_vm()
        p = Peer(d.socket)
        p.send(attach_msg(vm, name="after"), [vm])
        apply = p.recv()
        check(apply and apply["_verb"] == "PMUFILTER/1 APPLY", "a VMM attaches after the episode: %r" % apply)
        d.wait_line(r"Accepting VMM connections again, after \d+ attempts failed")
        p.close()
        os.close(vm)
        os.close(kvm)


def test_idle_connections_of_one_uid_are_capped():
    """Connections that have not sent ATTACH are capped per uid
    (settings.unattached_sessions_per_uid): the next is refused with a
    reason, and a VMM that attaches is not disturbed."""
    need_kvm(); need_root()
    text = config().replace("settings:\n", "settings:\n  unattached_sessions_per_uid: 3\n", 1)
    check("unattached_sessions_per_uid: 3" in text, "the test policy has settings: %s" % text)
    with Daemon(config_text=text) as d:
        idle = [Peer(d.socket) for _ in range(3)]
        extra = Peer(d.socket)
        got = extra.recv()
        check(got and got["_verb"] == "PMUFILTER/1 ERROR" and "unattached_sessions_per_uid" in got.get("MESSAGE", ""),
              "the fourth idle connection is refused: %r" % got)
        kvm, vm = kvm_create_vm()
        idle[0].send(attach_msg(vm, name="busy"), [vm])
        apply = idle[0].recv()
        check(apply and apply["_verb"] == "PMUFILTER/1 APPLY", "an idle one that attaches is served: %r" % apply)
        for p in idle + [extra]:
            p.close()
        os.close(vm)
        os.close(kvm)


def test_fifo_at_state_yaml_does_not_hang_start_up():
    """Finding 3: a FIFO at state.yaml hung start-up in fopen(), silently,
    before the socket or the bus name existed.  Now it is refused as not a
    regular file, set aside, and the daemon comes up."""
    need_kvm(); need_root()
    with Daemon(config_text=config(), start=False) as d:
        os.makedirs(os.path.join(d.dir, "state"))
        fifo = os.path.join(d.dir, "state", "state.yaml")
        os.mkfifo(fifo)
        d.start()           # fails if the socket does not appear within 10 s
        line = d.wait_line(re.escape(fifo) + r": .*not a regular file")
        check("set aside" in line or "ignored" in line, "said what happened: " + line)
        check(d.alive(), "the daemon runs")


def test_file_name_cannot_forge_a_log_line():
    """Finding 4: the fd of a file named 'a\\npmufilterd: crit: FAKE LINE\\n'
    sent with ATTACH put a line of its own on stderr.  Now text that comes
    from outside is escaped: one message, one line."""
    need_kvm(); need_root()
    name = "/tmp/a\npmufilterd: crit: FAKE LINE\n"
    with open(name, "w"):
        pass
    try:
        with Daemon(config_text=config()) as d:
            fd = os.open(name, os.O_RDONLY)
            p = Peer(d.socket)
            p.send(attach_msg(fd), [fd])
            p.recv()
            d.wait_line(r"not a KVM VM fd")
            check(not any(l.startswith("pmufilterd: crit: FAKE LINE") for l in d.lines),
                  "a forged line on stderr:\n" + d.log())
            check(any("a\\npmufilterd: crit: FAKE LINE\\n" in l for l in d.lines), "the name, escaped:\n" + d.log())
            os.close(fd)
            p.close()
    finally:
        os.unlink(name)


def test_empty_policy_is_never_a_policy_and_loosening_is_said():
    """Finding 5: reloading a zero-byte or comment-only policy was accepted
    and reset every setting (unmanaged: kill became warn).  Now an empty
    file is an error at 1:1 and the running policy stays; a reload that
    does loosen it (kill to warn) is applied and said in the journal."""
    need_kvm(); need_root()
    text = config(unmanaged="kill")
    with Daemon(config_text=text) as d:
        d.wait_line(r"pmufilterd .* running")
        for empty in ("", "# nothing but a comment\n"):
            d.write_config(empty)
            d.reload()
            d.wait_line(re.escape(d.config) + r":1:1: the policy file is empty")
            d.wait_line(r"Reload failed, keeping the current policy")
            with d.lock:
                d.lines.clear()
        d.write_config(text.replace("unmanaged: kill", "unmanaged: warn"))
        d.reload()
        d.wait_line(r"The reloaded policy loosens the one before: settings.unmanaged goes from kill to warn")


def test_truncated_state_file_is_set_aside_not_read_as_empty():
    """Finding 5: a state.yaml truncated to a comment loaded as 'no changes',
    and the persistent overrides were gone without a word.  Now it is set
    aside as corrupt, with an error that says so."""
    need_kvm(); need_root()
    with Daemon(config_text=config(), start=False) as d:
        os.makedirs(os.path.join(d.dir, "state"))
        path = os.path.join(d.dir, "state", "state.yaml")
        with open(path, "w") as f:
            f.write("# Written by pmufilterd: changes made over D-Bus. Do not edit while it runs.\n")
        d.start()
        d.wait_line(re.escape(path) + r": .*no 'version': not a whole state file.*set aside as " +
                    re.escape(path) + r"\.corrupt")


def test_unreadable_record_is_set_aside_and_the_vm_kept():
    """A record that cannot be read drops its VM alone: the records log is
    copied aside as records.corrupt with an error that says where it went
    and what was lost; the VM is found again by the /proc scan and its VMM
    attaches again."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "garbled", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach")
            vm_id, _ = wait_record(d)
            garbage = entry(vm_id, b"PID=1\x00\xff\xfegarbage without an equals sign\n")

            def garble():
                with open(log_path(d), "ab") as f:
                    f.write(garbage)
            kill_and_start(d, garble)
            d.wait_line(r"The record of VM %s is unreadable .*set aside as %s\.corrupt" % (vm_id, re.escape(log_path(d))))
            with open(log_path(d) + ".corrupt", "rb") as f:
                check(f.read().endswith(garbage), "kept for a post-mortem")
            d.wait_line(r"Scanned /proc: .* 1 VMs newly found|VM %s detected" % vm_id)
            check(d.alive(), "the daemon runs")
        finally:
            held.stop()


def test_records_log_cut_short_or_broken():
    """The records log, framed by lengths: a last entry cut short (a daemon
    killed in its write) is ignored with a warning, the VMs before it
    restored; any other framing error keeps the entries before it, sets the
    log aside as records.corrupt and says what was lost, and the VMs after
    it are found by the /proc scan.  Nothing hangs, nothing crashes."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--count", "2", "--name", "framed", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach", 2)
            deadline = time.time() + 5
            while len(read_records(d)) < 2 and time.time() < deadline:
                time.sleep(0.05)
            recs = sorted(read_records(d).items())
            check(len(recs) == 2, "two records: %r" % recs)
            (a, body_a), (b, body_b) = recs

            def torn():
                with open(log_path(d), "wb") as f:
                    f.write(entry(a, body_a) + entry(b, body_b)[:-5])
            kill_and_start(d, torn)
            d.wait_line(re.escape(log_path(d)) + r": its last entry .* was cut short.*ignored")
            d.wait_line(r"Restored 1 of 1 VM records")
            d.wait_line(r"VM %s detected" % b)
            check(not os.path.exists(log_path(d) + ".corrupt"), "a torn tail is no corruption")

            for bad in (b"R %s 99999999\n" % a.encode(), b"X garbage\n", b"R 0%s 3\nabc" % a.encode(),
                        b"R %s -3\n" % a.encode()):
                def broken():
                    with open(log_path(d), "wb") as f:
                        f.write(entry(a, body_a) + bad + entry(b, body_b))
                kill_and_start(d, broken)
                # What came after the fault may have replaced a record before
                # it: none is believed, both VMs are found again by the scan.
                d.wait_line(re.escape(log_path(d)) + r": not an entry at byte %d of .*set aside as %s\.corrupt; "
                            r"nothing is restored from it" % (len(entry(a, body_a)), re.escape(log_path(d))))
                with open(log_path(d) + ".corrupt", "rb") as f:
                    check(bad in f.read(), "set aside whole")
                d.wait_line(r"VM %s detected" % a)
                d.wait_line(r"VM %s detected" % b)
                check(not [l for l in list(d.lines) if re.search(r"Restored [1-9]\d* of", l)],
                      "nothing restored from a broken log")
                check(d.alive(), "the daemon runs")
            # And the log written again holds both, well framed.
            deadline = time.time() + 10
            while len(read_records(d)) < 2 and time.time() < deadline:
                time.sleep(0.1)
            with open(log_path(d), "rb") as f:
                live, _, why = parse_records_log(f.read())
            check(sorted(live) == [a, b] and why is None, "the log is whole again: %r %r" % (sorted(live), why))
        finally:
            held.stop()


def test_records_log_not_a_regular_file():
    """A FIFO, a symlink (to /etc/passwd) or a directory in place of the
    records log: a clear error, set aside, nothing hangs, and every VM found
    by the /proc scan; the log is written again as a file."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "notafile", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach")
            vm_id, _ = wait_record(d)
            for kind, make in (("FIFO", lambda p: os.mkfifo(p, 0o600)),
                               ("symlink", lambda p: os.symlink("/etc/passwd", p)),
                               ("directory", lambda p: os.mkdir(p))):
                def replace():
                    os.unlink(log_path(d))
                    aside = log_path(d) + ".corrupt"
                    if os.path.isdir(aside) and not os.path.islink(aside):
                        os.rmdir(aside)
                    elif os.path.lexists(aside):
                        os.unlink(aside)
                    make(log_path(d))
                kill_and_start(d, replace)
                d.wait_line(re.escape(log_path(d)) + r" cannot be read \(.*\): set aside as " +
                            re.escape(log_path(d)) + r"\.corrupt", timeout=10)
                d.wait_line(r"VM %s detected" % vm_id)
                check(d.alive(), "the daemon runs (%s)" % kind)
                with open("/etc/passwd") as f:
                    check(not f.read().startswith("R "), "nothing written through the symlink")
                deadline = time.time() + 10
                while vm_id not in read_records(d) and time.time() < deadline:
                    time.sleep(0.1)
                check(os.path.isfile(log_path(d)) and not os.path.islink(log_path(d)) and vm_id in read_records(d),
                      "the log is a file again, with the VM (%s)" % kind)
        finally:
            held.stop()


def test_records_log_removed_under_the_daemon_is_written_again():
    """The records log removed while the daemon runs (someone cleaning
    /run) is written again whole at the next change, with every VM, rather
    than appended to a file no later start reads."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        first = Held(d, "--name", "first", "--label", "kind=steady")
        second = None
        try:
            first.wait(lambda l: l["event"] == "attach")
            vm_id, _ = wait_record(d)
            os.unlink(log_path(d))
            second = Held(d, "--name", "second", "--label", "kind=steady")
            second.wait(lambda l: l["event"] == "attach")
            d.wait_line(re.escape(log_path(d)) + r" was removed while pmufilterd ran: written again whole")
            deadline = time.time() + 10
            while len(read_records(d)) < 2 and time.time() < deadline:
                time.sleep(0.1)
            recs = read_records(d)
            check(vm_id in recs and len(recs) == 2, "the log holds both VMs again: %s" % sorted(recs))
        finally:
            first.stop()
            if second:
                second.stop()


def test_records_of_the_previous_version_are_read_once():
    """Upgrade under a running VM: the previous version kept a file per VM
    under <runtime dir>/vms/.  They are read (the log's entries win), then
    removed with their directory; the VM keeps its record."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "upgraded", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach")
            vm_id, body = wait_record(d)
            vms = os.path.join(d.dir, "run", "vms")

            def downgrade():
                os.unlink(log_path(d))
                os.mkdir(vms)
                with open(os.path.join(vms, vm_id), "w") as f:
                    f.write(body)
                with open(os.path.join(vms, "1-1"), "w") as f:      # a VM gone meanwhile
                    f.write(body)
            kill_and_start(d, downgrade)
            d.wait_line(r"Restored 1 of 2 VM records")
            check(not os.path.exists(vms), "the old directory is gone")
            check(sorted(read_records(d)) == [vm_id], "the log holds the VM: %r" % read_records(d))
            check(d.alive(), "the daemon runs")
        finally:
            held.stop()


def test_a_start_that_died_restoring_is_not_fed_the_same_records():
    """The start-up guard: the marker of a restore under way, left by a start
    that died in it, makes the next start restore nothing from the records
    (kept aside) while the /proc scan still finds every VM."""
    need_kvm(); need_root()
    with Daemon(config_text=config()) as d:
        held = Held(d, "--name", "guarded", "--label", "kind=steady")
        try:
            held.wait(lambda l: l["event"] == "attach")
            vm_id, _ = wait_record(d)

            def marker():
                with open(os.path.join(d.dir, "run", "restoring"), "w") as f:
                    f.write("PID=1\n")
            kill_and_start(d, marker)
            d.wait_line(r"died while restoring its VM records .*restoring none this time, they are kept in " +
                        re.escape(log_path(d) + ".unrestored"))
            d.wait_line(r"VM %s detected" % vm_id)
            check(not os.path.exists(os.path.join(d.dir, "run", "restoring")), "the marker is gone")
            with open(log_path(d) + ".unrestored", "rb") as f:
                check(vm_id in parse_records_log(f.read())[0], "the records are kept aside")
        finally:
            held.stop()


if __name__ == "__main__":
    harness.main(globals())
