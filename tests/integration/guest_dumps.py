#!/usr/bin/env python3
"""guest_dumps.py VMEMFS CAPTURE_DIR - checks a capture.py output mounted in
vmemfs: every format's pmem.raw against the raw capture, byte for byte
(outside the ROM segments QEMU's ELF and kdump dumps add, which are checked
against the ELF's own bytes), memmap against ranges.txt (the ROM segments
apart, "Reserved", kind "rom" in info.json), vCPU CR3 present.
"""
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

vmemfs, cap = sys.argv[1], sys.argv[2]
c = Checks("guest_dumps[%s]" % os.path.basename(cap))
ranges = [tuple(int(x, 16) for x in l.split("-")) for l in open(os.path.join(cap, "ranges.txt"))
          if l.strip()]
raw = os.path.join(cap, "guest.raw")
raw_size = os.path.getsize(raw)


def elf_loads(path):
    """(paddr, offset, filesz) of every PT_LOAD, read here independently."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        out = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _, off, _, paddr, filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == 1 and filesz:
                out.append((paddr, off, filesz))
    return out


def cmp_range(a, b, skip_a, skip_b, n):
    """cmp of n bytes from offsets; True if equal."""
    r = subprocess.run(["cmp", "-n", str(n), "-i", "%d:%d" % (skip_a, skip_b), a, b],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
    return r.returncode == 0


loads = elf_loads(os.path.join(cap, "guest.elf"))
roms = [(p, o, n) for p, o, n in loads
        if not any(s <= p < e for s, e in ranges)]       # segments outside RAM
c.ok(all(p >= raw_size or p + n <= raw_size for p, _, n in roms), "ROM segments lie outside RAM")
vms = [("raw", "guest.raw"), ("elf", "guest.elf"), ("kdump", "guest.kdump")]
if os.path.exists(os.path.join(cap, "guest.kdump.flat")):
    vms.append(("kdumpflat", "guest.kdump.flat"))
with Mount(vmemfs, [(n, "file:" + os.path.join(cap, f)) for n, f in vms]) as m:
    c.eq(sorted(os.listdir(m.dir)), sorted(n for n, _ in vms), "one directory per VM")
    for name, _ in vms:
        p = m.path(name, "pmem.raw")
        size = os.stat(p).st_size
        want_size = max([raw_size] + [pa + n for pa, _, n in roms]) if name != "raw" else raw_size
        c.eq(size, want_size, name + " st_size = end of the highest range")
        # RAM: the whole raw capture, byte for byte (holes included: zeros).
        rom_lo = min([pa for pa, _, _ in roms if pa < raw_size], default=raw_size)
        c.ok(cmp_range(p, raw, 0, 0, min(raw_size, rom_lo) if name != "raw" else raw_size),
             name + " pmem.raw == raw capture")
        if name == "raw":
            continue
        # Between the end of RAM and the ROM: zeros.  The ROM: the ELF's bytes.
        pos = raw_size
        for pa, off, n in sorted(roms):
            if pa > pos:
                c.ok(cmp_range(p, "/dev/zero", pos, 0, pa - pos),
                     "%s zeros in [0x%x, 0x%x)" % (name, pos, pa))
            c.ok(cmp_range(p, os.path.join(cap, "guest.elf"), pa, off, n),
                 "%s ROM segment at 0x%x equals the ELF's" % (name, pa))
            pos = pa + n
        memmap = [tuple(int(x, 16) for x in l.split(" ")[0].split("-"))
                  for l in open(m.path(name, "memmap"))]
        for s, e in ranges:
            c.ok(any(a <= s and e - 1 <= b for a, b in memmap),
                 "%s memmap covers RAM range %x-%x" % (name, s, e))
        info = json.load(open(m.path(name, "info.json")))
        # The BIOS ROM is not RAM, and not one range with the RAM QEMU puts
        # at 4 GiB (the guest's /proc/iomem calls it Reserved).
        lines = open(m.path(name, "memmap")).read().splitlines()
        kinds = {(int(r["start"], 16), int(r["end"], 16)): r["kind"] for r in info["ranges"]}
        for pa, _, n in roms:
            c.ok("%08x-%08x : Reserved" % (pa, pa + n - 1) in lines,
                 "%s memmap shows the ROM at 0x%x apart, as Reserved: %s" % (name, pa, lines))
            c.eq(kinds.get((pa, pa + n)), "rom", "%s info.json kind of the ROM at 0x%x" % (name, pa))
        c.ok(info["vcpus"] and int(info["vcpus"][0].get("cr3", "0"), 16) != 0,
             name + " info.json has the vCPU's CR3")
    c.ok(m.alive(), "daemon alive")
c.finish()
