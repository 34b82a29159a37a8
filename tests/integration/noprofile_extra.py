#!/usr/bin/env python3
"""noprofile_extra.py VMEMFS CAPTURE_DIR MODE - the profile vmemfs builds from
guest memory (issue 10), beyond guest_proc.py:

  MODE vol:    Volatility 3 (VOL=path of vol.py) on the mount's pmem.raw with
               the mount's own symbols/ directory: linux.pslist lists the
               guest's processes (truth.txt), pid and name.
  MODE no-btf: a kernel without BTF: proc/ is absent and info.json says why,
               naming the missing CONFIG_DEBUG_INFO_BTF and --symbols.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

vmemfs, cap, mode = sys.argv[1], sys.argv[2], sys.argv[3]
c = Checks("noprofile[%s %s]" % (os.path.basename(cap), mode))
procs = {}
for line in open(os.path.join(cap, "truth.txt")):
    m = re.match(r"PROC (\d+) (\d+) (\d+) (.*)$", line.rstrip("\n"))
    if m:
        procs[int(m[1])] = m[4]

with Mount(vmemfs, [("g", "file:" + os.path.join(cap, "guest.elf"))]) as m:
    info = json.load(open(m.path("g", "info.json")))
    if mode == "no-btf":
        c.ok(not os.path.isdir(m.path("g", "proc")), "no proc/ without a profile")
        why = json.dumps(info)
        c.ok("no BTF: this kernel was built without CONFIG_DEBUG_INFO_BTF" in why
             and "--symbols" in why, "info.json says there is no BTF and to give "
             "--symbols: " + m.output().strip()[-300:])
    else:
        out = subprocess.run([sys.executable, os.environ["VOL"], "--offline", "-q", "-r", "json",
                              "-s", m.path("g", "symbols"), "-f", m.path("g", "pmem.raw"),
                              "linux.pslist.PsList"], capture_output=True, text=True,
                             timeout=900)
        rows = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
        c.ok(rows, "vol linux.pslist ran: " + out.stderr.strip()[-300:])
        got = {r["PID"]: r["COMM"] for r in rows}
        missing = sorted(set(procs) - set(got))
        c.ok(not missing, "every guest process in vol's pslist (missing %s)" % missing)
        bad = [p for p in procs if p in got and not (procs[p].startswith(got[p]) or got[p].startswith(procs[p][:15]))]
        c.ok(not bad, "names agree (%s)" % bad)
    c.ok(m.alive(), "daemon alive")
c.finish()
