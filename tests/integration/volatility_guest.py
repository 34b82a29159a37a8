#!/usr/bin/env python3
"""volatility_guest.py - the real Volatility 3 (../shared/volatility3) on
vmemfs's pmem.raw of the test guest, checked against the guest's own list of
processes (truth.txt, written by contrib/guest/capture.py or qemu_boot.py):
every process the guest listed must be in linux.pslist with its pid, name
and parent, and in linux.psaux with its pid.

    volatility_guest.py dumps VMEMFS CAPTURE_DIR SYMBOLS_DIR [--plugin DIR] [--only elf,...]
        pmem.raw of guest.elf, guest.kdump, guest.kdump.flat and a LiME made
        here from guest.raw and ranges.txt, all in one vmemfs mounted with
        --symbols SYMBOLS_DIR; Volatility gets -s SYMBOLS_DIR.  --only picks
        some of elf, kdump, kdumpflat, lime.
    volatility_guest.py live VMEMFS BOOT_DIR QMP_SOCKET SYMBOLS_DIR [--plugin DIR]
        a running guest (qemu_boot.py), mounted with --freeze-on-open.

--plugin DIR adds `-p DIR` (contrib/volatility) and then also checks that
its stacker built the kernel's layer (Volatility's debug log says so).
Environment (set by lib.sh's need_volatility): VOL_PYTHON, VOL_PY (vol.py),
VOL_CACHE (Volatility's --cache-path).
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkdump import write_lime  # noqa: E402
from vmemfs_test import Checks, Mount  # noqa: E402


# vmemfs loads the ISF once per VM before it mounts: seconds each, more on
# a busy machine.
MOUNT_TIMEOUT = 180


def truth_procs(path):
    procs = {}
    for line in open(path, errors="replace"):
        m = re.match(r"PROC (\d+) (\d+) (\d+) (.*)$", line.rstrip("\n"))
        if m:
            procs[int(m[1])] = (int(m[2]), m[4])
    return procs


def same_name(truth, got):
    # /proc shows a kworker's workqueue after a '-'; the task's comm has not.
    if truth.startswith("kworker/"):
        return truth.split("-")[0] == got.split("-")[0]
    # A kernel thread's full name may be longer than task_struct.comm (15).
    if len(truth) > 15 and len(got) == 15:
        return truth.startswith(got)
    return truth == got


def vol(pmem, symbols, plugin, plugin_dir=None):
    """Rows of one Volatility run (JSON renderer), and its log."""
    cmd = [os.environ["VOL_PYTHON"], os.environ["VOL_PY"], "--offline", "-r", "json",
           "--cache-path", os.environ["VOL_CACHE"], "-s", symbols, "-f", pmem]
    if plugin_dir:
        cmd += ["-p", plugin_dir, "-vvvv"]      # the stacker's debug line
    cmd.append(plugin)
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    took = time.time() - t0
    try:
        rows = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        rows = None
    if rows is None:
        print("volatility %s on %s failed (exit %d):\n%s" % (plugin, pmem, r.returncode,
                                                            r.stderr[-3000:]))
    return rows, r.stderr, took


def flatten(rows):
    out = []
    for row in rows or []:
        out.append(row)
        out.extend(flatten(row.get("__children", [])))
    return out


def check_vol(c, what, pmem, symbols, procs, plugin_dir=None, psaux=True):
    for plugin in ("linux.pslist", "linux.psaux") if psaux else ("linux.pslist",):
        rows, log, took = vol(pmem, symbols, plugin, plugin_dir)
        tag = "%s %s%s" % (what, plugin, " -p" if plugin_dir else "")
        if not c.ok(rows is not None, tag + " ran"):
            continue
        got = {}
        for row in flatten(rows):
            got.setdefault(row["PID"], row)
        missing = [p for p in procs if p not in got]
        c.ok(not missing, "%s: guest pids missing: %s" % (tag, missing[:10]))
        if plugin == "linux.pslist":
            bad = [(p, procs[p][1], got[p]["COMM"]) for p in procs
                   if p in got and not same_name(procs[p][1], got[p]["COMM"])]
            c.ok(not bad, "%s: names differ (pid, guest, volatility): %s" % (tag, bad[:5]))
            bad = [(p, procs[p][0], got[p]["PPID"]) for p in procs
                   if p in got and got[p]["PPID"] != procs[p][0]]
            c.ok(not bad, "%s: parents differ (pid, guest, volatility): %s" % (tag, bad[:5]))
        else:
            # psaux reads each process's own memory for its arguments.
            user = [p for p in procs if procs[p][0] != 2 and p > 2 and p in got]
            empty = [p for p in user if not got[p].get("ARGS")]
            c.ok(user and not empty, "%s: user processes without arguments: %s" % (tag, empty))
        if plugin_dir:
            c.ok("vmemfs: VM " in log, tag + ": the vmemfs stacker built the kernel layer")
        print("  %-44s %3d processes, %5.1f s" % (tag, len(got), took), flush=True)


def make_lime(cap):
    """A LiME of the guest's RAM (what LiME's own module would write: the
    guest's RAM ranges, no ROM), from the raw capture."""
    path = os.path.join(cap, "guest.lime")
    if not os.path.exists(path):
        ranges = [tuple(int(x, 16) for x in l.split("-"))
                  for l in open(os.path.join(cap, "ranges.txt")) if l.strip()]
        datas = []
        with open(os.path.join(cap, "guest.raw"), "rb") as f:
            for s, e in ranges:
                f.seek(s)
                datas.append(f.read(e - s))
        write_lime(path, ranges, datas)
    return path


def main():
    mode, vmemfs = sys.argv[1], sys.argv[2]
    plugin_dir = None
    args = sys.argv[3:]
    if "--plugin" in args:
        i = args.index("--plugin")
        plugin_dir = args[i + 1]
        del args[i:i + 2]
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = args[i + 1].split(",")
        del args[i:i + 2]
    if mode == "dumps":
        cap, symbols = args
        c = Checks("volatility[%s %s]" % (os.path.basename(cap), os.path.basename(symbols)))
        procs = truth_procs(os.path.join(cap, "truth.txt"))
        c.ok(len(procs) > 10, "the guest listed its processes (%d)" % len(procs))
        vms = [("elf", "guest.elf"), ("kdump", "guest.kdump"),
               ("kdumpflat", "guest.kdump.flat"), ("lime", None)]
        vms = [(n, f or make_lime(cap)) for n, f in vms if not only or n in only]
        with Mount(vmemfs, [(n, "file:" + os.path.join(cap, f)) for n, f in vms],
                   extra=["--symbols", symbols], timeout=MOUNT_TIMEOUT) as m:
            for name, _ in vms:
                # psaux on every format would double the time: pslist reads
                # the same kernel structures, psaux adds process memory.
                check_vol(c, name, m.path(name, "pmem.raw"), symbols, procs, plugin_dir,
                          psaux=name in ("elf", "kdumpflat") or len(vms) == 1)
            c.ok(m.alive(), "daemon alive")
    elif mode == "live":
        boot, sock, symbols = args
        c = Checks("volatility[live %s]" % os.path.basename(symbols))
        procs = truth_procs(os.path.join(boot, "truth.txt"))
        c.ok(len(procs) > 10, "the guest listed its processes (%d)" % len(procs))
        # A running guest's idle kworkers exit and new ones start: the rest
        # (user processes, named kernel threads) stay from boot on.
        procs = {p: v for p, v in procs.items() if not v[1].startswith("kworker/")}
        with Mount(vmemfs, [("live", "qemu:" + sock)],
                   extra=["--symbols", symbols, "--freeze-on-open"], timeout=MOUNT_TIMEOUT) as m:
            check_vol(c, "live", m.path("live", "pmem.raw"), symbols, procs, plugin_dir)
            c.ok(m.alive(), "daemon alive")
    else:
        sys.exit("usage: volatility_guest.py dumps|live ...")
    c.finish()


if __name__ == "__main__":
    main()
