#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pmufilterctl's online verbs against the built daemon on a private
dbus-daemon: status (with and without the daemon), list, show, profile
list/show/set/reset, reload, reapply, monitor, their --json forms checked
against one table of fields (JSON_FIELDS, the same as pmufilterctl(1)'s
JSON OUTPUT), systemctl's manners (help VERB, -q, -l, -v, --no-pager,
--state, colour on a terminal, status's exit status), the one-line errors
and exit statuses, and the bash and zsh completions.  The bus is
busharness.SystemBus (system bus defaults and the shipped policy; the tests
run as root).  The VMs are real (/dev/kvm); their VMM is busharness.AutoPeer,
which applies every APPLY with KVM_SET_PMU_EVENT_FILTER on its own VM fd and
answers what the kernel said."""

import errno
import fcntl
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time

import harness
from busharness import NOBODY, AutoPeer, Lines, SystemBus
from harness import CTL, Daemon, check

CONFIG = """\
version: 1
settings:
  attach_timeout_ms: 1500
  default_profile: minimal
profiles:
  minimal:
    tier: tenant
    events: [ instructions, cycles ]
  gold:
    tier: tenant
    extends: minimal
    events: [ branches ]
  deny-shared:
    tier: trusted
    events:
      - { select: 0x2e, umask: any }
      - { select: 0x43, mask: 0xff, match: 0x01, exclude: true }
rules:
  - match: { label.tier: gold }
    profile: gold
"""

# Where CONFIG's rule is: list, show and explain name it by FILE:LINE, the
# file relative to the directory of the daemon's main file.
GOLD_RULE_LINE = CONFIG.splitlines().index("  - match: { label.tier: gold }") + 1
GOLD_RULE = "rule pmufilterd.yaml:%d" % GOLD_RULE_LINE

SRC_COMPLETION = os.path.join(harness.SRC, "shell-completion/bash/pmufilterctl")
SRC_ZSH_COMPLETION = os.path.join(harness.SRC, "shell-completion/zsh")
MAN = os.path.join(harness.SRC, "man/pmufilterctl.1")

# Every JSON object pmufilterctl prints, by kind: its members and their
# types.  One table: pmufilterctl(1), JSON OUTPUT, must say the same
# (test_json_fields_are_documented), and every verb's --json must match it,
# no member missing, none more, each of its type (test_json_of_every_verb).
# Types: string, number, boolean, object, [string], [object] (of the next
# kind), {string} and {number} (objects of such values); |null adds null.
JSON_FIELDS = {
    "status": {
        "running": "boolean", "reason": "string|null", "version": "string|null", "host_pmu": "string|null",
        "host_pmu_description": "string|null", "filter_supported": "boolean|null",
        "masked_events_supported": "boolean|null", "host_pmu_enabled": "boolean|null",
        "max_events": "number|null", "kernel": "string|null", "default_profile": "string|null",
        "n_vms": "number|null", "vms_by_state": "{number}|null", "lockdown": "boolean|null",
        "last_error": "string|null", "reload_warnings": "[string]|null", "config_files": "[string]|null",
        "foreign_vms": "number|null", "warnings": "[string]|null",
    },
    "list": {
        "id": "string", "name": "string|null", "profile": "string|null", "profile_source": "string|null",
        "profile_source_location": "string|null", "rule_index": "number|null", "rule_file": "string|null",
        "rule_line": "number|null", "in_force": "boolean", "state": "string", "last_error": "string|null",
        "pid": "number",
    },
    "show": {
        "id": "string", "name": "string|null", "uuid": "string|null", "pid": "number", "labels": "{string}",
        "client": "string|null", "state": "string", "profile": "string|null", "profile_source": "string|null",
        "profile_source_location": "string|null", "rule_index": "number|null", "rule_file": "string|null",
        "rule_line": "number|null", "action": "string|null", "events": "[string]", "n_events": "number",
        "fixed_counter_bitmap": "number", "flags": "number", "pmu": "string|null", "applied_usec": "number|null",
        "in_force": "boolean", "last_error": "string|null", "profile_expires_usec": "number|null",
        "verified_facts": "{string}|null", "claimed_facts": "{string}|null", "bound_to": "string|null",
        "event_names": "[string]|null",
    },
    "explain": {
        "verified_facts": "{string}", "claimed_facts": "{string}", "rules": "[object]",
        "override": "string|null", "override_scope": "string|null", "bound_to": "string|null",
        "default_profile": "string|null", "profile": "string|null", "profile_source": "string|null",
        "profile_source_location": "string|null", "rule_index": "number|null", "rule_file": "string|null",
        "rule_line": "number|null", "in_force": "boolean",
    },
    "explain: rules": {"rule": "number", "location": "string", "matched": "boolean", "reason": "string|null"},
    "profile list": {
        "name": "string", "tier": "string", "action": "string", "n_events": "number", "default": "boolean",
    },
    "profile show": {
        "name": "string", "tier": "string", "action": "string", "events": "[string]", "n_events": "number",
        "event_names": "[string]", "fixed_counter_bitmap": "number", "flags": "number", "pmu": "string",
        "source": "string|null", "vms": "[string]", "default": "boolean",
    },
    "compile": {
        "profile": "string", "tier": "string|null", "pmu": "string", "action": "string", "flags": "number",
        "fixed_counter_bitmap": "number", "events": "[string]", "n_events": "number",
        "event_names": "[string]|null",
    },
    "events": {
        "name": "string", "select": "string", "umask": "string", "code": "string", "generic": "boolean",
        "description": "string|null",
    },
    "check": {
        "config": "string", "files": "[string]|null", "n_profiles": "number|null", "n_rules": "number|null",
        "diagnostics": "[object]", "n_errors": "number", "n_warnings": "number", "ok": "boolean",
    },
    "check: diagnostics": {
        "level": "string", "file": "string|null", "line": "number|null", "column": "number|null",
        "message": "string",
    },
    "monitor": {"time_usec": "number", "signal": "string"},
    "monitor: VMNew, VMRemoved, VMUnmanaged": {"vm": "string", "path": "string"},
    "monitor: FilterApplied": {"vm": "string", "profile": "string|null", "ok": "boolean", "error": "string|null"},
    "monitor: Reloaded": {"ok": "boolean", "error": "string|null"},
    "monitor: PropertiesChanged": {
        "vm": "string|null", "profile": "string|null", "path": "string", "interface": "string",
        "changed": "object", "invalidated": "[string]",
    },
}
# The verbs that print tables: {"<key>": [object, ...]}.
JSON_TABLES = {"list": "vms", "profile list": "profiles", "events": "events"}
# What a monitor line has besides time_usec and signal.
MONITOR_KIND = {
    "VMNew": "monitor: VMNew, VMRemoved, VMUnmanaged", "VMRemoved": "monitor: VMNew, VMRemoved, VMUnmanaged",
    "VMUnmanaged": "monitor: VMNew, VMRemoved, VMUnmanaged", "FilterApplied": "monitor: FilterApplied",
    "Reloaded": "monitor: Reloaded", "PropertiesChanged": "monitor: PropertiesChanged",
    "DaemonStarted": None, "DaemonStopped": None,
}
# PropertiesChanged's `changed`: named and typed as the verb that shows that object.
INTERFACE_KIND = {"org.pmufilterd1.VM": "show", "org.pmufilterd1.Profile": "profile show",
                  "org.pmufilterd1.Manager": "status"}


def json_type_ok(v, t):
    for alt in t.split("|"):
        if (alt == "null" and v is None
                or alt == "string" and isinstance(v, str)
                or alt == "number" and isinstance(v, int) and not isinstance(v, bool)
                or alt == "boolean" and isinstance(v, bool)
                or alt == "object" and isinstance(v, dict)
                or alt == "[object]" and isinstance(v, list) and all(isinstance(x, dict) for x in v)
                or alt == "[string]" and isinstance(v, list) and all(isinstance(x, str) for x in v)
                or alt == "{string}" and isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                or alt == "{number}" and isinstance(v, dict)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v.values())):
            return True
    return False


def check_json_object(kind, obj, where, fields=None):
    """obj has exactly the members of JSON_FIELDS[kind] (or fields), each
    of its type; [object] members hold objects of kind "<kind>: <member>"."""
    fields = fields or JSON_FIELDS[kind]
    check(isinstance(obj, dict), "%s: not an object: %r" % (where, obj))
    missing, extra = set(fields) - set(obj), set(obj) - set(fields)
    check(not missing and not extra, "%s (%s): missing %s, not documented %s in %r"
          % (where, kind, sorted(missing), sorted(extra), obj))
    for k, t in fields.items():
        check(json_type_ok(obj[k], t), "%s (%s): %s is %r, not %s" % (where, kind, k, obj[k], t))
        if t.startswith("[object]"):
            for x in obj[k] or []:
                check_json_object("%s: %s" % (kind, k), x, where)


def check_json_document(kind, doc, where):
    """A whole document of a verb: a table's wrapper, or one object."""
    if kind in JSON_TABLES:
        check(isinstance(doc, dict) and list(doc) == [JSON_TABLES[kind]] and isinstance(doc[JSON_TABLES[kind]], list),
              "%s: expected {%r: [...]}, got %r" % (where, JSON_TABLES[kind], doc))
        for row in doc[JSON_TABLES[kind]]:
            check_json_object(kind, row, where)
    elif kind == "monitor":
        check(isinstance(doc, dict) and doc.get("signal") in MONITOR_KIND, "%s: which signal? %r" % (where, doc))
        fields = dict(JSON_FIELDS["monitor"], **JSON_FIELDS.get(MONITOR_KIND[doc["signal"]] or "", {}))
        check_json_object("monitor", doc, where, fields)
        if doc["signal"] == "PropertiesChanged":
            of = JSON_FIELDS[INTERFACE_KIND[doc["interface"]]]
            for k, v in doc["changed"].items():
                check(k in of and json_type_ok(v, of[k]), "%s: changed %s=%r is not as %s has it (%s)"
                      % (where, k, v, INTERFACE_KIND[doc["interface"]], of.get(k)))
            check(set(doc["invalidated"]) <= set(of), "%s: invalidated %r not named as %s has them"
                  % (where, doc["invalidated"], INTERFACE_KIND[doc["interface"]]))
    else:
        check_json_object(kind, doc, where)


def json_documents(text, where):
    """The JSON documents of an output, one after the other (JSON Lines, or
    indented documents in a row)."""
    docs, i, dec = [], 0, json.JSONDecoder()
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return docs
        try:
            doc, i = dec.raw_decode(text, i)
        except ValueError as e:
            raise harness.Failure("%s: not JSON at %d (%s): %r" % (where, i, e, text))
        docs.append(doc)


def man_json_tables():
    """pmufilterctl(1)'s JSON OUTPUT tables: {section: {field: type}}."""
    text = open(MAN).read()
    check(".SH JSON OUTPUT\n" in text, "pmufilterctl(1) has no JSON OUTPUT section")
    section = text.split(".SH JSON OUTPUT\n", 1)[1].split("\n.SH ", 1)[0]
    tables = {}
    for part in section.split("\n.SS ")[1:]:
        name = part.split("\n", 1)[0].strip().strip('"')
        body = part.split(".TS\n", 1)[1].split("\n.TE", 1)[0].split("\n")
        first = next(i for i, l in enumerate(body) if l.endswith(".")) + 1      # after tbl's format lines
        rows = [l.split("\t") for l in body[first:]]
        tables[name] = {row[0]: row[1] for row in rows if row[0] != "FIELD"}
    return tables


def applies(v):
    """(APPLY message, errno) of each filter v's VMM applied, in order."""
    with v.cond:
        return [(msg, err) for _, msg, err in v.applies if msg is not None]


def ctl(bus, *args, env=None, timeout=90):
    """Run pmufilterctl on the private bus: (exit status, stdout, stderr)."""
    cmd = [CTL] + (["--bus-address=" + bus.address] if bus else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def ok(bus, *args):
    rc, out, err = ctl(bus, *args)
    check(rc == 0, "pmufilterctl %s: exit %d, stderr: %s" % (" ".join(args), rc, err))
    return out


def fails(bus, args, rx, status=1):
    """The command fails with `status` and one line on stderr matching rx."""
    rc, out, err = ctl(bus, *args)
    check(rc == status, "pmufilterctl %s: expected exit %d, got %d (%s)" % (" ".join(args), status, rc, err))
    check(err.count("\n") == 1 and re.search(rx, err),
          "pmufilterctl %s: expected one line matching %r, got %r" % (" ".join(args), rx, err))
    return err


def field(out, label):
    """The value of `Label:   value` in a human view."""
    m = re.search(r"^%s: +(.*)$" % re.escape(label), out, re.M)
    check(m, "no '%s:' line in:\n%s" % (label, out))
    return m.group(1)


def status_json(bus, *args, env=None):
    """status --json: (exit status, the object)."""
    rc, out, err = ctl(bus, "status", "--json", *args, env=env)
    try:
        return rc, json.loads(out)
    except ValueError:
        raise harness.Failure("status --json printed no JSON (exit %d): %r %r" % (rc, out, err))


def degraded(j):
    """What status's exit status must say of a status --json object: true
    when something is not protected (lockdown, unmanaged or failed VMs)."""
    by_state = j.get("vms_by_state") or {}
    return bool(j.get("lockdown")) or by_state.get("unmanaged", 0) > 0 or by_state.get("failed", 0) > 0


def status(bus, *args):
    """status, whose exit status says whether anything is unprotected: the
    host's other VMs may be unmanaged, so the exit status is checked
    against the same run's --json twin.  Returns stdout."""
    rc, out, err = ctl(bus, "status", *args)
    jrc, j = status_json(bus)
    check(rc in (0, 1) and jrc in (0, 1), "status: exit %d / %d: %s" % (rc, jrc, err))
    check(jrc == (1 if degraded(j) else 0), "status --json exit %d for %r" % (jrc, j))
    return out


def setup(config=CONFIG, etc=None):
    harness.need_kvm()
    harness.need_root()
    harness.need(CTL, "pmufilterctl")
    bus = SystemBus()
    d = None
    try:
        d = Daemon(config_text=None if etc else config, etc=etc, bus=bus.address)
        # The socket exists before the name is taken: wait for the name.
        # (status exits 1 for a daemon in lockdown or with unmanaged VMs,
        # which the host's other VMs may be: ask whether it runs.)
        deadline = time.time() + 10
        while not status_json(bus)[1].get("running"):
            check(time.time() < deadline, "pmufilterd did not take its bus name:\n" + d.log())
            time.sleep(0.05)
    except BaseException:
        if d:
            d.stop()
        bus.stop()
        raise
    return bus, d


class Running:
    """A private bus and the daemon on it, for a `with` block."""

    def __init__(self, config=CONFIG, etc=None):
        """etc: the daemon reads /etc/pmufilterd as installed, these files
        (harness.Daemon), instead of config."""
        self.config = config
        self.etc = etc

    def __enter__(self):
        self.bus, self.d = setup(self.config, self.etc)
        self.vms = []
        return self

    def vm(self, name=None, **labels):
        """A filtered VM; .id is its id, applies(v) what its VMM applied."""
        attach = dict(("label_" + k, v) for k, v in labels.items())
        if name:
            attach["name"] = name
        v = AutoPeer(self.d.socket, **attach)
        self.vms.append(v)
        v.id = "%d-%d" % (os.getpid(), v.vm)
        v.wait_applies(1)
        # The peer records an APPLY before it answers: wait for the daemon
        # to have the answer.
        deadline = time.time() + 10
        while json.loads(ok(self.bus, "show", v.id, "--json"))["state"] != "filtered":
            check(time.time() < deadline, "VM %s not filtered:\n%s" % (v.id, self.d.log()))
            time.sleep(0.05)
        return v

    def __exit__(self, *exc):
        # A failing daemon (a sanitizer's report at exit) must not leave
        # the bus behind.
        try:
            for v in self.vms:
                v.close()
            self.d.stop()
        finally:
            self.bus.stop()


def test_status_with_daemon():
    with Running() as r:
        r.vm("vm-1", tier="gold")
        out = status(r.bus)
        check(re.match(r"pmufilterd: +running, version \d+\.\d+\.\d+, on bus unix:path=", out), "first line: %r" % out)
        check(field(out, "Default") == "minimal", "default profile minimal:\n" + out)
        # The daemon watches the whole host: other VMs may be counted too.
        check(re.match(r"[1-9]\d* \((\d+ \w+, )*\d+ filtered(, \d+ \w+)*\)$", field(out, "VMs")),
              "VMs counted by state, ours filtered:\n" + out)
        check(field(out, "Lockdown") == "no", "not in lockdown:\n" + out)
        check(field(out, "Last error") == "n/a", "no error:\n" + out)
        check(field(out, "Config files") == r.d.config, "the daemon's config file:\n" + out)
        check(field(out, "Event filter").startswith("supported"), "KVM has the filter here:\n" + out)
        host_pmu = field(out, "Host PMU").split(" ")[0]

        rc, j = status_json(r.bus)
        check(rc == (1 if degraded(j) else 0), "exit status %d for %r" % (rc, j))
        check(j["running"] is True and j["version"] == field(out, "pmufilterd").split("version ")[1].split(",")[0],
              "JSON: running, same version: %r" % j)
        check(j["host_pmu"] == host_pmu and j["default_profile"] == "minimal" and j["n_vms"] >= 1,
              "JSON: same PMU, default, count: %r" % j)
        # NVMs and ListVMs are two calls: another VM of the host may come between.
        check(sum(j["vms_by_state"].values()) >= 1 and j["vms_by_state"]["filtered"] >= 1,
              "JSON: counts by state: %r" % j)
        check(j["lockdown"] is False and j["config_files"] == [r.d.config] and j["last_error"] is None,
              "JSON: lockdown, files, no error (null): %r" % j)
        check(j["reason"] is None, "JSON: why it is not running, null: %r" % j)
        # The daemon's probe in words: the capabilities an operator asks about.
        check(j["kernel"] == field(out, "Kernel") and re.search(r"PMU event filter up to \d+ events", j["kernel"])
              and re.search(r"kvm\.enable_pmu=[YN]", j["kernel"]) and "per-VM vPMU disable " in j["kernel"]
              and "mediated vPMU " in j["kernel"], "JSON and text: the daemon's probe: %r / %r" % (j["kernel"], out))
        check(j["filter_supported"] is True and isinstance(j["masked_events_supported"], bool)
              and isinstance(j["host_pmu_enabled"], bool), "JSON: kernel support as booleans: %r" % j)


def test_status_in_lockdown():
    with Running(config="version: 1\nprofiles: [ broken\n") as r:
        # In lockdown nothing is protected: status says so, and exits 1.
        rc, out, err = ctl(r.bus, "status")
        check(rc == 1 and err == "", "lockdown: exit 1, no error line: %d %r" % (rc, err))
        check(re.match(r"pmufilterd: +running IN LOCKDOWN, ", out), "first line says lockdown: %r" % out)
        check(field(out, "Lockdown").startswith("YES: the policy failed to load"), "lockdown explained:\n" + out)
        check("pmufilterd.yaml" in field(out, "Last error"), "the error names the file:\n" + out)
        rc, j = status_json(r.bus)
        check(rc == 1 and j["lockdown"] is True and j["last_error"] == field(out, "Last error"),
              "JSON: exit 1, lockdown, same error: %d %r" % (rc, j))
        rc, out, err = ctl(r.bus, "-q", "status")
        check(rc == 1, "-q status: the exit status still says it: %d" % rc)
        check(ok(r.bus, "profile", "list", "--no-legend") == "", "no profiles in lockdown")
        fails(r.bus, ["profile", "set", "minimal"], r"^pmufilterctl: Failed to set the default profile to 'minimal': .*lockdown")


def test_status_without_daemon():
    harness.need(CTL, "pmufilterctl")
    with SystemBus() as bus:
        rc, out, err = ctl(bus, "status")
        check(rc == 1, "no daemon: exit 1, got %d (%s)" % (rc, err))
        check(re.match(r"pmufilterd: +not running \(nobody owns org\.pmufilterd1 on bus unix:path=", out),
              "first line says not running and why: %r" % out)
        host_pmu = field(out, "Host PMU")
        check(field(out, "Kernel") and field(out, "Event filter") and field(out, "Host vPMU"),
              "local kernel facts:\n" + out)

        j = json.loads(ctl(bus, "status", "--json")[1])
        check(j["running"] is False and "nobody owns" in j["reason"], "JSON says not running: %r" % j)
        check(host_pmu.startswith(j["host_pmu"] + " "), "JSON: same host PMU as the table: %r vs %r" % (j, host_pmu))
        check(isinstance(j["filter_supported"], bool) and isinstance(j["max_events"], int), "JSON: typed facts: %r" % j)

    # No bus at all, found through DBUS_SYSTEM_BUS_ADDRESS as the system bus.
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/pmufilterd-test-bus")
    rc, out, err = ctl(None, "status", env=env)
    check(rc == 1 and re.match(r"pmufilterd: +not running \(cannot connect to the system bus: ", out),
          "no bus: exit 1, says it cannot connect: %d %r %r" % (rc, out, err))
    check(field(out, "Host PMU") == host_pmu, "the same local facts")
    # The other verbs just fail, in one line.
    rc, out, err = ctl(None, "list", env=env)
    check(rc == 1 and err.count("\n") == 1 and "Failed to connect to the system bus" in err,
          "list without a bus: one line, exit 1: %d %r" % (rc, err))


def test_list_and_json_agree():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        out = ok(r.bus, "list")
        lines = out.splitlines()
        check(re.match(r"ID +NAME +PROFILE +SOURCE +STATE +PID$", lines[0]), "header: %r" % lines[0])
        check(lines[-1] == "%d VMs listed." % (len(lines) - 3), "footer counts the rows: %r" % lines[-1])
        # The daemon watches the whole host: other VMs may be listed too.
        rows = {l.split()[0]: l.split() for l in lines[1:-2]}
        check(rows.get(a.id) == [a.id, "vm-1", "gold"] + GOLD_RULE.split() + ["filtered", str(os.getpid())],
              "row of vm-1: %r" % rows)
        check(rows.get(b.id) == [b.id, "vm-2", "minimal", "default", "filtered", str(os.getpid())],
              "row of vm-2: %r" % rows)

        vms = json.loads(ok(r.bus, "list", "--json"))["vms"]
        mine = [v for v in vms if v["pid"] == os.getpid()]
        check(sorted(v["id"] for v in mine) == sorted([a.id, b.id]), "JSON: the same VMs: %r" % vms)
        for v in mine:
            row = rows[v["id"]]
            source = ["rule", os.path.basename(v["profile_source_location"])] if v["rule_index"] else [v["profile_source"]]
            check([v["id"], v["name"], v["profile"]] + source + [v["state"], str(v["pid"])] == row
                  and isinstance(v["pid"], int) and v["in_force"] is True, "JSON row %r = table row %r" % (v, row))
        j = {v["id"]: v for v in mine}
        check(j[a.id]["profile_source"] == "rule:1" and j[a.id]["rule_index"] == 1
              and j[a.id]["rule_file"] == r.d.config and j[a.id]["rule_line"] == GOLD_RULE_LINE
              and j[a.id]["profile_source_location"] == "%s:%d" % (r.d.config, GOLD_RULE_LINE),
              "JSON: the rule by index, file and line: %r" % j[a.id])
        check(j[b.id]["rule_index"] is None and j[b.id]["rule_file"] is None and j[b.id]["rule_line"] is None
              and j[b.id]["profile_source_location"] is None, "JSON: no rule, all null: %r" % j[b.id])

        out = ok(r.bus, "list", "--no-legend")
        check(all(re.match(r"\d+-\d+ ", l) for l in out.splitlines()) and {a.id, b.id} <= {l.split()[0] for l in out.splitlines()},
              "--no-legend: rows only, ours among them: %r" % out)


def test_show_vm():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        apply, _ = applies(a)[0]
        for name in ("vm-1", a.id):
            out = ok(r.bus, "show", name)
            check(field(out, "VM") == a.id and field(out, "Name") == "vm-1", "identity:\n" + out)
            check(field(out, "Labels") == "tier=gold" and field(out, "State") == "filtered", "labels, state:\n" + out)
            check(field(out, "Profile") == "gold (from %s)" % GOLD_RULE, "profile and source:\n" + out)
            check(field(out, "Action").startswith("allow") and field(out, "Entries") == "3", "filter:\n" + out)
            check(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", field(out, "Applied")), "applied time:\n" + out)
            for event in ("instructions", "cycles", "branches"):
                check(re.search(r"^ *\d+ +0x[0-9a-f]+ .* %s\b" % event, out, re.M), "entry %s decoded:\n%s" % (event, out))

        j = json.loads(ok(r.bus, "show", "vm-1", "--json"))
        check(j["id"] == a.id and j["name"] == "vm-1" and j["state"] == "filtered" and j["profile"] == "gold"
              and j["profile_source"] == "rule:1" and j["labels"] == {"tier": "gold"} and j["pid"] == os.getpid()
              and j["in_force"] is True and j["rule_index"] == 1 and j["rule_file"] == r.d.config
              and j["rule_line"] == GOLD_RULE_LINE, "JSON properties: %r" % j)
        check(j["events"] == apply["EVENTS"].split(",") and j["n_events"] == 3 and j["action"] == "allow"
              and j["applied_usec"] > 0, "JSON: the words the VMM applied: %r vs %r" % (j, apply))
        check(j["event_names"] == ["cycles", "instructions", "branches"] and j["uuid"] is None,
              "JSON: the policy's spellings; no UUID claimed is null: %r" % j)


def test_show_tells_verified_facts_from_claims():
    """show says which facts of a VM the daemon read from the kernel and
    systemd, which the VMM claimed, and what a change would be bound to."""
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        out = ok(r.bus, "show", "vm-1")
        verified, claimed = field(out, "Verified"), field(out, "Claimed")
        check("uid=%d" % os.getuid() in verified and "comm=" in verified and "exe=" in verified,
              "verified facts:\n" + out)
        check("name=" not in verified and "label." not in verified, "no claim among the verified:\n" + out)
        check("name=vm-1" in claimed and "label.tier=gold" in claimed and "client=" in claimed,
              "claimed facts:\n" + out)
        check(field(out, "Bound to") == "uid %d with the claimed name 'vm-1'" % os.getuid(),
              "the binding:\n" + out)
        j = json.loads(ok(r.bus, "show", a.id, "--json"))
        check(j["verified_facts"]["uid"] == str(os.getuid()) and j["claimed_facts"]["name"] == "vm-1"
              and j["claimed_facts"]["label.tier"] == "gold"
              and j["bound_to"] == "uid %d with the claimed name 'vm-1'" % os.getuid(), "JSON: %r" % j)
        # A trusted tier on claims alone is called out; a tenant one is not.
        rc, out, err = ctl(r.bus, "profile", "set", "deny-shared", "vm-1", "--runtime")
        check(rc == 0 and re.search(r"warning: trusted-tier profile 'deny-shared' on VM vm-1 is bound to uid %d "
                                    r"with the claimed name 'vm-1'" % os.getuid(), err), "warning: %r" % err)
        rc, out, err = ctl(r.bus, "profile", "set", "minimal", "vm-1", "--runtime")
        check(rc == 0 and err == "", "no warning for a tenant tier: %r" % err)


def test_explain_says_why_a_vm_has_its_profile():
    """explain: the VM's facts, verified and claimed; every rule in order
    with its file:line and, where it failed, the key that failed and why;
    the override and what it is bound to; the default; the result."""
    with Running() as r:
        r.vm("vm-1", tier="silver")             # no rule matches: the default
        g = r.vm("vm-2", tier="gold")
        out = ok(r.bus, "explain", "vm-1")
        check(re.search(r"uid=%d" % os.getuid(), out) and re.search(r"label.tier=silver", out),
              "facts, verified and claimed:\n" + out)
        check(re.search(r"^ +1\. +pmufilterd\.yaml:%d +no: label.tier 'silver' does not match 'gold'$" % GOLD_RULE_LINE,
                        out, re.M), "the rule, where it is, and why it failed:\n" + out)
        check(field(out, "Override") == "none" and field(out, "Default") == "minimal"
              and field(out, "Result") == "minimal (from default)", "override, default, result:\n" + out)
        out = ok(r.bus, "explain", g.id)
        check(re.search(r"^ +1\. +\S+:\d+ +matched$", out, re.M) and field(out, "Result") == "gold (from %s)" % GOLD_RULE,
              "the rule that decides:\n" + out)
        ok(r.bus, "profile", "set", "minimal", "vm-2", "--runtime")
        j = json.loads(ok(r.bus, "explain", "vm-2", "--json"))
        check_json_document("explain", j, "explain --json")
        check(j["override"] == "minimal" and j["override_scope"] == "runtime"
              and j["bound_to"] == "uid %d with the claimed name 'vm-2'" % os.getuid()
              and j["profile_source"] == "runtime" and j["rules"][0]["matched"] is True
              and j["rules"][0]["location"].startswith(r.d.config + ":"), "JSON: %r" % j)


def test_reload_dry_run_shows_what_would_change():
    """reload --dry-run: the edited policy loaded, not applied; per VM the
    profile now and after, whether the filter bytes change; exit 3 when
    something would change, 0 when nothing would, 1 when it does not load."""
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 0 and re.search(r"^%s +vm-1 +gold +gold +same$" % a.id, out, re.M),
              "nothing would change (exit 0):\n%s%s" % (out, err))
        r.d.write_config(CONFIG.replace("events: [ branches ]", "events: [ branches, instructions, 0xc5 ]")
                         .replace("profile: gold", "profile: deny-shared"))
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 3 and re.search(r"^%s +vm-1 +gold +deny-shared +changes$" % a.id, out, re.M),
              "what would change (exit 3):\n%s%s" % (out, err))
        check(json.loads(ok(r.bus, "show", "vm-1", "--json"))["profile"] == "gold", "nothing was applied")
        r.d.write_config("")
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc == 1 and "the policy file is empty" in err, "a policy that does not load: %r" % err)


def test_profile_list_and_show():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        out = ok(r.bus, "profile", "list")
        rows = {l.split()[0]: l.split() for l in out.splitlines()[1:-2]}
        check(rows == {"minimal": ["minimal", "tenant", "allow", "2", "yes"],
                       "gold": ["gold", "tenant", "allow", "3", "no"],
                       "deny-shared": ["deny-shared", "trusted", "deny", "2", "no"]}, "profile rows: %r" % rows)
        j = json.loads(ok(r.bus, "profile", "list", "--json"))["profiles"]
        check({p["name"]: [p["name"], p["tier"], p["action"], str(p["n_events"]), "yes" if p["default"] else "no"]
               for p in j} == rows, "JSON profiles = table: %r" % j)

        out = ok(r.bus, "profile", "show", "gold")
        check(field(out, "Profile") == "gold (tier tenant)" and field(out, "VMs") == a.id, "gold and its VM:\n" + out)
        check(field(out, "Source") == r.d.config and field(out, "Entries") == "3", "source, entries:\n" + out)
        out = ok(r.bus, "profile", "show", "deny-shared")
        check(field(out, "Flags") == "1 (KVM_PMU_EVENT_FLAG_MASKED_EVENTS)" and field(out, "VMs") == "none",
              "masked denylist:\n" + out)
        check(re.search(r"^ *\d+ +0x[0-9a-f]+ +0x43 +0xff +0x01 +yes", out, re.M), "the exclude entry decoded:\n" + out)
        j = json.loads(ok(r.bus, "profile", "show", "deny-shared", "--json"))
        check(j["name"] == "deny-shared" and j["tier"] == "trusted" and j["action"] == "deny" and len(j["events"]) == 2
              and j["n_events"] == 2 and len(j["event_names"]) == 2 and j["vms"] == [] and j["default"] is False,
              "JSON profile: %r" % j)
        j = json.loads(ok(r.bus, "profile", "show", "gold", "--json"))
        check(j["vms"] == [a.id], "JSON: the profile's VMs by id, as list names them: %r" % j)


def test_profile_set_vm_runtime_then_reset():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        n = len(applies(a))
        ok(r.bus, "profile", "set", "deny-shared", "vm-1", "--runtime")
        # The call returned after APPLIED: the VMM has seen and applied it.
        check(len(applies(a)) == n + 1, "profile set returned before the VMM applied (%d APPLY)" % len(applies(a)))
        apply, err = applies(a)[-1]
        check(apply["PROFILE"] == "deny-shared" and apply["FLAGS"] == "1" and err == 0,
              "the kernel took the masked denylist: %r errno %d" % (apply, err))
        out = ok(r.bus, "show", "vm-1")
        check(field(out, "Profile") == "deny-shared (from runtime)" and field(out, "State") == "filtered",
              "show after set:\n" + out)
        check(field(out, "Flags") == "1 (KVM_PMU_EVENT_FLAG_MASKED_EVENTS)", "masked:\n" + out)
        check(os.path.exists(os.path.join(r.d.dir, "run/state.yaml")), "--runtime wrote the runtime state")

        ok(r.bus, "profile", "reset", "vm-1", "--runtime")
        check(len(applies(a)) == n + 2, "reset applied before returning")
        out = ok(r.bus, "show", "vm-1", "--json")
        j = json.loads(out)
        check(j["profile"] == "gold" and j["profile_source"] == "rule:1", "back to the rule: %r" % j)

        # Persistent: the state file under the state directory.
        ok(r.bus, "profile", "set", "minimal", a.id)
        check(json.loads(ok(r.bus, "show", a.id, "--json"))["profile_source"] == "persistent", "persistent source")


def test_profile_set_default():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        na, nb = len(applies(a)), len(applies(b))
        ok(r.bus, "profile", "set", "gold")
        check(field(status(r.bus), "Default") == "gold", "DefaultProfile changed")
        # vm-2 follows the default, and has it when the call returns; vm-1's rule wins.
        check(len(applies(b)) == nb + 1 and applies(b)[-1][0]["PROFILE"] == "gold", "vm-2 got gold: %r" % applies(b)[-1][0])
        check(len(applies(a)) == na, "vm-1 kept its rule's profile, no push")
        j = json.loads(ok(r.bus, "show", "vm-2", "--json"))
        check(j["profile"] == "gold" and j["profile_source"] == "default", "vm-2: gold from default: %r" % j)
        rows = ok(r.bus, "profile", "list", "--no-legend")
        check(re.search(r"^gold .* yes$", rows, re.M), "profile list marks gold as default:\n" + rows)


def test_reload():
    with Running() as r:
        r.d.write_config(CONFIG.replace("profiles:\n", "profiles:\n  extra:\n    tier: tenant\n    events: [ branches ]\n", 1))
        ok(r.bus, "reload")
        check("extra" in ok(r.bus, "profile", "list"), "the reloaded policy's new profile is listed")
        r.d.write_config("version: 1\nprofiles: [ broken\n")
        fails(r.bus, ["reload"], r"^pmufilterctl: Failed to reload the policy: The policy was not reloaded, the old one stays: ")
        check("extra" in ok(r.bus, "profile", "list"), "the old policy stays")
        check(field(status(r.bus), "Last error") != "n/a", "status shows the error")


def test_reapply():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        na, nb = len(applies(a)), len(applies(b))
        ok(r.bus, "reapply", "vm-1")
        check(len(applies(a)) == na + 1 and len(applies(b)) == nb, "only vm-1 again, done on return")
        ok(r.bus, "reapply")
        check(len(applies(a)) == na + 2 and len(applies(b)) == nb + 1, "every VM again, done on return")


def human_monitor(r, a, out):
    """One sentence per event: "HH:MM:SS VM <id> (<name>) ..."."""
    def line(rx, what, timeout=10):
        return out.wait(lambda l: re.fullmatch(r"\d\d:\d\d:\d\d " + rx, l), what, timeout)

    out.wait(lambda l: l.startswith("Monitoring org.pmufilterd1 on bus "), "header line")
    # vm-1 attached before the monitor started: named from ListVMs.
    ok(r.bus, "reapply", "vm-1")
    line(r"VM %s \(vm-1\) filter applied: profile gold" % a.id, "vm-1 applied")
    # A new VM: added (its VMM has claimed nothing yet), then applied, named.
    b = r.vm("vm-2")
    line(r"VM %s added" % b.id, "vm-2 added")
    line(r"VM %s \(vm-2\) filter applied: profile minimal" % b.id, "vm-2 applied")
    # The kernel refuses a filter.
    a.force_errno = errno.EINVAL
    check(ctl(r.bus, "reapply", "vm-1")[0] == 1, "the refused reapply fails")
    line(r"VM %s \(vm-1\) filter FAILED: profile gold: KVM_SET_PMU_EVENT_FILTER failed: Invalid argument" % a.id,
         "vm-1 failed")
    a.force_errno = None
    # The default profile, told against the one before.
    ok(r.bus, "profile", "set", "gold")
    line(r"default profile changed: gold \(was minimal\)", "default profile change")
    line(r"VM %s \(vm-2\) filter applied: profile gold" % b.id, "vm-2 follows the default")
    # Reloads, good and bad (the default set over D-Bus stays).
    ok(r.bus, "reload")
    line(r"policy reloaded", "a good reload")
    r.d.write_config("version: 1\nprofiles: [ broken\n")
    ctl(r.bus, "reload")
    line(r"policy reload FAILED, the policy in force stays: .*pmufilterd\.yaml:.*", "a bad reload")
    r.d.write_config(CONFIG)
    # A VM whose VMM never attaches: unmanaged (by id: there is no name).
    kvm, vm = harness.kvm_create_vm()
    try:
        vm_id = "%d-%d" % (os.getpid(), vm)
        line(r"VM %s added" % vm_id, "the unattached VM added")
        line(r"VM %s unmanaged: its VMM did not attach, its guest PMU is not filtered" % vm_id, "unmanaged", 15)
    finally:
        os.close(vm)
        os.close(kvm)
    line(r"VM %s removed" % vm_id, "the unattached VM removed")
    # A VM that goes keeps its name to the end.
    r.vms.remove(b)
    b.close()
    line(r"VM %s \(vm-2\) removed" % b.id, "vm-2 removed")
    # Nothing but these sentences: no raw signal, no PropertiesChanged.
    check(not [l for l in out.text().split("\n")[1:] if not re.match(r"\d\d:\d\d:\d\d (VM|default|policy|pmufilterd|lockdown)", l)],
          "only sentences:\n" + out.text())


def test_monitor():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        for json_mode in (False, True):
            args = [CTL, "--bus-address=" + r.bus.address, "monitor"] + (["--json"] if json_mode else [])
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out = Lines(proc.stdout)
            try:
                if json_mode:
                    # No header to wait for: push until the subscription sees
                    # both (its matches go in one after the other, so one
                    # APPLIED's FilterApplied may be seen without its
                    # PropertiesChanged); the VM's properties change with
                    # every APPLIED.
                    deadline = time.time() + 20
                    applied = None
                    while True:
                        ok(r.bus, "reapply", "vm-1")
                        try:
                            applied = applied or json.loads(out.wait(lambda l: '"FilterApplied"' in l,
                                                                     "FilterApplied", 1))
                            changed = json.loads(out.wait(lambda l: '"PropertiesChanged"' in l
                                                          and '"vm":"%s"' % a.id in l, "PropertiesChanged of the VM", 1))
                            break
                        except harness.Failure:
                            check(time.time() < deadline, "monitor --json printed no FilterApplied and "
                                  "PropertiesChanged of the VM:\n" + out.text())
                    check(applied["vm"] == a.id and applied["profile"] == "gold" and applied["ok"] is True
                          and applied["error"] is None and applied["time_usec"] > 0, "JSON FilterApplied: %r" % applied)
                    check(changed["interface"] == "org.pmufilterd1.VM" and changed["changed"]["state"] == "filtered"
                          and changed["changed"]["profile"] == "gold", "JSON PropertiesChanged: %r" % changed)
                    with out.cond:
                        for l in out.lines:
                            json.loads(l)
                else:
                    human_monitor(r, a, out)
                proc.send_signal(signal.SIGTERM)
                check(proc.wait(10) == 0, "monitor exits 0 on SIGTERM: %s" % proc.stderr.read())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_errors_are_one_line():
    with Running() as r:
        r.vm("vm-1", tier="gold")
        fails(r.bus, ["show", "no-such-vm"], r"^pmufilterctl: Failed to look up VM no-such-vm: No VM 'no-such-vm'")
        fails(r.bus, ["profile", "show", "nope"], r"^pmufilterctl: Failed to look up profile nope: No profile 'nope'")
        fails(r.bus, ["profile", "set", "nope", "vm-1"],
              r"^pmufilterctl: Failed to set profile of VM vm-1: No profile 'nope' in the policy "
              r"\(see pmufilterctl profile list\)$")
        fails(r.bus, ["profile", "set", "nope"], r"^pmufilterctl: Failed to set the default profile to 'nope': No profile 'nope'")
        fails(r.bus, ["profile", "set", "gold", "no-such-vm"], r"^pmufilterctl: Failed to set profile of VM no-such-vm: No VM")
        # Each VM on its own: the one that fails does not keep the other from its profile.
        fails(r.bus, ["profile", "set", "minimal", "no-such-vm", "vm-1", "--runtime"],
              r"^pmufilterctl: Failed to set profile of VM no-such-vm: No VM")
        j = json.loads(ok(r.bus, "show", "vm-1", "--json"))
        check(j["profile"] == "minimal" and j["profile_source"] == "runtime", "vm-1 changed all the same: %r" % j)
        fails(r.bus, ["profile", "reset", "no-such-vm"], r"^pmufilterctl: Failed to reset the profile of VM no-such-vm: No VM")
        fails(r.bus, ["reapply", "no-such-vm"], r"^pmufilterctl: Failed to reapply the filter of VM no-such-vm: No VM")
        # A VM whose VMM never attached: the daemon sees it but cannot change its filter.
        kvm, vm = harness.kvm_create_vm()
        try:
            vm_id = "%d-%d" % (os.getpid(), vm)
            deadline = time.time() + 10
            while ctl(r.bus, "show", vm_id)[0] != 0:
                check(time.time() < deadline, "the daemon never saw VM %s:\n%s" % (vm_id, r.d.log()))
                time.sleep(0.05)
            fails(r.bus, ["profile", "set", "gold", vm_id],
                  r"^pmufilterctl: Failed to set profile of VM %s: VM %s has no session with pmufilterd" % (vm_id, vm_id))
        finally:
            os.close(vm)
            os.close(kvm)
        # Usage errors: exit 2.
        fails(r.bus, ["show"], r"too few arguments for 'show'", status=2)
        fails(r.bus, ["profile", "show", "a", "b"], r"too many arguments for 'profile show'", status=2)
        fails(r.bus, ["profile", "reset"], r"too few arguments for 'profile reset'", status=2)
        fails(r.bus, ["list", "--runtime"], r"--runtime does not apply to 'list'", status=2)
        fails(r.bus, ["monitor", "extra"], r"too many arguments for 'monitor'", status=2)
        fails(r.bus, ["-H", "somewhere", "status"], r"--host and --bus-address exclude each other", status=2)
        fails(r.bus, ["reload", "--json"], r"--json does not apply to 'reload'", status=2)


def wait_state(r, vm_id, state, timeout=10):
    deadline = time.time() + timeout
    while True:
        rc, out, _ = ctl(r.bus, "show", vm_id, "--json")
        if rc == 0 and json.loads(out)["state"] == state:
            return
        check(time.time() < deadline, "VM %s not %s:\n%s" % (vm_id, state, r.d.log()))
        time.sleep(0.05)


class Unattached:
    """A real VM no VMM attaches: the daemon finds it (detected) and, after
    attach_timeout_ms, calls it unmanaged."""

    def __init__(self, r, unmanaged=True):
        self.kvm, self.vm = harness.kvm_create_vm()
        self.id = "%d-%d" % (os.getpid(), self.vm)
        if unmanaged:
            wait_state(r, self.id, "unmanaged")

    def close(self):
        os.close(self.vm)
        os.close(self.kvm)


def failed_vm(r, name):
    """A VM whose kernel refused its last filter (state failed)."""
    v = r.vm(name)
    v.force_errno = errno.EINVAL
    rc, out, err = ctl(r.bus, "reapply", name)
    check(rc == 1, "reapply with a refusing kernel: exit %d %r" % (rc, err))
    wait_state(r, v.id, "failed")
    return v


def on_terminal(args, env=None, cols=200):
    """Run args with stdout on a pseudo-terminal cols wide: (exit status,
    what the terminal got, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    env = dict(os.environ if env is None else env)
    env.setdefault("TERM", "xterm")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    err = p.stderr.read().decode()
    p.wait(30)
    return p.returncode, out.decode().replace("\r\n", "\n"), err


def test_json_fields_are_documented():
    """pmufilterctl(1)'s JSON OUTPUT lists the members and types of
    JSON_FIELDS, no more, no fewer; and one name has one type everywhere."""
    man = man_json_tables()
    check(set(man) == set(JSON_FIELDS), "man page tables %s, test tables %s" % (sorted(man), sorted(JSON_FIELDS)))
    for kind, fields in JSON_FIELDS.items():
        check(man[kind] == fields, "pmufilterctl(1), JSON OUTPUT, %s: %r; the test has %r" % (kind, man[kind], fields))
    types = {}
    for kind, fields in JSON_FIELDS.items():
        for name, t in fields.items():
            base = t.replace("|null", "")
            check(types.setdefault(name, (base, kind))[0] == base,
                  "%s is %s in %s but %s in %s" % (name, base, kind, types[name][0], types[name][1]))


def test_json_of_every_verb():
    """Every verb that prints JSON, against JSON_FIELDS, in every mode:
    --json and --json=short print each document on one line, --json=pretty
    indents the same documents."""
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = AutoPeer(r.d.socket)             # claims no name: null
        r.vms.append(b)
        b.id = "%d-%d" % (os.getpid(), b.vm)
        b.wait_applies(1)
        wait_state(r, b.id, "filtered")
        f = failed_vm(r, "vm-f")
        u = Unattached(r)
        config = os.path.join(r.d.dir, "check.yaml")
        with open(config, "w") as out:
            out.write(CONFIG)
        bad = os.path.join(r.d.dir, "bad.yaml")
        with open(bad, "w") as out:
            out.write("version: 1\nprofiles:\n  p:\n    tier: tenant\n    events: [ NO_SUCH_EVENT ]\n")
        try:
            # (kind, arguments, exit statuses allowed)
            runs = [("status", ["status"], (0, 1)),
                    ("list", ["list"], (0,)),
                    ("list", ["list", "--state=unmanaged"], (0,)),
                    ("show", ["show", a.id, b.id, f.id, u.id], (0,)),
                    ("profile list", ["profile", "list"], (0,)),
                    ("compile", ["--config=" + config, "compile", "deny-shared"], (0,)),
                    ("events", ["events", "br*"], (0,)),
                    ("check", ["check", config], (0,)),
                    ("check", ["check", bad], (1,))]
            runs += [("profile show", ["profile", "show", p], (0,)) for p in ("minimal", "gold", "deny-shared")]
            runs += [("compile", ["--config=" + config, "compile", p], (0,)) for p in ("minimal", "gold")]
            for kind, args, statuses in runs:
                short = None
                for mode in ("--json", "--json=short", "--json=pretty"):
                    # The offline verbs take no bus.
                    online = kind not in ("compile", "events", "check")
                    rc, out, err = ctl(r.bus if online else None, *(args + [mode]))
                    where = "pmufilterctl %s %s" % (" ".join(args), mode)
                    check(rc in statuses, "%s: exit %d: %s" % (where, rc, err))
                    docs = json_documents(out, where)
                    check(len(docs) == (4 if kind == "show" else 1), "%s: %d documents" % (where, len(docs)))
                    for doc in docs:
                        check_json_document(kind, doc, where)
                    if mode == "--json=pretty":
                        check(len(out.splitlines()) > len(docs), "%s: not indented: %r" % (where, out))
                        # The daemon's VMs come and go (the host's other VMs): compare what is ours.
                        if kind not in ("status", "list"):
                            check(docs == short, "%s: not the documents of --json=short" % where)
                    else:
                        check(len(out.splitlines()) == len(docs), "%s: not one line per document: %r" % (where, out))
                        short = docs
            # Nulls where the convention puts them.
            shown = {d["id"]: d for d in json_documents(ok(r.bus, "show", a.id, b.id, u.id, "--json"), "show")}
            check(shown[b.id]["name"] is None and shown[a.id]["uuid"] is None, "no claim: null: %r" % shown)
            check(shown[u.id]["applied_usec"] is None and shown[u.id]["event_names"] is None
                  and shown[u.id]["client"] is None, "never applied, no client: null: %r" % shown[u.id])
            diag = json.loads(ctl(None, "check", bad, "--json")[1])
            check(diag["ok"] is False and diag["n_errors"] == 1 and diag["diagnostics"][0]["line"] == 5
                  and diag["diagnostics"][0]["file"] == bad, "check --json: the error, where: %r" % diag)
        finally:
            u.close()

        # status without the daemon: the same members, the daemon's null.
        with SystemBus() as empty:
            rc, out, err = ctl(empty, "status", "--json=pretty")
            check(rc == 1, "status without the daemon: exit 1, got %d" % rc)
            check_json_document("status", json.loads(out), "status --json=pretty without the daemon")

        # monitor: one document per signal; every kind of line.
        proc = subprocess.Popen([CTL, "--bus-address=" + r.bus.address, "monitor", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = Lines(proc.stdout)
        try:
            deadline = time.time() + 20
            while not any('"FilterApplied"' in l for l in lines.lines):
                check(time.time() < deadline, "monitor --json printed no FilterApplied")
                ok(r.bus, "reapply", "vm-1")
                time.sleep(0.2)
            ok(r.bus, "reload")
            v = Unattached(r)                         # VMNew, then VMUnmanaged
            v.close()                                  # VMRemoved
            for signal_name in ("PropertiesChanged", "Reloaded", "VMNew", "VMUnmanaged", "VMRemoved"):
                lines.wait(lambda l: '"signal":"%s"' % signal_name in l, signal_name)
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(10) == 0, "monitor exits 0 on SIGTERM")
            for l in lines.lines:
                check_json_document("monitor", json.loads(l), "monitor --json line")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        # monitor --json=pretty: indented documents in a row.
        proc = subprocess.Popen([CTL, "--bus-address=" + r.bus.address, "monitor", "--json=pretty"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = Lines(proc.stdout)
            deadline = time.time() + 20
            while not any('"FilterApplied"' in l for l in lines.lines):
                check(time.time() < deadline, "monitor --json=pretty printed no FilterApplied")
                ok(r.bus, "reapply", "vm-1")
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(10) == 0, "monitor exits 0 on SIGTERM")
            docs = json_documents(lines.text() + "\n", "monitor --json=pretty")
            check(len(lines.lines) > len(docs) and any(d["signal"] == "FilterApplied" for d in docs),
                  "monitor --json=pretty: indented documents: %r" % lines.text())
            for d in docs:
                check_json_document("monitor", d, "monitor --json=pretty document")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        fails(r.bus, ["status", "--json=yaml"], r"unknown JSON mode 'yaml': expected pretty, short or off", status=2)
        check(ok(r.bus, "--json=help").split() == ["short", "pretty", "off"], "--json=help lists the modes")
        check(ok(r.bus, "profile", "list", "--json=off") == ok(r.bus, "profile", "list"), "--json=off: the table")


def test_help_for_a_verb():
    """help VERB and VERB --help, from the verb table: the verb's synopsis
    and the options it takes."""
    with Running() as r:
        r.vm("vm-1")
        show = ok(r.bus, "help", "show")
        check(show == ok(r.bus, "show", "--help") == ok(r.bus, "show", "vm-1", "--help"),
              "help show = show --help = show vm-1 --help (which shows no VM)")
        check(show.startswith("pmufilterctl [OPTIONS...] show VM...\n") and "--json=MODE" in show
              and "--bus-address" in show and "--runtime" not in show and "--state" not in show,
              "show's help: its synopsis and options only:\n" + show)
        sets = ok(r.bus, "profile", "set", "--help")
        check(sets == ok(r.bus, "help", "profile", "set") and sets.startswith(
              "pmufilterctl [OPTIONS...] profile set NAME [VM...]\n") and "--runtime" in sets
              and "--json" not in sets, "profile set's help:\n" + sets)
        prof = ok(r.bus, "help", "profile")
        check(all(re.search(r"^  profile %s\b" % v, prof, re.M) for v in ("list", "show", "set", "reset")),
              "help profile lists its commands:\n" + prof)
        check("--state=STATE" in ok(r.bus, "list", "--help"), "list takes --state")
        full = ok(r.bus, "help")
        check(full == ok(r.bus, "--help") and re.search(r"^  help \[COMMAND\.\.\.\]", full, re.M),
              "help = --help, and lists help")
        fails(r.bus, ["help", "frobnicate"], r"unknown verb 'frobnicate'", status=2)
        fails(r.bus, ["frobnicate", "--help"], r"unknown verb 'frobnicate'", status=2)
        # --no-pager: accepted, nothing pages.  Our VM only: the host's
        # others come, go and change state between the two calls.
        out = ok(r.bus, "list", "--no-legend", "vm-*")
        check(out == ok(r.bus, "--no-pager", "list", "--no-legend", "vm-*") and "vm-1" in out,
              "--no-pager changes nothing")


def test_list_by_state_and_pattern():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        u = Unattached(r)
        try:
            def ids(*args):
                return [l.split()[0] for l in ok(r.bus, "list", "--no-legend", *args).splitlines()]
            unmanaged = ids("--state=unmanaged")
            check(u.id in unmanaged and a.id not in unmanaged and b.id not in unmanaged,
                  "--state=unmanaged: %r" % unmanaged)
            check(ids("--state=filtered", "vm-*") == [a.id, b.id], "--state=filtered 'vm-*'")
            check(ids("vm-1") == [a.id] and ids(b.id) == [b.id], "a name, an id")
            check(ids("vm-[12]", u.id) == sorted([a.id, b.id, u.id], key=lambda i: int(i.split("-")[1])),
                  "several patterns: %r" % ids("vm-[12]", u.id))
            check(ids("--state=unmanaged,failed", "vm-*") == [], "no VM of ours is unmanaged or failed by name")
            check(ids("nothing-is-called-this") == [], "no match: no rows")
            out = ok(r.bus, "list", "--state=filtered", "vm-2")
            check(out.splitlines()[-1] == "1 VM listed.", "the count is of the rows shown:\n" + out)
            j = json.loads(ok(r.bus, "list", "--state=unmanaged", "--json"))["vms"]
            check(u.id in [v["id"] for v in j] and all(v["state"] == "unmanaged" for v in j), "JSON: %r" % j)
            fails(r.bus, ["list", "--state=sleepy"], r"unknown VM state 'sleepy'", status=2)
            fails(r.bus, ["status", "--state=filtered"], r"--state does not apply to 'status'", status=2)
            check(ok(r.bus, "--state=help").split() == ["detected", "attached", "filtered", "adopted", "failed",
                                                         "unmanaged", "detached"], "--state=help")
        finally:
            u.close()


def test_show_several_vms():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        out = ok(r.bus, "show", "vm-1", "vm-2")
        blocks = out.split("\n\nVM:")
        check(len(blocks) == 2 and field(out, "VM") == a.id and field("VM:" + blocks[1], "VM") == b.id,
              "two VMs, separated by one blank line:\n" + out)
        docs = ok(r.bus, "show", "vm-1", "vm-2", "--json").splitlines()
        check([json.loads(d)["id"] for d in docs] == [a.id, b.id], "JSON: one line per VM: %r" % docs)
        # One that cannot be shown is reported; the others are shown all the same.
        rc, out, err = ctl(r.bus, "show", "vm-1", "no-such-vm", "vm-2")
        check(rc == 1 and err.count("\n") == 1 and "Failed to look up VM no-such-vm" in err,
              "exit 1, one line for the missing VM: %d %r" % (rc, err))
        check(len(out.split("\n\nVM:")) == 2, "both others shown, one blank line between:\n" + out)


def test_status_exit_status_says_what_is_unprotected():
    """status exits 1 in lockdown (test_status_in_lockdown) or with a VM
    unmanaged or failed, after printing it all; the count is red on a
    terminal."""
    with Running() as r:
        r.vm("vm-1")
        status(r.bus)       # exit 0 unless the host's other VMs are unmanaged or failed
        u = Unattached(r)
        try:
            rc, out, err = ctl(r.bus, "status")
            check(rc == 1 and err == "" and re.search(r"\d+ unmanaged", field(out, "VMs")),
                  "an unmanaged VM: exit 1, counted, no error line: %d %r\n%s" % (rc, err, out))
            rc, j = status_json(r.bus)
            check(rc == 1 and j["vms_by_state"]["unmanaged"] >= 1, "JSON too: %d %r" % (rc, j))
            rc, out, err = ctl(r.bus, "-q", "status")
            check(rc == 1 and out, "-q status still shows the status, and exits 1")
        finally:
            u.close()
        f = failed_vm(r, "vm-f")
        rc, out, err = ctl(r.bus, "status")
        check(rc == 1 and re.search(r"\d+ failed", field(out, "VMs")), "a failed VM: exit 1:\n" + out)
        f.force_errno = None
        ok(r.bus, "reapply", "vm-f")
        status(r.bus)


def test_colour_on_a_terminal_only():
    """Red for unmanaged, failed and lockdown on a terminal; none when
    piped, with NO_COLOR set, or for TERM=dumb."""
    red = "\x1b[0;1;31m"
    with Running() as r:
        r.vm("vm-1")
        u = Unattached(r)
        try:
            base = [CTL, "--bus-address=" + r.bus.address]
            env = dict(os.environ, TERM="xterm")
            env.pop("NO_COLOR", None)
            rc, out, err = on_terminal(base + ["list", "--state=unmanaged,filtered"], env)
            row = next(l for l in out.splitlines() if l.startswith(u.id + " "))
            check(rc == 0 and red + "unmanaged" in row, "list: the unmanaged state in red: %r" % row)
            row = next(l for l in out.splitlines() if " vm-1 " in l)
            check("\x1b[" not in row, "list: a filtered VM in no colour: %r" % row)
            rc, out, err = on_terminal(base + ["status"], env)
            check(rc == 1 and re.search(re.escape(red) + r"\d+ unmanaged", out), "status: the count in red: %r" % out)
            rc, out, err = on_terminal(base + ["show", u.id], env)
            check(red + "unmanaged" in field(out, "State"), "show: State in red: %r" % out)
            for what, e in (("NO_COLOR", dict(env, NO_COLOR="1")), ("NO_COLOR empty", dict(env, NO_COLOR="")),
                            ("TERM=dumb", dict(env, TERM="dumb"))):
                for args in (["list"], ["status"], ["show", u.id]):
                    rc, out, err = on_terminal(base + args, e)
                    check("\x1b[" not in out and "unmanaged" in out, "%s %s: no colour: %r" % (what, args, out))
            for args in (["list"], ["status"], ["show", u.id]):
                check("\x1b[" not in ctl(r.bus, *args)[1], "%s piped: no colour" % args)
        finally:
            u.close()
    with Running(config="version: 1\nprofiles: [ broken\n") as r:
        rc, out, err = on_terminal([CTL, "--bus-address=" + r.bus.address, "status"], env)
        check(rc == 1 and red + " IN LOCKDOWN" in out and red + "YES: the policy failed" in out,
              "lockdown in red: %r" % out)


def test_full_keeps_columns_whole():
    """On a narrow terminal list shortens NAME; -l keeps it whole; piped
    nothing is shortened."""
    name = "vm-with-a-name-far-too-long-for-a-narrow-terminal"
    with Running() as r:
        r.vm(name)
        base = [CTL, "--bus-address=" + r.bus.address, "list", name]
        rc, out, err = on_terminal(base, cols=60)
        check(rc == 0 and name not in out and name[:10] in out, "shortened on a 60-column terminal:\n" + out)
        rc, out, err = on_terminal(base + ["-l"], cols=60)
        check(rc == 0 and name in out, "-l: whole:\n" + out)
        check(name in ok(r.bus, "list", name), "piped: whole")


def test_quiet_and_verbose():
    with Running() as r:
        r.vm("vm-1", tier="gold")
        r.vm("vm-2")
        rc, out, err = ctl(r.bus, "-q", "profile", "set", "gold", "vm-2", "--runtime")
        check(rc == 0 and out == "" and err == "", "-q profile set: silent: %r %r" % (out, err))
        rc, out, err = ctl(r.bus, "--quiet", "profile", "reset", "vm-2", "--runtime")
        check(rc == 0 and out == "" and err == "", "--quiet profile reset: silent: %r %r" % (out, err))
        # Errors stay, in one line; -v adds what they were made from.
        fails(r.bus, ["-q", "show", "no-such-vm"], r"^pmufilterctl: Failed to look up VM no-such-vm: No VM")
        rc, out, err = ctl(r.bus, "-v", "show", "no-such-vm")
        lines = err.splitlines()
        check(rc == 1 and len(lines) == 2 and lines[0].endswith("see pmufilterctl list)"),
              "-v: the message first: %r" % err)
        check(len(lines) == 2 and lines[1].startswith("pmufilterctl: (D-Bus error org.pmufilterd1.NoSuchVM: ")
              and "see ListVMs" in lines[1], "-v: the raw error on the second line: %r" % err)
        rc, out, err = ctl(r.bus, "--verbose", "show", "vm-1")
        check(rc == 0 and err == "", "-v with no error: nothing more")
        # monitor -q: no first line.
        proc = subprocess.Popen([CTL, "--bus-address=" + r.bus.address, "-q", "monitor"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = Lines(proc.stdout)
            deadline = time.time() + 20
            while not any("filter applied" in l for l in lines.lines):
                check(time.time() < deadline, "monitor -q printed no 'filter applied'")
                ok(r.bus, "reapply", "vm-1")
                time.sleep(0.2)
            check(not any(l.startswith("Monitoring") for l in lines.lines), "-q: no header: %r" % lines.lines)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def test_profile_set_says_what_the_kernel_answered():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        b = r.vm("vm-2")
        c = r.vm("vm-3")
        check(ok(r.bus, "profile", "set", "gold", "vm-2", "--runtime") == "VM vm-2: profile gold applied\n",
              "one line per VM, on stdout")
        out = ok(r.bus, "profile", "set", "gold", "vm-2", "vm-3", "--runtime")
        check(re.fullmatch(r"VM vm-2: profile gold (applied|in force, its filter unchanged)\n"
                           r"VM vm-3: profile gold applied\n", out), "each VM, in order: %r" % out)
        check(ok(r.bus, "profile", "reset", "vm-2", "vm-3", "--runtime") ==
              "VM vm-2: profile minimal (from default) applied\nVM vm-3: profile minimal (from default) applied\n",
              "reset: what the VM got, from where")
        # The kernel refuses: a line on stderr saying so, exit 1.
        b.force_errno = errno.EINVAL
        rc, out, err = ctl(r.bus, "profile", "set", "gold", "vm-2", "vm-3", "--runtime")
        check(rc == 1 and out == "VM vm-3: profile gold applied\n"
              and err == "pmufilterctl: VM vm-2: profile gold failed: the kernel refused the filter: Invalid argument\n",
              "refused: %d %r %r" % (rc, out, err))
        rc, out, err = ctl(r.bus, "-v", "profile", "set", "minimal", "vm-2", "--runtime")
        check(rc == 1 and len(err.splitlines()) == 3 and "(LastError: KVM_SET_PMU_EVENT_FILTER failed: " in err
              and "(D-Bus error org.pmufilterd1.ApplyFailed: " in err, "-v: the daemon's words below: %r" % err)
        b.force_errno = None
        ok(r.bus, "profile", "reset", "vm-2", "vm-3", "--runtime")
        # The default profile: one line for each VM that follows it (and
        # that it changed); vm-1's rule wins, so no line for it.
        out = ok(r.bus, "profile", "set", "gold", "--runtime")
        # (The host's other VMs follow the default too.)
        ours = sorted(l for l in out.splitlines() if l.startswith(("VM %s " % b.id, "VM %s " % c.id)))
        check(ours == ["VM %s (vm-2): profile gold applied" % b.id, "VM %s (vm-3): profile gold applied" % c.id],
              "default: a line per VM following it: %r" % out)
        check(ok(r.bus, "-q", "profile", "set", "minimal", "--runtime") == "", "-q: none")


def test_errors_name_the_cause():
    """Errors a person can act on: root for changes, the VMM that did not
    answer, the command to list VMs; the raw words with -v only."""
    need_nobody_ctl()
    with Running() as r:
        a = r.vm("vm-1")
        # Refused by the bus's policy, whose message lists its match rules.
        rc, out, err = ctl_as_nobody(r.bus, "profile", "set", "gold", "vm-1")
        check(rc == 1 and err == "pmufilterctl: Failed to set profile of VM vm-1: Permission denied: "
              "changing profiles needs root\n", "non-root: %d %r" % (rc, err))
        rc, out, err = ctl_as_nobody(r.bus, "-v", "profile", "set", "gold")
        lines = err.splitlines()
        check(rc == 1 and len(lines) == 2 and lines[0].endswith("Permission denied: changing profiles needs root")
              and "org.freedesktop.DBus.Error.AccessDenied: Rejected send message" in lines[1],
              "-v: the bus's own words second: %r" % err)
        for args, change in ((["reload"], "reloading the policy"), (["reapply"], "reapplying filters")):
            rc, out, err = ctl_as_nobody(r.bus, *args)
            check(rc == 1 and err.count("\n") == 1 and err.endswith("Permission denied: %s needs root\n" % change),
                  "non-root %s: %r" % (args, err))
        # A VMM that does not answer in time (attach_timeout_ms is 1.5 s).
        a.delay = 2.5
        rc, out, err = ctl(r.bus, "profile", "set", "gold", "vm-1", "--runtime")
        check(rc == 1 and err == "pmufilterctl: VM vm-1: profile gold failed: the VMM of VM %s did not answer in "
              "time\n" % a.id, "timeout: %d %r" % (rc, err))
        check(field(ok(r.bus, "show", "vm-1"), "Last error") == "the VMM of VM %s did not answer in time" % a.id,
              "show says it so too")
        check(re.match(r"no APPLIED for SERIAL=\d+ in time$", json.loads(ok(r.bus, "show", "vm-1", "--json"))["last_error"]),
              "JSON keeps the daemon's words")
        out = ok(r.bus, "-v", "show", "vm-1")
        check(re.search(r"^Last error: +the VMM .*\n +no APPLIED for SERIAL=\d+ in time$", out, re.M),
              "-v: the daemon's words below:\n" + out)
        fails(r.bus, ["reapply", "no-such-vm"], r"see pmufilterctl list\)$")

    # Not root, no daemon: /dev/kvm is what stops the probe, not the kernel.
    if subprocess.run(NOBODY + ["test", "-w", "/dev/kvm"]).returncode == 0:
        print("user nobody may open /dev/kvm here: the refusal is not tested")
        return
    with SystemBus() as bus:
        rc, out, err = ctl_as_nobody(bus, "status")
        check(rc == 1 and field(out, "Event filter") == "unknown: /dev/kvm: Permission denied (root or group kvm "
              "can probe it)" and "NOT SUPPORTED" not in out, "non-root status names the cause:\n" + out)
        j = json.loads(ctl_as_nobody(bus, "status", "--json")[1])
        check(j["filter_supported"] is None and j["max_events"] is None and j["kernel"] == "/dev/kvm: Permission denied",
              "JSON: not known, null: %r" % j)


def need_nobody_ctl():
    harness.need(CTL, "pmufilterctl")
    if shutil.which("setpriv") is None:
        raise harness.Skip("setpriv is not installed")
    if subprocess.run(NOBODY + [CTL, "--version"], capture_output=True).returncode != 0:
        raise harness.Skip("user nobody cannot run %s (a directory above it is closed)" % CTL)


def ctl_as_nobody(bus, *args):
    p = subprocess.run(NOBODY + [CTL, "--bus-address=" + bus.address] + list(args), capture_output=True,
                       text=True, timeout=90)
    return p.returncode, p.stdout, p.stderr


def complete(bus, *words):
    """What the bash completion offers for the last (partial) word."""
    harness.need(SRC_COMPLETION, "the bash completion")
    line = ["pmufilterctl", "--bus-address=" + bus.address] + list(words)
    script = ('PATH=%s:$PATH; source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; '
              'COMP_POINT=${#COMP_LINE}; _pmufilterctl; printf "%%s\\n" "${COMPREPLY[@]}"') % (
        os.path.dirname(CTL), SRC_COMPLETION, " ".join("'%s'" % w for w in line), len(line) - 1)
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "completion failed: %s" % p.stderr)
    return set(p.stdout.split())


def test_bash_completion():
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        check({"status", "list", "show", "profile", "reload", "reapply", "monitor", "check", "compile", "events"}
              <= complete(r.bus, ""), "verbs offered")
        check(complete(r.bus, "profile", "") == {"list", "show", "set", "reset"}, "profile sub-verbs")
        check({"--json", "--no-legend", "--runtime", "--bus-address"} <= complete(r.bus, "--"), "options")
        check({"vm-1", a.id} <= complete(r.bus, "show", ""), "VM names and ids from the daemon")
        check(complete(r.bus, "profile", "set", "") == {"minimal", "gold", "deny-shared"}, "profile names")
        check(complete(r.bus, "profile", "set", "gold", "v") == {"vm-1"}, "VMs after the profile")
        check(complete(r.bus, "profile", "show", "de") == {"deny-shared"}, "a profile by prefix")
        check({"vm-1", a.id} <= complete(r.bus, "show", "vm-1", ""), "show takes several VMs")
        check({"vm-1", a.id} <= complete(r.bus, "list", ""), "list's patterns: VM names and ids")
        check({"--json=", "--state=", "--full", "--quiet", "--verbose", "--no-pager"} <= complete(r.bus, "--"),
              "the new options")
        # Readline replaces what follows the '=': the values alone.
        check(complete(r.bus, "--json=") == {"pretty", "short", "off"}, "--json= modes")
        check(complete(r.bus, "profile", "set", "gold", "vm-1", "--for=1") == {"15min", "1h", "1d"}, "--for= spans")
        check(complete(r.bus, "profile", "set", "gold", "vm-1", "--for", "") == {"15min", "1h", "2h", "1d"},
              "--for SPAN")
        check(complete(r.bus, "profile", "set", "gold", "--for", "2h", "v") == {"vm-1"},
              "--for's value is not the profile")
        check(complete(r.bus, "list", "--state=filtered,un") == {"filtered,unmanaged"}, "--state= states")
        check({"status", "show", "profile", "help"} <= complete(r.bus, "help", ""), "help VERB")
        check(complete(r.bus, "help", "profile", "") == {"list", "show", "set", "reset"}, "help profile VERB")


# Print what zsh's completion system offers for a command line: an
# interactive zsh in a zpty, with compadd caught.
ZSH_CAPTURE = r"""
zmodload zsh/zpty || exit 77
fdir=$1 line=$2 init=$3
cat >$init <<INIT
PS1= PROMPT= RPROMPT=
unsetopt zle_bracketed_paste 2>/dev/null
fpath=($fdir \$fpath)
autoload -Uz compinit && compinit -u -D
zstyle ':completion:*' insert-tab false
compadd() {
        local -a m
        if (( \${@[(I)-[OAD]]} )); then
                builtin compadd "\$@"
                return
        fi
        builtin compadd -O m "\$@"
        print -rl -- '' \${m/#/MATCH:}
}
_capture_done() { print -r -- CAPTURE-DONE; exit }
comppostfuncs=( _capture_done )
print -r -- CAPTURE-READY
INIT
zpty z zsh -f -i
zpty -w z "source $init"
zpty -r z out '*CAPTURE-READY*'
zpty -w -n z "$line"$'\t'
zpty -r z out '*CAPTURE-DONE*'
print -r -- ${out//$'\r'/}
zpty -d z
"""


def zsh_complete(bus, *words):
    """What the zsh completion offers for the last (partial) word."""
    line = " ".join(["pmufilterctl", "--bus-address=" + bus.address] + list(words))
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "capture.zsh")
        with open(script, "w") as f:
            f.write(ZSH_CAPTURE)
        env = dict(os.environ, PATH=os.path.dirname(CTL) + ":" + os.environ["PATH"])
        p = subprocess.run(["zsh", "-f", script, SRC_ZSH_COMPLETION, line, os.path.join(tmp, "init.zsh")],
                           capture_output=True, text=True, timeout=60, env=env)
    if p.returncode == 77:
        raise harness.Skip("zsh has no zsh/zpty module")
    check(p.returncode == 0 and "CAPTURE-DONE" in p.stdout, "zsh completion of %r failed: %r %r" % (line, p.stdout, p.stderr))
    return set(re.findall(r"^MATCH:(\S+)$", p.stdout, re.M))


def test_zsh_completion():
    """zsh loads _pmufilterctl and completes as bash does, from the daemon."""
    if not shutil.which("zsh"):
        raise harness.Skip("zsh is not installed (tools/install-deps.sh installs it)")
    harness.need(os.path.join(SRC_ZSH_COMPLETION, "_pmufilterctl"), "the zsh completion")
    p = subprocess.run(["zsh", "-n", os.path.join(SRC_ZSH_COMPLETION, "_pmufilterctl")], capture_output=True, text=True)
    check(p.returncode == 0, "zsh -n: %s" % p.stderr)
    with Running() as r:
        a = r.vm("vm-1", tier="gold")
        check({"status", "list", "show", "profile", "reload", "reapply", "monitor", "check", "compile", "events",
               "help"} == zsh_complete(r.bus, ""), "verbs offered")
        check(zsh_complete(r.bus, "profile", "") == {"list", "show", "set", "reset"}, "profile commands")
        check({"vm-1", a.id} <= zsh_complete(r.bus, "show", ""), "VM names and ids from the daemon")
        check({"vm-1", a.id} <= zsh_complete(r.bus, "show", "vm-1", ""), "show takes several VMs")
        check(zsh_complete(r.bus, "profile", "set", "") == {"minimal", "gold", "deny-shared"}, "profile names")
        check(zsh_complete(r.bus, "profile", "set", "gold", "v") == {"vm-1"}, "VMs after the profile")
        check({"--json", "--state", "--full", "--quiet", "--verbose", "--no-pager", "--runtime"}
              <= zsh_complete(r.bus, "--"), "options")
        check(zsh_complete(r.bus, "--json=") == {"pretty", "short", "off"}, "--json= modes")
        check("--for" in zsh_complete(r.bus, "--"), "--for offered")
        check(zsh_complete(r.bus, "--for=") == {"15min", "1h", "2h", "1d"}, "--for= spans")


class SilentVMM:
    """The test VMM with --no-attach: a real VM whose process never tells
    the daemon anything, as a QEMU started without the shim (-name
    guest=qemu-plain, which the daemon cannot know)."""

    def __init__(self, r, name="qemu-plain"):
        harness.need(harness.VMM, "the test VMM")
        self.p = subprocess.Popen([harness.VMM, "--socket", r.d.socket, "--json", "--hold", "-1", "--no-attach",
                                   "--name", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        check(line.startswith("{"), "test-vmm --no-attach: %r %r" % (line, self.p.stderr.read() if not line else ""))
        created = json.loads(line)
        self.id = "%d-%d" % (created["pid"], created["fd"])

    def close(self):
        self.p.terminate()
        self.p.wait(10)


def list_row(r, vm_id):
    """vm_id's line of list, and its object of list --json."""
    out = ok(r.bus, "list", "--full")
    rows = [l for l in out.splitlines() if l.startswith(vm_id + " ")]
    check(len(rows) == 1, "one row of %s in:\n%s" % (vm_id, out))
    vms = [v for v in json.loads(ok(r.bus, "list", "--json"))["vms"] if v["id"] == vm_id]
    check(len(vms) == 1, "one object of %s in list --json" % vm_id)
    return rows[0], vms[0]


def test_unmanaged_vm_shows_its_process_why_and_what_it_would_get():
    """A VM no VMM attached: list names it by its verified comm, show says
    which process made it (comm, exe, unit) and why it is unmanaged; the
    profile a reload decides for it is what it would get, never shown as
    its filter (--json: in_force false)."""
    with Running(CONFIG.replace("attach_timeout_ms: 1500", "attach_timeout_ms: 300")) as r:
        v = SilentVMM(r)
        r.vms.append(v)
        wait_state(r, v.id, "unmanaged")
        row, j = list_row(r, v.id)
        check(re.match(r"%s +\[test-vmm\] +- +unmanaged +%d$" % (v.id, v.p.pid), row),
              "list: the comm in brackets, no profile, unmanaged: %r" % row)
        check(j["name"] is None and j["profile"] is None and j["in_force"] is False
              and j["last_error"] == "no ATTACH within 300 ms", "list --json: %r" % j)

        out = ok(r.bus, "show", v.id)
        facts = json.loads(ok(r.bus, "show", v.id, "--json"))["verified_facts"]
        check(field(out, "Command") == "test-vmm" and facts["comm"] == "test-vmm", "comm:\n" + out)
        check(field(out, "Executable") == os.path.realpath(harness.VMM) == facts["exe"], "exe:\n" + out)
        check(field(out, "Unit") == facts.get("unit", "n/a"), "unit, as verified (n/a: none):\n" + out)
        check(field(out, "State") == "unmanaged" and field(out, "Profile") == "- (not decided yet)"
              and field(out, "Applied") == "-", "not decided, never applied:\n" + out)
        check(field(out, "Last error") == "its VMM did not attach within 300 ms", "why:\n" + out)
        out = ok(r.bus, "-v", "show", v.id)
        check(re.search(r"^ +no ATTACH within 300 ms$", out, re.M), "-v: the daemon's words:\n" + out)
        check(r.bus.get(harness_vm_path(v.id), "org.pmufilterd1.VM", "LastError") == "no ATTACH within 300 ms",
              "the D-Bus property")

        # A reload decides every VM, this one too: what it would get.
        ok(r.bus, "reload")
        deadline = time.time() + 10
        while json.loads(ok(r.bus, "show", v.id, "--json"))["profile"] != "minimal":
            check(time.time() < deadline, "no decision after the reload:\n" + r.d.log())
            time.sleep(0.05)
        out = ok(r.bus, "show", v.id)
        check(not re.search(r"^Profile:", out, re.M), "no Profile: line for a filter not in force:\n" + out)
        check(field(out, "Would get") == "minimal (from default), not applied: the VM is unmanaged",
              "would get, not applied:\n" + out)
        check(re.search(r"^The filter it would get, not in force:\nAction: ", out, re.M)
              and field(out, "Entries") == "2", "the filter labelled as not in force:\n" + out)
        j = json.loads(ok(r.bus, "show", v.id, "--json"))
        check(j["profile"] == "minimal" and j["in_force"] is False and j["applied_usec"] is None
              and j["last_error"] == "no ATTACH within 300 ms", "show --json: %r" % j)
        row, j = list_row(r, v.id)
        check(re.match(r"%s +\[test-vmm\] +\(minimal\) +default +unmanaged +%d$" % (v.id, v.p.pid), row),
              "list: the profile it would get in parentheses: %r" % row)
        check(j["profile"] == "minimal" and j["in_force"] is False, "list --json: %r" % j)
        out = ok(r.bus, "profile", "show", "minimal")
        check(re.search(r"\b%s \(not applied: unmanaged\)" % re.escape(v.id), field(out, "VMs")),
              "profile show: the VM is listed as not having it:\n" + out)
        out = ok(r.bus, "explain", v.id)
        check(field(out, "Result") == "minimal (from default), not applied: the VM is unmanaged",
              "explain: the result, not applied:\n" + out)
        rc, out, err = ctl(r.bus, "reload", "--dry-run")
        check(rc in (0, 3) and re.search(r"^%s +\(minimal\) +minimal +same$" % v.id, out, re.M),
              "reload --dry-run: its profile now is only decided:\n%s%s"
              % ("\n".join(l for l in out.splitlines() if v.id in l), err))
        check(json.loads(ok(r.bus, "explain", v.id, "--json"))["in_force"] is False, "explain --json")


def harness_vm_path(vm_id):
    """The object path of a VM (sd_bus_path_encode of its id)."""
    return "/org/pmufilterd1/vm/" + "".join(c if c.isalnum() else "_%02x" % ord(c) for c in vm_id)


def test_failed_vm_shows_why():
    """A VM whose kernel refused its filter (the VMM answered ERRNO=22):
    show says why and that the profile is not applied; list and --json
    do not give it as the VM's filter."""
    with Running() as r:
        kvm, vm = harness.kvm_create_vm()
        peer = harness.Peer(r.d.socket)
        try:
            peer.send(harness.attach_msg(vm, name="refused"), [vm])
            apply = peer.recv()
            peer.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=22\n" % apply["SERIAL"])
            vm_id = "%d-%d" % (os.getpid(), vm)
            wait_state(r, vm_id, "failed")
            out = ok(r.bus, "show", "refused")
            check(field(out, "Last error") == "the kernel refused the filter: Invalid argument", "why:\n" + out)
            check(field(out, "Would get") == "minimal (from default), not applied: it failed (see Last error)"
                  and not re.search(r"^Profile:", out, re.M), "not applied:\n" + out)
            check("The filter it would get, not in force:" in out, "the filter is not in force:\n" + out)
            j = json.loads(ok(r.bus, "show", "refused", "--json"))
            check(j["in_force"] is False and j["last_error"] == "KVM_SET_PMU_EVENT_FILTER failed: Invalid argument",
                  "show --json: %r" % j)
            row, j = list_row(r, vm_id)
            check(re.match(r"%s +refused +\(minimal\) +default +failed +" % vm_id, row), "list: %r" % row)
            check(j["in_force"] is False and j["last_error"] == "KVM_SET_PMU_EVENT_FILTER failed: Invalid argument",
                  "list --json: %r" % j)
        finally:
            peer.close()
            os.close(vm)
            os.close(kvm)


EXTRA_RULES = """\
# Rules of a conf.d fragment come after the main file's.
rules:
  - match: { label.tier: silver }
    profile: gold
"""


def test_source_names_the_rule_file_and_line():
    """A VM matched by a rule of a second policy file (conf.d/, read by a
    daemon without --config): list, show and explain name that file,
    relative to /etc/pmufilterd, and line; --json has the rule's index,
    file and line."""
    files = {"pmufilterd.yaml": CONFIG, "conf.d/20-extra.yaml": EXTRA_RULES}
    with Running(etc=files) as r:
        path = "/etc/pmufilterd/conf.d/20-extra.yaml"
        line = EXTRA_RULES.splitlines().index("  - match: { label.tier: silver }") + 1
        v = r.vm("vm-s", tier="silver")
        row, j = list_row(r, v.id)
        check(re.match(r"%s +vm-s +gold +rule conf\.d/20-extra\.yaml:%d +filtered " % (v.id, line), row),
              "list: SOURCE is the rule's file and line: %r" % row)
        check(j["profile_source"] == "rule:2" and j["rule_index"] == 2 and j["rule_file"] == path
              and j["rule_line"] == line and j["profile_source_location"] == "%s:%d" % (path, line)
              and j["in_force"] is True, "list --json: %r" % j)
        out = ok(r.bus, "show", "vm-s")
        check(field(out, "Profile") == "gold (from rule conf.d/20-extra.yaml:%d)" % line, "show:\n" + out)
        j = json.loads(ok(r.bus, "show", "vm-s", "--json"))
        check(j["rule_index"] == 2 and j["rule_file"] == path and j["rule_line"] == line
              and j["profile_source_location"] == "%s:%d" % (path, line), "show --json: %r" % j)
        out = ok(r.bus, "explain", "vm-s")
        check(re.search(r"^ +1\. +pmufilterd\.yaml:%d +no: " % GOLD_RULE_LINE, out, re.M)
              and re.search(r"^ +2\. +conf\.d/20-extra\.yaml:%d +matched$" % line, out, re.M),
              "explain: each rule by its file and line:\n" + out)
        check(field(out, "Result") == "gold (from rule conf.d/20-extra.yaml:%d)" % line, "explain:\n" + out)
        j = json.loads(ok(r.bus, "explain", "vm-s", "--json"))
        check(j["rule_index"] == 2 and j["rule_file"] == path and j["rule_line"] == line
              and j["rules"][1]["location"] == "%s:%d" % (path, line), "explain --json: %r" % j)


if __name__ == "__main__":
    harness.main(globals())
