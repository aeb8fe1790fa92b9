#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
test-debian.py — the Debian packages under test (meson suite `system`):
pmufilterd installed the way operators install host daemons.  The packages
are built from the source tree with `dpkg-buildpackage -us -uc -b` (debian/),
twice: as they are, and from a copy whose debian/changelog has a higher
version; lintian checks the first set.  A copy of the cached Debian bookworm
tree of test-nspawn.py boots under systemd-nspawn, and inside it, on its own
systemd and system bus: `apt-get install` of the packages (the maintainer
scripts enable and start the socket and the service), the shipped policy
checked, QEMU with the installed preload shim filtered and given a profile
by pmufilterctl, then `apt-get install` of the higher version while QEMU
holds its session (the service restarts, the socket keeps listening, the
VM keeps its session, id and profile), and `apt-get purge`: nothing of the
packages left under /etc, /var/lib or /run, no unit enabled.

Usage: test-debian.py SOURCE_ROOT BUILD_ROOT
Exit: 0 all checks passed, 1 a check failed, 77 skipped (the reason is
printed): not root, no /dev/kvm, no systemd-nspawn/debootstrap, no
dpkg-buildpackage or a build dependency missing (tools/install-deps.sh
installs them), no network to the Debian mirror.

Environment: as test-nspawn.py (nspawn.py): PMUFILTER_TEST_CACHE,
PMUFILTER_TEST_MIRROR, PMUFILTER_TEST_KEEP=1.

The packages are cached by a hash of the source tree's files (those git
lists, tracked or not ignored, as they are on disk; without git, every file
but build directories; not tests/system/*.py, which no package holds) as <cache>/debs-<hash>/{old,new}/*.deb with
lintian.txt beside them, built atomically under the cache's lock; the test
says whether it built them or found them.  A cold build takes two package
builds (without the unit tests: DEB_BUILD_OPTIONS=nocheck) and a lintian
run; a warm run only copies the tree and boots it.
"""

import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate

from nspawn import (CACHE, SHIM, Skip, cached_tree, check, cursor, journal, list_vms, message_ids, note, run,
                    vm_in_state, wait_for)

PACKAGES = ["pmufilterd", "libpmufilter-client0", "libpmufilter-client-dev", "libpmufilter-preload"]
# Where the packages are put in the tree (a directory apt may read as _apt).
DEBS = "var/tmp/pmufilterd-debs"
BUMP = "+systest1"
UNITS = ("pmufilterd.service", "pmufilterd.socket")
APT_ENV = ("env", "DEBIAN_FRONTEND=noninteractive")
APT = APT_ENV + ("apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0")


# --- the packages -----------------------------------------------------------

def source_files(src):
    """The source tree's files, relative: git's list (tracked, and untracked
    but not ignored) of what is on disk, else a walk that leaves out build
    directories."""
    p = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) if shutil.which("git") else None
    if p and p.returncode == 0:
        files = [f for f in p.stdout.decode().split("\0") if f]
    else:
        files = []
        for top, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if not (d.startswith(("build", "obj-", ".")) or d == "__pycache__")]
            files += [os.path.relpath(os.path.join(top, n), src) for n in names]
    return sorted(f for f in set(files) if os.path.isfile(os.path.join(src, f)))


def source_hash(src, files):
    """The packages' cache key.  The system tests' own scripts go into no
    package: editing them rebuilds nothing."""
    h = hashlib.sha256()
    for f in files:
        if re.match(r"tests/system/[^/]+\.py$", f):
            continue
        path = os.path.join(src, f)
        h.update(f"{f}\0{os.stat(path).st_mode & 0o111:o}\0".encode())
        with open(path, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:16]


def changelog_head(tree):
    first = open(os.path.join(tree, "debian/changelog")).readline()
    m = re.match(r"^(\S+) \(([^)]+)\) (\S+);", first)
    if not m:
        raise RuntimeError(f"debian/changelog: cannot read its first line: {first!r}")
    return m.groups()


def bump(tree):
    """What `dch --local +systest` does: a new entry on top, a higher version."""
    path = os.path.join(tree, "debian/changelog")
    name, version, dist = changelog_head(tree)
    text = open(path).read()
    who = re.search(r"^ -- (.+?>)  ", text, re.M).group(1)
    entry = (f"{name} ({version}{BUMP}) {dist}; urgency=medium\n\n"
             f"  * System test (tests/system/test-debian.py): the same source, a higher\n"
             f"    version, to upgrade to.\n\n"
             f" -- {who}  {formatdate(usegmt=False)}\n\n")
    with open(path, "w") as f:
        f.write(entry + text)
    return version + BUMP


def dpkg_buildpackage(tree, log):
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"nocheck parallel={os.cpu_count() or 1}", LC_ALL="C.UTF-8")
    t = time.monotonic()
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b", "-Pnocheck"], cwd=tree, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "w") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        m = re.search(r"Unmet build dependencies: (.*)", p.stdout)
        if m:
            raise Skip(f"the build dependencies are not installed ({m.group(1).strip()}; "
                       f"tools/install-deps.sh installs them)")
        raise RuntimeError(f"dpkg-buildpackage failed in {tree}:\n{p.stdout[-4000:]}")
    return time.monotonic() - t


def build_packages(src, files, out):
    """Both sets of packages into out/{old,new}, and lintian's word on the
    first into out/lintian.txt (first line: its exit status)."""
    for which in ("old", "new"):
        tree = os.path.join(out, f"src-{which}", "pmufilterd")
        for f in files:
            os.makedirs(os.path.dirname(os.path.join(tree, f)), exist_ok=True)
            shutil.copy2(os.path.join(src, f), os.path.join(tree, f))
        version = bump(tree) if which == "new" else changelog_head(tree)[1]
        took = dpkg_buildpackage(tree, os.path.join(out, f"build-{which}.log"))
        note(f"dpkg-buildpackage -b of {version} took {took:.1f} s")
        parent = os.path.dirname(tree)
        if which == "old" and shutil.which("lintian"):
            t = time.monotonic()
            changes = glob.glob(os.path.join(parent, "*.changes"))
            p = subprocess.run(["lintian", "--fail-on", "error,warning", *changes],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            with open(os.path.join(out, "lintian.txt"), "w") as f:
                f.write(f"{p.returncode}\n{p.stdout}")
            note(f"lintian took {time.monotonic() - t:.1f} s")
        os.makedirs(os.path.join(out, which))
        for deb in glob.glob(os.path.join(parent, "*.deb")):
            if "-dbgsym_" not in deb:
                shutil.move(deb, os.path.join(out, which))
        shutil.rmtree(parent)


def cached_packages(src):
    """<cache>/debs-<hash of the source>, built once (atomically, under the
    cache's lock).  Older package sets are removed."""
    for tool in ("dpkg-buildpackage", "dh"):
        if not shutil.which(tool):
            raise Skip(f"{tool} is not installed (tools/install-deps.sh installs it)")
    files = source_files(src)
    if "debian/control" not in files:
        raise Skip(f"{src} has no debian/")
    os.makedirs(CACHE, exist_ok=True)
    final = os.path.join(CACHE, f"debs-{source_hash(src, files)}")
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(os.path.join(final, "new")):
            note(f"packages: cached in {final} (the source tree's hash has not changed)")
            return final
        note(f"packages: building them into {final} (the source tree changed or nothing is cached)")
        tmp = tempfile.mkdtemp(prefix=".build-debs-", dir=CACHE)
        try:
            t = time.monotonic()
            build_packages(src, files, tmp)
            os.rename(tmp, final)
            note(f"packages built in {time.monotonic() - t:.1f} s")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in glob.glob(os.path.join(CACHE, "debs-*")):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final


state = {}


def put_packages(src, build_root, root):
    """In place of nspawn's meson install: the packages go into the tree,
    to be installed with apt once it runs."""
    debs = cached_packages(src)
    state["debs"] = debs
    for which in ("old", "new"):
        dest = os.path.join(root, DEBS, which)
        os.makedirs(dest)
        for deb in glob.glob(os.path.join(debs, which, "*.deb")):
            shutil.copy2(deb, dest)
    os.chmod(os.path.join(root, DEBS), 0o755)


# --- the checks -------------------------------------------------------------

def versions(c):
    p = c.run("dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", *PACKAGES)
    return {l.split()[0]: (l.split()[1] if len(l.split()) > 2 and l.split()[2] == "ii" else None)
            for l in p.stdout.splitlines() if l.split()}


def apt_install(c, which):
    debs = sorted(f"/{DEBS}/{which}/{os.path.basename(d)}"
                  for d in glob.glob(os.path.join(c.root, DEBS, which, "*.deb")))
    t = time.monotonic()
    p = c.run(*APT, "install", *debs, timeout=300)
    return p, time.monotonic() - t


def show(c, unit, *props):
    out = c.out("systemctl", "show", unit, *(f"--property={p}" for p in props))
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def leftovers(c):
    """Whatever of ours is under /etc, /var/lib, /run; unit links anywhere in /etc."""
    p = c.run("sh", "-c", "find /etc /var/lib /run -xdev \\( -name '*pmufilter*' -o -lname '*pmufilter*' \\) "
              "-print 2>/dev/null")
    return [l for l in p.stdout.splitlines() if l.strip()]


def qemu(c, unit, name):
    c.out("systemd-run", f"--unit={unit}", "--quiet", "-E", f"LD_PRELOAD={SHIM}",
          "qemu-system-x86_64", "-accel", "kvm", "-name", name, "-machine", "q35", "-m", "64",
          "-display", "none", "-nodefaults", "-no-user-config", "-S")


def lintian_check(debs):
    path = os.path.join(debs, "lintian.txt")
    if not os.path.exists(path):
        note("SKIP lintian: not installed when the packages were built (tools/install-deps.sh installs it)")
        return
    rc, _, text = open(path).read().partition("\n")
    tags = [l for l in text.splitlines() if re.match(r"^[EW]: ", l)]
    note("lintian: " + (", ".join(tags) if tags else "no error, no warning"))
    check(rc == "0" and not tags, "lintian: no error and no warning on the packages (overrides in debian/)", text)


def checks(c, src):
    mids = message_ids(src)
    debs = state["debs"]
    lintian_check(debs)
    old_version = {os.path.basename(d).split("_")[1] for d in glob.glob(os.path.join(debs, "old", "*.deb"))}
    new_version = {os.path.basename(d).split("_")[1] for d in glob.glob(os.path.join(debs, "new", "*.deb"))}
    check(len(old_version) == 1 and len(new_version) == 1 and old_version != new_version,
          f"two sets of packages: {old_version} and {new_version}")
    old_version, new_version = old_version.pop(), new_version.pop()
    before = set(leftovers(c))
    check(not before, "the tree has nothing of pmufilterd before the install", "\n".join(before))

    # Install: the maintainer scripts enable and start the units.
    p, took = apt_install(c, "old")
    note(f"apt-get install of {old_version} took {took:.1f} s")
    if not check(p.returncode == 0, f"apt-get install of the {len(PACKAGES)} packages ({old_version})",
                 p.stdout[-3000:] + p.stderr):
        raise RuntimeError("the packages did not install: no point in going on")
    check(versions(c) == {pkg: old_version for pkg in PACKAGES}, "all four are installed", str(versions(c)))
    enabled = c.run("systemctl", "is-enabled", *UNITS).stdout.split()
    active = c.run("systemctl", "is-active", *UNITS).stdout.split()
    if not check(enabled == ["enabled", "enabled"] and active == ["active", "active"],
                 "the service and the socket are enabled and running after the install",
                 f"is-enabled {enabled}, is-active {active}\n"
                 + c.run("journalctl", "-u", "pmufilterd", "--no-pager", "-n", "30").stdout):
        raise RuntimeError("the service did not start: no point in going on")
    p = c.run("systemd-analyze", "verify", "--man=no", *UNITS)
    check(p.returncode == 0 and not (p.stdout + p.stderr).strip(), "systemd-analyze verify of the packaged units",
          p.stdout + p.stderr)
    p = c.run("stat", "-c", "%A %G", "/run/pmufilterd/vmm.sock")
    check(c.run("getent", "group", "kvm").returncode == 0 and p.stdout.strip() == "srw-rw---- kvm",
          "group kvm made by the sysusers.d file; vmm.sock 0660 kvm", p.stdout + p.stderr)
    conffiles = c.out("dpkg-query", "-W", "-f", "${Conffiles}", "pmufilterd")
    check(re.search(r"^ /etc/pmufilterd/pmufilterd\.yaml [0-9a-f]{32}$", conffiles, re.M),
          "/etc/pmufilterd/pmufilterd.yaml is a conffile", conffiles)
    p = c.run("pmufilterctl", "check")
    check(p.returncode == 0 and p.stdout.rstrip().endswith(": OK"), "pmufilterctl check: the shipped policy",
          p.stdout + p.stderr)
    example = c.out("zcat", "-f", "/usr/share/doc/pmufilterd/examples/libvirt-domain.xml")
    m = re.search(r"<qemu:env\s+name=['\"]LD_PRELOAD['\"]\s+value=['\"]([^'\"]+)['\"]", example)
    owner = c.run("dpkg-query", "-S", SHIM).stdout.split(":")[0]
    check(m and m.group(1) == SHIM and owner == "libpmufilter-preload",
          f"the example domain names the shim where libpmufilter-preload puts it ({SHIM})",
          f"example: {m and m.group(1)}, owner of {SHIM}: {owner!r}")
    pc = c.run("sh", "-c", f"cat /usr/lib/*/pkgconfig/libpmufilter-client.pc").stdout
    check("Libs: -L${libdir} -lpmufilter-client" in pc and
          os.path.islink(os.path.join(c.root, "usr/lib/x86_64-linux-gnu/libpmufilter-client.so")),
          "libpmufilter-client-dev: the .pc file and the .so link", pc)

    # A VM, given a profile: QEMU with the installed shim.
    qemu(c, "qemu-upgrade", "q-upgrade")
    v = vm_in_state(c, "q-upgrade", "filtered")
    if not check(v, "QEMU with the installed preload shim is filtered",
                 f"{list_vms(c)}\n" + journal(c, "qemu-upgrade")):
        raise RuntimeError("no VM to upgrade under: no point in going on")
    p = c.run("pmufilterctl", "profile", "set", "tenant-standard", "q-upgrade")
    v = vm_in_state(c, "q-upgrade", "filtered", "tenant-standard")
    check(p.returncode == 0 and v, "pmufilterctl profile set tenant-standard q-upgrade (persistent): applied",
          p.stdout + p.stderr + str(list_vms(c)))
    if not v:
        raise RuntimeError("the VM did not get its profile: no point in going on")

    # Upgrade while QEMU holds its session.
    service = show(c, "pmufilterd.service", "MainPID", "NRestarts")
    socket = show(c, "pmufilterd.socket", "ActiveEnterTimestampMonotonic")
    mark = cursor(c)
    p, took = apt_install(c, "new")
    note(f"apt-get install of {new_version} (the upgrade) took {took:.1f} s")
    check(p.returncode == 0 and versions(c) == {pkg: new_version for pkg in PACKAGES},
          f"apt-get install of {new_version}: all four upgraded", p.stdout[-3000:] + p.stderr + str(versions(c)))
    after = show(c, "pmufilterd.service", "MainPID", "ActiveState")
    check(after["ActiveState"] == "active" and after["MainPID"] not in ("0", service["MainPID"]),
          "the upgrade restarted the service (another main pid, active)", f"{service} -> {after}")
    check(show(c, "pmufilterd.socket", "ActiveEnterTimestampMonotonic") == socket,
          "the socket kept listening through the upgrade (not restarted)")
    w = vm_in_state(c, "q-upgrade", "filtered", "tenant-standard")
    check(w and w[0] == v[0], "after the upgrade the VM is known with the same id, filtered, tenant-standard",
          f"before {v}, after {list_vms(c)}")
    records = journal(c, "pmufilterd.service", mark, fields=True)
    reattached = [r for r in records if r.get("MESSAGE_ID") == mids["ATTACH"] and r.get("VM_ID") == v[0]]
    taken_back = [r for r in records if "session taken back from the fd store" in r.get("MESSAGE", "")
                  and r.get("MESSAGE", "").startswith(f"VM {v[0]}:")]
    check(taken_back and not reattached, "the VM's session came back from the fd store (no new ATTACH)",
          f"taken back: {[r['MESSAGE'] for r in taken_back]}, attaches: {[r['MESSAGE'] for r in reattached]}")
    check(c.run("systemctl", "is-active", "qemu-upgrade.service").stdout.strip() == "active",
          "QEMU ran on through the upgrade")
    qemu(c, "qemu-after", "q-after")
    check(vm_in_state(c, "q-after", "filtered"), "a VM started after the upgrade attaches", str(list_vms(c)))
    for unit in ("qemu-after", "qemu-upgrade"):
        c.run("systemctl", "stop", f"{unit}.service")

    # Purge: nothing left but what Debian policy keeps (the group kvm).
    made = [path for path in ("/var/lib/pmufilterd/state.yaml", "/run/pmufilterd", "/etc/pmufilterd/conf.d",
                              "/etc/systemd/system/multi-user.target.wants/pmufilterd.service",
                              "/etc/systemd/system/sockets.target.wants/pmufilterd.socket")
            if c.run("test", "-e", path, "-o", "-L", path).returncode != 0]
    check(not made, "before the purge: the persistent change in state.yaml, /run/pmufilterd, conf.d, "
          "the units' links", f"missing: {made}")
    t = time.monotonic()
    p = c.run(*APT, "purge", *PACKAGES, timeout=300)
    note(f"apt-get purge took {time.monotonic() - t:.1f} s")
    check(p.returncode == 0 and not any(versions(c).values()), "apt-get purge of the four packages",
          p.stdout[-3000:] + p.stderr + str(versions(c)))
    left = leftovers(c)
    check(not left, "nothing named pmufilter* is left under /etc, /var/lib, /run", "\n".join(left))
    p = c.run("systemctl", "list-unit-files", "--no-legend", "pmufilterd*")
    active = c.run("systemctl", "is-active", *UNITS).stdout.split()
    check(not p.stdout.strip() and "active" not in active, "no pmufilterd unit is left, enabled or running",
          p.stdout + str(active))
    check(c.run("getent", "group", "kvm").returncode == 0,
          "group kvm stays (Debian removes no group on purge: other packages' files may have it)")


def main():
    return run(__doc__, cached_tree, checks, install=put_packages)


if __name__ == "__main__":
    sys.exit(main())
