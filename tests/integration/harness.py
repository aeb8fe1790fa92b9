# SPDX-License-Identifier: LGPL-2.1-or-later
"""Harness for the integration tests: runs the *built* pmufilterd against a
private socket and real /dev/kvm, reads its audit records, and talks the VMM
protocol from Python for hostile-client tests.

Each test module calls harness.main(globals()): every function named test_*
is a case; `module.py CASE` runs one (meson registers each case), no
argument runs all.  Exit 77 = skipped, with the reason printed."""

import array
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("PMUFILTER_BUILD", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../build")))
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
DAEMON = os.path.join(BUILD, "daemon/pmufilterd")
CTL = os.path.join(BUILD, "cli/pmufilterctl")
VMM = os.path.join(BUILD, "tests/helpers/test-vmm")
SHIM = os.path.join(BUILD, "client/libpmufilter-preload.so")
# A sanitizer build (meson sets this from b_sanitize): its shim needs the
# sanitizer runtime loaded ahead of it, which an unsanitized QEMU lacks.
SANITIZED = os.environ.get("PMUFILTER_SANITIZED", "0") not in ("", "0")
SHIPPED = os.path.join(SRC, "conf/pmufilterd.yaml")
# The only uid the VMM side attaches to (meson's daemon_uid, SO_PEERCRED).
DAEMON_UID = int(os.environ.get("PMUFILTER_DAEMON_UID", "0"))

MID = {
    "attach": "b1be182962774d2dab6f8b6b86c06596",
    "applied": "1ea239d184ed43abbe2818286fc1e3db",
    "failed": "8e88808ab8594a2d8dec232389188d16",
    "unmanaged": "f407dd7ea0e64d42ad13d3911067d020",
    "reload": "31e9b156b848491ea6d96f28f63f047e",
    "lockdown": "4df81a43d77c41bd8e8f615bf91555aa",
    "refused": "0b478910967b49bbabd90581a6bdc778",
    "gone": "24eff00b553849aa9acec31a87cd8b48",
}

KVM_CREATE_VM = 0xAE01
# What ASan, LSan and UBSan print when they find something (sanitizer builds).
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: \w+Sanitizer")
RECORD = re.compile(r"^pmufilterd: (\w+): (.*) \[MESSAGE_ID=(\w+) VM_ID=(\S+) PROFILE=(\S+) PID=(-?\d+)(?: [A-Z_]+=\S*)*\]$")


# The policy most daemon tests run: a default profile, a profile chosen by a
# label, and one chosen by a fact (exe) with a label.
TEST_POLICY = """\
version: 1
settings:
  attach_timeout_ms: %(timeout)d
  unmanaged: %(unmanaged)s
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ %(minimal)s ]
  steady:
    tier: tenant
    events: [ %(steady)s ]
  by-exe:
    tier: tenant
    events: [ 0x00c0, 0x00c2 ]
rules:
  - match: { label.kind: steady }
    profile: steady
  - match: { exe: "*/test-vmm", label.kind: exe }
    profile: by-exe
"""


def policy(timeout=2000, unmanaged="warn", minimal="0x00c0, 0x00c4", steady="0x00c0"):
    return TEST_POLICY % {"timeout": timeout, "unmanaged": unmanaged, "minimal": minimal, "steady": steady}


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def need_kvm():
    if not os.path.exists("/dev/kvm"):
        raise Skip("/dev/kvm is absent on this machine")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise Skip("/dev/kvm is not accessible to uid %d" % os.getuid())


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root (kcmp on other processes, the kvm group)")


def need(path, what):
    if not os.path.exists(path):
        raise Skip("%s is not built (%s)" % (what, path))
    if path == SHIM and SANITIZED:
        raise Skip("%s is built with sanitizers (b_sanitize): it cannot be preloaded into an "
                   "unsanitized program such as QEMU; the unsanitized build runs this test" % what)


def kvm_create_vm():
    """A real VM in this process: returns (kvm_fd, vm_fd)."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    return kvm, vm


RECORD_MAX = 64 * 1024
_ENTRY = re.compile(rb"(R) ([1-9][0-9]*-(?:0|[1-9][0-9]*)) (0|[1-9][0-9]*)\n|(G) ([1-9][0-9]*-(?:0|[1-9][0-9]*))\n")


def records_log_entries(data):
    """The entries of the daemon's VM records log (<runtime dir>/records,
    records.h) as records_log_parse() splits them: "R <id> <len>\\n" and len
    bytes of the record, or "G <id>\\n".  Returns ([(id, start, end, record
    bytes or None for G)], how many bytes were entries, why the rest is
    not: None, "torn" (cut short at the end) or "bad")."""
    entries, i, why = [], 0, None
    while i < len(data):
        m = _ENTRY.match(data, i)
        if not m:
            # cut short at the end inside a header: a prefix of a good one
            prefix = re.fullmatch(rb"[RG]( ([1-9][0-9]*(-((0|[1-9][0-9]*)( (0|[1-9][0-9]*)?)?)?)?)?)?",
                                  data[i:])
            prefix = prefix and not (data[i:i + 1] == b"G" and prefix.group(6) is not None)
            why = "torn" if prefix else "bad"
            break
        if m.group(1):
            n = int(m.group(3))
            if n > RECORD_MAX:
                why = "bad"
                break
            if m.end() + n > len(data):
                why = "torn"
                break
            entries.append((m.group(2).decode(), i, m.end() + n, data[m.end():m.end() + n]))
            i = m.end() + n
        else:
            entries.append((m.group(5).decode(), i, m.end(), None))
            i = m.end()
    return entries, i, why


def parse_records_log(data):
    """The records log as records_restore() reads it: the last entry of an
    id wins, G removes it.  Returns ({id: record text}, how many bytes were
    entries, why the rest is not: None, "torn" or "bad")."""
    entries, good, why = records_log_entries(data)
    live = {}
    for vm_id, _, _, body in entries:
        if body is None:
            live.pop(vm_id, None)
        else:
            live[vm_id] = body.decode("utf-8", "replace")
    return live, good, why


def records_log_entry(vm_id, body):
    """One "R" entry of the records log, its length right."""
    body = body.encode() if isinstance(body, str) else body
    return b"R %s %d\n" % (vm_id.encode(), len(body)) + body


def read_records(d):
    """{VM id: record text} of the log of Daemon d ({} if there is none)."""
    try:
        with open(os.path.join(d.dir, "run", "records"), "rb") as f:
            return parse_records_log(f.read())[0]
    except FileNotFoundError:
        return {}


class Record:
    def __init__(self, level, message, mid, vm, profile, pid):
        self.level, self.message, self.mid = level, message, mid
        self.vm = None if vm == "n/a" else vm
        self.profile = None if profile == "n/a" else profile
        self.pid = int(pid)

    def __repr__(self):
        return "<%s %s vm=%s profile=%s: %s>" % (self.level, self.mid[:8], self.vm, self.profile, self.message)


class Daemon:
    """The built pmufilterd with its own config and socket in a temp dir."""

    # Where the daemon reads its policy by default (no --config): the main
    # file and conf.d/ (pmufilterd.yaml(5)).
    ETC = "/etc/pmufilterd"

    def __init__(self, config=None, config_text=None, args=(), start=True, bus=None, etc=None):
        """etc: {path under /etc/pmufilterd: text}, to run the daemon as it
        runs installed, without --config, on these files: they are laid
        over /etc in a mount namespace of its own (see start())."""
        need(DAEMON, "pmufilterd")
        self.dir = tempfile.mkdtemp(prefix="pmufilterd-test.")
        self.socket = os.path.join(self.dir, "vmm.sock")
        self.etc = None
        if etc is not None:
            need_root()
            if not shutil.which("unshare"):
                raise Skip("unshare is not installed: /etc/pmufilterd cannot be laid over")
            self.etc = os.path.join(self.dir, "etc")
            for path, text in etc.items():
                full = os.path.join(self.etc, "pmufilterd", path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
                    f.write(text)
            config = os.path.join(self.etc, "pmufilterd/pmufilterd.yaml")
        if config_text is not None:
            config = os.path.join(self.dir, "pmufilterd.yaml")
            with open(config, "w") as f:
                f.write(config_text)
        self.config = config or SHIPPED
        self.args = list(args) + (["--bus-address", bus] if bus else ["--no-bus"])
        self.args += ["--state-dir", os.path.join(self.dir, "state"), "--runtime-dir", os.path.join(self.dir, "run")]
        self.lines = []
        self.sanitizer = []     # a sanitizer's report, kept from wherever the test clears lines
        self.reader = None
        self.lock = threading.Condition()
        self.proc = None
        if start:
            self.start()

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def start(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        argv = [DAEMON, "--config", self.config, "--socket", self.socket, "-v"] + self.args
        if self.etc:
            # The installed layout, not touching the host's /etc: an overlay
            # of our files over it, in a mount namespace of the daemon's own.
            # unshare execs, so the daemon keeps this pid (reload(), stop()).
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount -t overlay overlay -o "lowerdir=$0:/etc" /etc && exec "$@"', self.etc,
                    DAEMON, "--socket", self.socket, "-v"] + self.args
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
        self.reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self.reader.start()
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            check(self.proc.poll() is None, "pmufilterd exited at start-up:\n" + self.log())
            check(time.time() < deadline, "pmufilterd did not create its socket:\n" + self.log())
            time.sleep(0.02)

    def _read(self, stream):
        for line in stream:
            with self.lock:
                self.lines.append(line.rstrip("\n"))
                if (self.sanitizer or SANITIZER_REPORT.search(line)) and len(self.sanitizer) < 100:
                    self.sanitizer.append(line.rstrip("\n"))
                self.lock.notify_all()

    def log(self):
        with self.lock:
            return "\n".join(self.lines[-80:])

    def records(self, kind=None, vm=None):
        out = []
        with self.lock:
            lines = list(self.lines)
        for line in lines:
            m = RECORD.match(line)
            if not m:
                continue
            r = Record(*m.groups())
            if kind and r.mid != MID[kind]:
                continue
            if vm and r.vm != vm:
                continue
            out.append(r)
        return out

    def wait_records(self, kind, count=1, timeout=10, where=None):
        deadline = time.time() + timeout
        while True:
            rs = [r for r in self.records(kind) if where is None or where(r)]
            if len(rs) >= count:
                return rs
            if time.time() > deadline:
                raise Failure("expected %d '%s' records within %ss, got %d:\n%s" %
                              (count, kind, timeout, len(rs), self.log()))
            with self.lock:
                self.lock.wait(0.1)

    def wait_line(self, pattern, timeout=10):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            with self.lock:
                for line in self.lines:
                    if rx.search(line):
                        return line
                if time.time() > deadline:
                    raise Failure("no log line matching %r within %ss:\n%s" % (pattern, timeout, "\n".join(self.lines[-80:])))
                self.lock.wait(0.1)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def alive(self):
        return self.proc.poll() is None

    def restart(self):
        """Stop the process and start it again on the same dir (config,
        socket, state): a restart as systemd would do it."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        # start() waits for the socket to appear: the old one must not count.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("pmufilterd did not stop on SIGTERM")
        shutil.rmtree(self.dir, ignore_errors=True)
        # A leak is reported at exit: read stderr to its end first.
        if self.reader:
            self.reader.join(10)
        check(not self.sanitizer, "pmufilterd: the sanitizer reported:\n" + "\n".join(self.sanitizer))
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Peer:
    """A VMM-protocol peer written by hand, for hostile-client tests."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(10)
        self.s.connect(path)

    def send(self, text, fds=()):
        data = text.encode() if isinstance(text, str) else text
        if fds:
            self.s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.s.send(data)

    def recv(self):
        data = self.s.recv(65536)
        if not data:
            return None
        lines = data.decode().split("\n")
        msg = {"_verb": lines[0]}
        for line in lines[1:]:
            if "=" in line:
                k, v = line.split("=", 1)
                msg[k] = v
        return msg

    def closed(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(65536) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.s.close()


def attach_msg(vmfd, **kw):
    lines = ["PMUFILTER/1 ATTACH", "VMFD=%d" % vmfd]
    for k, v in kw.items():
        key = "LABEL." + k[6:] if k.startswith("label_") else k.upper()
        lines.append("%s=%s" % (key, v))
    return "\n".join(lines) + "\n"


def main(ns):
    cases = sorted(k for k, v in ns.items() if k.startswith("test_") and callable(v))
    wanted = sys.argv[1:] or cases
    failed = skipped = passed = 0
    for name in wanted:
        try:
            ns[name]()
            print("ok - %s" % name)
            passed += 1
        except Skip as e:
            print("SKIP %s: %s" % (name, e))
            skipped += 1
        except Failure as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)
