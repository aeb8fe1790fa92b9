#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The metrics file (issue 15; pmufilterd(8), METRICS): the built daemon
with --metrics-file in a temporary directory, real VMs (the test VMM, and a
hand-written peer whose filter the kernel "refuses" and which later leaves
an APPLY unanswered), a good and a bad reload; the file's figures after
each, its format (a strict reading here; `promtool check metrics` and
python3-prometheus-client's parser when installed), its coalesced writes,
its removal at stop, and a directory that is missing at first.  The real
prometheus-node-exporter reads it in the system test (test-nspawn.py)."""

import math
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time

import harness
from harness import DAEMON, Daemon, Peer, attach_msg, check, kvm_create_vm, need_kvm, need_root
from test_vmm import Held, config, vmm

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
INTERVAL = 5.0          # METRICS_INTERVAL_USEC


def parse(text):
    """The exposition format (text 0.0.4), read strictly: every family has
    HELP then TYPE (counter or gauge) before its samples and comes once,
    counters end in _total, samples are of the family just typed, label
    values use only the escapes the format has, no sample twice.  Returns
    ({(name, ((label, value), ...)): float}, {family: type})."""
    check(text.endswith("\n"), "the file ends with a newline")
    samples, types, family, helped = {}, {}, None, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(NAME.match(name) and name not in types and len(line) > len("# HELP  ") + len(name),
                  "HELP of a new family, with text: " + where)
            helped = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            check(name == helped and kind in ("counter", "gauge"), "TYPE right after its HELP: " + where)
            check(kind != "counter" or name.endswith("_total"), "a counter's name ends in _total: " + where)
            types[name] = kind
            family = name
        else:
            m = SAMPLE.match(line)
            check(m and m.group(1) == family, "a sample of the family typed last: " + where)
            labels = []
            if m.group(2) is not None:
                rest = m.group(2)
                for lm in LABEL.finditer(rest):
                    labels.append((lm.group(1), re.sub(r'\\[\\"n]', lambda e: UNESCAPE[e.group(0)], lm.group(2))))
                check(rest == "".join(x.group(0) for x in LABEL.finditer(rest)) and labels,
                      "label pairs, escaped as the format says: " + where)
            value = float(m.group(3))
            check(not math.isnan(value) and value >= 0, "a number: " + where)
            key = (m.group(1), tuple(labels))
            check(key not in samples, "no sample twice: " + where)
            samples[key] = value
    return samples, types


def read(path):
    with open(path) as f:
        return parse(f.read())


def value(samples, name, **labels):
    return samples.get((name, tuple(labels.items())))


def wait_figures(path, want, timeout=INTERVAL + 10):
    """Until the file has every figure of want ({(name, labels): value, or
    a predicate of the value}); its last reading."""
    deadline = time.time() + timeout
    while True:
        got = read(path)[0] if os.path.exists(path) else {}
        wrong = {k: (got.get(k), v) for k, v in want.items()
                 if not (v(got.get(k)) if callable(v) else got.get(k) == v)}
        if not wrong:
            return got
        if time.time() > deadline:
            text = open(path).read() if os.path.exists(path) else "(none)"
            check(False, "metrics file %s: (found, wanted) %r; the file:\n%s" % (path, wrong, text))
        time.sleep(0.1)


def at_least(n):
    return lambda v: v is not None and v >= n


def key(name, **labels):
    return (name, tuple(labels.items()))


def validate_with_tools(path):
    """promtool and python3-prometheus-client when installed; a skip that
    says so otherwise (neither is a build dependency: prometheus is ~100
    MB and starts a server)."""
    if shutil.which("promtool"):
        with open(path) as f:
            p = subprocess.run(["promtool", "check", "metrics"], stdin=f, capture_output=True, text=True)
        check(p.returncode == 0, "promtool check metrics: %s%s" % (p.stdout, p.stderr))
        print("promtool check metrics: clean")
    else:
        print("SKIP promtool check metrics: promtool is not installed (Debian package prometheus)")
    # Debian's python3 (the one the package is for), whatever python3 runs this.
    probe = subprocess.run(["/usr/bin/python3", "-c", "import prometheus_client.parser"], capture_output=True) \
        if os.path.exists("/usr/bin/python3") else None
    if probe and probe.returncode == 0:
        p = subprocess.run(["/usr/bin/python3", "-c",
                            "import sys, prometheus_client.parser as p\n"
                            "fams = list(p.text_string_to_metric_families(open(sys.argv[1]).read()))\n"
                            "print(len(fams), sum(len(f.samples) for f in fams))", path],
                           capture_output=True, text=True)
        check(p.returncode == 0, "prometheus_client's parser reads the file: %s" % p.stderr)
        print("prometheus_client parser: %s families, %s samples" % tuple(p.stdout.split()))
    else:
        print("SKIP prometheus_client parser: python3-prometheus-client is not installed")


def test_metrics_file_follows_vms_applies_and_reloads():
    need_kvm(); need_root()
    textfile = tempfile.mkdtemp(prefix="pmufilterd-textfile.")
    path = os.path.join(textfile, "pmufilterd.prom")
    kvm = vm = -1
    held = []
    try:
        with Daemon(config_text=config(), args=["--metrics-file", path]) as d:
            # At start, written at once: every family, zeros, the policy's profiles.
            got = wait_figures(path, {key("pmufilterd_vms", state="filtered"): 0})
            samples, types = read(path)
            check(set(types) == {"pmufilterd_vms", "pmufilterd_unmanaged_vms", "pmufilterd_profile_vms",
                                 "pmufilterd_filter_applies_total", "pmufilterd_filter_failures_total",
                                 "pmufilterd_reloads_total", "pmufilterd_last_reload_timestamp_seconds",
                                 "pmufilterd_last_reload_success", "pmufilterd_lockdown"}, "families: %r" % types)
            check({l[0][1] for (n, l) in samples if n == "pmufilterd_vms"} ==
                  {"detected", "attached", "filtered", "adopted", "failed", "unmanaged", "detached"},
                  "every state has its sample")
            check({l[0][1]: v for (n, l), v in samples.items() if n == "pmufilterd_profile_vms"} ==
                  {"minimal": 0, "steady": 0, "by-exe": 0}, "the policy's profiles, at 0: %r" % samples)
            check(value(samples, "pmufilterd_reloads_total", result="ok") == 0 and
                  value(samples, "pmufilterd_reloads_total", result="failed") == 0 and
                  value(samples, "pmufilterd_last_reload_timestamp_seconds") == 0 and
                  value(samples, "pmufilterd_last_reload_success") == 1 and
                  value(samples, "pmufilterd_lockdown") == 0, "no reload yet, no lockdown: %r" % samples)
            check(stat.S_IMODE(os.stat(path).st_mode) == 0o644, "the file is mode 0644 (node-exporter reads it)")

            # Real VMs: two filtered, one unmanaged, one whose filter the kernel refused.
            held.append(Held(d, "--name", "h"))
            held.append(Held(d, "--name", "s", "--label", "kind=steady"))
            held.append(Held(d, "--name", "silent", "--no-attach"))
            kvm, vm = kvm_create_vm()
            peer = Peer(d.socket)
            peer.send(attach_msg(vm, name="refused"), [vm])
            apply = peer.recv()
            peer.send("PMUFILTER/1 APPLIED\nSERIAL=%s\nERRNO=22\n" % apply["SERIAL"])
            # The daemon sees every VM of the host: other users' unattached
            # VMs are detected and unmanaged here too (at least ours is).
            want = {key("pmufilterd_vms", state="filtered"): 2, key("pmufilterd_vms", state="failed"): 1,
                    key("pmufilterd_vms", state="unmanaged"): at_least(1), key("pmufilterd_unmanaged_vms"): at_least(1),
                    key("pmufilterd_profile_vms", profile="minimal"): 2,
                    key("pmufilterd_profile_vms", profile="steady"): 1,
                    key("pmufilterd_profile_vms", profile="by-exe"): 0,
                    key("pmufilterd_filter_applies_total"): 2, key("pmufilterd_filter_failures_total"): 1}
            wait_figures(path, want)

            # A good reload: 'minimal' changes, so h and the refused VM get it
            # again; h applies it, the peer leaves it unanswered (a failure
            # when the session is dropped on its timeout).
            before = time.time()
            d.write_config(config(minimal="0x00c0, 0x00c4, 0x00c5"))
            d.reload()
            check(peer.recv()["_verb"] == "PMUFILTER/1 APPLY", "the refused VM's peer got the new filter")
            want.update({key("pmufilterd_filter_applies_total"): 3, key("pmufilterd_filter_failures_total"): 2,
                         key("pmufilterd_reloads_total", result="ok"): 1,
                         key("pmufilterd_reloads_total", result="failed"): 0,
                         key("pmufilterd_last_reload_success"): 1, key("pmufilterd_lockdown"): 0})
            # A reload decides every VM again, the unmanaged one too (as
            # ListVMs shows it): 'minimal', though nothing applies it.
            want[key("pmufilterd_profile_vms", profile="minimal")] = at_least(3)
            got = wait_figures(path, want)
            stamp = value(got, "pmufilterd_last_reload_timestamp_seconds")
            check(before - 1 <= stamp <= time.time() + 1, "the reload's time: %r, not before %r" % (stamp, before))
            check(value(got, "pmufilterd_vms", state="failed") == 1, "the unanswered VM is failed")

            # A bad reload: counted, the old policy stays.
            d.write_config("version: 1\nprofiles:\n  minimal: { tier: tenant, events: [ no-such-event ] }\n")
            d.reload()
            want.update({key("pmufilterd_reloads_total", result="failed"): 1, key("pmufilterd_last_reload_success"): 0})
            got = wait_figures(path, want)
            check(value(got, "pmufilterd_last_reload_timestamp_seconds") >= stamp, "the bad reload's time")
            validate_with_tools(path)

            # Coalesced: writes (a new file each: an atomic rename) come at
            # most once per interval, however many changes, and none while
            # nothing changes.
            time.sleep(INTERVAL + 0.5)          # quiet: the next change is written at once
            inodes, stop = [], threading.Event()

            def watch():
                last = None
                while not stop.is_set():
                    try:
                        ino = os.stat(path).st_ino
                    except FileNotFoundError:
                        ino = None
                    if ino != last:
                        inodes.append((time.time(), ino))
                        last = ino
                    time.sleep(0.002)
            t = threading.Thread(target=watch)
            t.start()
            try:
                start = time.time()
                r = vmm(d, "--count", "20", "--name", "burst")     # 20 VMs come, are filtered, and go
                check(len(r) == 20 and all(x["errno"] == 0 for x in r), "the burst's VMs were filtered")
                time.sleep(max(0, start + INTERVAL - 0.5 - time.time()))
            finally:
                stop.set()
                t.join()
            changes = [ts for ts, _ in inodes[1:]]
            check(len(changes) <= 1, "at most one write within %.1f s of a burst of 20 VMs (40+ changes): %r"
                  % (INTERVAL - 0.5, [round(ts - start, 3) for ts in changes]))
            want[key("pmufilterd_filter_applies_total")] = 23
            # ...and are gone: the burst's last change (a VM dropped after
            # its session closed) is in the file before the quiet starts.
            want.update({key("pmufilterd_vms", state="filtered"): 2, key("pmufilterd_vms", state="attached"): 0,
                         key("pmufilterd_vms", state="detached"): 0})
            wait_figures(path, want)
            # Nothing of ours changes now; only other users' VMs coming or
            # going may make a write (the daemon says each).
            with d.lock:
                mark = len(d.lines)
            time.sleep(INTERVAL + 1)
            with d.lock:
                since = d.lines[mark:]
            writes = [l for l in since if "Metrics written to" in l]
            others = [l for l in since if re.search(r"VM \S+ (detected|is gone|.* is unmanaged)", l)]
            check(not writes or others, "no write while nothing changes: %r" % since)

            # Stopped, the daemon takes its figures away.
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(10)
            check(not os.path.exists(path), "the file is removed at stop")
            check(not [f for f in os.listdir(textfile)], "no temporary file is left: %r" % os.listdir(textfile))
    finally:
        for h in held:
            if h.p.poll() is None:
                h.stop()
        for fd in (vm, kvm):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(textfile, ignore_errors=True)


def test_metrics_directory_missing_at_first_is_said_once():
    need_kvm(); need_root()
    textfile = tempfile.mkdtemp(prefix="pmufilterd-textfile.")
    path = os.path.join(textfile, "later", "pmufilterd.prom")
    try:
        with Daemon(config_text=config(), args=["--metrics-file", path]) as d:
            d.wait_line(r"Metrics not written: the directory of %s does not exist" % re.escape(path))
            vmm(d, "--name", "one")
            time.sleep(INTERVAL + 1)            # a second write, failing the same way
            with d.lock:
                said = [l for l in d.lines if "Metrics not written" in l or "Failed to write the metrics" in l]
            check(len(said) == 1 and d.alive(), "said once, and the daemon runs on: %r" % said)
            check(not os.path.exists(os.path.dirname(path)), "the daemon made no directory")
            os.mkdir(os.path.dirname(path))
            vmm(d, "--name", "two")
            d.wait_line(r"Metrics written to %s again" % re.escape(path), timeout=INTERVAL + 5)
            wait_figures(path, {key("pmufilterd_filter_applies_total"): 2})
        # No --metrics-file: no file, anywhere; a relative path is refused.
        p = subprocess.run([DAEMON, "--metrics-file", "pmufilterd.prom", "--no-bus"], capture_output=True,
                           text=True, timeout=10)
        check(p.returncode == 2 and "--metrics-file needs an absolute path" in p.stderr,
              "a relative path is a usage error: %d %s" % (p.returncode, p.stderr))
    finally:
        shutil.rmtree(textfile, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
