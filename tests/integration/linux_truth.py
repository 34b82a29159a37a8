#!/usr/bin/env python3
"""Summarise and sanity-check a real-guest capture's truth.txt for
t_linux_dump.sh: the guest's processes, pattern regions and maps blocks
must be there for test_linux_dump to compare against.

    linux_truth.py DIR [--la57 yes|no]

Prints one line (LA57, counts).  Exit 0 when the truth is usable (and, with
--la57, the guest ran with the paging asked for), 77 when the guest did not
use the paging asked for (the caller reports that part as skipped), 1 when
truth.txt is missing or incomplete.  Python 3 standard library only.
"""

import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--la57", choices=("yes", "no"))
    a = ap.parse_args()
    path = os.path.join(a.dir, "truth.txt")
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        print("FAIL: %s" % e)
        return 1
    la57 = "no"
    procs = patterns = maps = ksyms = 0
    for line in lines:
        if line.startswith("LA57 "):
            la57 = line.split()[1]
        elif line.startswith("PROC "):
            procs += 1
        elif line.startswith("PATTERN "):
            patterns += 1
        elif line.startswith("MAPS "):
            maps += 1
        elif line.startswith("KSYM "):
            ksyms += 1
    print("truth: LA57 %s, %d processes, %d pattern regions, %d maps blocks, "
          "%d kernel symbols" % (la57, procs, patterns, maps, ksyms))
    if procs == 0 or patterns == 0 or maps == 0:
        print("FAIL: %s is incomplete" % path)
        return 1
    if a.la57 and a.la57 != la57:
        print("the guest ran with LA57 %s, not %s as asked" % (la57, a.la57))
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
