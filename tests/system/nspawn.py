# SPDX-License-Identifier: LGPL-2.1-or-later
"""
nspawn.py — what the system tests (test-nspawn.py, test-libvirt.py) share:
the cached Debian tree, the project built and installed into a copy of it,
the container booted under systemd-nspawn, commands run inside it through
nsenter, TAP-like reporting, the daemon's D-Bus and journal as seen from
inside, and the driver that runs one test's checks in one container
(`run()`).  Not a test by itself.

Environment: PMUFILTER_TEST_CACHE (default /var/cache/pmufilterd-test),
PMUFILTER_TEST_MIRROR (default: the host's apt source for bookworm),
PMUFILTER_TEST_KEEP=1 keeps the container's tree for a post-mortem.
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
# daemon's runtime libraries, QEMU for the preload shim, and
# prometheus-node-exporter to read the metrics file as a fleet's Prometheus
# would (4 MB to fetch, 14 MB in the tree).  Changing the list, or the
# adjustments made to the tree after debootstrap, changes the cache key.
PACKAGES = [
    "systemd", "systemd-sysv", "dbus",
    "libyaml-0-2", "libpfm4", "libsmartcols1", "libudev1", "libsystemd0",
    "qemu-system-x86", "prometheus-node-exporter",
]
TREE_ADJUSTMENTS = "mask:prometheus-node-exporter 1"
CACHE = os.environ.get("PMUFILTER_TEST_CACHE", "/var/cache/pmufilterd-test")
SHIM = "/usr/lib/x86_64-linux-gnu/libpmufilter-preload.so"


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
    spec = f"{SUITE} {VARIANT} {','.join(sorted(PACKAGES))} {TREE_ADJUSTMENTS}"
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
        adjust_tree(tmp)
        os.rename(tmp, final)
        for old in glob.glob(os.path.join(CACHE, f"{SUITE}-*")):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final, True


def adjust_tree(tree):
    """What the booted tree must not do: its packaged node-exporter would
    listen on port 9100 of the host's network, which the container shares
    (the test starts one of its own on loopback)."""
    mask = os.path.join(tree, "etc/systemd/system/prometheus-node-exporter.service")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(mask)
    os.symlink("/dev/null", mask)


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

    def __init__(self, root, log, kvm="/dev/kvm"):
        """kvm: the host path bound as the container's /dev/kvm."""
        self.root = root
        self.name = f"pmufilterd-test-{os.getpid()}"
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
             "--bind=/dev/kvm" if kvm == "/dev/kvm" else f"--bind={kvm}:/dev/kvm",
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


# --- the daemon, seen from inside -------------------------------------------

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


def journal(c, unit, since_cursor=None, fields=False):
    args = ["journalctl", "--no-pager", "-u", unit]
    if since_cursor:
        args += [f"--after-cursor={since_cursor}"]
    args += ["-o", "json"] if fields else ["-o", "cat"]
    text = c.out(*args)
    return [json.loads(l) for l in text.splitlines() if l.strip()] if fields else text


def cursor(c):
    return c.out("journalctl", "-n", "0", "--show-cursor", "--no-pager").split("cursor: ")[-1].strip()


def message_ids(src):
    text = open(os.path.join(src, "daemon/base/log.h")).read()
    return dict(re.findall(r'#define MID_(\w+)\s+"([0-9a-f]{32})"', text))


# --- the driver -------------------------------------------------------------

def run(doc, make_tree, checks, prepare=None, kvm=None, install=build_and_install):
    """One system test: argv is SOURCE_ROOT BUILD_ROOT.  make_tree() returns
    (pristine tree, whether it was built now); it is copied, the project is
    installed into the copy (install(src, build_root, root); test-debian.py
    puts its packages there instead, to install them after boot),
    prepare(root) (if any) adjusts the copy, and the container boots with
    kvm(root) (if any; else the host's /dev/kvm) bound as its /dev/kvm; then
    checks(c, src).  The exit status: 0 all checks passed, 1 one failed, 77
    skipped (the reason printed)."""
    if len(sys.argv) != 3:
        print(doc.strip().split("\n\n")[2], file=sys.stderr)
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
        pristine, built = make_tree()
        note(f"tree {pristine}: {'built' if built else 'cached'} in {time.monotonic() - t0:.1f} s")
        work = tempfile.mkdtemp(prefix="pmufilterd-system-", dir="/var/tmp")
        root = os.path.join(work, "root")
        try:
            t = time.monotonic()
            # A plain copy to install into: ~1 s for the 400 MB tree here,
            # simpler than an overlay upper dir for the install, and it
            # depends on no file system feature (reflinks used if there).
            subprocess.run(["cp", "-a", "--reflink=auto", pristine, root], check=True)
            install(src, build_root, root)
            if prepare:
                prepare(root)
            note(f"copied the tree and installed the project in {time.monotonic() - t:.1f} s")
            with open(os.path.join(work, "nspawn.log"), "w+") as log:
                t = time.monotonic()
                c = Container(root, log, **({"kvm": kvm(root)} if kvm else {}))
                try:
                    state = c.boot_state()
                    note(f"container booted ({state}) in {time.monotonic() - t:.1f} s")
                    if state != "running":
                        note(c.run("systemctl", "--failed", "--no-pager").stdout)
                    if check(state in ("running", "degraded"), f"the container's systemd is up ({state})"):
                        checks(c, src)
                except Skip:
                    raise
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
