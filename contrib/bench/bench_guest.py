#!/usr/bin/env python3
"""bench_guest.py - a benchmark (not a test) of vmemfs on a real guest:

  1. dump: sequential MB/s of a process-independent mapped region through
     kernel/vmem (the kernel's direct map of all RAM, 1 GiB / 2 MiB pages)
     against pmem.raw over the same bytes, the dump hot in the page cache,
     each read on a fresh mount (the FUSE page cache cold);
  2. dump: time to list proc/ and read every proc/<pid>/status on a fresh
     mount, and the mount time itself (profile load, KASLR, task walk);
  3. live: sequential MB/s of pmem.raw of a running QEMU guest with a shared
     RAM file, and without one (process memory), against the FUSE ceiling
     (contrib/bench/ceilingfs.c, direct_io, serving the same number of bytes
     from an mmap of a hot file).

Reps alternate; medians are printed, as a markdown table with ratios.

    sudo contrib/bench/bench_guest.py [--vmemfs BUILD/vmemfs] [--mem 1024M] [--reps 5]

Needs root, QEMU, a C compiler and libfuse3-dev (contrib/install-deps.sh).
Builds the profile with vmemfs-profile from the guest kernel's BTF.
"""
import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from vmemfs_test import Mount  # noqa: E402


def seq_read(path, off, length, bs=1 << 20):
    buf = bytearray(bs)
    fd = os.open(path, os.O_RDONLY)
    t = time.perf_counter()
    done = 0
    while done < length:
        n = os.preadv(fd, [memoryview(buf)[:min(bs, length - done)]], off + done)
        if n <= 0:
            break
        done += n
    dt = time.perf_counter() - t
    os.close(fd)
    return done / dt / 1e6


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def ksyms(cap):
    return {l.split()[3]: int(l.split()[1], 16)
            for l in open(os.path.join(cap, "truth.txt")) if l.startswith("KSYM")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmemfs", default=os.path.join(SRC, "build", "vmemfs"))
    ap.add_argument("--mem", default="1024M")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--extra-procs", type=int, default=100,
                    help="idle processes the guest starts (proc/ listing)")
    a = ap.parse_args()
    build = os.path.dirname(os.path.abspath(a.vmemfs))
    work = tempfile.mkdtemp(prefix="vmemfs-bench-guest-", dir="/var/tmp")
    rows, notes = [], []
    try:
        cap = os.path.join(work, "cap")
        subprocess.run([sys.executable, os.path.join(SRC, "contrib/guest/capture.py"),
                        "--mem", a.mem, "--out", cap, "--formats", "elf,raw",
                        "--append", "vmemfs.extra=%d" % a.extra_procs],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gdir = subprocess.run(["sh", os.path.join(SRC, "contrib/guest/mkguest.sh")],
                              check=True, capture_output=True, text=True).stdout.split()[-1]
        with open(os.path.join(work, "kallsyms"), "w") as f:
            for l in open(os.path.join(cap, "truth.txt")):
                if l.startswith("KSYM "):
                    f.write(l[5:])
        syms = os.path.join(work, "symbols")
        os.makedirs(syms)
        subprocess.run([os.path.join(build, "vmemfs-profile"), "--btf",
                        os.path.join(gdir, "vmlinuz"), "--symbols",
                        os.path.join(work, "kallsyms"), "-o",
                        os.path.join(syms, "guest.json")], check=True,
                       stdout=subprocess.DEVNULL)
        ks = ksyms(cap)
        elf = os.path.join(cap, "guest.elf")
        nprocs = sum(1 for l in open(os.path.join(cap, "truth.txt")) if l.startswith("PROC "))
        listed = []
        # Find the direct map's base and the RAM size once.
        with Mount(a.vmemfs, [("g", "file:" + elf)], extra=["--symbols", syms]) as m:
            kv = m.path("g", "kernel", "vmem")
            span = os.stat(kv).st_size
            with open(kv, "rb") as f:
                f.seek(ks["page_offset_base"] & (span - 1))
                pob = struct.unpack("<Q", f.read(8))[0] & (span - 1)
            ram = int(open(os.path.join(cap, "ranges.txt")).readline().split("-")[1], 16)
        length = min(ram, 1 << 30)
        seq = {"pmem.raw": [], "kernel/vmem": []}
        mount_s, list_s = [], []
        for rep in range(a.reps):
            for what in (["pmem.raw", "kernel/vmem"] if rep % 2 == 0 else ["kernel/vmem", "pmem.raw"]):
                with Mount(a.vmemfs, [("g", "file:" + elf)], extra=["--symbols", syms]) as m:
                    if what == "pmem.raw":
                        seq[what].append(seq_read(m.path("g", "pmem.raw"), 0, length))
                    else:
                        seq[what].append(seq_read(m.path("g", "kernel", "vmem"), pob, length))
            t0 = time.perf_counter()
            with Mount(a.vmemfs, [("g", "file:" + elf)], extra=["--symbols", syms]) as m:
                t1 = time.perf_counter()
                pids = os.listdir(m.path("g", "proc"))
                listed.append(len(pids))
                for p in pids:
                    open(m.path("g", "proc", p, "status")).read()
                t2 = time.perf_counter()
            mount_s.append(t1 - t0)
            list_s.append(t2 - t1)
        med = {k: statistics.median(v) for k, v in seq.items()}
        rows.append(("dump: pmem.raw seq 1M, %d MiB" % (length >> 20), "%.0f MB/s" % med["pmem.raw"], ""))
        rows.append(("dump: kernel/vmem seq 1M over the direct map", "%.0f MB/s" % med["kernel/vmem"],
                     "%.2fx pmem.raw" % (med["kernel/vmem"] / med["pmem.raw"])))
        rows.append(("dump: mount (profile, KASLR, task walk)", "%.3f s" % statistics.median(mount_s), ""))
        rows.append(("dump: ls proc/ (%d of the guest's %d processes) + read every status"
                     % (max(listed), nprocs),
                     "%.3f s" % statistics.median(list_s), ""))

        # Live: the ceiling on the raw capture (hot), shared file, process memory.
        ceil = os.path.join(work, "ceilingfs")
        subprocess.run("cc -O2 -o %s %s $(pkg-config --cflags --libs fuse3)" %
                       (ceil, os.path.join(HERE, "ceilingfs.c")), shell=True, check=True)
        raw = os.path.join(cap, "guest.raw")
        shm = "/dev/shm/vmemfs-bench-%d" % os.getpid()
        live = {}
        for name, extra in (("shared file", ["--shared-ram", shm]), ("process memory", [])):
            out = subprocess.run([sys.executable, os.path.join(SRC, "tests/integration/qemu_boot.py"),
                                  "--mem", a.mem, "--out", os.path.join(work, "live")] + extra,
                                 check=True, capture_output=True, text=True).stdout
            env = dict(l.split("=", 1) for l in out.split() if "=" in l)
            try:
                with Mount(a.vmemfs, [("l", "qemu:" + env["QMP_SOCKET"])]) as m:
                    live[name] = statistics.median(
                        seq_read(m.path("l", "pmem.raw"), 0, length) for _ in range(a.reps))
            finally:
                os.kill(int(env["QEMU_PID"]), 9)
                time.sleep(0.5)
                if os.path.exists(shm):
                    os.unlink(shm)
        seq_read(raw, 0, length)                      # the ceiling's source hot
        cm = tempfile.mkdtemp(prefix="ceil-", dir=work)
        cp = subprocess.Popen([ceil, "--direct-io", cm, raw], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                if os.path.ismount(cm):
                    break
                time.sleep(0.05)
            cdata = [os.path.join(cm, f) for f in os.listdir(cm)][0]
            ceiling = statistics.median(seq_read(cdata, 0, length) for _ in range(a.reps))
        finally:
            subprocess.run(["fusermount3", "-u", cm])
            cp.wait()
        rows.append(("FUSE ceiling (ceilingfs direct_io, hot source)", "%.0f MB/s" % ceiling, ""))
        for name, v in live.items():
            rows.append(("live QEMU, %s: pmem.raw seq 1M" % name, "%.0f MB/s" % v,
                         "%.2fx ceiling" % (v / ceiling)))
        load = open("/proc/loadavg").read().split()[:3]
        print("# vmemfs on a real guest (%s RAM, %d processes); %d reps, medians; loadavg %s\n"
              % (a.mem, nprocs, a.reps, " ".join(load)))
        print("| measure | value | ratio |\n|---|---:|---:|")
        for r in rows:
            print("| %s | %s | %s |" % r)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
