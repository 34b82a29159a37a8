#!/usr/bin/env python3
"""bench_forensics.py - a benchmark (not a test) of the responder's files
(issue 11) on a real guest with many processes: an ELF dump of the test
guest started with vmemfs.extra=N (N more idle processes), then on a fresh
mount each time (nothing cached by vmemfs or FUSE):

  1. ls proc/ + read every proc/<pid>/status (the budget: under 0.1 s);
  2. read every per-process file of every process (cmdline, environ, exe,
     cwd, root, fds, threads), each kind timed on its own mount;
  3. read every kernel file (modules, dmesg, cmdline, mounts, net/*) and the
     listings (processes.json, processes.csv).

Medians over --reps are printed as a markdown table.

    contrib/bench/bench_forensics.py [--vmemfs BUILD/vmemfs] [--extra-procs 150]
        [--symbols DIR] [--mem 512M] [--reps 3]

--symbols defaults to ../shared/isf beside the source tree; without it the
profile is built with vmemfs-profile from the guest kernel's BTF (as
bench_guest.py does).  Needs QEMU (contrib/install-deps.sh).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from vmemfs_test import Mount  # noqa: E402

PROC_FILES = ("cmdline", "environ", "exe", "cwd", "root", "fds", "threads")
KERNEL_FILES = ("modules", "dmesg", "cmdline", "mounts", "net/tcp", "net/tcp6", "net/udp",
                "net/udp6", "net/unix")


def slurp(path):
    with open(path, "rb") as f:
        return len(f.read())


def profile(a, work, cap, build):
    if a.symbols:
        return a.symbols
    shared = os.path.join(SRC, "..", "shared", "isf")
    if os.path.isdir(shared):
        return shared
    gdir = subprocess.run(["sh", os.path.join(SRC, "contrib/guest/mkguest.sh")], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    ks = os.path.join(work, "kallsyms")
    with open(ks, "w") as f:
        for l in open(os.path.join(cap, "truth.txt")):
            if l.startswith("KSYM "):
                f.write(l[5:])
    syms = os.path.join(work, "symbols")
    os.makedirs(syms)
    subprocess.run([os.path.join(build, "vmemfs-profile"), "--btf", os.path.join(gdir, "vmlinuz"),
                    "--symbols", ks, "-o", os.path.join(syms, "guest.json")], check=True,
                   stdout=subprocess.DEVNULL)
    return syms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmemfs", default=os.path.join(SRC, "build", "vmemfs"))
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--extra-procs", type=int, default=150)
    ap.add_argument("--symbols")
    a = ap.parse_args()
    build = os.path.dirname(os.path.abspath(a.vmemfs))
    work = tempfile.mkdtemp(prefix="vmemfs-bench-forensics-", dir="/var/tmp")
    try:
        cap = os.path.join(work, "cap")
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(SRC, "contrib/guest/capture.py"),
                        "--mem", a.mem, "--out", cap, "--formats", "elf",
                        "--append", "vmemfs.extra=%d" % a.extra_procs],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("capture: %.0f s" % (time.perf_counter() - t), file=sys.stderr)
        syms = profile(a, work, cap, build)
        vms = [("g", "file:" + os.path.join(cap, "guest.elf"))]
        opt = ["--symbols", syms]
        res = {}
        counts = {}

        def timed(key, fn):
            with Mount(a.vmemfs, vms, extra=opt) as m:
                t0 = time.perf_counter()
                n = fn(m)
                res.setdefault(key, []).append(time.perf_counter() - t0)
                counts[key] = n

        for rep in range(a.reps):
            def ls_status(m):
                pids = os.listdir(m.path("g", "proc"))
                for p in pids:
                    slurp(m.path("g", "proc", p, "status"))
                return "%d processes" % len(pids)
            timed("ls proc/ + every status", ls_status)
            for kind in PROC_FILES:
                def one(m, kind=kind):
                    pids = os.listdir(m.path("g", "proc"))
                    nbytes = absent = 0
                    for p in pids:
                        try:
                            nbytes += slurp(m.path("g", "proc", p, kind))
                        except FileNotFoundError:
                            absent += 1         # exe of a kernel thread, as in /proc
                    return "%d files, %d bytes%s" % (len(pids) - absent, nbytes,
                                                     " (%d kernel threads have none)" % absent
                                                     if absent else "")
                timed("proc/*/" + kind, one)

            def all_proc(m):
                pids = os.listdir(m.path("g", "proc"))
                n = nbytes = 0
                for p in pids:
                    for kind in ("status",) + PROC_FILES:
                        try:
                            nbytes += slurp(m.path("g", "proc", p, kind))
                            n += 1
                        except FileNotFoundError:
                            pass
                return "%d files, %d bytes" % (n, nbytes)
            timed("every file of every process (status + the 7 new)", all_proc)

            def kernel(m):
                return "%d bytes" % sum(slurp(m.path("g", "kernel", *k.split("/")))
                                       for k in KERNEL_FILES)
            timed("kernel/: " + " ".join(KERNEL_FILES), kernel)
            for lst in ("processes.json", "processes.csv"):
                timed(lst, lambda m, lst=lst: "%d bytes" % slurp(m.path("g", lst)))
        print("| what (fresh mount, %d user processes started, median of %d) | time | read |"
              % (a.extra_procs, a.reps))
        print("|---|---|---|")
        for k, v in res.items():
            print("| %s | %.3f s | %s |" % (k, statistics.median(v), counts[k]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
