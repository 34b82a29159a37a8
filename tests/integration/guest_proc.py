#!/usr/bin/env python3
"""guest_proc.py VMEMFS CAPTURE_DIR SYMBOLS_DIR_OR_PROFILE - a real guest's
processes through vmemfs ("-" for no profile: the one vmemfs builds from the
guest's own BTF and kallsyms, which info.json must then name and
symbols/linux/ must offer), checked against what the guest said of itself
(truth.txt, written by contrib/guest/capture.py):

  - every guest process is in proc/ with the same pid, name and parent;
  - proc/<pid>/maps equals the guest's own /proc/<pid>/maps;
  - proc/<pid>/status says the same name, pid, parent and uid;
  - the pattern the guest program wrote reads back through proc/<pid>/vmem
    at the addresses it printed (heap, a large mmap, a THP region);
  - SEEK_DATA/SEEK_HOLE on vmem find those regions;
  - kernel threads have no vmem; kernel/vmem holds linux_banner at the
    address the guest's /proc/kallsyms gave (a kernel without
    CONFIG_KALLSYMS_ALL, such as Debian's 686-pae, lists no data symbols:
    then at the profile's link address moved by the guest's own _text, and
    info.json's KASLR shift must be that move).

32-bit guests (PAE or 2-level paging) have vmem files of 2^32 bytes.
"""
import errno
import gzip
import json
import lzma
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

vmemfs, cap, symbols = sys.argv[1], sys.argv[2], sys.argv[3]
dump = sys.argv[4] if len(sys.argv) > 4 else "guest.elf"
c = Checks("guest_proc[%s %s %s]" % (os.path.basename(cap), dump, os.path.basename(symbols)))
MAGIC = 0x564D454D46530000

procs, patterns, maps, ksym = {}, [], {}, {}
cur = None
for line in open(os.path.join(cap, "truth.txt")):
    line = line.rstrip("\n")
    m = re.match(r"PROC (\d+) (\d+) (\d+) (.*)$", line)
    if m:
        procs[int(m[1])] = (int(m[2]), int(m[3]), m[4])
        continue
    m = re.match(r"PATTERN pid=(\d+) tag=(\d+) kind=(\w+) addr=0x([0-9a-f]+) len=0x([0-9a-f]+)", line)
    if m:
        patterns.append((int(m[1]), int(m[2]), m[3], int(m[4], 16), int(m[5], 16)))
        continue
    m = re.match(r"MAPS (\d+)$", line)
    if m:
        cur = int(m[1])
        maps[cur] = []
        continue
    m = re.match(r"KSYM ([0-9a-f]+) \w (\S+)", line)
    if m:
        ksym[m[2]] = int(m[1], 16)
    if cur is not None and re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
        maps[cur].append(line)
    elif not line.startswith(" "):
        cur = None if not re.match(r"[0-9a-f]+-", line) else cur


def same_name(truth, got):
    # /proc shows a kworker's workqueue after a '-'; the task's comm has not.
    if truth.startswith("kworker/"):
        return truth.split("-")[0] == got.split("-")[0]
    # A kernel thread's full name (/proc reads struct kthread) may be
    # longer than the 15 characters of task_struct.comm.
    if len(truth) > 15 and len(got) == 15:
        return truth.startswith(got)
    return truth == got


opt = [] if symbols == "-" else ["--profile", symbols] if os.path.isfile(symbols) else ["--symbols", symbols]
with Mount(vmemfs, [("g", "file:" + os.path.join(cap, dump))], extra=opt) as m:
    c.ok(os.path.isdir(m.path("g", "proc")), "proc/ exists: " + m.output().strip())
    info = json.load(open(m.path("g", "info.json")))
    c.eq(info["guest"].get("os"), "linux", "info.json guest os")
    if symbols == "-":
        c.eq(info["guest"].get("profile_source"), "guest memory (BTF + kallsyms)",
             "info.json says the profile came from guest memory")
        isf_dir = m.path("g", "symbols", "linux")
        names = os.listdir(isf_dir) if os.path.isdir(isf_dir) else []
        c.eq(names, [info["guest"].get("profile_file")], "symbols/linux/ holds the ISF")
        if names:
            with open(os.path.join(isf_dir, names[0])) as f:
                doc = json.load(f)
            banner = doc["symbols"]["linux_banner"].get("constant_data", "")
            c.ok(banner != "" and "task_struct" in doc["user_types"],
                 "the ISF has the banner and task_struct")
    # The size of proc/<pid>/vmem for the paging mode, and an address near
    # its top to ask SEEK_HOLE from.
    paging = info["guest"].get("paging", "")
    is32 = paging in ("x86 PAE", "x86 32-bit")
    vmem_sizes = (1 << 32,) if is32 else (1 << 47, 1 << 56)
    near_top = {1 << 32: 0xF0000000, 1 << 47: 0x7FF000000000,
                1 << 56: (1 << 56) - (1 << 36)}
    if os.environ.get("VMEMFS_EXPECT_PAGING"):
        c.eq(paging, os.environ["VMEMFS_EXPECT_PAGING"], "info.json paging mode")
    listed = {int(p) for p in os.listdir(m.path("g", "proc"))}
    for pid, (ppid, uid, comm) in sorted(procs.items()):
        if not c.ok(pid in listed, "pid %d (%s) in proc/" % (pid, comm)):
            continue
        st = dict(l.split(":", 1) for l in open(m.path("g", "proc", str(pid), "status")) if ":" in l)
        st = {k: v.strip() for k, v in st.items()}
        c.ok(same_name(comm, st.get("Name", "")), "pid %d name %r vs %r" % (pid, comm, st.get("Name")))
        c.eq(int(st.get("PPid", -1)), ppid, "pid %d parent" % pid)
        c.eq(int(st.get("Pid", -1)), pid, "pid %d status Pid" % pid)
        c.eq(int(st.get("Uid", "-1").split()[0]), uid, "pid %d uid" % pid)
        entries = set(os.listdir(m.path("g", "proc", str(pid))))
        kthread = ppid == 2 or pid == 2
        if kthread:
            c.ok("vmem" not in entries, "kernel thread %d has no vmem" % pid)
    extra = sorted(listed - set(procs))
    c.ok(len(extra) <= 8, "at most a few processes not in the guest's list: %s" % extra)

    for pid, lines in sorted(maps.items()):
        got = open(m.path("g", "proc", str(pid), "maps")).read().splitlines()
        if got != lines:
            for a, b in zip(got + [""] * len(lines), lines + [""] * len(got)):
                if a != b:
                    print("  maps %d: vmemfs %r\n           guest  %r" % (pid, a, b))
        c.ok(got == lines, "proc/%d/maps equals the guest's (%d lines)" % (pid, len(lines)))

    for pid, tag, kind, addr, length in patterns:
        path = m.path("g", "proc", str(pid), "vmem")
        fd = os.open(path, os.O_RDONLY)
        try:
            a = (addr + 7) & ~7
            n = (length - (a - addr)) & ~7
            data = os.pread(fd, n, a)
            words = struct.unpack("<%dQ" % (len(data) // 8), data)
            bad = sum(1 for i, w in enumerate(words) if w != (a + 8 * i) ^ MAGIC ^ tag)
            c.ok(len(data) == n and bad == 0,
                 "pid %d %s pattern at 0x%x (+0x%x): %d bad words" % (pid, kind, addr, n, bad))
            page = addr & ~0xFFF
            if kind in ("mmap", "thp"):
                c.eq(os.lseek(fd, page, os.SEEK_DATA), page, "pid %d %s SEEK_DATA" % (pid, kind))
                c.ok(os.lseek(fd, page, os.SEEK_HOLE) >= addr + length,
                     "pid %d %s SEEK_HOLE past the region" % (pid, kind))
            c.ok(os.lseek(fd, 0, os.SEEK_DATA) <= addr, "pid %d SEEK_DATA from 0" % pid)
            size = os.fstat(fd).st_size
            c.ok(size in vmem_sizes, "vmem size %s (%x)"
                 % (" or ".join("2^%d" % (v.bit_length() - 1) for v in vmem_sizes), size))
            top = os.lseek(fd, near_top.get(size, size - 0x1000), os.SEEK_HOLE)
            c.ok(top <= size, "SEEK_HOLE near the top answers")
        finally:
            os.close(fd)

    # The profile in use: the one given, or the one chosen from the dir.
    profile = symbols if os.path.isfile(symbols) else info["guest"].get("profile", "")
    if "linux_banner" not in ksym and "_text" in ksym and os.path.isfile(profile):
        # No data symbols in kallsyms: the profile's link-time address,
        # moved as far as the guest's own _text moved.
        opener = {".xz": lzma.open, ".gz": gzip.open}.get(os.path.splitext(profile)[1], open)
        with opener(profile, "rt") as f:
            isf_syms = json.load(f)["symbols"]
        if "linux_banner" in isf_syms and "_text" in isf_syms:
            shift = ksym["_text"] - isf_syms["_text"]["address"]
            ksym["linux_banner"] = isf_syms["linux_banner"]["address"] + shift
            got = info["guest"].get("kaslr_virtual_shift", "")
            c.eq(int(got, 16) if got else None, shift,
                 "info.json KASLR shift is how far the guest's _text moved")
    if "linux_banner" in ksym:
        kv = m.path("g", "kernel", "vmem")
        size = os.stat(kv).st_size
        span = size
        off = ksym["linux_banner"] & (span - 1)
        with open(kv, "rb") as f:
            f.seek(off)
            head = f.read(64)
        c.ok(head.startswith(b"Linux version "), "kernel/vmem has linux_banner at its kallsyms address: %r" % head[:32])
    c.ok(m.alive(), "daemon alive")
c.finish()
