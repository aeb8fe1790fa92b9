# SPDX-License-Identifier: LGPL-2.1-or-later
"""benchrun.py — the processes bench.py runs and the arithmetic of its table.

Every process is started through Proc and recorded in a Registry, which
stops them all (by pid: stdin closed, then SIGTERM, then SIGKILL) however
the run ends.  Programs whose lines must be timed (pmufilterd, the echo
peer) write to bench-stamp, which prefixes each line with the time it was
read; their logs are parsed here afterwards, never while timing."""

import os
import platform
import re
import resource
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "../.."))


class Skip(Exception):
    pass


class Failure(Exception):
    pass


# --- processes --------------------------------------------------------------

class Registry:
    def __init__(self):
        self.procs = []
        self.cleanups = []

    def add(self, p):
        self.procs.append(p)

    def add_cleanup(self, f):
        self.cleanups.append(f)

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        for f in reversed(self.cleanups):
            try:
                f()
            except Exception as e:  # cleanup must go on
                print("# cleanup: %s" % e)
        self.procs, self.cleanups = [], []


class Proc:
    """A child with optional stdin pipe and stdout collected by a thread
    (or written to a file: out=path)."""

    def __init__(self, registry, argv, stdin=False, out=None, stderr=None, env=None, preexec_fn=None, pass_fds=()):
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.out = open(out, "w") if out else None
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=self.out or subprocess.PIPE, stderr=stderr, text=True, env=env,
                                  preexec_fn=preexec_fn, pass_fds=pass_fds)
        self.pid = self.p.pid
        registry.add(self)
        if not self.out:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def write(self, text):
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def wait_line(self, pred, timeout, start=0):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if pred(self.lines[i]):
                        return i, self.lines[i]
                if self.p.poll() is not None and not self.thread.is_alive():
                    raise Failure("%s exited (%s) before the expected line; last: %s" %
                                  (os.path.basename(self.argv[0]), self.p.returncode, self.lines[-3:]))
                left = deadline - time.time()
                if left <= 0:
                    raise Failure("%s: no expected line within %ss; last: %s" %
                                  (os.path.basename(self.argv[0]), timeout, self.lines[-3:]))
                self.cond.wait(min(left, 0.5))

    def lines_now(self):
        with self.cond:
            return list(self.lines)

    def stop(self, timeout=30, grace=0):
        """Close stdin (our programs exit on EOF) or wait grace seconds for
        the end of input, then SIGTERM, then SIGKILL."""
        if self.p.poll() is None and grace:
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if self.p.poll() is None:
            if self.p.stdin:
                try:
                    self.p.stdin.close()
                except OSError:
                    pass
                try:
                    self.p.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            if self.p.poll() is None:
                self.p.terminate()
                try:
                    self.p.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.p.kill()
                    self.p.wait()
        if self.out:
            self.out.close()
            self.out = None


def max_sessions():
    """How many VMM sessions pmufilterd can hold here: two fds each (the
    socket and a pidfd) under the hard limit it can reach (raise_nofile)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
        hard = 65536
    except (ValueError, OSError):
        pass
    return (hard - 256) // 2


def raise_nofile(n=65536):
    """pmufilterd.service has LimitNOFILE=524288: a session costs the daemon
    a socket and a pidfd, so 10,000 of them need more than this shell's."""
    def f():
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        except (ValueError, OSError):
            pass
    return f


class Stamped:
    """A program whose stderr goes through bench-stamp into a log."""

    def start_stamped(self, bench, argv, name, preexec_fn=None, pass_fds=()):
        self.log = os.path.join(bench.dir, name + ".log")
        self.stamp = Proc(bench.procs, [bench.prog("bench-stamp")], stdin=True, out=self.log)
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS"):
            env.pop(k, None)
        self.proc = Proc(bench.procs, argv, out=os.devnull, stderr=self.stamp.p.stdin, env=env,
                         preexec_fn=preexec_fn, pass_fds=pass_fds)
        self.stamp.p.stdin.close()
        self.stamp.p.stdin = None

    def parsed(self):
        out = []
        with open(self.log) as f:
            for line in f:
                t, _, text = line.rstrip("\n").partition(" ")
                if t.isdigit():
                    out.append((int(t), text))
        return out

    def cpu_ns(self):
        """Time on CPU of all its threads so far (schedstat, ns)."""
        n = 0
        for tid in os.listdir("/proc/%d/task" % self.pid):
            with open("/proc/%d/task/%s/schedstat" % (self.pid, tid)) as f:
                n += int(f.read().split()[0])
        return n

    def ctxt_switches(self, kinds=("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
        n = 0
        for tid in os.listdir("/proc/%d/task" % self.pid):
            with open("/proc/%d/task/%s/status" % (self.pid, tid)) as f:
                for line in f:
                    if line.startswith(kinds):
                        n += int(line.split()[1])
        return n

    def records_since(self, mark, match, idre):
        m, i = re.compile(match), re.compile(idre)
        out = {}
        for t, text in self.parsed():
            if t >= mark and m.search(text):
                g = i.search(text)
                if g:
                    out.setdefault(g.group(1), []).append(t)
        return out

    def count_since(self, mark, match):
        m = re.compile(match)
        return sum(1 for t, text in self.parsed() if t >= mark and m.search(text))

    def wait_log(self, match, timeout):
        m = re.compile(match)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(m.search(text) for _, text in self.parsed()):
                return
            if self.proc.p.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure("%s: no line matching %r; log:\n%s" % (self.proc.argv[0], match,
                                                               "\n".join(t for _, t in self.parsed()[-20:])))

    def stop(self):
        self.proc.stop()
        self.stamp.stop(grace=5)


class Daemon(Stamped):
    def __init__(self, bench, verbose, bus, name, seed=None):
        d = os.path.join(bench.dir, name)
        os.makedirs(d)
        if seed:    # seed(persistent state file, runtime state file)
            seed(os.path.join(d, "state", "state.yaml"), os.path.join(bench.rundir, name, "state.yaml"))
        self.socket = os.path.join(d, "vmm.sock")
        argv = [getattr(bench, "daemon_bin", None) or os.path.join(bench.build, "daemon/pmufilterd"), "--config", bench.config, "--socket", self.socket,
                "--state-dir", os.path.join(d, "state"), "--runtime-dir", os.path.join(bench.rundir, name)]
        argv += ["--bus-address", bus.address] if bus else ["--no-bus"]
        if verbose:
            argv.append("-v")
        # As pmufilterd.service runs it: CPUSchedulingPolicy=batch.
        argv = ["chrt", "--batch", "0"] + argv
        self.name = name
        self.stopping = False
        # As pmufilterd.socket starts it: the VMM socket is passed, bound by
        # "systemd" (here, us), 0660.  sh execs the daemon under its own
        # pid, which LISTEN_PID must name.
        listen = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listen.bind(self.socket)
        os.chmod(self.socket, 0o660)
        listen.listen(socket.SOMAXCONN)
        fd = listen.fileno()
        argv = ["sh", "-c", ('exec 3<&%d %d<&-; ' % (fd, fd) if fd != 3 else "") +
                'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=vmm; exec "$@"', "sh"] + argv
        self.start_stamped(bench, argv, "pmufilterd-" + name, preexec_fn=raise_nofile(), pass_fds=(listen.fileno(),))
        listen.close()
        bench.daemons.append(self)
        self.wait_log(r"pmufilterd .* running", 120)
        self.pid = self.proc.pid

    def stop(self):
        self.stopping = True
        Stamped.stop(self)

    def status(self):
        with open("/proc/%d/status" % self.pid) as f:
            return dict(line.split(":", 1) for line in f if ":" in line)

    def rss(self):
        return int(self.status()["VmRSS"].split()[0]) * 1024

    def nvms(self, bus):
        out = subprocess.run(["busctl", "--address=" + bus.address, "get-property", "org.pmufilterd1",
                              "/org/pmufilterd1", "org.pmufilterd1.Manager", "NVMs"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        return int(out[1]) if len(out) == 2 else -1

    def wait_vms_below(self, bus, n, timeout):
        deadline = time.time() + timeout
        while self.nvms(bus) >= n and time.time() < deadline:
            time.sleep(0.5)


class Echo(Stamped):
    """echo-peer: answers each ATTACH with a fixed APPLY of these events."""

    def __init__(self, bench, events, profile, name):
        self.socket = os.path.join(bench.dir, name + ".sock")
        self.start_stamped(bench, [bench.prog("echo-peer"), "--socket", self.socket, "--events", events,
                                   "--profile", profile], name, preexec_fn=raise_nofile())
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if time.time() > deadline or self.proc.p.poll() is not None:
                raise Failure("echo-peer did not listen on %s" % self.socket)
            time.sleep(0.02)


class LifeFloor(Stamped):
    """life-floor: the I/O of a VM life in a bare epoll loop (not ours)."""

    def __init__(self, bench, events, bus, name):
        self.socket = os.path.join(bench.dir, name + ".sock")
        d = os.path.join(bench.rundir, name)
        os.makedirs(d, exist_ok=True)
        self.start_stamped(bench, [bench.prog("life-floor"), "--socket", self.socket, "--bus", bus.address,
                                   "--events", events, "--dir", d], name, preexec_fn=raise_nofile())
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if time.time() > deadline or self.proc.p.poll() is not None:
                raise Failure("life-floor did not listen on %s" % self.socket)
            time.sleep(0.02)
        self.pid = self.proc.pid


class Holder:
    """vm-holder: count VMs, each with a live session to the daemon."""

    def __init__(self, bench, socket_path, count, trace=False):
        self.count = count
        argv = [bench.prog("vm-holder"), "--socket", socket_path, "--count", str(count)]
        if trace:
            argv.append("--trace")
        self.proc = Proc(bench.procs, argv, stdin=True)
        self.mark = 0
        if trace:
            self.wait_ready(60)

    def wait_ready(self, timeout):
        self.proc.wait_line(lambda l: l.startswith("ready "), timeout)

    def command(self, c):
        if c == "reset":
            self.stats()                # what --trace kept buffered comes before the mark
            self.mark = len(self.proc.lines_now())
        self.proc.write(c + "\n")

    def stats(self):
        start = len(self.proc.lines_now())
        self.proc.write("stats\n")
        _, line = self.proc.wait_line(lambda l: l.startswith("stats "), 30, start)
        return tuple(int(x) for x in line.split()[1:])

    def traced(self):
        """The "apply" lines since the last reset: (ioctl ns, in, out); the
        "stats" answer writes out what vm-holder --trace kept buffered."""
        self.stats()
        return [tuple(int(x) for x in l.split()[1:4]) for l in self.proc.lines_now()[self.mark:]
                if l.startswith("apply ")]

    def applies(self):
        return [t[0] for t in self.traced()]

    def stop(self):
        self.proc.stop(60)


class Listener:
    """uevent-listen, the bare netlink listener, writing to a file."""

    def __init__(self, bench):
        self.file = tempfile.mktemp(prefix="uevents.", dir=bench.dir)
        self.proc = Proc(bench.procs, [bench.prog("uevent-listen")], out=self.file)
        deadline = time.time() + 10
        while "listening" not in open(self.file).read(64):
            if time.time() > deadline or self.proc.p.poll() is not None:
                raise Failure("uevent-listen did not start")
            time.sleep(0.02)

    def lines(self):
        out = []
        with open(self.file) as f:
            for line in f:
                parts = line.split(" ", 2)
                if parts[0].isdigit():
                    out.append((int(parts[0]), parts[1].strip(), parts[2].strip() if len(parts) > 2 else ""))
        return out

    def creates_since(self, mark):
        out = {}
        for t, kind, rest in self.lines():
            if t >= mark and kind == "kvm" and rest.startswith("create "):
                out.setdefault(rest.split()[1], []).append(t)
        return out

    def lost_since(self, mark):
        return sum(1 for t, kind, _ in self.lines() if t >= mark and kind == "lost")

    def stop(self):
        self.proc.stop(5)


class Bus:
    """A private dbus-daemon with the system bus defaults and the shipped
    policy (busharness.BUS_CONFIG), plus one rule that lets the echo
    service of the D-Bus reads be called."""

    def __init__(self, bench):
        from busharness import BUS_CONFIG, POLICY
        self.owner = bench
        self.dir = tempfile.mkdtemp(prefix="bus.", dir=bench.dir)
        sock = os.path.join(self.dir, "system_bus_socket")
        self.address = "unix:path=" + sock
        conf = os.path.join(self.dir, "system.conf")
        extra = ('  <policy context="mandatory">\n    <allow send_path="/bench"/>\n  </policy>\n')
        with open(conf, "w") as f:
            f.write(BUS_CONFIG.format(socket=sock, policy=POLICY, extra=extra))
        self.proc = Proc(bench.procs, ["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile",
                                       "--print-address"])
        self.proc.wait_line(lambda l: l.startswith("unix:"), 10)
        self.echo = None

    def bench_argv(self, mode, *args):
        return [self.owner.prog("bus-bench"), mode, "--address", self.address] + list(args)

    def bench(self, mode, *args, raw=False):
        r = subprocess.run(self.bench_argv(mode, *args), capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise Failure("bus-bench %s failed: %s" % (mode, r.stderr.strip()))
        lines = r.stdout.splitlines()
        return lines if raw else [int(l.split()[1]) for l in lines]

    def call(self, method, n, dest=None, path=None, interface=None):
        args = ["--method", method, "--count", str(n)]
        if dest:
            args += ["--dest", dest, "--path", path, "--interface", interface]
        lines = self.bench("call", *args, raw=True)
        return [int(l.split()[1]) for l in lines], int(lines[-1].split()[2])

    def echo_serve(self, bench, list_bytes, objects_bytes, mirror=False):
        # A method return's header here is ~100 bytes: the blob makes up the rest.
        self.echo = Proc(bench.procs, self.bench_argv("echo-serve", "--list-bytes", str(max(0, list_bytes - 100)),
                                                      "--objects-bytes", str(max(0, objects_bytes - 100)),
                                                      *(["--mirror"] if mirror else [])))
        _, line = self.echo.wait_line(lambda l: l.startswith("serving "), 120)
        return line.split()[1]

    def reply_size(self, method, dest="org.pmufilterd1", path="/org/pmufilterd1", iface=None):
        """Bytes of the reply on the wire, from a pcap of the bus (busctl capture)."""
        if not iface:
            iface = ("org.freedesktop.DBus.ObjectManager" if method == "GetManagedObjects"
                     else "org.pmufilterd1.Manager")
        pcap = os.path.join(self.dir, method + ".pcap")
        with open(pcap, "wb") as f:
            cap = subprocess.Popen(["busctl", "--address=" + self.address, "capture"], stdout=f,
                                   stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                subprocess.run(["busctl", "--address=" + self.address, "call", dest, path, iface, method],
                               stdout=subprocess.DEVNULL, timeout=60)
                time.sleep(0.5)
            finally:
                cap.terminate()
                cap.wait(10)
        return max(pcap_lengths(pcap), default=0)

    def stop(self):
        if self.echo:
            self.echo.stop()
        self.proc.stop()


def pcap_lengths(path):
    """Original lengths of the packets of a pcapng file (what busctl capture writes)."""
    with open(path, "rb") as f:
        data = f.read()
    out, i, e = [], 0, "<"
    while i + 12 <= len(data):
        btype = struct.unpack(e + "I", data[i:i + 4])[0]
        if btype == 0x0A0D0D0A:         # section header: its byte order
            e = "<" if data[i + 8:i + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        blen = struct.unpack(e + "I", data[i + 4:i + 8])[0]
        if blen < 12:
            break
        if btype == 6:                  # enhanced packet
            out.append(struct.unpack(e + "I", data[i + 24:i + 28])[0])
        i += blen
    return out


def fd_kinds(pid):
    """What each fd of pid is: 'uevent' (a NETLINK_KOBJECT_UEVENT socket),
    'timer', 'signal', 'socket', 'inotify', ..."""
    netlink = {}
    with open("/proc/net/netlink") as f:
        next(f)
        for line in f:
            c = line.split()
            netlink[c[-1]] = int(c[1])     # inode -> protocol
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            out[int(fd)] = "uevent" if netlink.get(m.group(1)) == 15 else "socket"
        elif "timerfd" in link:
            out[int(fd)] = "timer"
        elif "signalfd" in link:
            out[int(fd)] = "signal"
        else:
            out[int(fd)] = re.sub(r"^anon_inode:\[?|\]$", "", link)
    return out


class Profile:
    """perf record -g -p PID into DIR/PHASE.data for the life of a with-block;
    nothing when DIR is None."""

    def __init__(self, directory, pid, phase):
        self.p = None
        if directory:
            os.makedirs(directory, exist_ok=True)
            self.p = subprocess.Popen(["perf", "record", "-q", "-g", "-p", str(pid), "-o",
                                       os.path.join(directory, phase + ".data")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return False


def strace_wakeups(bench, pid, seconds):
    """Trace pid for seconds; count the epoll_wait calls that returned
    after blocking, each named by the kind of the first fd used after it
    ('timer', 'uevent', 'socket': a session, the bus (also when it only
    became writable again), ...), or 'timeout' when it returned empty."""
    log = os.path.join(bench.dir, "strace.%d" % pid)
    kinds = fd_kinds(pid)
    p = subprocess.Popen(["strace", "-qq", "-p", str(pid), "-o", log], stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
    finally:
        p.terminate()
        p.wait(10)
    wakes, pending = {}, False
    with open(log) as f:
        for line in f:
            m = re.match(r"(epoll_p?wait\d?)\(\d+, .*, (-?\d+|NULL)\) += (\d+)", line)
            if m:
                if pending:
                    wakes["unknown"] = wakes.get("unknown", 0) + 1
                pending = m.group(2) != "0"     # a blocking wait returned
                if pending and m.group(3) == "0":
                    wakes["timeout"] = wakes.get("timeout", 0) + 1
                    pending = False
                continue
            m = re.match(r"\w+\((\d+),", line)
            if pending and m and not line.startswith(("epoll_ctl", "close")):
                k = kinds.get(int(m.group(1)), "fd")
                wakes[k] = wakes.get(k, 0) + 1
                pending = False
    if pending:
        wakes["unknown"] = wakes.get("unknown", 0) + 1
    return wakes


def time_runs(argv_a, argv_b, k):
    """Wall time of k runs of a command (alternating a and b when b is given)."""
    out = []
    for i in range(k):
        argv = argv_b if (argv_b and i % 2) else argv_a
        t0 = time.monotonic_ns()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        out.append(time.monotonic_ns() - t0)
        if r.returncode != 0:
            raise Failure("%s failed: %s" % (" ".join(argv), r.stderr.strip()))
    return out


# --- the machine ------------------------------------------------------------

def check_machine():
    if not os.path.exists("/dev/kvm"):
        raise Skip("/dev/kvm is absent")
    if os.geteuid() != 0:
        raise Skip("needs root (kcmp, SO_RCVBUFFORCE, fd limits beyond the hard limit)")
    for tool in ("dbus-daemon", "busctl"):
        if not any(os.access(os.path.join(p, tool), os.X_OK) for p in os.environ.get("PATH", "").split(":")):
            raise Skip("%s is not installed" % tool)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        pmu = open("/sys/module/kvm/parameters/enable_pmu").read().strip()
    except OSError:
        pmu = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "kvm.enable_pmu": pmu,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_start": os.getloadavg(),
            "mem_total_mib": mem_total() // (1024 * 1024)}


def buildtype(build):
    import json
    try:
        with open(os.path.join(build, "meson-info/intro-buildoptions.json")) as f:
            for o in json.load(f):
                if o["name"] == "buildtype":
                    return o["value"]
    except (OSError, ValueError):
        pass
    return "?"


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def memory(pid):
    """(RSS, PSS, private) bytes of pid."""
    v = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2 and p[1].isdigit():
                v[p[0].rstrip(":")] = int(p[1]) * 1024
    return v.get("Rss", 0), v.get("Pss", 0), v.get("Private_Clean", 0) + v.get("Private_Dirty", 0)


def rss_by_object(pid):
    """KiB of RSS of pid per mapped object: a file's base name, "[anon]" for
    anonymous memory (heap, stack, private mappings), "[exe]" for the
    program's own file."""
    exe = os.path.realpath("/proc/%d/exe" % pid)
    v, name = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            p = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                path = p[5] if len(p) >= 6 else ""
                name = ("[exe]" if path == exe else os.path.basename(path) if path.startswith("/") else "[anon]")
            elif p and p[0] == "Rss:" and name:
                v[name] = v.get(name, 0) + int(p[1])
    return v


def fs_type(path):
    """The file system a path is on, from /proc/mounts (longest mount point)."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            c = line.split()
            if len(c) >= 3 and (path == c[1] or path.startswith(c[1].rstrip("/") + "/")) and len(c[1]) > len(best):
                best, kind = c[1], "%s (%s)" % (c[2], c[1])
    return kind


def mem_available():
    return meminfo("MemAvailable")


def mem_total():
    return meminfo("MemTotal")


def other_kvm_users():
    """Processes other than ours that hold VMs or run pmufilterd: they make noise."""
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            comm = open("/proc/%s/comm" % pid).read().strip()
            if "State:\tZ" in open("/proc/%s/status" % pid).read():
                continue
            n = 0
            if comm != "pmufilterd":
                for fd in os.listdir("/proc/%s/fd" % pid):
                    try:
                        if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "anon_inode:kvm-vm":
                            n += 1
                    except OSError:
                        pass
            if comm == "pmufilterd" or n:
                out.append("%s %s%s" % (pid, comm, " (%d VMs)" % n if n else ""))
        except OSError:
            continue
    return out


# --- arithmetic -------------------------------------------------------------

def pct(samples, p):
    """Nearest-rank percentile; None for no samples."""
    if not samples:
        return None
    s = sorted(samples)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def first_after(ts, t0):
    for t in ts:
        if t >= t0:
            return t
    return None


SCALE = {"us": 1e3, "ms": 1e6, "KiB": 1024, "B": 1, "/min": 1}


def fmt(v, unit):
    if v is None:
        return "—"
    x = v / SCALE[unit]
    if unit in ("KiB",) and x >= 1024:
        return "%.2f MiB" % (x / 1024)
    if x >= 100 or unit == "B":
        return "%.0f %s" % (x, unit)
    return "%.3g %s" % (x, unit)


def fmt_ratio(r):
    return "—" if r is None else "%.2fx" % r


def cells(r):
    u = r["unit"]
    if "p50" in r:
        return ("%s / %s" % (fmt(r["p50"], u), fmt(r["p99"], u)),
                "%s / %s" % (fmt(r["base_p50"], u), fmt(r["base_p99"], u)),
                "%s / %s" % (fmt_ratio(r["ratio_p50"]), fmt_ratio(r["ratio_p99"])))
    if "ratio" in r:
        return fmt(r["value"], u), fmt(r["base"], u), fmt_ratio(r["ratio"])
    return fmt(r["value"], u), "—", "—"


def verdict(r):
    if "pass" not in r:
        return ""
    return "pass" if r["pass"] else "**MISS**"


def format_row(r):
    m, b, q = cells(r)
    return "%-90s %-24s base %-24s ratio %-14s %s %s" % (r["what"][:90], m, b, q, r.get("target", ""), verdict(r))


def markdown(results):
    rows = ["| Figure | Measured (p50 / p99) | Baseline (p50 / p99) | Ratio | Target | |",
            "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        m, b, q = cells(r)
        rows.append("| %s | %s | %s | %s | %s | %s |" % (r["what"], m, b, q, r.get("target", ""), verdict(r)))
    misses = results.get("misses")
    if misses:
        rows += ["", "Each miss, with what this run measured of its cause:", ""]
        rows += ["* %s: %s" % (x["what"], x["why"]) for x in misses]
    return "\n".join(rows) + "\n"


# --- where the daemon's time goes in a VM's life ------------------------------

# The steps of a VM's life in the daemon, each named by functions of
# daemon/ (and the libraries it calls through them): a sample of the daemon
# belongs to the step of its leaf-most frame found here (a signal sent from
# the teardown is "signals", the rest of the teardown "teardown"); a sample
# with none of them is the event loop's (sd-event, epoll_wait) or "other".
STEP_FUNCTIONS = [
    ("uevent", "create/destroy uevents received and parsed, the creator found, the VM registered",
     ["on_io", "receive", "dispatch_device", "udev_monitor_receive_device", "kvm_uevent_parse",
      "kvm_uevent_parse_message", "drained",
      "resolve_create", "resolve_destroy", "on_uevent", "deliver_vm_detected", "registry_add",
      "deliver_arm_attach_timeout", "registry_creator_seen", "creators_filter", "socket_readable"]),
    ("facts", "process facts (/proc/<pid>/stat: start time, comm)",
     ["proc_facts_open", "proc_facts_open_task", "proc_facts_load", "read_stat"]),
    ("session reads", "recvmmsg() of ATTACH, APPLIED and the close, edge-triggered",
     ["on_session_io", "session_receive", "handle_message", "proto_parse_verb"]),
    ("ATTACH", "accept, peer credentials and pidfd, fd checks (readlink, kcmp), claims, find the VM",
     ["on_accept", "session_new", "handle_attach", "on_session_attach", "find_vm", "find_own_vm",
      "take_claims", "proto_parse_attach", "same_file", "uevent_watcher_flush", "labels_to_strv",
      "session_attach_vm", "deliver_update_override", "registry_set_name"]),
    ("match", "decide(): override, rules, default profile",
     ["deliver_decide", "decide", "match_rules", "decider_default_profile"]),
    ("APPLY", "APPLY formatted and sent, its deadline armed",
     ["deliver_push", "session_send_apply", "proto_format_apply", "session_start_waiting"]),
    ("APPLIED", "APPLIED parsed, state and waiters",
     ["on_session_applied", "deliver_record_result", "proto_parse_applied", "session_stop_waiting",
      "registry_set_state"]),
    ("records", "the VM's record in the runtime directory's log: appended a batch per write(), a line when gone; "
                "compactions",
     ["record_run", "records_mark", "records_forget", "write_file_atomic", "write_record", "write_entry", "commit",
      "append_pending", "compact", "write_all_entries", "open_log", "turn_done"]),
    ("signals", "D-Bus signals: VMNew, InterfacesAdded, FilterApplied, PropertiesChanged, VMRemoved, "
                "InterfacesRemoved, NVMs",
     ["on_registry", "announce_run", "announce_done", "vm_said", "vm_changed", "vm_new", "vm_removed",
      "manager_changed", "emit_vm_signal_raw", "on_profiles_changed", "emit_profile_vms_changed",
      "sd_bus_process", "sd_bus_flush", "sd_bus_emit_signal", "sd_bus_emit_properties_changed",
      "sd_bus_emit_object_added", "sd_bus_emit_object_removed"]),
    ("journal", "audit records (here: lines on stderr, a pipe)",
     ["audit_record", "audit_record_extra", "log_full_errno", "sd_journal_sendv", "emit"]),
    ("teardown", "session closed (its /proc checks), VM dropped (the record's G line aside)",
     ["deliver_vm_gone", "on_session_closed", "session_closed", "session_free", "registry_remove",
      "deliver_disarm_attach_timeout"]),
    ("status line", "STATUS= counts (sd_notify; no NOTIFY_SOCKET here)",
     ["notify_status", "manager_notify_status", "on_status_timer", "on_status"]),
]


def _func_step():
    m = {}
    for step, _, funcs in STEP_FUNCTIONS:
        for f in funcs:
            m.setdefault(f, step)
    return m


def perf_steps(data, daemon_binary="pmufilterd"):
    """Samples of a perf.data (--call-graph dwarf) by step: ({step: n},
    {daemon function: n} of the samples counted as "other", {step: {"leaf
    user-space function < the step's function": n}}: where in each step).  Walking a
    sample's frames from the leaf: the first function of STEP_FUNCTIONS
    names its step; with none, a sample in sd-event's functions (nothing of
    the daemon's below them) is the event loop's, any other "other" (by its
    leaf-most function of the daemon's own binary)."""
    fs = _func_step()
    out, others, where = {}, {}, {}
    p = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso", "--no-inline"], capture_output=True,
                       text=True, timeout=900)
    for block in p.stdout.split("\n\n"):
        step = first_daemon = None
        loop = False
        user = None         # the leaf-most frame outside the kernel
        for line in block.splitlines():
            m = re.match(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
            if not m:
                continue
            name = re.sub(r"\.(constprop|isra|part|cold)\.\d+.*|\.cold$|@.*$|\+0x.*$", "", m.group(1))
            if user is None and "kernel" not in m.group(2):
                user = name
            if name in fs:
                step = fs[name]
                w = where.setdefault(step, {})
                key = "%s < %s" % (user, name) if user and user != name else name
                w[key] = w.get(key, 0) + 1
                break
            if first_daemon is None and os.path.basename(m.group(2)) == daemon_binary:
                first_daemon = name
            if first_daemon is None and (name.startswith("sd_event_") or name in ("epoll_wait", "epoll_pwait")):
                loop = True
        if step is None:
            if not block.strip():
                continue
            if loop:
                step = "event loop"
            elif first_daemon is not None:
                step = "other"
                others[first_daemon] = others.get(first_daemon, 0) + 1
            else:
                step = "other"
                others["(outside the daemon)"] = others.get("(outside the daemon)", 0) + 1
        out[step] = out.get(step, 0) + 1
    return out, others, where


def strace_counts(log, rundir):
    """What a traced daemon did: syscalls by name, and what they were for:
    'wakes' (epoll_wait that may sleep, returning events), 'record_writes'
    (write()s to the records log: a batch of records, or a VM gone),
    'record_compactions' (the log renamed into place), 'record_unlinks'
    (under the runtime directory), 'signals' (D-Bus signals sent),
    'log_lines' (writes to stderr), 'proc_reads' (opens under /proc).
    Paths are strace -yy's."""
    c = {}

    def add(k, n=1):
        c[k] = c.get(k, 0) + n
    with open(log) as f:
        for line in f:
            m = re.match(r"(\w+)\((.*)\)\s+= (-?\d+)", line)
            if not m:
                continue
            name, args, ret = m.group(1), m.group(2), int(m.group(3))
            add("syscalls")
            add(name)
            if name.startswith("epoll_") and "wait" in name:
                t = re.search(r", (-?\d+)(, NULL, \d+)?$", args)
                if ret > 0 and t and t.group(1) != "0":
                    add("wakes")
            elif name.startswith("rename") and re.search(r'"%s/[^"]*/records"' % re.escape(rundir), args):
                add("record_compactions")
            elif name == "write" and re.match(r"\d+<%s/[^>]*/records>" % re.escape(rundir), args):
                add("record_writes")
            elif name.startswith("unlink") and rundir in args:
                add("record_unlinks")
            elif name in ("sendmsg", "writev", "write") and re.search(r'"l\\4', args):
                add("signals")
            elif name == "write" and args.startswith("2<"):
                add("log_lines")
            elif name in ("openat", "open") and '"/proc/' in args:
                add("proc_reads")
    return c
