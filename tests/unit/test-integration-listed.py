#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""test-integration-listed.py — every test_* function of the Python
integration modules is a meson test: tests/integration/meson.build lists
the cases of each module by hand, and a case written but not listed would
never run (TAP: one line per module)."""

import glob
import os
import re
import sys

src = sys.argv[1]
meson = open(os.path.join(src, "tests/integration/meson.build")).read()
listed = set(re.findall(r"'(test_\w+)'", meson))
modules = sorted(glob.glob(os.path.join(src, "tests/integration/test_*.py")))
print("1..%d" % len(modules))
failed = 0
for i, path in enumerate(modules, 1):
    name = os.path.basename(path)
    missing = [f for f in re.findall(r"^def (test_\w+)\(", open(path).read(), re.M) if f not in listed]
    if "'%s'" % name not in meson:
        missing.insert(0, "(the module itself)")
    if missing:
        failed += 1
        print("not ok %d - %s: not in tests/integration/meson.build: %s" % (i, name, ", ".join(missing)))
    else:
        print("ok %d - %s" % (i, name))
sys.exit(1 if failed else 0)
