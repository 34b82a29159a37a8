#!/usr/bin/env python3
"""bench_volatility.py - a benchmark (not a test) of Volatility 3 on vmemfs:

  1. a plugin (linux.pslist, linux.psaux) on pmem.raw of the test guest's
     ELF dump, against the same plugin on the padded raw capture of the same
     memory (a plain file: the ratio is what going through vmemfs costs);
  2. Volatility's start-up (linux.pslist, whose run is mostly the stacking:
     banner scan, KASLR search) on pmem.raw with and without the vmemfs
     plugin directory (contrib/volatility: info.json instead of scans).
     Meant for a large guest (--mem 5G): the scans grow with memory.

Reps alternate between contenders; medians of wall time and of CPU time
(user+sys of Volatility and its children) are printed as a markdown table.
Volatility's cache is warmed by one untimed run first.

    contrib/bench/bench_volatility.py [--vmemfs BUILD/vmemfs] [--mem 256M] [--reps 3]

Needs ../shared/volatility3 (or --volatility DIR), python3-pefile, QEMU and
FUSE (contrib/install-deps.sh); ../shared/isf (or --isf DIR) for the ISF.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from vmemfs_test import Mount  # noqa: E402


def vol_python():
    for py in ("/usr/bin/python3", sys.executable):
        if subprocess.run([py, "-c", "import pefile"], capture_output=True).returncode == 0:
            return py
    sys.exit("bench_volatility: no python3 with pefile (apt-get install python3-pefile)")


def run_vol(a, py, image, plugin, plugin_dir=None):
    cmd = [py, os.path.join(a.volatility, "vol.py"), "--offline", "-q", "-r", "json",
           "--cache-path", a.cache, "-s", a.isf, "-f", image]
    if plugin_dir:
        cmd += ["-p", plugin_dir]
    cmd.append(plugin)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0 or r.stdout.count('"PID"') == 0:
        sys.exit("bench_volatility: %s on %s gave no process:\n%s" % (plugin, image, r.stderr[-2000:]))
    return wall, cpu, r.stdout.count('"PID"')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmemfs", default=os.path.join(SRC, "build", "vmemfs"))
    ap.add_argument("--mem", default="256M")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--volatility", default=os.path.join(SRC, "..", "shared", "volatility3"))
    ap.add_argument("--isf", default=os.path.join(SRC, "..", "shared", "isf"))
    ap.add_argument("--cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vmemfs-volatility3",
        "bench"))
    a = ap.parse_args()
    py = vol_python()
    os.makedirs(a.cache, exist_ok=True)
    if not os.path.exists(os.path.join(a.cache, "identifier.cache")):
        # Seeded from the tests' caches (tests/integration/lib.sh): the
        # first build of Volatility's cache takes a minute or more.
        base = os.path.dirname(a.cache)
        for d in sorted(os.listdir(base)):
            seed = os.path.join(base, d)
            if seed != a.cache and os.path.exists(os.path.join(seed, "identifier.cache")):
                for f in os.listdir(seed):
                    if f.endswith("cache"):
                        shutil.copy(os.path.join(seed, f), a.cache)
                break
    work = tempfile.mkdtemp(prefix="vmemfs-bench-vol-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        cap = os.path.join(work, "cap")
        print("capturing a %s guest (ELF and padded raw)..." % a.mem, flush=True)
        subprocess.run([sys.executable, os.path.join(SRC, "contrib", "guest", "capture.py"),
                        "--mem", a.mem, "--out", cap, "--formats", "elf,raw"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        raw = os.path.join(cap, "guest.raw")
        plugin_dir = os.path.join(SRC, "contrib", "volatility")
        with Mount(a.vmemfs, [("g", "file:" + os.path.join(cap, "guest.elf"))],
                   extra=["--symbols", a.isf]) as m:
            pmem = m.path("g", "pmem.raw")
            contenders = [
                ("linux.pslist", "raw file", raw, None),
                ("linux.pslist", "pmem.raw", pmem, None),
                ("linux.pslist", "pmem.raw -p vmemfs", pmem, plugin_dir),
                ("linux.psaux", "raw file", raw, None),
                ("linux.psaux", "pmem.raw", pmem, None),
            ]
            run_vol(a, py, pmem, "linux.pslist")            # warm Volatility's cache
            samples = {c[:2]: [] for c in contenders}
            nproc = {}
            for rep in range(a.reps):
                for plugin, what, image, pdir in contenders:
                    wall, cpu, n = run_vol(a, py, image, plugin, pdir)
                    samples[(plugin, what)].append((wall, cpu))
                    nproc[(plugin, what)] = n
                print("rep %d/%d done" % (rep + 1, a.reps), flush=True)
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in samples.items()}
        print("\nVolatility 3 on a %s guest (median of %d, wall / CPU seconds)\n" % (a.mem, a.reps))
        print("| plugin | image | processes | wall s | CPU s | wall vs raw file |")
        print("|---|---|---|---|---|---|")
        for plugin, what, _, _ in contenders:
            w, c = med[(plugin, what)]
            base = med[(plugin, "raw file")][0]
            print("| %s | %s | %d | %.2f | %.2f | %.2fx |" % (plugin, what, nproc[(plugin, what)],
                                                          w, c, w / base))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
