#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench.py — pmufilterd's benchmarks (issues 7 and 16, docs/benchmarks.md).

Runs the built daemon on a private bus against real /dev/kvm and prints one
table: every figure beside the baseline measured in the same run, the ratio
(p50 and p99) and the target.  The floor of an attach is not ours: the
minimal client of min-client.h against echo-peer; the daemon's CPU per VM
life is broken down by step (perf) beside the bare system calls each step
needs (bench-syscalls), unless --quick or --no-breakdown.  The C programs of tests/bench take every
timestamp (CLOCK_MONOTONIC ns); this script only starts them, joins their
lines and counts.  Every process it starts is killed on the way out, also
on failure or SIGTERM (meson's timeout).

  bench.py --build BUILD [--quick] [--json FILE] [--markdown FILE] [--strict]
           [--profile DIR] [--no-breakdown | --breakdown]

Exit 0 when the run completed (a missed target is a MISS in the table, and
fails the run only with --strict), 1 on an error or a missed VM, 77 when
the machine cannot run it (no /dev/kvm, not root, no dbus-daemon).
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(SRC, "tests/integration"))

import benchrun  # noqa: E402
from benchrun import Proc, Skip, pct, ratio  # noqa: E402

# The libc entry points of the system calls the daemon's attach makes, as
# perf names a sample's leaf (leading underscores and __GI_ dropped).
SYSCALL_LEAVES = {"accept4", "getsockopt", "epoll_ctl", "syscall", "GI___readlink", "readlink", "readlinkat",
                  "recvmmsg", "close", "libc_sendmsg", "send", "GI___libc_write", "libc_open64", "GI___libc_open",
                  "fcntl64", "libc_fcntl64", "read", "GI___libc_read"}

# Entries in each state file of the overrides phase.
OVERRIDES = 10000


def seed_state(path, n, prefix):
    """A state file of n per-VM entries, as pmufilterd writes it, for VMs
    that are not running: half keyed on a claimed name, half on a claimed
    UUID, of two uids."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("version: 2\nvms:\n")
        for i in range(n):
            key = ("uid:%d/name:%s-%05d" % (i % 2 * 107, prefix, i) if i % 2 == 0 else
                   "uid:%d/uuid:%08x-0000-4000-8000-%012x" % (i % 2 * 107, i, i))
            f.write('  "%s": "bench-2"\n' % key)


def config_text():
    # 300 distinct raw events (select 0x10.., umask 0/1): the kernel's maximum.
    events = ", ".join("0x%04x" % (((i // 200) << 8) | (0x10 + i % 200)) for i in range(300))
    return """version: 1
settings:
  attach_timeout_ms: 600000     # the bench's unattached VMs must not turn unmanaged mid-run
  default_profile: bench-2
profiles:
  bench-2:
    tier: tenant
    events: [ 0x00c0, 0x0076 ]
  bench-2b:
    tier: tenant
    events: [ 0x00c0, 0x00c2 ]
  bench-300:
    tier: tenant
    events: [ %s ]
rules:
  - match: { label.bench: "300" }
    profile: bench-300
""" % events


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.build = opts.build
        self.dir = tempfile.mkdtemp(prefix="pmufilterd-bench.")
        # /run is a tmpfs in production: the daemon's per-VM records go there.
        self.rundir = tempfile.mkdtemp(prefix="pmufilterd-bench.", dir="/dev/shm")
        self.config = os.path.join(self.dir, "bench.yaml")
        with open(self.config, "w") as f:
            f.write(config_text())
        self.results = {"rows": [], "notes": []}
        self.procs = benchrun.Registry()
        self.daemons = []

    def prog(self, name):
        return os.path.join(self.build, "tests/bench", name)

    # --- pieces ---------------------------------------------------------

    def capture_apply(self, sock, label):
        """The APPLY pmufilterd sends for a VM with this label: the echo
        peer answers with exactly these bytes."""
        from harness import Peer, attach_msg, kvm_create_vm
        from busharness import apply_filter
        kvm, vm = kvm_create_vm()
        try:
            p = Peer(sock)
            kw = {"name": "bench-capture"}
            if label:
                kw["label_bench"] = label
            p.send(attach_msg(vm, **kw), [vm])
            data = p.s.recv(65536)
            msg = dict(line.split("=", 1) for line in data.decode().split("\n")[1:] if "=" in line)
            err = apply_filter(vm, msg)
            p.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=%d\n" % (msg["SERIAL"], err))
            time.sleep(0.05)
            p.close()
        finally:
            os.close(vm)
            os.close(kvm)
        return msg, len(data)

    def rtt(self, size, count):
        out = subprocess.run([self.prog("bench-vmm"), "rtt", "--count", str(count), "--size", str(size)],
                             capture_output=True, text=True, check=True, timeout=120).stdout
        return [int(line.split()[1]) for line in out.splitlines() if line.startswith("rtt ")]

    def attach_samples(self, series, label, count, own=0, own_socket=None):
        """Samples taken in turn by one bench-vmm, one series per (client
        kind, peer): per series (latency until APPLIED sent, until the
        peer's record of it, the minimal client's steps: connect, answer,
        ioctl, applied).  own: VMs of bench-vmm's own kept attached to
        own_socket meanwhile."""
        argv = [self.prog("bench-vmm"), "attach", "--count", str(count), "--gap-us", "2000"]
        if self.o.settle_us:
            argv += ["--settle-us", str(self.o.settle_us)]
        for kind, peer in series:
            argv += ["--series", "%s:%s" % (kind, peer.socket)]
        if label:
            argv += ["--label", "bench=" + label]
        if own:
            argv += ["--own", str(own), "--own-socket", own_socket]
        mark = time.monotonic_ns()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise benchrun.Failure("bench-vmm attach failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
        time.sleep(0.3)
        recs = {}
        for _, peer in series:
            if id(peer) not in recs:
                recs[id(peer)] = (peer.records_since(mark, r"filter of profile .* applied", r"VM (\d+-\d+) ")
                                  if isinstance(peer, benchrun.Daemon) else
                                  peer.records_since(mark, r"^applied ", r"^applied (\d+-\d+)"))
        sent = [[] for _ in series]
        acked = [[] for _ in series]
        steps = [{"connect": [], "answer": [], "ioctl": [], "applied": []} for _ in series]
        whole = {}
        for line in out.stdout.splitlines():
            if line.startswith("steps "):     # the minimal client's steps, ns after t0 (after its attach line)
                _, idx, vmid, s_sent, s_received, s_applied = line.split()
                st = steps[int(idx)]
                st["connect"].append(int(s_sent))
                st["answer"].append(int(s_received) - int(s_sent))
                st["ioctl"].append(int(s_applied) - int(s_received))
                st["applied"].append(whole[(idx, vmid)] - int(s_applied))
                continue
            if not line.startswith("attach "):
                continue
            _, idx, vmid, t0, t1, rc = line.split()
            whole[(idx, vmid)] = int(t1) - int(t0)
            idx, t0, t1 = int(idx), int(t0), int(t1)
            sent[idx].append(t1 - t0)
            t = benchrun.first_after(recs[id(series[idx][1])].get(vmid, []), t0)
            if t is not None:
                acked[idx].append(t - t0)
        return sent, acked, steps

    def life_cpu(self, d, count, label=None, tries=3):
        """The daemon's CPU per VM life: count lives by bench-vmm (minimal
        client), the daemon's run time (schedstat) from before the first to
        when it has settled after the last (records are written up to 1 s
        late, at idle priority).  The daemon sees every VM of the host: a
        run during which others made more than 1% as many VMs is taken
        again (up to tries times; the last is kept, and says so)."""
        argv = [self.prog("bench-vmm"), "life", "--socket", d.socket, "--count", str(count), "--gap-us", "2000"]
        if label:
            argv += ["--label", "bench=" + label]
        for attempt in range(tries):
            listen = benchrun.Listener(self)
            try:
                mark = time.monotonic_ns()
                cpu0 = d.cpu_ns()
                ctxt0 = d.ctxt_switches(("voluntary_ctxt_switches",))
                t0 = time.monotonic()
                p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                out, err = p.communicate(timeout=900)
                if p.returncode != 0:
                    raise benchrun.Failure("bench-vmm life failed (%d): %s" % (p.returncode, err[-2000:]))
                wall = time.monotonic() - t0
                time.sleep(1.5)
                last = d.cpu_ns()
                while True:             # settled: no CPU for 0.5 s
                    time.sleep(0.5)
                    now = d.cpu_ns()
                    if now == last:
                        break
                    last = now
            finally:
                listen.stop()
            foreign = sum(len(v) for vmid, v in listen.creates_since(mark).items()
                          if not vmid.startswith("%d-" % p.pid))
            # each voluntary switch is a sleep in epoll_wait, ended by a wake-up
            self.life_wakes = (d.ctxt_switches(("voluntary_ctxt_switches",)) - ctxt0) / count
            self.life_foreign = foreign
            if foreign <= count // 100:
                break
            print("# %d VMs of other processes came and went during %d VM lives: again" % (foreign, count),
                  flush=True)
        return (last - cpu0) / count, wall

    # --- phases -----------------------------------------------------------

    def want(self, phase):
        """--phases: run only these (memory and the set-up always run)."""
        return not self.o.phases or phase in self.o.phases

    def profiled(self, d, phase):
        """perf record -g of the daemon while a phase runs (--profile)."""
        return benchrun.Profile(self.o.profile, d.pid, phase)

    def phase_attach(self, d, echoes, others, own=0):
        with self.profiled(d, "attach-%s" % others):
            self._phase_attach(d, echoes, others, own)

    def phase_attach_busy(self, d, echoes):
        """The attach with every CPU busy (a busy loop per CPU, as on a host
        whose tenants' vCPUs keep every CPU running), the daemon as
        pmufilterd.service runs it (SCHED_BATCH: it waits for a running
        task's slice to end instead of preempting it) and, for the price of
        that policy, switched to SCHED_OTHER for a second series and back.
        No target (docs/decisions.md, "The daemon yields the CPU to the
        VMM")."""
        busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 1)]
        try:
            time.sleep(0.3)
            for policy in ("batch", "other"):
                subprocess.run(["chrt", "-a", "--" + policy, "-p", "0", str(d.pid)], check=True,
                               stdout=subprocess.DEVNULL)
                sent, _, _ = self.attach_samples([("min", echoes[2]), ("min", d)], None, self.o.attach_samples // 3)
                self.row("attach, 2 entries, 0 other sessions, every CPU busy, the daemon as SCHED_%s: minimal "
                         "client → pmufilterd" % policy.upper(), sent[1], sent[0], None, unit="us",
                         how="a busy loop per CPU meanwhile; pmufilterd.service runs the daemon as SCHED_BATCH; "
                             "the echo peer is SCHED_OTHER")
        finally:
            subprocess.run(["chrt", "-a", "--batch", "-p", "0", str(d.pid)], stdout=subprocess.DEVNULL)
            for p in busy:
                p.kill()
                p.wait()

    def _phase_attach(self, d, echoes, others, own):
        n = self.o.attach_samples
        loaded = own > 0
        cond = "%s other sessions" % others
        if own:
            cond += " (%d of them the measuring VMM's own)" % own
        for label, entries in ((None, 2), ("300", 300)):
            series = [("min", echoes[entries]), ("min", d), ("lib", d), ("minchk", d)]
            sent, acked, steps = self.attach_samples(series, label, n, own, d.socket)
            target = ((1.5, 2.0) if entries == 2 else (1.2, 2.0)) if loaded else None
            self.row("attach, %d entries, %s: minimal client → pmufilterd" % (entries, cond),
                     sent[1], sent[0], target, unit="us",
                     how="ATTACH→APPLIED sent by the minimal client (min-client.h, no library), fresh VM per "
                         "sample; floor: the same client against echo-peer (a fixed APPLY, no work)")
            self.row("  of which the connect and ATTACH, %d entries, %s: socket() → ATTACH sent" % (entries, cond),
                     steps[1]["connect"], steps[0]["connect"], None, unit="us",
                     how="the minimal client's own clock: the peer accepts meanwhile")
            self.row("  and the peer's answer, %d entries, %s: ATTACH sent → APPLY received" % (entries, cond),
                     steps[1]["answer"], steps[0]["answer"], None, unit="us",
                     how="the minimal client's own clock: what the peer does before its APPLY (pmufilterd: "
                         "accept, the trust model's checks, the VM found, the decision), vs the echo peer's")
            self.row("  and the VMM's ioctl, %d entries, %s: APPLY received → KVM_SET_PMU_EVENT_FILTER done"
                     % (entries, cond), steps[1]["ioctl"], steps[0]["ioctl"], None, unit="us",
                     how="the same ioctl of the same events: longer where the peer keeps a CPU the VMM needs "
                         "after its APPLY")
            self.row("  and the APPLIED, %d entries, %s: ioctl done → APPLIED sent" % (entries, cond),
                     steps[1]["applied"], steps[0]["applied"], None, unit="us",
                     how="one send(); longer where the peer, woken by it, takes the CPU before the VMM's "
                         "send() returns")
            self.row("attach acknowledged (record written), %d entries, %s" % (entries, cond),
                     acked[1], acked[0], None, unit="us",
                     how="ATTACH→daemon's 'applied' record read from its stderr, vs the echo peer's line")
            self.row("libpmufilter-client's own cost, %d entries, %s: pmufilter_attach() vs the minimal client, "
                     "both → pmufilterd" % (entries, cond), sent[2], sent[1], (1.1, None), unit="us",
                     how="the library's attach against the same daemon, vs the minimal client's, samples in turn")
            self.row("  of which the contract's three calls, %d entries, %s: the minimal client with them vs "
                     "without, both → pmufilterd" % (entries, cond), sent[3], sent[1], None, unit="us",
                     how="min_attach_checked(): the peer-uid check and the two socket timeouts that "
                         "pmufilterd-vmm(7) has a client make, as the library makes them")
            self.row("  and the library's own, %d entries, %s: pmufilter_attach() vs the minimal client with "
                     "those calls" % (entries, cond), sent[2], sent[3], None, unit="us",
                     how="what is left of the library's cost: its codec, its session object, its checks of "
                         "the APPLY")

    def phase_life(self, d, others):
        """The daemon's own CPU per VM life, create uevent to destroy uevent."""
        n = self.o.life_samples
        with self.profiled(d, "life-%s" % others):
            per, wall = self.life_cpu(d, n)
        self.results["life_%s" % others] = {"cpu_ns": per, "lives": n, "wall_s": wall,
                                            "ctxt_switches": self.life_wakes, "foreign_vms": self.life_foreign}
        wakes = self.life_wakes
        self.row_value("the daemon's own CPU per VM life, %s other sessions (%d lives; records on %s)"
                       % (others, n, self.rundir_fs), per, 120e3, unit="us",
                       how="Δ /proc/<pid>/schedstat run time over %d lives by the minimal client (create, "
                           "attach, APPLY, APPLIED, session closed, VM closed) until the daemon is idle, / %d"
                           % (n, n) + "; the daemon slept and was woken %.1f times per life; VMs of other "
                           "processes meanwhile: %d" % (wakes, self.life_foreign))
        floor = self.life_floor(n)
        if floor is not None:
            self.row_total("VM life at %s other sessions: the daemon's CPU vs life-floor's, the same lives (the "
                           "I/O a life needs, in a bare epoll loop that is not ours)" % others,
                           [per], [floor], None, unit="us",
                           how="life-floor.c: uevents, /proc/<pid>/stat, accept and peer credentials, the fd "
                               "checks, APPLY, 3 audit lines, 5 D-Bus signals, 2 record appends; its schedstat "
                               "run time over %d lives of the same minimal client, / %d; it slept and was woken "
                               "%.1f times per life" % (n, n, self.life_floor_wakes))
        return per, wakes

    def life_floor(self, n):
        """life-floor's CPU per VM life (measured once, at the first call)."""
        if getattr(self, "life_floor_ns", None) is None:
            f = benchrun.LifeFloor(self, self.apply2_events, self.bus, "life-floor")
            try:
                self.life_floor_ns, _ = self.life_cpu(f, n)
                self.life_floor_wakes = self.life_wakes
                self.results["life_floor"] = {"cpu_ns": self.life_floor_ns, "lives": n,
                                              "ctxt_switches": self.life_wakes}
            finally:
                f.stop()
        return self.life_floor_ns

    def phase_breakdown(self, d, bus, cpu_per_life, wakes, apply_size, others):
        """Where a VM life's CPU goes, step by step (perf, sampled), each
        beside the bare system calls the step needs (bench-syscalls, timed
        here), counted per life (strace)."""
        n = self.o.life_samples
        # 1. the counts: what the daemon does per life, under strace (taken
        # again when other processes' VMs came and went meanwhile)
        log = os.path.join(self.dir, "strace-life")
        k = max(100, n // 5)
        for _ in range(3):
            st = subprocess.Popen(["strace", "-qq", "-yy", "-s", "16", "-p", str(d.pid), "-o", log],
                                  stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            try:
                self.life_cpu(d, k, tries=1)
            finally:
                st.terminate()
                st.wait(30)
            if self.life_foreign <= k // 100:
                break
        counts = {c: v / k for c, v in benchrun.strace_counts(log, self.rundir).items()}
        self.results["life_syscalls_%s" % others] = counts
        print("# per VM life (strace, %d lives): %s" % (k, ", ".join(
            "%s %.2f" % kv for kv in sorted(counts.items(), key=lambda kv: -kv[1]) if kv[1] >= 0.05)), flush=True)
        # 2. the shares: perf, dwarf call graphs
        data = os.path.join(self.dir, "life.perf")
        # 32 KiB of stack per sample: the daemon's message buffers (16 KiB)
        # and stdio's (8 KiB) sit on it, and the unwinder must get past them.
        for _ in range(3):
            pr = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "--call-graph",
                                   "dwarf,32768", "-p", str(d.pid), "-o", data],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            try:
                self.life_cpu(d, n, tries=1)
            finally:
                pr.send_signal(signal.SIGINT)
                pr.wait(60)
            if self.life_foreign <= n // 100:
                break
            print("# %d VMs of other processes during the profile: again" % self.life_foreign, flush=True)
        steps, other_funcs, where = benchrun.perf_steps(data)
        self.results["life_other_functions_%s" % others] = other_funcs
        self.results["life_where_%s" % others] = where
        for step, w in sorted(where.items(), key=lambda kv: -sum(kv[1].values())):
            n_step = sum(w.values())
            print("# where %s goes (%d samples): %s" % (step, n_step, ", ".join(
                "%s %.0f%%" % (k2, 100.0 * v / n_step) for k2, v in sorted(w.items(), key=lambda kv: -kv[1])[:8])),
                  flush=True)
        print("# samples counted as other: %s" % ", ".join("%s %d" % kv for kv in sorted(
            other_funcs.items(), key=lambda kv: -kv[1])[:12]), flush=True)
        if self.o.profile:
            os.makedirs(self.o.profile, exist_ok=True)
            shutil.copy(data, os.path.join(self.o.profile, "life-breakdown-%s.data" % others))
        os.unlink(data)
        total = sum(steps.values()) or 1
        # 3. the floors, measured here (once)
        if not getattr(self, "bare", None):
            sc = os.path.join(self.rundir, "syscalls")
            os.makedirs(sc, exist_ok=True)
            out = subprocess.run([self.prog("bench-syscalls"), "--dir", sc, "--count", "500", "--apply-sizes",
                                  str(apply_size)], capture_output=True, text=True, timeout=300, check=True).stdout
            samples = {}
            for line in out.splitlines():
                name, ns = line.split()
                samples.setdefault(name, []).append(int(ns))
            samples["emit"] = bus.bench("emit", "--count", "500")
            self.bare = {name: pct(v, 50) for name, v in samples.items()}
            self.results["bare_syscalls_ns"] = self.bare
            print("# bare system calls here (p50): %s" % ", ".join(
                "%s %.2f us" % (k2, v / 1e3) for k2, v in sorted(self.bare.items())), flush=True)
        bare = self.bare
        c = lambda key: counts.get(key, 0.0)
        floors = {
            "uevent": (2 * bare["uevent-recv"], "2 uevent recv() (the one /proc read a VM needs is under facts)"),
            "facts": (bare["proc-stat"], "1 read of /proc/<pid>/stat"),
            "session reads": (bare["recv-attach"] + bare["recv-applied"] + bare["recv-applied"] / 2,
                              "recvmsg() of ATTACH with its fd, APPLIED, the close"),
            "ATTACH": (bare["accept"] + bare["proc-fd-link"] + bare["kcmp"],
                       "accept4 + SO_PEERCRED + SO_PEERPIDFD + epoll_ctl, readlink, kcmp"),
            "match": (0, "none (no system call)"),
            "APPLY": (bare["send-apply-%d" % apply_size], "1 send() of the APPLY"),
            "APPLIED": (0, "none (the recvmsg is under session reads)"),
            "records": (c("record_writes") * bare["record-append"] + c("record_compactions") * bare["record-write"],
                        "%.2f × write() appended to the records log + %.3f × compaction (create + write + rename) "
                        "on the tmpfs" % (c("record_writes"), c("record_compactions"))),
            "signals": (c("signals") * bare["emit"], "%.2f × sd_bus_emit_signal()" % c("signals")),
            "journal": (c("log_lines") * bare["log-write"], "%.2f × write() of a line to a pipe" % c("log_lines")),
            "teardown": (bare["close-session"] + bare["proc-fd-link"],
                         "close() of the socket and the pidfd, readlink() of the VM's fd (is it still a VM?)"),
            "event loop": (wakes * bare["wake"], "%.2f wake-ups (context switches per life, unprofiled) × "
                                                 "%.2f us" % (wakes, bare["wake"] / 1e3)),
            "status line": (0, "none here"),
            "other": (0, "—"),
        }
        self.results["life_steps_%s" % others] = steps_out = {}
        floor_total = sum(f for f, _ in floors.values())
        self.add({"what": "VM life at %s other sessions, all steps: the daemon's CPU per life vs the bare "
                          "system calls they need" % others,
                  "how": "the sum of the floors below", "unit": "us", "n": total, "value": cpu_per_life,
                  "base": floor_total, "ratio": ratio(cpu_per_life, floor_total)})
        for step, what, _ in benchrun.STEP_FUNCTIONS + [("event loop", "sd-event: epoll_wait, dispatch", None),
                                                        ("other", "everything else (malloc, libc, ...)", None)]:
            share = steps.get(step, 0) / total
            floor, floor_what = floors[step]
            value = share * cpu_per_life
            steps_out[step] = {"share": share, "ns": value, "floor_ns": floor,
                                                "floor": floor_what, "samples": steps.get(step, 0)}
            r = {"what": "VM life at %s, step: %s — %s (%.1f%% of samples)" % (others, step, what, 100 * share),
                 "how": "perf share × the CPU per life; floor: %s" % floor_what, "unit": "us",
                 "n": steps.get(step, 0), "value": value, "base": floor or None,
                 "ratio": ratio(value, floor) if floor else None}
            self.add(r)
        self.results["notes"].append("VM life breakdown: perf record -e cpu-clock -F 10000 --call-graph dwarf,32768, "
                                     "%d samples over %d lives; bare calls timed by bench-syscalls and "
                                     "bus-bench emit; counts per life from strace over %d lives" % (total, n, k))

    def phase_runtime_one(self, d, bus, rtt2):
        with self.profiled(d, "runtime-one"):
            self._phase_runtime_one(d, bus, rtt2)

    def _phase_runtime_one(self, d, bus, rtt2):
        h = benchrun.Holder(self, d.socket, 1, trace=True)
        try:
            vm = "hold-%d-0" % h.proc.pid
            n = self.o.runtime_samples
            ping = bus.bench("ping", "--count", str(n))
            h.command("reset")
            cpu0 = d.cpu_ns()
            calls = [tuple(int(x) for x in l.split()[1:3])
                     for l in bus.bench("set-vm", "--vm", vm, "--profiles", "bench-2b,bench-2", "--count", str(n),
                                        raw=True)]
            setvm = [dt for dt, _ in calls]
            cpu = (d.cpu_ns() - cpu0) / n
            traced = h.traced()
            ioctl = [t[0] for t in traced]
            base = [ping[i] + ioctl[i % len(ioctl)] + rtt2[i % len(rtt2)] for i in range(n)]
            self.row("runtime change, 1 VM: SetVMProfile → APPLIED", setvm, base, (1.5, None), unit="us",
                     how="D-Bus call until its reply (sent after APPLIED), vs bus Ping + the VMM's ioctl + one protocol round trip")
            # Each call's two halves around the VMM's own work, by its APPLY
            # (the holder's clock is the caller's: CLOCK_MONOTONIC).
            ins, outs, half = [], [], []
            j = 0
            for i, (dt, t0) in enumerate(calls):
                while j < len(traced) and traced[j][1] < t0:
                    j += 1
                if j < len(traced) and traced[j][2] <= t0 + dt:
                    ins.append(traced[j][1] - t0)
                    outs.append(t0 + dt - traced[j][2])
                    half.append((ping[i % len(ping)] + rtt2[i % len(rtt2)]) // 2)
            self.row("  of which the call to its APPLY: SetVMProfile sent → the VMM has the APPLY", ins, half, None,
                     unit="us", how="the bus call through dbus-daemon, the daemon's checks, the state file "
                                    "written, the APPLY sent; floor: half a bus Ping + half a protocol round trip")
            self.row("  and the APPLIED to the reply: APPLIED sent → the reply received", outs, half, None,
                     unit="us", how="the daemon reads APPLIED and replies through dbus-daemon; floor: the same "
                                    "halves")
            self.row_value("runtime change, 1 VM: the daemon's own CPU per SetVMProfile", cpu, None,
                           unit="us", how="Δ /proc/<pid>/schedstat run time over the calls / calls: everything "
                                          "the daemon does for one (bus message in and out, state file, APPLY, "
                                          "APPLIED, reply, signals, record)")
            if self.o.breakdown:
                # What one call costs in system calls (strace, after the timed calls).
                log = os.path.join(self.dir, "strace-setvm")
                st = subprocess.Popen(["strace", "-qq", "-yy", "-s", "16", "-p", str(d.pid), "-o", log],
                                      stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                try:
                    bus.bench("set-vm", "--vm", vm, "--profiles", "bench-2b,bench-2", "--count", "20")
                    time.sleep(1.5)
                finally:
                    st.terminate()
                    st.wait(30)
                counts = {c: v / 20 for c, v in benchrun.strace_counts(log, self.rundir).items()}
                self.results["setvm_syscalls"] = counts
                print("# per SetVMProfile (strace, 20 calls): %s" % ", ".join(
                    "%s %.1f" % kv for kv in sorted(counts.items(), key=lambda kv: -kv[1]) if kv[1] >= 0.5),
                      flush=True)
            # The whole command as an operator runs it.
            ctl = os.path.join(self.build, "cli/pmufilterctl")
            k = self.o.ctl_samples
            h.command("reset")
            ctl_t = benchrun.time_runs([ctl, "--bus-address=" + bus.address, "profile", "set", "bench-2b", vm,
                                        "--runtime"], [ctl, "--bus-address=" + bus.address, "profile", "set",
                                                       "bench-2", vm, "--runtime"], k)
            busctl_t = benchrun.time_runs(["busctl", "--address=" + bus.address, "call", "org.pmufilterd1",
                                           "/org/pmufilterd1", "org.freedesktop.DBus.Peer", "Ping"], None, k)
            ioctl = h.applies()
            base = [busctl_t[i] + ioctl[i % len(ioctl)] + rtt2[i % len(rtt2)] for i in range(k)]
            self.row("runtime change, 1 VM: `pmufilterctl profile set` (whole process)", ctl_t, base, None,
                     unit="ms", how="fork→exit of pmufilterctl, vs `busctl call ... Peer.Ping` + ioctl + round trip")
        finally:
            h.stop()

    def phase_reads(self, d, bus):
        with self.profiled(d, "reads"):
            self._phase_reads(d, bus)

    def _phase_reads(self, d, bus):
        n = self.o.read_samples
        sizes = {m: bus.reply_size(m) for m in ("ListVMs", "GetManagedObjects")}
        echo = bus.echo_serve(self, sizes["ListVMs"], sizes["GetManagedObjects"], mirror=True)
        try:
            nvms = d.nvms(bus)
            for method in ("ListVMs", "GetManagedObjects"):
                got, entries = bus.call(method, n)
                floor, _ = bus.call(method, n, dest=echo, path="/bench", interface="org.pmufilterd1.BenchEcho")
                echo_size = bus.reply_size(method, echo, "/bench", "org.pmufilterd1.BenchEcho")
                self.row("D-Bus read at %d VMs: %s (%d entries, %.0f KiB)" % (nvms, method, entries,
                                                                          sizes[method] / 1024),
                         got, floor, None, unit="ms",
                         how="call until reply, vs a reply of the same size (%d B here, %d B the floor's) "
                             "carrying one byte array, from a service with nothing behind it, on the same bus"
                         % (sizes[method], echo_size))
                self.results["reply_bytes_" + method] = sizes[method]
                # The same reply from a service that has it ready: what sd-bus
                # (marshalling) and dbus-daemon (validating every field,
                # relaying) cost for it, without the daemon's walk.
                same, same_entries = bus.call(method + "Mirror", n, dest=echo, path="/bench",
                                              interface="org.pmufilterd1.BenchEcho")
                self.row("  %s vs the same %d entries from a bare sd-bus service" % (method, same_entries), got,
                         same, None, unit="ms",
                         how=("call until reply, vs ListVMsMirror of bus-bench echo-serve: pmufilterd's own "
                              "entries, asked once, built again field by field as the daemon builds them")
                         if method == "ListVMs" else
                             ("call until reply, vs GetManagedObjectsMirror of bus-bench echo-serve: "
                              "pmufilterd's own reply, asked once, copied field by field into each answer "
                              "(sd_bus_message_copy(): it reads each field as well)"))
        finally:
            bus.echo.stop()

    def phase_runtime_many(self, d, bus, holders, rtt2):
        with self.profiled(d, "runtime-many"):
            self._phase_runtime_many(d, bus, holders, rtt2)

    def _phase_runtime_many(self, d, bus, holders, rtt2):
        rows = []
        # The same ListVMs reply from a bare service, probed in turn with the
        # daemon's during the change: the bus's share of a slow probe.
        echo = bus.echo_serve(self, 0, 0, mirror=True)
        try:
            for profile in ("bench-2b", "bench-2"):
                for h in holders:
                    h.command("reset")
                lines = bus.bench("set-default", "--profile", profile, "--probe-ms", "20", "--mirror-dest", echo,
                                  raw=True)
                t0, t1 = next((int(a), int(b)) for k, a, b in (l.split()[:3] for l in lines
                                                               if l.startswith("setdefault")))
                probes = [int(l.split()[2]) for l in lines if l.startswith("listvms ")]
                mirrored = [int(l.split()[2]) for l in lines if l.startswith("mirror ")]
                stats = [h.stats() for h in holders]
                applies = sum(s[0] for s in stats)
                ioctl = sum(s[1] for s in stats)
                base = ioctl + applies * pct(rtt2, 50)
                rows.append((t1 - t0, base, applies, max(probes) if probes else None, len(probes), ioctl,
                             max(mirrored) if mirrored else None, len(mirrored)))
        finally:
            bus.echo.stop()
        best = min(rows, key=lambda r: r[0] / r[1])
        worst = max(rows, key=lambda r: r[0] / r[1])
        self.row_total("runtime change, default profile over %d VMs: SetDefaultProfile → all APPLIED" % best[2],
                       [r[0] for r in rows], [r[1] for r in rows], 1.2,
                       how="call until its reply, vs Σ the VMMs' ioctl + one protocol round trip (p50) per VM; "
                           "two changes (there and back)")
        probe_max = max((r[3] for r in rows if r[3] is not None), default=None)
        self.row_value("ListVMs answered during that change (worst of %d probes)" % sum(r[4] for r in rows),
                       probe_max, 50e6, unit="ms", how="a ListVMs every 40 ms on a second connection, "
                                                       "alternating with the probe below")
        mirror_max = max((r[6] for r in rows if r[6] is not None), default=None)
        self.row_value("  the same entries from a bare sd-bus service during that change (worst of %d probes)" %
                       sum(r[7] for r in rows), mirror_max, None, unit="ms",
                       how="ListVMsMirror of bus-bench echo-serve --mirror (pmufilterd's entries, built as it "
                           "builds them), on the same connection, 20 ms after each ListVMs")
        self.results["runtime_many"] = [{"ns": r[0], "baseline_ns": r[1], "applies": r[2], "ioctl_ns": r[5],
                                         "listvms_max_ns": r[3], "probes": r[4], "mirror_max_ns": r[6],
                                         "mirror_probes": r[7]} for r in rows]

    def phase_memory(self, d, idle, bare, vms, rss_full, kernel_per_vm):
        """idle: (RSS, PSS, private) of the daemon at start; bare: the same of
        a bare sd-bus service on the same bus (bus-bench echo-serve)."""
        self.row_total("memory: idle RSS (PSS %.1f MiB, private %.1f MiB)" % (idle[1] / 2**20, idle[2] / 2**20),
                       [idle[0]], [bare[0]], None, unit="KiB",
                       how="VmRSS after start-up (policy, bus, socket, /proc scan), vs a bare sd-bus service on "
                           "the same bus (RSS %.1f MiB, PSS %.1f MiB, private %.1f MiB)"
                           % (bare[0] / 2**20, bare[1] / 2**20, bare[2] / 2**20))
        self.rows[-1]["target"] = "≤ 3.00 MiB"
        self.rows[-1]["pass"] = idle[0] <= 3 * 2**20
        # What the difference is made of: the objects only the daemon maps,
        # its own program against the bare service's, anonymous memory.
        ours, theirs = self.rss_objects
        only = sorted(((k, v) for k, v in ours.items() if k not in theirs and k not in ("[exe]", "[anon]")),
                      key=lambda kv: -kv[1])
        shared = sum(v for k, v in ours.items() if k in theirs and k not in ("[exe]", "[anon]"))
        shared_bare = sum(v for k, v in theirs.items() if k in ours and k not in ("[exe]", "[anon]"))
        note = ("idle RSS by what is mapped, pmufilterd / the bare sd-bus service: its program %d / %d KiB, "
                "anonymous %d / %d KiB, the libraries both map %d / %d KiB, only pmufilterd's: %s" %
                (ours.get("[exe]", 0), theirs.get("[exe]", 0), ours.get("[anon]", 0), theirs.get("[anon]", 0),
                 shared, shared_bare, ", ".join("%s %d KiB" % kv for kv in only if kv[1] > 0) or "none"))
        self.results["notes"].append(note)
        print("# " + note, flush=True)
        per_vm = (rss_full - idle[0]) / vms
        # MemAvailable is the host's: other VMs coming and going can swamp it.
        kernel = [kernel_per_vm] if kernel_per_vm > 0 else []
        self.row_total("memory: per registered VM at %d (attached, with session)" % vms, [per_vm],
                       kernel, None, unit="B",
                       how="(VmRSS at %d VMs − idle) / %d, vs the kernel's own memory per VM here (host "
                           "MemAvailable drop / VMs%s)" % (vms, vms, "" if kernel else ": swamped by other activity"))
        self.rows[-1]["target"] = "≤ 1024 B"
        self.rows[-1]["pass"] = per_vm <= 1024

    def phase_wakeups(self, d, seconds, vms):
        """Two windows: context switches untouched by any tracer, then
        strace, which names what woke the daemon each time."""
        listen = benchrun.Listener(self)
        try:
            before = d.ctxt_switches()
            t0 = time.monotonic_ns()
            time.sleep(seconds / 2)
            after = d.ctxt_switches()
            t1 = time.monotonic_ns()
            wakes = benchrun.strace_wakeups(self, d.pid, seconds / 2)
            t2 = time.monotonic_ns()
        finally:
            listen.stop()
        host1 = sum(1 for l in listen.lines() if t0 <= l[0] <= t1)
        host2 = sum(1 for l in listen.lines() if t1 <= l[0] <= t2)
        per_min = lambda n: n * 60.0 / (seconds / 2)
        causes = ", ".join("%s %d" % kv for kv in sorted(wakes.items())) or "none"
        # A timer (or an empty return) is the daemon waking itself; a uevent,
        # a session or the bus socket is someone else's doing (the bus socket
        # also when it drains signals that a uevent caused).
        own = sum(n for k, n in wakes.items() if k in ("timer", "timeout", "unknown"))
        self.row_value("idle wake-ups at %d VMs by the daemon's own timers (%d s under strace)" %
                       (vms, seconds / 2), per_min(own), 0, unit="/min",
                       how="epoll_wait returns of the daemon, named by the fd used next: %s; kernel uevents "
                           "on the host meanwhile: %d" % (causes, host2))
        self.row_value("idle wake-ups at %d VMs, all (%d s, context switches)" % (vms, seconds / 2),
                       per_min(after - before), None, unit="/min",
                       how="Δ voluntary+involuntary context switches of the daemon; kernel uevents on the "
                           "host meanwhile: %d (each wakes every uevent listener)" % host1)
        self.results["idle"] = {"ctxt": after - before, "uevents_ctxt_window": host1, "strace": wakes,
                                "uevents_strace_window": host2}

    def phase_overrides(self, bus, rtt2):
        """A host with a history of per-VM changes: OVERRIDES entries in each
        state file (persistent and runtime), none of them for a running VM.
        The attach (each looks its VM up in both stores) and SetVMProfile
        (which rewrites the runtime store whole, as pmufilterd(8) says it
        is kept) beside the same figures with empty stores."""
        n = OVERRIDES
        d = benchrun.Daemon(self, verbose=False, bus=bus, name="overrides",
                            seed=lambda persistent, runtime: (seed_state(persistent, n, "gone"),
                                                              seed_state(runtime, n, "was")))
        echo = benchrun.Echo(self, self.apply2_events, "bench-2", "echo2-overrides")
        try:
            with self.profiled(d, "overrides"):
                self._phase_overrides(d, bus, echo, rtt2, n)
        finally:
            echo.stop()
            d.stop()

    def _phase_overrides(self, d, bus, echo, rtt2, n):
        if True:
            sent, _, _ = self.attach_samples([("min", echo), ("min", d)], None, self.o.attach_samples)
            self.row("attach, 2 entries, 0 other sessions, %d overrides in each state file: minimal client → "
                     "pmufilterd" % n, sent[1], sent[0], None, unit="us",
                     how="as the attach rows above, the daemon started with state files of %d entries each "
                         "(none for these VMs)" % n)
            h = benchrun.Holder(self, d.socket, 1, trace=True)
            try:
                vm = "hold-%d-0" % h.proc.pid
                k = self.o.runtime_samples // 3
                ping = bus.bench("ping", "--count", str(k))
                h.command("reset")
                setvm = bus.bench("set-vm", "--vm", vm, "--profiles", "bench-2b,bench-2", "--count", str(k))
                ioctl = h.applies()
                base = [ping[i] + ioctl[i % len(ioctl)] + rtt2[i % len(rtt2)] for i in range(k)]
                self.row("runtime change, 1 VM, %d overrides in each state file: SetVMProfile → APPLIED" % n,
                         setvm, base, None, unit="us",
                         how="as the row with empty stores; the runtime state file (%d entries) is written "
                             "whole before the APPLY" % (n + 1))
            finally:
                h.stop()

    def phase_detection(self, bus):
        d = benchrun.Daemon(self, verbose=True, bus=bus, name="detect")
        listen = benchrun.Listener(self)
        creators = []
        try:
            # single VMs, one at a time
            mark = time.monotonic_ns()
            out = subprocess.run([self.prog("bench-vmm"), "create", "--count", str(self.o.detect_samples),
                                  "--gap-us", "3000"], capture_output=True, text=True, check=True, timeout=300)
            time.sleep(0.3)
            seen = d.records_since(mark, r"VM \d+-\d+ detected", r"VM (\d+-\d+) detected")
            heard = listen.creates_since(mark)
            lat_d, lat_l, missed = [], [], 0
            for line in out.stdout.splitlines():
                if not line.startswith("create "):
                    continue
                _, vmid, t0, t1 = line.split()
                a = benchrun.first_after(seen.get(vmid, []), int(t0))
                b = benchrun.first_after(heard.get(vmid, []), int(t0))
                if a is None:
                    missed += 1
                    continue
                lat_d.append(a - int(t0))
                if b is not None:
                    lat_l.append(b - int(t0))
            self.row("detection, single VMs: KVM_CREATE_VM → registry entry (%d missed)" % missed, lat_d, lat_l,
                     None, unit="us", how="ioctl start → the daemon's -v line 'VM … detected', vs a bare "
                                         "netlink listener's receipt of the same uevent")
            self.results["detect_single_missed"] = missed

            # a burst from several processes
            n, procs = self.o.burst, self.o.procs
            mark = time.monotonic_ns()
            for i in range(procs):
                creators.append(Proc(self.procs, [self.prog("bench-vmm"), "create", "--count", str(n // procs),
                                                  "--hold", "--wait-go"], stdin=True))
            for c in creators:
                c.wait_line(lambda l: l == "waiting", 30)
            for c in creators:
                c.write("go\n")
            for c in creators:
                c.wait_line(lambda l: l == "done", 300)
            created = {}
            created_end = 0
            for c in creators:
                for l in c.lines_now():
                    if l.startswith("create "):
                        _, vmid, t0, t1 = l.split()
                        created[vmid] = int(t0)
                        created_end = max(created_end, int(t1))
            deadline = time.time() + 60
            while time.time() < deadline:
                seen = d.records_since(mark, r"VM \d+-\d+ detected", r"VM (\d+-\d+) detected")
                if all(v in seen for v in created):
                    break
                time.sleep(0.5)
            heard = listen.creates_since(mark)
            missed = [v for v in created if v not in seen]
            start = min(created.values())
            last_d = max(seen[v][0] for v in created if v in seen)
            last_l = max((heard[v][0] for v in created if v in heard), default=None)
            lost = listen.lost_since(mark)
            overflow = d.count_since(mark, r"uevents were lost")
            self.row_total("detection, burst of %d VMs from %d processes: first create → last registry entry "
                           "(%d missed; daemon overflows+rescans: %d; listener ENOBUFS: %d)"
                           % (len(created), procs, len(missed), overflow, lost),
                           [last_d - start], [last_l - start] if last_l else [], None,
                           how="vs the bare listener's receipt of the last uevent")
            self.row_total("detection, burst of %d VMs from %d processes: all seen (%d missed) vs the kernel's "
                           "own time to create them" % (len(created), procs, len(missed)),
                           [last_d - start], [created_end - start], 1.2,
                           how="first KVM_CREATE_VM → last registry entry, vs first KVM_CREATE_VM → last "
                               "KVM_CREATE_VM returned")
            if missed:
                self.rows[-1]["pass"] = False
            lat_d = [seen[v][0] - t for v, t in created.items() if v in seen]
            lat_l = [heard[v][0] - t for v, t in created.items() if v in heard]
            self.row("detection, burst: per VM", lat_d, lat_l, None, unit="ms",
                     how="ioctl start → registry entry, vs → the bare listener")
            self.results["detect_burst"] = {"created": len(created), "missed": len(missed),
                                            "daemon_rescans": overflow, "listener_lost": lost}
            if missed:
                self.results["notes"].append("MISSED VMs in the burst: %s" % missed[:20])
        finally:
            for c in creators:
                c.stop()
            listen.stop()
            d.stop()

    # --- rows -------------------------------------------------------------

    def row(self, what, samples, base, target, unit, how):
        """p50 and p99 of samples against those of base; target (p50, p99) ratios."""
        r = {"what": what, "how": how, "unit": unit, "n": len(samples), "n_base": len(base),
             "p50": pct(samples, 50), "p99": pct(samples, 99), "base_p50": pct(base, 50),
             "base_p99": pct(base, 99)}
        r["ratio_p50"] = ratio(r["p50"], r["base_p50"])
        r["ratio_p99"] = ratio(r["p99"], r["base_p99"])
        if target:
            r["target"] = "p50 ≤ %.1fx" % target[0] + (", p99 ≤ %.1fx" % target[1] if target[1] else "")
            r["pass"] = (r["ratio_p50"] is not None and r["ratio_p50"] <= target[0] and
                         (target[1] is None or (r["ratio_p99"] is not None and r["ratio_p99"] <= target[1])))
        self.add(r)

    def row_total(self, what, samples, base, target, how, unit="ms"):
        """One total (the best of several runs) against its baseline."""
        best = min(range(len(samples)), key=lambda i: samples[i] / base[i] if base else 0)
        r = {"what": what, "how": how, "unit": unit, "n": len(samples), "value": samples[best],
             "base": base[best] if base else None, "all": samples, "all_base": base}
        r["ratio"] = ratio(r["value"], r["base"])
        if target:
            r["target"] = "≤ %.1fx" % target
            r["pass"] = r["ratio"] is not None and r["ratio"] <= target
        self.add(r)

    def row_value(self, what, value, limit, unit, how):
        """A value against an absolute limit (None: no target, shown for context)."""
        r = {"what": what, "how": how, "unit": unit, "value": value, "limit": limit}
        if limit is not None:
            r["target"] = "≤ " + benchrun.fmt(limit, unit) if limit else "0"
            r["pass"] = value is not None and value <= limit
        self.add(r)

    @property
    def rows(self):
        return self.results["rows"]

    def add(self, r):
        self.results["rows"].append(r)
        print(benchrun.format_row(r), flush=True)

    # --- the run ----------------------------------------------------------

    def run(self):
        o = self.o
        self.results["machine"] = benchrun.machine()
        self.results["machine"]["build"] = benchrun.buildtype(self.build)
        print("# machine: %s" % json.dumps(self.results["machine"]), flush=True)
        others = benchrun.other_kvm_users()
        if others:
            self.results["notes"].append("other VM-creating processes at start: %s" % others)
            print("# WARNING: other processes hold VMs or run pmufilterd: %s" % others, flush=True)

        bus = benchrun.Bus(self)
        self.procs.add_cleanup(bus.stop)
        d = benchrun.Daemon(self, verbose=False, bus=bus, name="main")
        bus.echo_serve(self, 0, 0)
        time.sleep(1.0)
        idle = benchrun.memory(d.pid)
        bare = benchrun.memory(bus.echo.pid)
        self.rss_objects = (benchrun.rss_by_object(d.pid), benchrun.rss_by_object(bus.echo.pid))
        bus.echo.stop()
        mem0 = benchrun.mem_available()

        apply2, size2 = self.capture_apply(d.socket, None)
        apply300, size300 = self.capture_apply(d.socket, "300")
        self.apply2_events, self.bus = apply2["EVENTS"], bus
        echoes = {2: benchrun.Echo(self, apply2["EVENTS"], apply2["PROFILE"], "echo2"),
                  300: benchrun.Echo(self, apply300["EVENTS"], apply300["PROFILE"], "echo300")}
        self.rundir_fs = benchrun.fs_type(self.rundir)
        print("# the daemon's runtime directory (VM records): %s, %s" % (self.rundir, self.rundir_fs), flush=True)
        self.results["machine"]["runtime_dir_fs"] = self.rundir_fs
        rtt2 = self.rtt(size2, 2000)
        rtt300 = self.rtt(size300, 2000)
        self.row("protocol round trip (APPLY %d B / APPLIED), for reference" % size2, rtt2, rtt300, None,
                 unit="us", how="SOCK_SEQPACKET socketpair ping-pong; baseline column: the 300-entry APPLY (%d B)"
                 % size300)

        if self.want("attach"):
            self.phase_attach(d, echoes, 0)
            self.phase_attach_busy(d, echoes)
        if self.want("life"):
            cpu_life, wakes = self.phase_life(d, 0)
            if self.o.breakdown:
                self.phase_breakdown(d, bus, cpu_life, wakes, size2, 0)
        if self.want("runtime"):
            self.phase_runtime_one(d, bus, rtt2)

        n, procs, own = o.vms, o.procs, o.own
        if n < o.burst:
            self.results["notes"].append(
                "%d sessions, not %d: each costs pmufilterd two fds (the socket and a pidfd), and this "
                "machine's hard RLIMIT_NOFILE is %d without CAP_SYS_RESOURCE to raise it "
                "(pmufilterd.service sets LimitNOFILE=524288)" % (n, o.burst, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            print("# " + self.results["notes"][-1], flush=True)
        t0 = time.monotonic()
        # n sessions: procs holders, plus one of own VMs that the measuring
        # VMM takes over (as VMs of its own) for the attach figures.
        holders = [benchrun.Holder(self, d.socket, (n - own) // procs) for _ in range(procs)]
        extra = benchrun.Holder(self, d.socket, n - own - (n - own) // procs * procs + own)
        try:
            for h in holders + [extra]:
                h.wait_ready(300)
            self.results["attach_10000_s"] = time.monotonic() - t0
            print("# %d VMs attached by %d holders in %.1f s" % (n, procs + 1, time.monotonic() - t0), flush=True)
            time.sleep(2.0)
            rss_full = d.rss()
            kernel_per_vm = (mem0 - benchrun.mem_available()) / n
            self.phase_memory(d, idle, bare, n, rss_full, kernel_per_vm)
            if self.want("reads"):
                self.phase_reads(d, bus)
            if self.want("runtime"):
                self.phase_runtime_many(d, bus, holders + [extra], rtt2)
            time.sleep(1.0)
            if self.want("idle"):
                self.phase_wakeups(d, o.idle_seconds, n)
            if self.want("life"):
                cpu_life, wakes = self.phase_life(d, "%d" % n)
                if self.o.breakdown:
                    self.phase_breakdown(d, bus, cpu_life, wakes, size2, "%d" % n)
            kept = n - extra.count
            extra.stop()
            d.wait_vms_below(bus, kept + 10, 120)
            if self.want("attach"):
                self.phase_attach(d, echoes, "%d" % n, own)
        finally:
            for h in holders + [extra]:
                h.stop()
        for e in echoes.values():
            e.stop()
        d.wait_vms_below(bus, 100, 120)
        d.stop()

        if self.want("overrides"):
            self.phase_overrides(bus, rtt2)
        if self.want("detection"):
            self.phase_detection(bus)
        self.results["load_end"] = os.getloadavg()
        print("# load average at the end: %.2f %.2f %.2f" % os.getloadavg(), flush=True)

    # --- why a target was missed, from what the same run measured -----------

    def find(self, prefix):
        """The first row whose figure starts with prefix, or None."""
        return next((r for r in self.results["rows"] if r["what"].startswith(prefix)), None)

    def explain_misses(self):
        """Each missed target with what this run measured of its cause
        (docs/benchmarks.md says more): figures of other rows of the same
        run, never a text that does not depend on them."""
        f = benchrun.fmt
        whys = []
        for r in self.results["rows"]:
            if r.get("pass") is not False:
                continue
            why = None
            w = r["what"]
            m = re.match(r"the daemon's own CPU per VM life, (\S+) other sessions", w)
            if m:
                floor = self.find("VM life at %s other sessions: the daemon's CPU vs life-floor's" % m.group(1))
                if floor:
                    why = ("life-floor, the same lives' I/O in a bare epoll loop with no code of pmufilterd's, "
                           "costs %s here%s; the daemon is %.2fx it" %
                           (f(floor["base"], "us"), ", above the target" if floor["base"] > r["limit"] else "",
                            floor["ratio"] or 0))
            elif w.startswith("memory: idle RSS") and getattr(self, "rss_objects", None):
                ours, theirs = self.rss_objects
                libs = [k for k in ours if k not in ("[exe]", "[anon]")]
                only = sum(v for k, v in ours.items() if k in libs and k not in theirs)
                shared = sum(v for k, v in ours.items() if k in libs and k in theirs)
                shared_bare = sum(v for k, v in theirs.items() if k in libs)
                why = ("a bare sd-bus service on the same bus has %s; beyond it pmufilterd maps its own "
                       "program (%d KiB; the service's: %d), %d KiB of the libraries both map (the service: "
                       "%d), %d KiB of libraries only it maps, and %d KiB of anonymous memory against the "
                       "service's %d" % (f(r["base"], "KiB"), ours.get("[exe]", 0), theirs.get("[exe]", 0),
                                         shared, shared_bare, only, ours.get("[anon]", 0),
                                         theirs.get("[anon]", 0)))
            elif w.startswith("libpmufilter-client's own cost"):
                m = re.match(r"libpmufilter-client's own cost, (\d+ entries, .*?): pmufilter_attach", w)
                calls = m and self.find("  of which the contract's three calls, %s:" % m.group(1))
                own = m and self.find("  and the library's own, %s:" % m.group(1))
                if calls and own:
                    why = ("the three calls pmufilterd-vmm(7) has a client make (peer uid, two socket "
                           "timeouts): %.2fx; the library's own code beyond them (its validating codec, "
                           "its session): %.2fx" % (calls["ratio_p50"] or 0, own["ratio_p50"] or 0))
            elif re.match(r"attach, \d+ entries, \S+ other sessions.*: minimal client", w):
                step = self.find("VM life at 0, step: ATTACH")
                why = "the daemon's extra over the echo peer: %s" % f(r["p50"] - r["base_p50"], "us")
                cond = re.match(r"attach, (\d+ entries, .*?): minimal client", w).group(1)
                parts = [(name, self.find("  %s %s:" % (lead, cond))) for name, lead in
                         (("connect and ATTACH", "of which the connect and ATTACH,"),
                          ("the answer", "and the peer's answer,"), ("the VMM's ioctl", "and the VMM's ioctl,"),
                          ("the APPLIED", "and the APPLIED,"))]
                if all(p for _, p in parts):
                    why += ("; by the minimal client's clock, each step's p50 beside the echo peer's: %s "
                            "(a peer that runs while the client is in a step shows in it: the echo peer's "
                            "answer often lands inside the client's send)" %
                            ", ".join("%s %s / %s" % (name, f(p["p50"], "us"), f(p["base_p50"], "us"))
                                      for name, p in parts))
                if step:
                    why += ("; per VM life its ATTACH step (accept, peer credentials and pidfd, the VM fd's "
                            "readlink and kcmp, the session's epoll_ctl: the checks of the trust model) "
                            "costs %s against %s of the same calls made bare in a loop" %
                            (f(step["value"], "us"), f(step["base"], "us")))
                    where = self.results.get("life_where_0", {}).get("ATTACH")
                    if where:
                        n_all = sum(where.values()) or 1
                        n_sys = sum(v for k, v in where.items() if k.split(" < ")[0].lstrip("_") in SYSCALL_LEAVES)
                        why += ", %.0f%% of its samples in those system calls (perf)" % (100.0 * n_sys / n_all)
            elif w.startswith("runtime change, 1 VM: SetVMProfile → APPLIED"):
                c = self.results.get("setvm_syscalls")
                why = "the floor is %s" % f(r["base_p50"], "us")
                if c:
                    why += ("; per call the daemon also makes the state file's %.0f openat, %.0f rename and "
                            "%.0f close (a change is kept before it is pushed), writes %.0f audit lines and "
                            "sends %.1f signals (strace of 20 calls)" %
                            (c.get("openat", 0), c.get("rename", 0), c.get("close", 0), c.get("log_lines", 0),
                             c.get("signals", 0)))
                cpu = self.find("runtime change, 1 VM: the daemon's own CPU per SetVMProfile")
                if cpu:
                    why += "; the daemon's own CPU per call is %s" % f(cpu["value"], "us")
                a = self.find("  of which the call to its APPLY:")
                b = self.find("  and the APPLIED to the reply:")
                if a and b:
                    why += ("; by the caller's and the VMM's clocks, the call to its APPLY takes %s (floor %s), "
                            "the APPLIED to the reply %s (floor %s)" %
                            (f(a["p50"], "us"), f(a["base_p50"], "us"), f(b["p50"], "us"), f(b["base_p50"], "us")))
            elif w.startswith("ListVMs answered during that change"):
                alone = self.find("D-Bus read at ")
                same = self.find("  ListVMs vs the same ")
                during = self.find("  the same entries from a bare sd-bus service during that change")
                parts = []
                if during and during.get("value") is not None:
                    parts.append("the same reply from a bare sd-bus service (the daemon's entries, built as "
                                 "it builds them), probed in turn on the same connection, took up to %s"
                                 % f(during["value"], "ms"))
                if same:
                    parts.append("idle, ListVMs takes %s against %s for that same reply from the bare "
                                 "service (sd-bus marshalling and dbus-daemon validating its 6 fields per VM) "
                                 "and %s for as many bytes in one array" %
                                 (f(same["p50"], "ms"), f(same["base_p50"], "ms"),
                                  f(alone["base_p50"], "ms") if alone else "?"))
                elif alone and "ListVMs" in alone["what"]:
                    parts.append("ListVMs alone takes %s against %s for the same bytes from a bare service" %
                                 (f(alone["p50"], "ms"), f(alone["base_p50"], "ms")))
                if parts:
                    why = "; ".join(parts) + ("; during the change dbus-daemon relays it 2 KiB per connection "
                                              "per iteration while the change keeps the CPUs busy "
                                              "(docs/benchmarks.md)")
            r["why"] = why or "no cause measured in this run"
            whys.append(r)
        self.results["misses"] = [{"what": r["what"], "why": r["why"]} for r in whys]

    def cleanup(self):
        for d in self.daemons:
            if d.proc.p.poll() is not None and not d.stopping:
                print("# pmufilterd (%s) died with status %s; its last lines:\n%s" %
                      (d.name, d.proc.p.returncode, "\n".join(t for _, t in d.parsed()[-30:])), flush=True)
        self.daemons = []
        self.procs.stop_all()
        if self.o.keep:
            print("# kept %s and %s" % (self.dir, self.rundir))
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.rundir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("PMUFILTER_BUILD", os.path.join(SRC, "build")))
    ap.add_argument("--quick", action="store_true", help="fewer samples and VMs: a smoke run")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the logs and records of the run")
    ap.add_argument("--profile", metavar="DIR",
                    help="perf record -g the daemon in each phase, to DIR/<phase>.data")
    ap.add_argument("--no-breakdown", action="store_true",
                    help="skip the per-step breakdown of a VM's life (perf, strace)")
    ap.add_argument("--breakdown", action="store_true", help="run that breakdown with --quick too")
    ap.add_argument("--phases", type=lambda s: s.split(","), default=None,
                    help="only these phases, comma-separated: attach, life, runtime, reads, idle, overrides, detection "
                         "(for a quick look at one figure; the table then has only their rows)")
    ap.add_argument("--settle-us", type=int, default=0, metavar="US",
                    help="wait US µs between creating each VM and timing its attach (the peer has handled "
                         "the create uevent first; a real VMM attaches at once)")
    opts = ap.parse_args()
    opts.build = os.path.abspath(opts.build)
    opts.attach_samples = 100 if opts.quick else 1000
    opts.runtime_samples = 50 if opts.quick else 300
    opts.ctl_samples = 5 if opts.quick else 30
    opts.read_samples = 3 if opts.quick else 20
    opts.detect_samples = 50 if opts.quick else 300
    opts.burst = 1000 if opts.quick else 10000
    opts.vms = min(opts.burst, benchrun.max_sessions())
    opts.procs = 4
    opts.idle_seconds = 10 if opts.quick else 60
    opts.life_samples = 300 if opts.quick else 1000
    opts.own = opts.vms // 10 if opts.quick else min(1000, opts.vms // 2)
    opts.breakdown = ((opts.breakdown or not opts.quick) and not opts.no_breakdown and
                      shutil.which("perf") and shutil.which("strace"))

    def on_term(signum, frame):
        raise SystemExit("bench.py: stopped by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    try:
        benchrun.check_machine()
    except Skip as e:
        print("SKIP: %s" % e)
        sys.exit(77)
    b = Bench(opts)
    try:
        b.run()
    except benchrun.Failure as e:
        print("FAIL: %s" % e, flush=True)
        b.cleanup()
        sys.exit(1)
    finally:
        b.cleanup()
    b.explain_misses()
    table = benchrun.markdown(b.results)
    print()
    print(table)
    if opts.markdown:
        with open(opts.markdown, "w") as f:
            f.write(table)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(b.results, f, indent=1)
    missed_vms = b.results.get("detect_burst", {}).get("missed", 0) + b.results.get("detect_single_missed", 0)
    missed_targets = [r["what"] for r in b.results["rows"] if r.get("pass") is False]
    if missed_vms:
        sys.exit(1)
    if opts.strict and missed_targets:
        sys.exit(1)


if __name__ == "__main__":
    main()
