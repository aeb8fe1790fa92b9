#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
test-nspawn.py — the system test (meson suite `system`): pmufilterd as
packaged, under a real systemd.  A Debian bookworm tree (debootstrap,
cached) gets the project installed with `meson install --destdir`, boots
under `systemd-nspawn --boot --register=no --keep-unit --bind=/dev/kvm`, and
everything is checked inside, on the container's own system manager and
system bus: enable --now, verify, the exposure figure, socket activation,
the test VMM and QEMU with the preload shim, VMMs of another user (the
capabilities), pmufilterctl and busctl, the audit records in the journal,
a broken reload, restart and kill -9.

Usage: test-nspawn.py SOURCE_ROOT BUILD_ROOT
Exit: 0 all checks passed, 1 a check failed, 77 skipped (the reason is
printed): not root, no /dev/kvm, no systemd-nspawn/debootstrap, no network
to the Debian mirror.

Environment: PMUFILTER_TEST_CACHE (default /var/cache/pmufilterd-test),
PMUFILTER_TEST_MIRROR (default: the host's apt source for bookworm),
PMUFILTER_TEST_KEEP=1 keeps the container's tree for a post-mortem.

Commands run inside the container through nsenter into the namespaces of
its PID 1 (machinectl and `systemd-run -M` need machined registration, which
--register=no turns off); they keep the caller's capabilities, so anything
whose privileges matter runs as a transient unit of the container's systemd.
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SUITE = "bookworm"
VARIANT = "minbase"
# What the tree needs beyond minbase: a booting systemd, a system bus, the
# daemon's runtime libraries, and QEMU for the preload shim.  Changing the
# list changes the cache key.
PACKAGES = [
    "systemd", "systemd-sysv", "dbus",
    "libyaml-0-2", "libpfm4", "libsmartcols1", "libudev1", "libsystemd0",
    "qemu-system-x86",
]
CACHE = os.environ.get("PMUFILTER_TEST_CACHE", "/var/cache/pmufilterd-test")
SHIM = "/usr/lib/x86_64-linux-gnu/libpmufilter-preload.so"
EXPOSURE_MAX = 2.0
# The daemon's capabilities (docs/decisions.md): CAP_DAC_READ_SEARCH (2),
# CAP_KILL (5), CAP_SYS_PTRACE (19).
CAPS = (1 << 2) | (1 << 5) | (1 << 19)


class Skip(Exception):
    pass


# --- reporting --------------------------------------------------------------

results = []


def check(ok, what, detail=""):
    results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {what}", flush=True)
    if not ok and detail:
        for line in str(detail).rstrip().splitlines():
            print(f"#   {line}")
    return bool(ok)


def note(text):
    print(f"# {text}", flush=True)


def wait_for(predicate, timeout, interval=0.2):
    """predicate() until it returns a true value or timeout; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- the tree ---------------------------------------------------------------

def debian_mirror():
    """The host's own apt source for the suite, so the tree comes from where
    the host's packages come from (and through the same proxy)."""
    if os.environ.get("PMUFILTER_TEST_MIRROR"):
        return os.environ["PMUFILTER_TEST_MIRROR"]
    candidates = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            text = open(path).read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                    candidates += fields.get("URIs", "").split()
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m and m.group(2) == SUITE:
                    candidates.append(m.group(1))
    return candidates[0] if candidates else None


def tree_key():
    spec = f"{SUITE} {VARIANT} {','.join(sorted(PACKAGES))}"
    return f"{SUITE}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def cached_tree():
    """The cached pristine tree, built once (atomically: into a temporary
    directory, then renamed) under a lock, so a killed or concurrent run
    never leaves or uses half a tree."""
    os.makedirs(CACHE, exist_ok=True)
    final = os.path.join(CACHE, tree_key())
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, "usr/lib/systemd/systemd")):
            return final, False
        for stale in glob.glob(os.path.join(CACHE, ".build-*")):
            shutil.rmtree(stale, ignore_errors=True)
        mirror = debian_mirror()
        if mirror:
            try:
                urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=20).close()
            except Exception as e:
                raise Skip(f"the Debian mirror of this host's apt sources is unreachable ({e})")
        tmp = tempfile.mkdtemp(prefix=".build-", dir=CACHE)
        os.chmod(tmp, 0o755)    # the container's "/" (mkdtemp makes 0700)
        note(f"building the {SUITE} tree (debootstrap, once per package list) into {final}")
        cmd = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, tmp]
        if mirror:
            cmd.append(mirror)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            if re.search(r"Failed getting release file|Temporary failure resolving|Could not resolve|"
                         r"Couldn't download|Network is unreachable", p.stdout):
                raise Skip("debootstrap cannot reach the Debian mirror:\n" + p.stdout[-2000:])
            raise RuntimeError("debootstrap failed:\n" + p.stdout[-4000:])
        os.rename(tmp, final)
        for old in glob.glob(os.path.join(CACHE, f"{SUITE}-*")):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final, True


def build_and_install(src, build_root, root):
    """A build of our own with the container's paths (prefix /usr, /etc,
    /var): the caller's build dir has whatever prefix its user chose."""
    builddir = os.path.join(build_root, "system-test")
    if not os.path.isdir(os.path.join(builddir, "meson-private")):
        subprocess.run(["meson", "setup", "--prefix=/usr", "--sysconfdir=/etc", "--localstatedir=/var",
                        "-Dtests=enabled", builddir, src], check=True, stdout=subprocess.DEVNULL)
    for cmd in (["meson", "compile", "-C", builddir],
                ["meson", "install", "-C", builddir, "--no-rebuild", "--quiet", "--destdir", root]):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-4000:]}")
    shutil.copy2(os.path.join(builddir, "tests/helpers/test-vmm"), os.path.join(root, "usr/local/bin/test-vmm"))
    subprocess.run(["ldconfig", "-r", root], check=True)


# --- the container ----------------------------------------------------------

class Container:
    ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb"]

    def __init__(self, root, log):
        self.root = root
        self.name = f"pmufilterd-test-{os.getpid()}"
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--bind=/dev/kvm",
             f"--machine={self.name}", "--console=pipe", "-D", root],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.leader = wait_for(self._find_leader, 30)
        if not self.leader:
            raise RuntimeError("systemd-nspawn started no container (see its log above)")

    def _find_leader(self):
        """The container's PID 1: nspawn's child whose innermost pid is 1."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with status {self.proc.returncode}")
        for status in glob.glob("/proc/[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(line.split(":", 1) for line in open(status) if ":" in line)
                if int(fields["PPid"]) == self.proc.pid and fields["NSpid"].split()[-1] == "1":
                    return int(fields["Pid"])
        return None

    def boot_state(self):
        """Wait for the container's manager to finish booting: its state."""
        # Until PID 1 listens, systemctl cannot connect and says "offline".
        wait_for(lambda: self.run("systemctl", "is-system-running").stdout.strip() not in ("", "offline"), 30)
        try:
            return self.run("systemctl", "is-system-running", "--wait", timeout=90).stdout.strip()
        except subprocess.TimeoutExpired:
            note("the container did not finish booting in 90 s; its jobs and journal:\n"
                 + self.run("systemctl", "list-jobs", "--no-pager").stdout
                 + self.run("journalctl", "-b", "--no-pager", "-n", "40").stdout)
            return "starting (stuck)"

    def run(self, *cmd, timeout=60, input=None):
        return subprocess.run(["nsenter", f"--target={self.leader}", "--all"] + self.ENV + list(cmd),
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)

    def out(self, *cmd, **kw):
        p = self.run(*cmd, **kw)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p.stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)       # nspawn: halt the container
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                # Killing PID 1 of the container ends its PID namespace.
                with contextlib.suppress(OSError):
                    os.kill(self.leader, signal.SIGKILL)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --- the checks -------------------------------------------------------------

def list_vms(c):
    """ListVMs over the container's system bus: {name: (id, profile, state, pid, path)}."""
    p = c.run("busctl", "--json=short", "call", "org.pmufilterd1", "/org/pmufilterd1",
              "org.pmufilterd1.Manager", "ListVMs")
    if p.returncode != 0:
        return None
    return {v[1] or v[0]: (v[0], v[2], v[3], v[4], v[5]) for v in json.loads(p.stdout)["data"][0]}


def vm_in_state(c, name, state, profile=None):
    def look():
        vms = list_vms(c) or {}
        v = vms.get(name)
        return v if v and v[2] == state and (profile is None or v[1] == profile) else None
    return wait_for(look, 15)


def manager_prop(c, prop):
    p = c.run("busctl", "--json=short", "get-property", "org.pmufilterd1", "/org/pmufilterd1",
              "org.pmufilterd1.Manager", prop)
    return json.loads(p.stdout)["data"] if p.returncode == 0 else None


def exposure(text):
    m = re.search(r"Overall exposure level for pmufilterd\.service: ([0-9.]+)", text)
    return float(m.group(1)) if m else None


def journal(c, unit, since_cursor=None, fields=False):
    args = ["journalctl", "--no-pager", "-u", unit]
    if since_cursor:
        args += [f"--after-cursor={since_cursor}"]
    args += ["-o", "json"] if fields else ["-o", "cat"]
    text = c.out(*args)
    return [json.loads(l) for l in text.splitlines() if l.strip()] if fields else text


def cursor(c):
    return c.out("journalctl", "-n", "0", "--show-cursor", "--no-pager").split("cursor: ")[-1].strip()


def test_vmm(c, name, *extra, unit_props=()):
    props = [a for p in unit_props for a in ("-p", p)]
    return c.run("systemd-run", "--wait", "--pipe", "--quiet", *props,
                 "/usr/local/bin/test-vmm", "--name", name, *extra, timeout=30)


def held_vmm(c, unit, name, *extra, unit_props=()):
    props = [a for p in unit_props for a in ("-p", p)]
    return c.run("systemd-run", f"--unit={unit}", "--quiet", *props,
                 "/usr/local/bin/test-vmm", "--name", name, "--hold", "-1", *extra)


def message_ids(src):
    text = open(os.path.join(src, "daemon/base/log.h")).read()
    return dict(re.findall(r'#define MID_(\w+)\s+"([0-9a-f]{32})"', text))


def checks(c, src):
    mids = message_ids(src)

    # The units as installed.
    p = c.run("systemd-analyze", "verify", "--man=no", "pmufilterd.service", "pmufilterd.socket")
    check(p.returncode == 0 and not (p.stdout + p.stderr).strip(), "systemd-analyze verify is clean",
          p.stdout + p.stderr)
    p = c.run("systemd-analyze", "security", "--offline=true", "/usr/lib/systemd/system/pmufilterd.service")
    e = exposure(p.stdout)
    note(f"exposure (offline, installed unit): {e}")
    check(e is not None and e <= EXPOSURE_MAX, f"offline exposure {e} <= {EXPOSURE_MAX}", p.stdout[-3000:])
    check(c.run("getent", "group", "kvm").returncode == 0, "sysusers.d created group kvm for the socket")

    # enable --now.
    p = c.run("systemctl", "enable", "--now", "pmufilterd.service")
    check(p.returncode == 0, "systemctl enable --now pmufilterd", p.stderr)
    state = c.run("systemctl", "is-active", "pmufilterd.service", "pmufilterd.socket").stdout.split()
    if not check(state == ["active", "active"], "service and socket are active",
                 f"{state}\n" + c.run("journalctl", "-u", "pmufilterd", "--no-pager", "-n", "30").stdout):
        raise RuntimeError("the service did not start: no point in going on")
    p = c.run("stat", "-c", "%A %G", "/run/pmufilterd/vmm.sock")
    check(p.stdout.strip() == "srw-rw---- kvm", "vmm.sock is mode 0660, group kvm", p.stdout)

    pid = int(c.out("systemctl", "show", "-P", "MainPID", "pmufilterd.service"))
    status = dict(l.split(":", 1) for l in c.out("cat", f"/proc/{pid}/status").splitlines() if ":" in l)
    caps = int(status["CapEff"], 16)
    check(caps == CAPS and status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2",
          "main process has CAP_DAC_READ_SEARCH CAP_KILL CAP_SYS_PTRACE only, NoNewPrivs, seccomp",
          f"CapEff={caps:#x} NoNewPrivs={status['NoNewPrivs']} Seccomp={status['Seccomp']}")
    mounts = c.out("cat", f"/proc/{pid}/mountinfo")
    check(re.search(r" / /proc .*hidepid=invisible", mounts) and re.search(r" /dev/kvm .* - devtmpfs ", mounts),
          "its /proc is hidepid=invisible, its /dev private with /dev/kvm bound in", mounts)
    p = c.run("systemd-analyze", "security", "pmufilterd.service")
    e = exposure(p.stdout)
    note(f"exposure (running unit): {e}")
    check(e is not None and e <= EXPOSURE_MAX, f"running unit's exposure {e} <= {EXPOSURE_MAX}")

    p = c.run("busctl", "call", "org.pmufilterd1", "/org/pmufilterd1", "org.pmufilterd1.Manager", "ListVMs")
    check(p.returncode == 0 and p.stdout.startswith("a(ssssuo) "), "busctl call ... ListVMs on the system bus",
          p.stdout + p.stderr)
    check(manager_prop(c, "FilterSupported") is True, "the sandboxed daemon opened /dev/kvm (FilterSupported)")

    # Socket activation: the service stopped, the socket still listens.
    c.out("systemctl", "stop", "pmufilterd.service")
    state = c.run("systemctl", "is-active", "pmufilterd.service", "pmufilterd.socket").stdout.split()
    check(state == ["inactive", "active"], "stop leaves the socket listening", str(state))
    p = test_vmm(c, "activated")
    check(p.returncode == 0 and "filter applied" in p.stdout,
          "a VMM attaching to the stopped service starts it and gets its APPLY", p.stdout + p.stderr)
    check(c.run("systemctl", "is-active", "pmufilterd.service").stdout.strip() == "active",
          "the socket started the service")

    # D-Bus activation: a call to the stopped service starts it.
    c.out("systemctl", "stop", "pmufilterd.service")
    p = c.run("busctl", "call", "org.pmufilterd1", "/org/pmufilterd1", "org.pmufilterd1.Manager", "ListVMs")
    check(p.returncode == 0 and c.run("systemctl", "is-active", "pmufilterd.service").stdout.strip() == "active",
          "a bus call to the stopped service starts it (org.pmufilterd1.service)", p.stdout + p.stderr)

    # The watchdog is fed: with WatchdogSec=2 the daemon outlives 3 s.
    c.out("mkdir", "-p", "/run/systemd/system/pmufilterd.service.d")
    c.run("sh", "-c", "cat > /run/systemd/system/pmufilterd.service.d/watchdog.conf",
          input="[Service]\nWatchdogSec=2\n")
    c.out("systemctl", "daemon-reload")
    c.out("systemctl", "restart", "pmufilterd.service")
    pid = c.out("systemctl", "show", "-P", "MainPID", "pmufilterd.service").strip()
    time.sleep(3.5)
    show = dict(l.split("=", 1) for l in c.out("systemctl", "show", "pmufilterd.service").splitlines() if "=" in l)
    check(show["MainPID"] == pid and show["ActiveState"] == "active" and show["WatchdogTimestampMonotonic"] != "0",
          "the daemon feeds the watchdog (WatchdogSec=2 for 3.5 s: same pid, WatchdogTimestamp set)",
          {k: show.get(k) for k in ("MainPID", "ActiveState", "NRestarts", "WatchdogTimestampMonotonic")})
    check("VMs:" in show.get("StatusText", ""), "STATUS= reports the counts", show.get("StatusText"))
    c.out("rm", "-r", "/run/systemd/system/pmufilterd.service.d")
    c.out("systemctl", "daemon-reload")
    c.out("systemctl", "restart", "pmufilterd.service")
    usec = c.out("systemctl", "show", "-P", "WatchdogUSec", "pmufilterd.service").strip()
    check(usec == "30s", "the shipped unit's WatchdogSec is 30 s", usec)

    # A held VMM, and a runtime change from pmufilterctl.
    p = held_vmm(c, "vmm-held", "held")
    v = vm_in_state(c, "held", "filtered", "tenant-minimal")
    check(p.returncode == 0 and v, "a held test VMM is filtered with the default profile", str(list_vms(c)))
    p = c.run("pmufilterctl", "list")
    check(p.returncode == 0 and re.search(r"\bheld\s+tenant-minimal\b.*\bfiltered\b", p.stdout),
          "pmufilterctl list shows it", p.stdout + p.stderr)
    p = c.run("pmufilterctl", "profile", "set", "tenant-standard", "held")
    v = vm_in_state(c, "held", "filtered", "tenant-standard")
    pushed = wait_for(lambda: "profile tenant-standard" in journal(c, "vmm-held"), 10)
    check(p.returncode == 0 and v and pushed, "pmufilterctl profile set tenant-standard held: pushed and applied",
          p.stderr + journal(c, "vmm-held"))
    held = v

    # VMMs of another user: what the capabilities are for.
    c.out("mknod", "-m", "0600", "/dev/kvm-nobody", "c", "10", "232")
    c.out("chown", "nobody:nogroup", "/dev/kvm-nobody")
    nobody = ("User=nobody", "BindPaths=/dev/kvm-nobody:/dev/kvm")
    p = test_vmm(c, "nobody-attached", unit_props=nobody + ("SupplementaryGroups=kvm",))
    check(p.returncode == 0 and "filter applied" in p.stdout,
          "another user's VMM attaches (kcmp on it: CAP_SYS_PTRACE)", p.stdout + p.stderr)
    held_vmm(c, "vmm-nobody-unmanaged", "nobody-unmanaged", "--no-attach", unit_props=nobody)
    found = wait_for(lambda: [v for v in (list_vms(c) or {}).values() if v[2] == "unmanaged"], 15)
    check(found, "another user's VMM that never attaches is found and unmanaged "
          "(/proc/PID/fd: CAP_DAC_READ_SEARCH)", str(list_vms(c)))
    c.out("systemctl", "stop", "vmm-nobody-unmanaged.service")
    c.out("sh", "-c", "printf 'version: 1\\nsettings:\\n  unmanaged: kill\\n' > /etc/pmufilterd/conf.d/50-kill.yaml")
    c.out("systemctl", "reload", "pmufilterd.service")
    held_vmm(c, "vmm-nobody-doomed", "nobody-doomed", "--no-attach", unit_props=nobody)
    killed = wait_for(lambda: c.run("systemctl", "show", "-P", "Result", "vmm-nobody-doomed.service")
                      .stdout.strip() == "signal", 15)
    check(killed, "unmanaged: kill kills another user's VMM (pidfd_send_signal: CAP_KILL)",
          c.run("systemctl", "status", "--no-pager", "vmm-nobody-doomed.service").stdout)
    c.out("rm", "/etc/pmufilterd/conf.d/50-kill.yaml")
    c.out("systemctl", "reload", "pmufilterd.service")

    # QEMU, unmodified, with the preload shim.
    if os.path.exists(os.path.join(c.root, "usr/bin/qemu-system-x86_64")):
        c.out("systemd-run", "--unit=qemu-shim", "--quiet", "-E", f"LD_PRELOAD={SHIM}",
              "qemu-system-x86_64", "-accel", "kvm", "-name", "q-shim", "-machine", "q35", "-m", "64",
              "-display", "none", "-nodefaults", "-no-user-config", "-S")
        v = vm_in_state(c, "q-shim", "filtered")
        client = None
        if v:
            p = c.run("busctl", "--json=short", "get-property", "org.pmufilterd1", v[4], "org.pmufilterd1.VM", "Client")
            client = json.loads(p.stdout)["data"] if p.returncode == 0 else p.stderr
        check(v and client == "preload", "QEMU with the preload shim is filtered (client preload)",
              f"{list_vms(c)} client={client}\n" + journal(c, "qemu-shim"))
        c.run("systemctl", "stop", "qemu-shim.service")
    else:
        note("SKIP QEMU with the preload shim: qemu-system-x86 is not in the tree")

    # A broken policy on reload: the old one stays.
    conf = "/etc/pmufilterd/pmufilterd.yaml"
    good = c.out("cat", conf)
    c.run("sh", "-c", f"cat >> {conf}", input="profiles: [broken\n")
    p = c.run("systemctl", "reload", "pmufilterd.service")
    last_error = manager_prop(c, "LastError") or ""
    check(p.returncode != 0 and c.run("systemctl", "is-active", "pmufilterd.service").stdout.strip() == "active",
          "systemctl reload with a broken file fails, the service stays active", p.stdout + p.stderr)
    check(manager_prop(c, "Lockdown") is False and "pmufilterd.yaml:" in last_error,
          "Lockdown=false, LastError names the file and line", repr(last_error))
    p = test_vmm(c, "after-bad-reload", "--hold", "1")
    check(p.returncode == 0 and "profile tenant-minimal" in p.stdout and "filter applied" in p.stdout,
          "a new VM still gets the old policy's profile", p.stdout + p.stderr)
    c.run("sh", "-c", f"cat > {conf}", input=good)
    p = c.run("systemctl", "reload", "pmufilterd.service")
    check(p.returncode == 0 and not manager_prop(c, "LastError"), "a good reload succeeds and clears LastError",
          p.stderr)

    # The audit trail.
    recs = journal(c, "pmufilterd.service", fields=True)
    by_id = {}
    for r in recs:
        by_id.setdefault(r.get("MESSAGE_ID"), []).append(r)
    for what in ("ATTACH", "APPLIED", "RUNTIME", "RELOAD", "UNMANAGED"):
        rs = by_id.get(mids[what], [])
        ok = rs and all("VM_ID" in r and "PROFILE" in r and "PID" in r for r in rs)
        check(ok, f"journal holds {what} records (MESSAGE_ID={mids[what]}) with VM_ID, PROFILE, PID",
              f"{len(rs)} records" + (f", first: {rs[0]}" if rs else ""))
    applied = [r for r in by_id.get(mids["APPLIED"], []) if r.get("VM_ID") == held[0]]
    check(any(r.get("PROFILE") == "tenant-standard" for r in applied),
          "the runtime change's apply is on record for the held VM", str(applied[-3:]))

    # Restart, then a crash: the VMs stay known, with their profiles.
    fdstore = any("FDSTORE=1" in open(f).read() for f in glob.glob(os.path.join(src, "daemon/**/*.c"), recursive=True))
    for how, cmd in (("systemctl restart", ["systemctl", "restart", "pmufilterd.service"]),
                     ("kill -9 of the main pid", ["systemctl", "kill", "--kill-whom=main", "-s", "KILL",
                                                  "pmufilterd.service"])):
        mark = cursor(c)
        before = c.out("systemctl", "show", "-P", "MainPID", "pmufilterd.service").strip()
        p = c.run(*cmd)
        restarted = wait_for(lambda: c.run("systemctl", "show", "-P", "MainPID", "pmufilterd.service").stdout.strip()
                             not in ("0", before) and c.run("systemctl", "is-active", "pmufilterd.service")
                             .stdout.strip() == "active", 15)
        check(p.returncode == 0 and restarted, f"{how}: the service is back", p.stderr)
        v = vm_in_state(c, "held", "filtered", "tenant-standard")
        check(v and v[0] == held[0], f"{how}: the held VM is known again, same id, filtered, tenant-standard",
              str(list_vms(c)))
        if fdstore:
            reattached = [r for r in journal(c, "pmufilterd.service", mark, fields=True)
                          if r.get("MESSAGE_ID") == mids["ATTACH"] and r.get("VM_ID") == held[0]]
            check(not reattached, f"{how}: the held VMM's session survived (no new ATTACH)", str(reattached))
        else:
            note(f"TODO {how}: session survival (no new ATTACH) is checked once the daemon uses the fd store")
    check(c.run("systemctl", "is-active", "vmm-held.service").stdout.strip() == "active",
          "the held VMM ran on through all of it")


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().split("\n\n")[2], file=sys.stderr)
        return 2
    src, build_root = (os.path.abspath(a) for a in sys.argv[1:])
    try:
        if os.geteuid() != 0:
            raise Skip("needs root (debootstrap, systemd-nspawn)")
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
        except OSError as e:
            raise Skip(f"/dev/kvm cannot be opened: {e.strerror}")
        for tool in ("systemd-nspawn", "debootstrap", "nsenter", "meson"):
            if not shutil.which(tool):
                raise Skip(f"{tool} is not installed (tools/install-deps.sh installs it)")

        t0 = time.monotonic()
        pristine, built = cached_tree()
        note(f"tree {pristine}: {'built' if built else 'cached'} in {time.monotonic() - t0:.1f} s")
        work = tempfile.mkdtemp(prefix="pmufilterd-system-", dir="/var/tmp")
        root = os.path.join(work, "root")
        try:
            t = time.monotonic()
            # A plain copy to install into: ~1 s for the 400 MB tree here,
            # simpler than an overlay upper dir for the install, and it
            # depends on no file system feature (reflinks used if there).
            subprocess.run(["cp", "-a", "--reflink=auto", pristine, root], check=True)
            build_and_install(src, build_root, root)
            note(f"copied the tree and installed the project in {time.monotonic() - t:.1f} s")
            with open(os.path.join(work, "nspawn.log"), "w+") as log:
                t = time.monotonic()
                c = Container(root, log)
                try:
                    state = c.boot_state()
                    note(f"container booted ({state}) in {time.monotonic() - t:.1f} s")
                    if state != "running":
                        note(c.run("systemctl", "--failed", "--no-pager").stdout)
                    if check(state in ("running", "degraded"), f"the container's systemd is up ({state})"):
                        checks(c, src)
                except Exception as e:
                    check(False, f"the test ran to its end: {type(e).__name__}", str(e))
                    log.flush()
                    log.seek(0)
                    note("nspawn log:\n" + log.read()[-3000:])
                finally:
                    c.stop()
        finally:
            if os.environ.get("PMUFILTER_TEST_KEEP") == "1":
                note(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        note(f"system test took {time.monotonic() - t0:.1f} s")
    except Skip as e:
        print(f"SKIP: {e}")
        return 77
    except (RuntimeError, subprocess.CalledProcessError) as e:
        check(False, "setting up the container", str(e))
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
