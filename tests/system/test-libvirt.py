#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
test-libvirt.py — the libvirt system test (meson suite `system`): a
libvirt-managed QEMU guest under pmufilterd, for real.  The cached Debian
tree of test-nspawn.py gets libvirt-daemon-system (cached as a tree of its
own), boots under systemd-nspawn with a real systemd, system bus,
systemd-machined and libvirtd, and a domain made from the shipped example
(conf/examples/libvirt-domain.xml: the preload shim through the domain's
<qemu:env>) is defined and started with virsh.  Checked: the guest is
filtered with the profile of the shipped example rules on `machine`
(conf/examples/libvirt-tenants.yaml), which the daemon reads from systemd
for libvirt's registration (machinectl: qemu-N-NAME, class vm); the filter
is on record; a persistent `pmufilterctl profile set` by the domain's name
follows the domain through virsh destroy and start, and not to another
domain; virsh destroy removes the VM.

Usage: test-libvirt.py SOURCE_ROOT BUILD_ROOT
Exit: 0 all checks passed, 1 a check failed, 77 skipped (the reason is
printed): not root, no /dev/kvm, no systemd-nspawn/debootstrap, no network
to the Debian mirror, libvirtd does not start in the container, or QEMU
cannot start under it.

Environment: as test-nspawn.py (nspawn.py): PMUFILTER_TEST_CACHE,
PMUFILTER_TEST_MIRROR, PMUFILTER_TEST_KEEP=1.

The libvirt tree is the cached base tree plus, installed by apt inside
systemd-nspawn (no boot), libvirt-daemon-system without its recommends, and
three adjustments for the container: `cgroup_controllers = [ ]` in
/etc/libvirt/qemu.conf (the container's cgroup v1 controllers are
read-only), a root:kvm 0660 kvm device node that is bound as the
container's /dev/kvm (QEMU runs as libvirt-qemu; the host's node keeps its
mode), and libvirt-guests.service masked (a guest with no OS ignores the
ACPI shutdown and would hold the container's poweroff for minutes).
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from nspawn import (CACHE, SHIM, SUITE, Skip, cached_tree, check, journal, list_vms, message_ids, note, run,
                    vm_in_state, wait_for)

# What the libvirt tree adds to the base tree, and the version of the
# adjustments made to it: changing either changes the cache key.
LIBVIRT_PACKAGES = ["libvirt-daemon-system"]
ADJUSTMENTS = "cgroup_controllers=[] kvm-node:0660:root:kvm mask:libvirt-guests 1"
# Where the tree keeps its kvm node (the container's /dev is a tmpfs).
KVM_NODE = "var/lib/pmufilterd-test/kvm"
EXAMPLES = "usr/share/doc/pmufilterd/examples"
QEMU_CONF = "etc/libvirt/qemu.conf"
APT_NETWORK_ERRORS = (r"Temporary failure resolving|Could not resolve|Network is unreachable|"
                      r"Unable to connect to|Connection failed|Could not connect")
# The domains: the first matches the example rule on `machine` for tenant A,
# the second (another name, another UUID) only the catch-all rule.
DOMAIN_A = "tenant-a-web"
DOMAIN_B = "tenant-b-web"
PROFILE_A = "libvirt-tenant-a"       # from the example's rule on machine: "qemu-*-tenant-a*"
PROFILE_B = "tenant-minimal"         # from its catch-all rule on machine: "qemu-*"
OVERRIDE = "tenant-standard"         # set at run time; neither rule gives it


# --- the tree ---------------------------------------------------------------

def libvirt_key(base):
    spec = f"{os.path.basename(base)} {','.join(sorted(LIBVIRT_PACKAGES))} {ADJUSTMENTS}"
    return f"libvirt-{SUITE}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def apt(tree, *args):
    """apt-get in the tree, inside systemd-nspawn (a chroot with /proc, /dev
    and the host's network and resolv.conf), no boot."""
    return subprocess.run(
        ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe",
         f"--machine=pmufilterd-apt-{os.getpid()}", "-D", tree,
         "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-o", "Dpkg::Use-Pty=0", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def adjust(tree):
    """The three adjustments libvirt needs in this container."""
    with open(os.path.join(tree, QEMU_CONF), "a") as f:
        f.write("\n# pmufilterd system test: the container's cgroup v1 controllers are read-only.\n"
                "cgroup_controllers = [ ]\n")
    groups = dict((l.split(":")[0], int(l.split(":")[2])) for l in open(os.path.join(tree, "etc/group"))
                  if l.count(":") >= 3)
    if "kvm" not in groups:
        raise RuntimeError("the libvirt tree has no group kvm (libvirt-daemon-system's postinst makes it)")
    node = os.path.join(tree, KVM_NODE)
    os.makedirs(os.path.dirname(node), exist_ok=True)
    rdev = os.stat("/dev/kvm").st_rdev
    os.mknod(node, 0o660 | stat.S_IFCHR, os.makedev(os.major(rdev), os.minor(rdev)))
    os.chown(node, 0, groups["kvm"])
    os.chmod(node, 0o660)
    mask = os.path.join(tree, "etc/systemd/system/libvirt-guests.service")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(mask)
    os.symlink("/dev/null", mask)


def libvirt_tree():
    """The cached base tree plus libvirt, built once per base tree, package
    list and adjustments (atomically, under the cache's lock, like the base
    tree).  Its key starts with libvirt-, so the base tree's clean-up of
    bookworm-* never touches it; a rebuild removes older libvirt trees."""
    base, base_built = cached_tree()
    final = os.path.join(CACHE, libvirt_key(base))
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, "usr/sbin/libvirtd")):
            return final, base_built
        for stale in glob.glob(os.path.join(CACHE, ".build-*")):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=CACHE)
        try:
            note(f"building the libvirt tree (apt-get install {' '.join(LIBVIRT_PACKAGES)}) into {final}")
            subprocess.run(["cp", "-a", "--reflink=auto", base + "/.", tmp], check=True)
            os.chmod(tmp, 0o755)
            install = ["install", "--no-install-recommends"] + LIBVIRT_PACKAGES
            p = apt(tmp, *install)
            if p.returncode != 0 and re.search(r"404\s+Not Found|Unable to locate package|has no installation "
                                               r"candidate|Hash Sum mismatch", p.stdout):
                # The base tree's package lists are older than the mirror.
                note("the base tree's package lists are out of date: apt-get update")
                p = apt(tmp, "update")
                if p.returncode == 0:
                    p = apt(tmp, *install)
            if p.returncode != 0:
                if re.search(APT_NETWORK_ERRORS, p.stdout):
                    raise Skip("apt-get in the tree cannot reach the Debian mirror:\n" + p.stdout[-2000:])
                raise RuntimeError("apt-get install in the libvirt tree failed:\n" + p.stdout[-4000:])
            apt(tmp, "clean")
            adjust(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in glob.glob(os.path.join(CACHE, f"libvirt-{SUITE}-*")):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final, True


def kvm_node(root):
    return os.path.join(root, KVM_NODE)


# --- the checks -------------------------------------------------------------

def vm_prop(c, path, prop):
    p = c.run("busctl", "--json=short", "get-property", "org.pmufilterd1", path, "org.pmufilterd1.VM", prop)
    return json.loads(p.stdout)["data"] if p.returncode == 0 else None


def domain_xml(example, name, shim=True):
    """The shipped example with another name (and without its comments);
    without the shim for the probe."""
    xml = re.sub(r"<!--.*?-->\n?", "", example, flags=re.S)
    xml, n = re.subn(r"<name>[^<]*</name>", f"<name>{name}</name>", xml, count=1)
    assert n == 1, "the example domain has no <name>"
    if not shim:
        xml = re.sub(r"\s*<qemu:commandline>.*?</qemu:commandline>", "", xml, flags=re.S)
    return xml


def virsh(c, *args, timeout=60):
    return c.run("virsh", "--connect", "qemu:///system", *args, timeout=timeout)


def define(c, example, name, shim=True):
    path = f"/root/{name}.xml"
    c.out("sh", "-c", f"cat > {path}", input=domain_xml(example, name, shim))
    return virsh(c, "define", path)


def machine_of(c, domain):
    """machined's registration of a running domain: {property: value}."""
    p = c.run("machinectl", "list", "--no-legend", "--no-pager")
    for line in p.stdout.splitlines():
        m = re.match(rf"(qemu-\d+-{re.escape(domain)})\s", line)
        if m:
            show = c.out("machinectl", "show", m.group(1), "--no-pager")
            return dict(l.split("=", 1) for l in show.splitlines() if "=" in l)
    return None


def applied_records(c, mids, vm_id):
    return [r for r in journal(c, "pmufilterd.service", fields=True)
            if r.get("MESSAGE_ID") == mids["APPLIED"] and r.get("VM_ID") == vm_id]


def gone(c, name):
    def look():
        vms = list_vms(c)
        p = c.run("pmufilterctl", "list")
        return vms is not None and name not in vms and p.returncode == 0 and not re.search(
            rf"\s{re.escape(name)}\s", p.stdout)
    return wait_for(look, 15)


def checks(c, src):
    mids = message_ids(src)
    example = open(os.path.join(c.root, EXAMPLES, "libvirt-domain.xml")).read()
    m = re.search(r"<qemu:env\s+name=['\"]LD_PRELOAD['\"]\s+value=['\"]([^'\"]+)['\"]", example)
    check(m and m.group(1) == SHIM and os.path.isfile(os.path.join(c.root, SHIM.lstrip("/"))),
          f"the example domain preloads the installed shim ({SHIM})", m.group(1) if m else example)

    # libvirt as it comes, before pmufilterd runs: can it run QEMU here at all?
    if not wait_for(lambda: virsh(c, "version").returncode == 0, 30):
        raise Skip("libvirtd does not answer in the container:\n" + virsh(c, "version").stderr
                   + c.run("systemctl", "status", "--no-pager", "libvirtd.service").stdout[-2000:])
    note(virsh(c, "version").stdout.strip().replace("\n", "; "))
    t = time.monotonic()
    p = define(c, example, "pmufilterd-probe", shim=False)
    if p.returncode != 0:
        raise RuntimeError("virsh define of the example domain without the shim failed:\n" + p.stdout + p.stderr)
    p = virsh(c, "start", "pmufilterd-probe")
    if p.returncode != 0:
        raise Skip("QEMU cannot start under libvirt in this container (a domain without the shim, "
                   "before pmufilterd runs):\n" + p.stdout + p.stderr)
    virsh(c, "destroy", "pmufilterd-probe")
    virsh(c, "undefine", "pmufilterd-probe")
    note(f"libvirt starts a plain QEMU guest here (probe domain, {time.monotonic() - t:.1f} s)")

    # pmufilterd as shipped (socket activation), with the example rules.
    p = c.run("systemctl", "enable", "--now", "pmufilterd.service")
    state = c.run("systemctl", "is-active", "pmufilterd.service", "pmufilterd.socket").stdout.split()
    if not check(p.returncode == 0 and state == ["active", "active"], "systemctl enable --now pmufilterd",
                 p.stderr + str(state)):
        raise RuntimeError("the service did not start: no point in going on")
    c.out("cp", f"/{EXAMPLES}/libvirt-tenants.yaml", "/etc/pmufilterd/conf.d/50-libvirt-tenants.yaml")
    p = c.run("pmufilterctl", "check")
    check(p.returncode == 0 and p.stdout.rstrip().endswith(": OK"),
          "pmufilterctl check: the shipped policy plus the example libvirt-tenants.yaml", p.stdout + p.stderr)
    p = c.run("systemctl", "reload", "pmufilterd.service")
    check(p.returncode == 0, "systemctl reload takes the example rules", p.stderr)

    # The guest with the preload shim through <qemu:env>.
    p = define(c, example, DOMAIN_A)
    check(p.returncode == 0, f"virsh define {DOMAIN_A} (the shipped example domain)", p.stdout + p.stderr)
    t = time.monotonic()
    p = virsh(c, "start", DOMAIN_A)
    started = time.monotonic() - t
    if not check(p.returncode == 0, f"virsh start {DOMAIN_A}", p.stdout + p.stderr):
        raise RuntimeError(f"{DOMAIN_A} did not start:\n" + c.run(
            "tail", "-n", "20", f"/var/log/libvirt/qemu/{DOMAIN_A}.log").stdout)
    v = vm_in_state(c, DOMAIN_A, "filtered", PROFILE_A)
    note(f"virsh start took {started:.1f} s; the guest was filtered {time.monotonic() - t:.1f} s after it began")
    check(v, f"the guest is filtered with profile {PROFILE_A} (the example's rule on machine)",
          f"{list_vms(c)}\n" + journal(c, "pmufilterd.service")[-2000:])
    if not v:
        raise RuntimeError("the guest was not filtered: no point in going on")
    vm_id, _, _, pid, path = v
    source = vm_prop(c, path, "ProfileSource")
    client = vm_prop(c, path, "Client")
    uuid = virsh(c, "domuuid", DOMAIN_A).stdout.strip()
    check(source and source.startswith("rule:") and client == "preload" and vm_prop(c, path, "UUID") == uuid,
          "its profile came from a rule, its client is the preload shim, its UUID is the domain's",
          f"ProfileSource={source} Client={client} UUID={vm_prop(c, path, 'UUID')} domuuid={uuid}")
    p = c.run("pmufilterctl", "list")
    # SOURCE names the rule by its file (under /etc/pmufilterd) and line.
    loc = vm_prop(c, path, "ProfileSourceLocation")
    check(p.returncode == 0 and re.search(rf"\b{vm_id}\s+{DOMAIN_A}\s+{PROFILE_A}\s+"
                                          rf"rule conf\.d/[^ ]*libvirt-tenants\.yaml:\d+\s+filtered\s+{pid}\b",
                                          p.stdout)
          and re.fullmatch(r"/etc/pmufilterd/conf\.d/[^ ]*libvirt-tenants\.yaml:\d+", loc or ""),
          "pmufilterctl list shows it: NAME from QEMU's -name guest=, profile, rule FILE:LINE, filtered",
          p.stdout + p.stderr + f"ProfileSourceLocation={loc}")
    status = dict(l.split(":", 1) for l in c.out("cat", f"/proc/{pid}/status").splitlines() if ":" in l)
    argv = c.out("cat", f"/proc/{pid}/cmdline").split("\0")
    sandbox = argv[argv.index("-sandbox") + 1] if "-sandbox" in argv else None
    qemu_uid = c.out("id", "-u", "libvirt-qemu").strip()
    kvm_gid = c.out("getent", "group", "kvm").split(":")[2]
    check(status["Uid"].split()[0] == qemu_uid and kvm_gid in status["Groups"].split()
          and sandbox and sandbox.startswith("on,") and "spawn=deny" in sandbox,
          f"QEMU runs as libvirt-qemu, in group kvm, with -sandbox {sandbox}: the shim attached all the same",
          f"Uid={status['Uid']} Groups={status['Groups']} -sandbox {sandbox}")
    machine = machine_of(c, DOMAIN_A)
    check(machine and machine.get("Class") == "vm" and machine.get("Service") == "libvirt-qemu"
          and machine.get("Leader") == str(pid) and machine.get("Id") == uuid.replace("-", ""),
          f"machinectl: {machine and machine.get('Name')}, class vm, service libvirt-qemu, "
          f"leader the VM's pid, id the domain's UUID",
          f"{machine}\n" + c.run("machinectl", "list", "--no-pager").stdout)
    # Orchestration knows the guest by its machine's name and UUID: the
    # daemon finds it by them, and shows them among the verified facts.
    p = c.run("pmufilterctl", "show", machine.get("Name", "?") if machine else "?")
    check(p.returncode == 0 and re.search(rf"^VM: +{vm_id}$", p.stdout, re.M)
          and re.search(rf"^Verified: .*machine={re.escape(machine.get('Name', '?'))}.*machine_uuid={uuid}",
                        p.stdout, re.M)
          and re.search(rf"^Bound to: +machine {uuid}$", p.stdout, re.M),
          "pmufilterctl show <machine name>: the VM, its machine and UUID verified, changes bound to the machine",
          p.stdout + p.stderr)
    recs = applied_records(c, mids, vm_id)
    check(any(r.get("PROFILE") == PROFILE_A and r.get("PID") == str(pid) for r in recs)
          and vm_prop(c, path, "AppliedUSec"),
          f"the filter is applied: APPLIED record (MESSAGE_ID={mids['APPLIED']}) VM_ID={vm_id} "
          f"PROFILE={PROFILE_A}, AppliedUSec set", str(recs[-3:]))

    # A persistent change by the domain's name follows the domain.
    p = c.run("pmufilterctl", "profile", "set", OVERRIDE, DOMAIN_A)
    v = vm_in_state(c, DOMAIN_A, "filtered", OVERRIDE)
    check(p.returncode == 0 and v and vm_prop(c, path, "ProfileSource") == "persistent"
          and any(r.get("PROFILE") == OVERRIDE for r in applied_records(c, mids, vm_id)),
          f"pmufilterctl profile set {OVERRIDE} {DOMAIN_A}: applied, source persistent",
          p.stdout + p.stderr + str(list_vms(c)))
    p = virsh(c, "destroy", DOMAIN_A)
    check(p.returncode == 0 and gone(c, DOMAIN_A), f"virsh destroy {DOMAIN_A}: the VM leaves pmufilterctl list",
          p.stderr + str(list_vms(c)))
    # ... with the daemon stopped meanwhile: the guest's attach starts it
    # (pmufilterd.socket), and the change is read back from its state.
    c.out("systemctl", "stop", "pmufilterd.service")
    p = virsh(c, "start", DOMAIN_A)
    v = vm_in_state(c, DOMAIN_A, "filtered", OVERRIDE)
    check(p.returncode == 0 and v and v[0] != vm_id and vm_prop(c, v[4], "ProfileSource") == "persistent"
          and any(r.get("PROFILE") == OVERRIDE for r in applied_records(c, mids, v[0]))
          and c.run("systemctl", "is-active", "pmufilterd.service").stdout.strip() == "active",
          f"virsh start {DOMAIN_A} again, the service stopped: the socket starts it, and the new VM "
          f"gets {OVERRIDE} again (source persistent, applied)",
          p.stderr + str(list_vms(c)) + (f" source={vm_prop(c, v[4], 'ProfileSource')}" if v else ""))
    machine2 = machine_of(c, DOMAIN_A)
    check(machine2 and machine and machine2["Name"] != machine["Name"] and v and machine2.get("Leader") == str(v[3]),
          f"machined registered it anew ({machine2 and machine2.get('Name')})", str(machine2))

    # Another domain (another name and UUID) does not get it.
    p = define(c, example, DOMAIN_B)
    if p.returncode == 0:
        p = virsh(c, "start", DOMAIN_B)
    uuid_b = virsh(c, "domuuid", DOMAIN_B).stdout.strip()
    w = vm_in_state(c, DOMAIN_B, "filtered")
    source_b = w and vm_prop(c, w[4], "ProfileSource")
    check(p.returncode == 0 and w and uuid_b != uuid and w[1] == PROFILE_B and source_b.startswith("rule:"),
          f"a second domain {DOMAIN_B} (UUID {uuid_b}) is filtered with {PROFILE_B} from the rules, "
          f"not {OVERRIDE}", p.stderr + str(list_vms(c)) + f" source={source_b}")

    # virsh destroy removes them.
    for name in (DOMAIN_A, DOMAIN_B):
        p = virsh(c, "destroy", name)
        check(p.returncode == 0 and gone(c, name), f"virsh destroy {name}: the VM leaves pmufilterctl list",
              p.stderr + str(list_vms(c)))
    # Fail closed: with no daemon listening the guest does not start.
    c.out("systemctl", "stop", "pmufilterd.socket", "pmufilterd.service")
    p = virsh(c, "start", DOMAIN_A)
    state = virsh(c, "domstate", DOMAIN_A).stdout.strip()
    check(p.returncode != 0 and "pmufilter-preload: refusing KVM_CREATE_VM" in p.stderr and state == "shut off",
          "with pmufilterd.socket stopped, virsh start fails: the shim refuses KVM_CREATE_VM",
          f"exit {p.returncode}, state {state}\n{p.stderr}")
    c.out("systemctl", "start", "pmufilterd.socket")
    unmanaged = [f"{r.get('VM_ID')} pid {r.get('PID')}: {r.get('MESSAGE')}"
                 for r in journal(c, "pmufilterd.service", fields=True)
                 if r.get("MESSAGE_ID") == mids["UNMANAGED"]]
    check(not unmanaged, "no VM was unmanaged meanwhile", "\n".join(unmanaged))


def main():
    return run(__doc__, libvirt_tree, checks, kvm=kvm_node)


if __name__ == "__main__":
    sys.exit(main())
