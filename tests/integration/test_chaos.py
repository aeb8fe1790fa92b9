#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Chaos: 200 attached VMs, held by four test-VMM processes with names and
labels that give them four profiles by the rules (and a few overrides in
state.yaml), while the daemon's files are corrupted, its fd table filled,
and the daemon is killed with SIGKILL and stopped with SIGTERM in turn.

Each round does one of: corrupt the records log at 1 to 3 VMs' entries
(cut short inside one, garbage in place of a record or of an entry, a
second EVENTS= line in an entry with its length corrected; or a FIFO, a
symlink to /etc/passwd in place of the log), corrupt state.yaml
(truncated to a comment, garbage, a FIFO), or fill the daemon's fd table
(prlimit to its count plus a few, idle connections, the limit back); then
stops the daemon and starts it again on the same dirs.  After each start it
waits until every held VM is listed over D-Bus (ListVMs, on a private bus)
filtered with the profile its rules or its override give it, and its record
says so, before the next round.  The daemon may exit only by the signals
sent to it, and its sanitizers (in an ASan build) must stay silent.

The rounds are drawn from a random seed, printed; PMUFILTER_CHAOS_SEED
replays one (PMUFILTER_CHAOS_ROUNDS changes how many rounds).  RESULT lines
give the figures."""

import hashlib
import json
import os
import random
import re
import signal
import stat
import subprocess
import time
import traceback

import harness
from busharness import NAME, SystemBus, need_bus_tools
from faultharness import result
from harness import (Daemon, Failure, Peer, check, need, need_kvm, need_root, parse_records_log, records_log_entries,
                     records_log_entry)
from test_vmm import Held, vmm

MGR_PATH = "/org/pmufilterd1"
MGR = "org.pmufilterd1.Manager"

POLICY = """\
version: 1
settings:
  attach_timeout_ms: 5000
  unmanaged: warn
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ 0x00c0, 0x00c4 ]
  steady:
    tier: tenant
    events: [ 0x00c0 ]
  by-exe:
    tier: tenant
    events: [ 0x00c0, 0x00c2 ]
  named:
    tier: tenant
    events: [ 0x00c0, 0x00c5 ]
  pinned:
    tier: tenant
    events: [ 0x00c0, 0x00c2, 0x00c4, 0x00c5 ]
rules:
  - match: { label.kind: steady }
    profile: steady
  - match: { exe: "*/test-vmm", label.kind: exe }
    profile: by-exe
  - match: { name: "chaos3-*" }
    profile: named
"""

# (name prefix, labels, the profile the rules give); PER VMs each.
GROUPS = [
    ("chaos0", ["kind=steady"], "steady"),
    ("chaos1", ["kind=exe"], "by-exe"),
    ("chaos2", ["kind=none"], "minimal"),
    ("chaos3", [], "named"),
]
PER = 50
# Persistent overrides, by claimed name (the test runs as root: uid 0);
# `pinned` is no rule's, so a lost override shows.
OVERRIDES = {"chaos0-13": "pinned", "chaos2-7": "pinned", "chaos3-21": "minimal", "chaos1-40": "pinned"}

RECORD_KINDS = ["record:truncate", "record:garbage", "record:events2", "record:fifo", "record:symlink"]
STATE_KINDS = ["state:comment", "state:garbage", "state:fifo"]
ACTIONS = RECORD_KINDS + STATE_KINDS + ["fds"]

SETTLE = 90         # seconds for every VM to be filtered again after a start (a loaded 2-core machine)


def state_text(uid):
    return "version: 2\nvms:\n" + "".join('  "uid:%d/name:%s": %s\n' % (uid, n, p) for n, p in OVERRIDES.items())


class Chaos:
    def __init__(self, bus, d, rng, seed):
        self.bus, self.d, self.rng, self.seed = bus, d, rng, seed
        self.want = {}          # vm id -> profile expected now
        self.name_of = {}       # vm id -> claimed name
        self.rules = {}         # vm id -> the profile of the rules alone
        self.mark = 0           # index in d.lines where the running daemon's log starts
        self.state = os.path.join(d.dir, "state", "state.yaml")
        self.log = os.path.join(d.dir, "run", "records")

    # -- the daemon's log since its last start --------------------------

    def lines(self):
        with self.d.lock:
            return self.d.lines[self.mark:]

    def wait_line(self, pattern, timeout=30):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            for line in self.lines():
                if rx.search(line):
                    return line
            check(self.d.alive(), "pmufilterd exited (status %r) while waiting for %r:\n%s" %
                  (self.d.proc.returncode, pattern, self.d.log()))
            check(time.time() < deadline, "no log line matching %r within %ss:\n%s" % (pattern, timeout, self.d.log()))
            with self.d.lock:
                self.d.lock.wait(0.1)

    # -- stop and start ----------------------------------------------------

    def stop(self, sig):
        d = self.d
        check(d.alive(), "pmufilterd was running before %s: it exited with %r:\n%s" %
              (signal.Signals(sig).name, d.proc.returncode, d.log()))
        d.proc.send_signal(sig)
        try:
            rc = d.proc.wait(30)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
            raise Failure("pmufilterd did not exit within 30 s of %s:\n%s" % (signal.Signals(sig).name, d.log()))
        d.reader.join(10)       # its last words, a sanitizer's report too
        want = -signal.SIGKILL if sig == signal.SIGKILL else 0
        check(rc == want, "pmufilterd exited with %r on %s, expected %r:\n%s" %
              (rc, signal.Signals(sig).name, want, d.log()))
        check(not d.sanitizer, "pmufilterd: the sanitizer reported:\n" + "\n".join(d.sanitizer))

    def start(self):
        d = self.d
        if os.path.lexists(d.socket):       # a killed daemon leaves it; start() waits for a new one
            os.unlink(d.socket)
        with d.lock:
            self.mark = len(d.lines)
        d.start()
        self.wait_line(r"pmufilterd \S+ running: ", timeout=60)

    # -- what the daemon says over D-Bus and in its records -----------------

    def list_vms(self):
        r = self.bus.busctl("--json=short", "call", NAME, MGR_PATH, MGR, "ListVMs", timeout=30)
        if r.returncode != 0:
            return None, r.stderr.strip()
        return {v[0]: v for v in json.loads(r.stdout)["data"][0]}, ""

    def wrong(self, vms):
        out = []
        for i, p in self.want.items():
            v = vms.get(i)
            if v is None or v[3] not in ("filtered", "adopted") or v[2] != p:
                out.append((i, self.name_of[i], p, v and v[2], v and v[3]))
        return out

    def wait_filtered(self, timeout=SETTLE):
        """Every held VM listed, filtered, with its expected profile."""
        deadline = time.time() + timeout
        while True:
            check(self.d.alive(), "pmufilterd exited (status %r):\n%s" % (self.d.proc.returncode, self.d.log()))
            vms, err = self.list_vms()
            bad = self.wrong(vms) if vms is not None else None
            if bad == []:
                return vms
            if time.time() > deadline:
                if vms is None:
                    raise Failure("ListVMs failed for %ss: %s\n%s" % (timeout, err, self.d.log()))
                missing = [b for b in bad if b[3] is None]
                raise Failure("%d of %d held VMs not filtered with their profile within %ss (%d not listed at "
                              "all), e.g. (id, name, expected, profile, state) %r\n%s" %
                              (len(bad), len(self.want), timeout, len(missing), bad[:8], self.d.log()))
            time.sleep(0.3)

    def read_log(self):
        """The records log's bytes; None unless it is a regular file (a FIFO
        the daemon left in place must not hang the test)."""
        try:
            fd = os.open(self.log, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def read_records(self):
        """{vm id: {KEY: value}} of the records log, as a start reads it."""
        data = self.read_log()
        live = parse_records_log(data)[0] if data is not None else {}
        return {i: dict(l.split("=", 1) for l in text.splitlines() if "=" in l) for i, text in live.items()}

    def wait_records(self, timeout=30):
        """Every held VM's record written, filtered with its profile: what the
        next start restores from (records are written at idle priority)."""
        deadline = time.time() + timeout
        while True:
            bad = []
            recs = self.read_records()
            for i, p in self.want.items():
                rec = recs.get(i)
                if not rec or rec.get("STATE") != "filtered" or rec.get("PROFILE") != p:
                    bad.append((i, p, rec and rec.get("STATE"), rec and rec.get("PROFILE")))
            if not bad:
                return
            check(self.d.alive(), "pmufilterd exited (status %r):\n%s" % (self.d.proc.returncode, self.d.log()))
            check(time.time() < deadline, "%d records not written filtered with their profile within %ss, e.g. "
                  "(id, expected, STATE, PROFILE) %r" % (len(bad), timeout, bad[:5]))
            time.sleep(0.3)

    # -- the faults ----------------------------------------------------------

    def corrupt_records(self, kind):
        rng = self.rng
        data = self.read_log()
        check(data is not None, "the records log is a file: %s" % self.log)
        last = {e[0]: e for e in records_log_entries(data)[0]}
        ids = sorted(i for i in self.want if i in last and last[i][3] is not None)
        victims = rng.sample(ids, rng.randint(1, 3))
        if kind == "record:truncate":
            # Inside the first victim's entry: the rest of the log goes too
            # (a torn tail to the reader, as a write that died half way).
            _, start, end, _ = min((last[i] for i in victims), key=lambda e: e[1])
            with open(self.log, "r+b") as f:
                f.truncate(rng.randint(start + 1, end - 1))
        elif kind == "record:garbage":
            with open(self.log, "ab") as f:
                for i in victims:
                    junk = rng.randbytes(rng.randint(1, 4096))
                    # garbage in place of the record, or of the whole entry
                    f.write(records_log_entry(i, junk) if rng.random() < 0.5 else junk)
        elif kind == "record:events2":
            with open(self.log, "ab") as f:
                for i in victims:
                    n = rng.randint(1, 3000)
                    f.write(records_log_entry(i, last[i][3] + ("EVENTS=" + ",".join(
                        "0x%x" % rng.randint(1, 0xffff) for _ in range(n)) + "\n").encode()))
        elif kind == "record:fifo":
            os.unlink(self.log)
            os.mkfifo(self.log, 0o600)
        elif kind == "record:symlink":
            os.unlink(self.log)
            os.symlink("/etc/passwd", self.log)
        return victims

    def corrupt_state(self, kind):
        rng = self.rng
        path = self.state
        first = "# Written by pmufilterd: changes made over D-Bus. Do not edit while it runs.\n"
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                head = f.readline()
            if head.startswith("#"):
                first = head
        if os.path.lexists(path):
            os.unlink(path)
        if kind == "state:comment":
            with open(path, "w") as f:
                f.write(first)
        elif kind == "state:garbage":
            with open(path, "wb") as f:
                f.write(rng.choice([rng.randbytes(rng.randint(1, 2048)),
                                    b"version: 2\nvms: [ this is not a mapping\n",
                                    b"version: 2\nvms:\n  \"uid:0/name:chaos2-7\": [\xff\xfe\n"]))
        elif kind == "state:fifo":
            os.mkfifo(path, 0o600)

    def fd_pressure(self):
        """Fill the daemon's fd table for a moment: its soft limit down to
        what it holds and a few more, idle connections to the VMM socket,
        then the limit back.  (The hard limit stays: raising it again would
        take CAP_SYS_RESOURCE, which a container may not grant.)"""
        d, rng = self.d, self.rng
        pid = d.proc.pid
        with open("/proc/%d/limits" % pid) as f:
            m = re.search(r"^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)", f.read(), re.M)
        soft, hard = m.group(1), m.group(2)
        held = len(os.listdir("/proc/%d/fd" % pid))
        limit = held + rng.randint(1, 6)
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%s" % (limit, hard)], check=True)
        peers = []
        try:
            for _ in range(rng.randint(10, 40)):
                p = Peer(d.socket)
                peers.append(p)
            self.wait_line(r"Cannot accept VMM connections", timeout=30)
            # Out of fds, the daemon still serves what it holds: its bus answers.
            vms, err = self.list_vms()
            check(vms is not None, "ListVMs while out of fds: %s" % err)
            bad = self.wrong(vms)
            check(not bad, "while out of fds, %d VMs are not filtered as before: %r" % (len(bad), bad[:5]))
        finally:
            subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%s:%s" % (soft, hard)], check=True)
        self.wait_line(r"Accepting VMM connections again", timeout=30)
        for p in peers:
            p.close()
        return held, limit, len(peers)

    # -- overrides -------------------------------------------------------------

    def override_ids(self):
        return {i: OVERRIDES[n] for i, n in self.name_of.items() if n in OVERRIDES}

    def set_overrides_over_bus(self):
        """The overrides set aside with a corrupt state.yaml, set again."""
        for i, p in self.override_ids().items():
            r = self.bus.busctl("call", NAME, MGR_PATH, MGR, "SetVMProfile", "ssb", i, p, "false", timeout=60)
            check(r.returncode == 0, "SetVMProfile %s %s: %s\n%s" % (i, p, r.stderr.strip(), self.d.log()))
            self.want[i] = p
        with open(self.state) as f:
            text = f.read()
        for n, p in OVERRIDES.items():
            check('"uid:%d/name:%s": "%s"' % (os.getuid(), n, p) in text, "state.yaml written again: " + text)


def passwd_digest():
    with open("/etc/passwd", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_chaos_200_vms_corrupt_files_fd_pressure_kill_9():
    need_kvm(); need_root(); need(harness.VMM, "the test VMM"); need_bus_tools()
    if not subprocess.run(["sh", "-c", "command -v prlimit"], capture_output=True).returncode == 0:
        raise harness.Skip("prlimit (util-linux) is not installed")
    env_seed = os.environ.get("PMUFILTER_CHAOS_SEED", "")
    seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1, 2 ** 32)
    rounds = int(os.environ.get("PMUFILTER_CHAOS_ROUNDS", "9"))
    print("chaos seed %d (PMUFILTER_CHAOS_SEED=%d replays it), %d rounds" % (seed, seed, rounds), flush=True)
    rng = random.Random(seed)
    passwd = passwd_digest()
    uid = os.getuid()
    t_start = time.time()

    with SystemBus() as bus, Daemon(config_text=POLICY, bus=bus.address, start=False) as d:
        c = Chaos(bus, d, rng, seed)
        os.makedirs(os.path.dirname(c.state), exist_ok=True)
        with open(c.state, "w") as f:
            f.write(state_text(uid))
        c.start()
        held = []
        log = []            # one line per round, for the failure message
        rnd, action = 0, "setting up"
        try:
            for name, labels, _ in GROUPS:
                args = ["--count", str(PER), "--name", name, "--timeout-ms", "30000"]
                for label in labels:
                    args += ["--label", label]
                held.append(Held(d, *args))
            for h, (name, _, profile) in zip(held, GROUPS):
                lines = h.wait(lambda l: l["event"] == "attach", PER, timeout=120)
                bad = [l for l in lines if l["errno"] != 0]
                check(not bad, "every VM of %s attached: %r" % (name, bad[:3]))
                for l in lines:
                    c.name_of[l["vm_id"]] = l["name"]
                    c.rules[l["vm_id"]] = profile
                    c.want[l["vm_id"]] = OVERRIDES.get(l["name"], profile)
                wrong = [l for l in lines if l["profile"] != c.want[l["vm_id"]]]
                check(not wrong, "each VM of %s attached with its profile: %r" % (name, wrong[:3]))
            n_vms = len(c.want)
            check(n_vms == PER * len(GROUPS), "%d distinct VMs, got %d" % (PER * len(GROUPS), n_vms))
            check(len(c.override_ids()) == len(OVERRIDES), "the overridden VMs are held: %r" % c.override_ids())
            c.wait_filtered()
            c.wait_records()
            t_setup = time.time() - t_start

            deck = []
            kills = terms = 0
            settle_times = []
            corrupt_seen = 0
            for rnd in range(1, rounds + 1):
                if not deck:
                    deck = list(ACTIONS)
                    rng.shuffle(deck)
                action = deck.pop()
                sig = signal.SIGKILL if rnd % 2 else signal.SIGTERM
                while_running = action == "fds" or rng.random() < 0.5
                what = ""

                def fault():
                    if action == "fds":
                        held_fds, limit, n = c.fd_pressure()
                        return "fd table full (%d fds held, limit %d, %d idle connections), limit restored" % (
                            held_fds, limit, n)
                    if action.startswith("record:"):
                        return "records of %s" % ", ".join(c.corrupt_records(action))
                    c.corrupt_state(action)
                    return "state.yaml"

                if while_running:
                    what = fault()
                c.stop(sig)
                if sig == signal.SIGKILL:
                    kills += 1
                else:
                    terms += 1
                if not while_running:
                    what = fault()
                t1 = time.time()
                c.start()
                t_up = time.time() - t1
                # (no records left to restore: only what happened to the log is said)
                restored_rx = (r"Restored \d+ of \d+ VM records|restoring none this time|records cannot be read|"
                               r"records: .*(cut short|not an entry)")
                restored = c.wait_line(restored_rx, timeout=30)
                restored = re.search(restored_rx, restored).group(0)
                if action.startswith("state:"):
                    c.wait_line(re.escape(c.state) + r": .*(set aside as .*\.corrupt|ignored)")
                    # Without the file the overrides are gone: the rules decide.
                    for i in c.override_ids():
                        c.want[i] = c.rules[i]
                c.wait_filtered()
                t_settled = time.time() - t1
                settle_times.append(t_settled)
                if action.startswith("state:"):
                    c.set_overrides_over_bus()
                    c.wait_filtered()
                c.wait_records()
                said = [l for l in c.lines() if re.search(r"unreadable|set aside|cut short|Dropping the record", l)]
                corrupt_seen += len(said)
                entry = ("round %d: %s (%s, %s), %s: up %.2f s later, all %d VMs filtered %.2f s after the "
                         "start; %s; %d lines on bad files" %
                         (rnd, action, what, "while running" if while_running else "while stopped",
                          signal.Signals(sig).name, t_up, n_vms, t_settled, restored,
                          len(said)))
                log.append(entry)
                print(entry, flush=True)
                for line in said:
                    print("    " + line, flush=True)

            # A new VMM still attaches at the end.
            rnd, action = rounds + 1, "the final checks"
            fresh = vmm(d, "--name", "chaos-final", "--label", "kind=steady", "--timeout-ms", "30000")
            check(len(fresh) == 1 and fresh[0]["errno"] == 0 and fresh[0]["profile"] == "steady",
                  "a new VMM attaches at the end: %r" % fresh)
            vms = c.wait_filtered()
            for h in held:
                check(h.p.poll() is None, "test-vmm %d kept running (exit %r)" % (h.p.pid, h.p.poll()))
            # The VMMs' side: the last filter each VM applied is its profile's.
            by_name = {n: c.want[i] for i, n in c.name_of.items()}
            deadline = time.time() + 30
            while True:
                last = {}
                for h in held:
                    with h.cv:
                        for l in h.lines:
                            if l["event"] in ("attach", "apply"):
                                last[l["name"]] = (l["profile"], l["errno"])
                off = [(n, p, last.get(n)) for n, p in by_name.items() if last.get(n) != (p, 0)]
                if not off:
                    break
                check(time.time() < deadline, "%d VMs' VMMs last applied another profile or failed: %r" %
                      (len(off), off[:5]))
                time.sleep(0.3)
            check(passwd_digest() == passwd, "/etc/passwd changed")
            # No held VM was ever taken for gone; say how many were briefly
            # unmanaged (found by the scan before their VMM came back) or failed.
            pids = {h.p.pid for h in held}
            gone = [r for r in d.records("gone") if r.pid in pids]
            check(not gone, "held VMs were reported gone: %r" % gone[:5])
            unmanaged = len([r for r in d.records("unmanaged") if r.pid in pids])
            failed = len([r for r in d.records("failed") if r.pid in pids])
            elapsed = time.time() - t_start
            result("chaos seed %d: %d rounds (%d SIGKILL, %d SIGTERM: %d restarts) on %d VMs held by %d VMMs "
                   "(%d overridden in state.yaml); every VM filtered with its profile after each start "
                   "(%.2f s max, %.2f s mean); %d log lines on bad files; 0 lost, 0 gone, %d listed at the end "
                   "(%d unmanaged and %d failed records on the way); a new VMM attached; set-up %.1f s, "
                   "%.1f s in all" %
                   (seed, rounds, kills, terms, kills + terms, n_vms, len(held), len(OVERRIDES),
                    max(settle_times), sum(settle_times) / len(settle_times), corrupt_seen,
                    len([i for i in c.want if i in vms]), unmanaged, failed, t_setup, elapsed))
            c.stop(signal.SIGTERM)
        except harness.Skip:
            raise
        except Exception as e:
            what = str(e) if isinstance(e, Failure) else traceback.format_exc()
            raise Failure("chaos seed %d (PMUFILTER_CHAOS_SEED=%d), round %d (%s): %s\nrounds so far:\n%s" %
                          (seed, seed, rnd, action, what, "\n".join(log)))
        finally:
            for h in held:
                if h.p.poll() is None:
                    h.stop()


if __name__ == "__main__":
    harness.main(globals())
