# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private system-like bus for the D-Bus tests, and the clients that use it.

SystemBus runs dbus-daemon with Debian's system bus defaults (deny owning,
deny method calls, allow signals and requested replies, allow the bus
driver) and <include>s the shipped dbus/org.pmufilterd1.conf from the source
tree, so the policy under test is the one that ships.  relaxed=True adds a
mandatory rule that lets anyone call the daemon: then only the daemon's own
check stands between a caller and a change.

AutoPeer is a VMM on the protocol socket that really applies every APPLY
with KVM_SET_PMU_EVENT_FILTER on its own VM fd and answers APPLIED."""

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

from harness import SRC, Failure, Peer, Skip, attach_msg, check, kvm_create_vm

POLICY = os.path.join(SRC, "dbus/org.pmufilterd1.conf")
NAME = "org.pmufilterd1"
EMITS = "org.freedesktop.DBus.Property.EmitsChangedSignal"
KVM_SET_PMU_EVENT_FILTER = 0x4020AEB2
KVM_PMU_EVENT_DENY = 1
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

BUS_CONFIG = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy}</include>
{extra}</busconfig>
"""

RELAXED = """\
  <policy context="mandatory">
    <allow send_destination="org.pmufilterd1"/>
  </policy>
"""


def need_bus_tools():
    for tool in ("dbus-daemon", "busctl", "gdbus", "setpriv"):
        if not shutil.which(tool):
            raise Skip("%s is not installed (tools/install-deps.sh installs it)" % tool)


class SystemBus:
    def __init__(self, relaxed=False):
        need_bus_tools()
        self.dir = tempfile.mkdtemp(prefix="pmufilterd-bus.")
        # nobody must reach the socket: the tests call as nobody too.
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "system_bus_socket")
        self.address = "unix:path=" + self.socket
        self.config = os.path.join(self.dir, "system.conf")
        with open(self.config, "w") as f:
            f.write(BUS_CONFIG.format(socket=self.socket, policy=POLICY, extra=RELAXED if relaxed else ""))
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=" + self.config, "--nofork", "--nopidfile",
                                      "--print-address"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise Failure("dbus-daemon did not start with %s:\n%s" % (self.config, err))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def run(self, argv, nobody=False, timeout=30):
        argv = (NOBODY if nobody else []) + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def busctl(self, *args, nobody=False, timeout=30):
        """busctl with the bus address; returns the CompletedProcess."""
        return self.run(["busctl", "--address=" + self.address] + list(args), nobody, timeout)

    def busctl_ok(self, *args, nobody=False):
        r = self.busctl(*args, nobody=nobody)
        check(r.returncode == 0, "busctl %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r.stdout

    def call(self, path, interface, method, signature="", *args, nobody=False):
        """A method call through busctl; the reply's values (JSON), [] if none."""
        argv = ["--json=short", "call", NAME, path, interface, method] + ([signature] + list(args) if signature else [])
        out = self.busctl_ok(*argv, nobody=nobody)
        return json.loads(out)["data"] if out.strip() else []

    def get(self, path, interface, prop, nobody=False):
        return json.loads(self.busctl_ok("--json=short", "get-property", NAME, path, interface, prop,
                                         nobody=nobody))["data"]

    def wait_property(self, path, interface, prop, pred, what, timeout=10):
        deadline = time.time() + timeout
        while True:
            v = self.get(path, interface, prop)
            if pred(v):
                return v
            check(time.time() < deadline, "%s %s: expected %s, still %r" % (path, prop, what, v))
            time.sleep(0.05)

    def gdbus(self, *args, nobody=False, timeout=30):
        return self.run(["gdbus", args[0], "--address", self.address] + list(args[1:]), nobody, timeout)

    def gdbus_ok(self, *args, nobody=False):
        r = self.gdbus(*args, nobody=nobody)
        check(r.returncode == 0, "gdbus %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r.stdout

    def props(self, path, interface, nobody=False):
        """Properties.GetAll through busctl, as {name: value}."""
        got = self.call(path, "org.freedesktop.DBus.Properties", "GetAll", "s", interface, nobody=nobody)[0]
        return {k: v["data"] for k, v in got.items()}

    def gcall(self, path, method, *args, nobody=False):
        """gdbus call: (returncode, stdout, stderr)."""
        r = self.gdbus("call", "--dest", NAME, "--object-path", path, "--method", method, *args, nobody=nobody)
        return r.returncode, r.stdout, r.stderr

    def gcall_ok(self, path, method, *args, nobody=False):
        rc, out, err = self.gcall(path, method, *args, nobody=nobody)
        check(rc == 0, "gdbus call %s %s failed: %s" % (method, " ".join(args), err.strip()))
        return out

    def gcall_error(self, path, method, *args, error, message=None, nobody=False):
        """gdbus call that must fail with the D-Bus error `error`, its
        message matching `message`; returns the message."""
        rc, out, err = self.gcall(path, method, *args, nobody=nobody)
        m = re.search(r"GDBus\.Error:([\w.]+): (.*)", err)
        check(rc != 0 and m, "%s %s: expected %s, got rc %d: %s%s" % (method, args, error, rc, out, err))
        check(m.group(1) == error, "%s %s: expected %s, got %s: %s" % (method, args, error, m.group(1), m.group(2)))
        if message:
            check(re.search(message, m.group(2)), "%s: message %r does not say %r" % (method, m.group(2), message))
        return m.group(2)

    def monitor(self, tool="busctl", nobody=False):
        return Monitor(self, tool, nobody)


class Lines:
    """The lines a process prints on stream, read as they come."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, pred, what, timeout=10):
        """The first line for which pred is true; Failure after timeout."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.time()
                if left <= 0:
                    raise Failure("monitor saw no %s within %ss:\n%s" % (what, timeout, "\n".join(self.lines[-40:])))
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "\n".join(self.lines)


class Monitor(Lines):
    """`busctl monitor` or `gdbus monitor` on the daemon, collecting output."""

    def __init__(self, bus, tool, nobody=False):
        if tool == "busctl":
            argv = ["busctl", "--address=" + bus.address, "monitor", "--json=short", NAME]
        else:
            argv = ["gdbus", "monitor", "--address", bus.address, "--dest", NAME]
        self.proc = subprocess.Popen((NOBODY if nobody else []) + argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        Lines.__init__(self, self.proc.stdout)
        # Both say so once their match rules (or BecomeMonitor) are in place.
        self.wait(lambda line: line.startswith("Monitoring"), "'Monitoring...' from %s" % tool, timeout=5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def apply_filter(vm_fd, msg):
    """KVM_SET_PMU_EVENT_FILTER with exactly the APPLY's words; the errno (0 ok)."""
    events = [int(e, 16) for e in msg.get("EVENTS", "").split(",") if e]
    action = KVM_PMU_EVENT_DENY if msg.get("ACTION") == "deny" else 0
    buf = bytearray(struct.pack("IIII16x", action, len(events), int(msg.get("FIXED", "0"), 16),
                                int(msg.get("FLAGS", "0"), 0)) + struct.pack("%dQ" % len(events), *events))
    try:
        fcntl.ioctl(vm_fd, KVM_SET_PMU_EVENT_FILTER, buf)
        return 0
    except OSError as e:
        return e.errno


class AutoPeer:
    """A VMM with a real VM that attaches and answers every APPLY by applying
    it; delay holds each answer back (to see calls wait for it)."""

    def __init__(self, socket_path, delay=0.0, **attach):
        self.kvm, self.vm = kvm_create_vm()
        self.delay = delay
        self.force_errno = None         # answer this errno instead of applying
        self.applies = []               # (monotonic time of the answer, APPLY message, errno)
        self.cond = threading.Condition()
        self.peer = Peer(socket_path)
        self.peer.s.settimeout(None)
        self.peer.send(attach_msg(self.vm, **attach), [self.vm])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                msg = self.peer.recv()
            except OSError:
                msg = None
            if msg is None or msg["_verb"] != "PMUFILTER/1 APPLY":
                with self.cond:
                    self.applies.append((time.monotonic(), msg, None))
                    self.cond.notify_all()
                return
            if self.delay:
                time.sleep(self.delay)
            err = self.force_errno if self.force_errno is not None else apply_filter(self.vm, msg)
            answer = "PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=%d\n" % (msg["SERIAL"], err)
            if msg.get("PMU") == "off":
                answer += "PMU_ERRNO=%d\n" % errno.EINVAL
            with self.cond:
                self.applies.append((time.monotonic(), msg, err))
                self.cond.notify_all()
            try:
                self.peer.send(answer)
            except OSError:
                return

    def wait_applies(self, n, timeout=10):
        deadline = time.time() + timeout
        with self.cond:
            while len(self.applies) < n:
                left = deadline - time.time()
                check(left > 0, "the daemon sent %d APPLY, expected %d" % (len(self.applies), n))
                self.cond.wait(left)
            return list(self.applies)

    def detach(self):
        """End the session; the VM lives on."""
        # shutdown, not close alone, wakes the thread blocked in recv().
        try:
            self.peer.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.peer.close()
        self.thread.join(5)

    def close(self):
        self.detach()
        if self.vm >= 0:
            os.close(self.vm)
            os.close(self.kvm)
            self.vm = self.kvm = -1


def interface_shapes(xml_text, names):
    """The named interfaces of an introspection document as {interface:
    {member: shape}}: arguments (name, type, direction), property type,
    access and effective EmitsChangedSignal (absent means "true")."""
    out = {}
    for iface in ET.fromstring(xml_text).findall("interface"):
        if iface.get("name") not in names:
            continue
        d = {}
        for m in iface.findall("method"):
            d["method " + m.get("name")] = [(a.get("name"), a.get("type"), a.get("direction", "in"))
                                            for a in m.findall("arg")]
        for s in iface.findall("signal"):
            d["signal " + s.get("name")] = [(a.get("name"), a.get("type")) for a in s.findall("arg")]
        for p in iface.findall("property"):
            ann = {a.get("name"): a.get("value") for a in p.findall("annotation")}
            d["property " + p.get("name")] = (p.get("type"), p.get("access"), ann.get(EMITS, "true"))
        out[iface.get("name")] = d
    return out


def compare_interfaces(shipped, live, where):
    for iface, members in live.items():
        check(iface in shipped, "%s: interface %s is not in dbus/org.pmufilterd1.xml" % (where, iface))
        for k in sorted(set(members) | set(shipped[iface])):
            check(members.get(k) == shipped[iface].get(k),
                  "%s %s.%s: the XML says %r, the daemon says %r" % (where, iface, k, shipped[iface].get(k),
                                                                    members.get(k)))
