#!/usr/bin/env python3
"""mkdump.py - writes synthetic memory dumps of one guest-physical layout in
every format vmemfs reads, for the integration tests.

    mkdump.py OUTDIR [--seed N] [--high] [--rom]

Writes OUTDIR/padded.raw (the truth: holes are zeros), dump.elf (ELF64 core
with PT_LOADs and a QEMU CPU-state note), dump.lime, dump.kdump
(kdump-compressed, zlib, with one page left out of the dump) and
layout.json (ranges, the vCPU's CR3, the excluded page).  --high adds RAM
above 4 GiB, --rom the x86 BIOS ROM just below 4 GiB as QEMU dumps it (one
more range in every format; layout.json says which).  Stdlib only.
"""
import json
import os
import random
import struct
import sys
import zlib

PAGE = 4096


# The BIOS ROM as QEMU's ELF and kdump dumps of an x86 guest carry it: the
# 256 KiB below 4 GiB, touching the RAM QEMU puts at 4 GiB.
ROM = (0xFFFC0000, 0x100000000)


def layout(high, rom=False):
    # Low RAM below the legacy hole, RAM from 1 MiB, a gap, then a range that
    # starts and ends off a page boundary (LiME and ELF allow that).
    ranges = [(0x0, 0xA0000), (0x100000, 0x900000), (0xA00000, 0xB00000)]
    if rom:
        ranges.append(ROM)
    if high:
        # RAM above 4 GiB with a hole below it, like a guest with > 3.5 GiB.
        ranges.append((0x100000000, 0x100400000))
    return ranges


def fill(ranges, seed):
    """Random pages mixed with compressible ones (text, zeros), so that the
    kdump writer exercises both stored and compressed pages."""
    rnd = random.Random(seed)
    out = []
    for s, e in ranges:
        buf = bytearray(rnd.randbytes(e - s))
        for off in range(0, e - s, PAGE):
            kind = (s + off) // PAGE % 3
            if kind == 1:
                line = b"vmemfs page 0x%x " % (s + off)
                buf[off:off + PAGE] = (line * (PAGE // len(line) + 1))[:len(buf[off:off + PAGE])]
            elif kind == 2:
                buf[off:off + PAGE] = bytes(len(buf[off:off + PAGE]))
        out.append(bytes(buf))
    return out


def write_padded(path, ranges, datas):
    with open(path, "wb") as f:
        for (s, e), d in zip(ranges, datas):
            f.seek(s)
            f.write(d)
        f.truncate(ranges[-1][1])


def qemu_note(cr3):
    # QEMUCPUState: version, size, 16 GPRs, rip, rflags, 10 segments of
    # 24 bytes, cr[5], kernel_gs_base.
    gprs = [0x1000 + i for i in range(16)]
    segs = b"".join(struct.pack("<IIIIQ", 0x10 + i, 0xFFFFF, 0, 0, 0x5000 * i)
                    for i in range(10))
    body = struct.pack("<II", 1, 0) + struct.pack("<16Q", *gprs)
    body += struct.pack("<QQ", 0xFFFFFFFF81000000, 0x246) + segs
    body += struct.pack("<5Q", 0x80050033, 0, 0, cr3, 0x3506F0)
    body += struct.pack("<Q", 0xFFFF888000000000)
    body = body[:4] + struct.pack("<I", len(body)) + body[8:]
    name = b"QEMU\0"
    return (struct.pack("<III", len(name), len(body), 0) + name + b"\0" * 3
            + body + b"\0" * ((4 - len(body) % 4) % 4))


def write_elf(path, ranges, datas, cr3):
    note = qemu_note(cr3)
    phnum = 1 + len(ranges)
    ehsize, phentsize = 64, 56
    off = ehsize + phnum * phentsize
    note_off = off
    off += len(note)
    off = (off + PAGE - 1) & ~(PAGE - 1)
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 0)]
    offsets = []
    for (s, e) in ranges:
        phdrs.append(struct.pack("<IIQQQQQQ", 1, 7, off, 0, s, e - s, e - s, 0))
        offsets.append(off)
        off += e - s
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    eh = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, ehsize, 0, 0,
                             ehsize, phentsize, phnum, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(eh)
        f.write(b"".join(phdrs))
        f.write(note)
        for o, d in zip(offsets, datas):
            f.seek(o)
            f.write(d)


def write_lime(path, ranges, datas):
    with open(path, "wb") as f:
        for (s, e), d in zip(ranges, datas):
            f.write(struct.pack("<IIQQ8s", 0x4C694D45, 1, s, e - 1, b"\0" * 8))
            f.write(d)


def write_kdump(path, ranges, datas, excluded_gfn, cr3):
    """kdump-compressed (diskdump) v6, block 4096, zlib per page."""
    max_mapnr = (ranges[-1][1] + PAGE - 1) // PAGE
    bitmap_len = (max_mapnr + 7) // 8
    bitmap_blocks = 2 * ((bitmap_len + PAGE - 1) // PAGE)
    half = bitmap_blocks // 2 * PAGE
    bm1 = bytearray(half)
    bm2 = bytearray(half)
    truth = bytearray(ranges[-1][1])
    for (s, e), d in zip(ranges, datas):
        truth[s:e] = d
    for s, e in ranges:
        for gfn in range(s // PAGE, (e + PAGE - 1) // PAGE):
            bm1[gfn // 8] |= 1 << (gfn % 8)
            if gfn != excluded_gfn:
                bm2[gfn // 8] |= 1 << (gfn % 8)
    dumped = [g for g in range(max_mapnr) if bm2[g // 8] >> (g % 8) & 1]
    write_kdump_bitmaps(path, max_mapnr, bm1, bm2, dumped,
                        lambda g: bytes(truth[g * PAGE:(g + 1) * PAGE]), cr3)


def write_kdump_bitmaps(path, max_mapnr, bm1, bm2, dumped, page_of, cr3):
    """The kdump file itself: bm1 (RAM) and bm2 (dumped) of equal length, a
    whole number of pages; `dumped` the set bits of bm2 in order, page_of(g)
    the contents of frame g."""
    bitmap_blocks = 2 * (len(bm1) // PAGE)
    half = len(bm1)
    note = qemu_note(cr3)
    # Block 0: disk_dump_header; block 1: kdump_sub_header (+ notes after);
    # then the bitmaps; then page descriptors; then page data.
    sub_hdr_blocks = 1 + (len(note) + PAGE - 1) // PAGE
    note_off = 2 * PAGE
    bitmap_off = (1 + sub_hdr_blocks) * PAGE
    desc_off = bitmap_off + 2 * half
    data_off = desc_off + 24 * len(dumped)
    descs, blobs, pos = [], [], data_off
    for g in dumped:
        page = page_of(g).ljust(PAGE, b"\0")
        comp = zlib.compress(page)
        if len(comp) < PAGE:
            descs.append(struct.pack("<qIIQ", pos, len(comp), 1, 0))
            blobs.append(comp)
            pos += len(comp)
        else:
            descs.append(struct.pack("<qIIQ", pos, PAGE, 0, 0))
            blobs.append(page)
            pos += PAGE
    utsname = b"".join(x.ljust(65, b"\0") for x in
                       (b"Linux", b"synthetic", b"6.1.0-test", b"#1", b"x86_64", b""))
    hdr = b"KDUMP   " + struct.pack("<i", 6) + utsname + b"\0" * 6  # align timeval
    hdr += struct.pack("<qq", 0, 0)                      # timestamp
    # status block_size sub_hdr_size bitmap_blocks max_mapnr(32-bit)
    # total_ram_blocks device_blocks written_blocks current_cpu nr_cpus
    hdr += struct.pack("<IiiIIIIIIi", 0, PAGE, sub_hdr_blocks, bitmap_blocks,
                       min(max_mapnr, 0xFFFFFFFF), 0, 0, 0, 0, 1)
    # phys_base dump_level split start_pfn end_pfn off/size vmcoreinfo
    # off/size note off/size eraseinfo start_pfn_64 end_pfn_64 max_mapnr_64
    sub = struct.pack("<QiiQQqQqQqQQQQ", 0, 1, 0, 0, max_mapnr, 0, 0, note_off,
                      len(note), 0, 0, 0, max_mapnr, max_mapnr)
    with open(path, "wb") as f:
        f.write(hdr.ljust(PAGE, b"\0"))
        f.write(sub.ljust(PAGE, b"\0"))
        f.write(note)
        f.seek(bitmap_off)
        f.write(bm1)
        f.write(bm2)
        f.write(b"".join(descs))
        f.write(b"".join(blobs))


def main():
    out = sys.argv[1]
    seed = 1
    high = "--high" in sys.argv
    rom = "--rom" in sys.argv
    if "--seed" in sys.argv:
        seed = int(sys.argv[sys.argv.index("--seed") + 1])
    os.makedirs(out, exist_ok=True)
    ranges = layout(high, rom)
    datas = fill(ranges, seed)
    cr3 = 0x1234000
    excluded_gfn = 0x200  # a page in the 1 MiB range that kdump leaves out
    write_padded(os.path.join(out, "padded.raw"), ranges, datas)
    write_elf(os.path.join(out, "dump.elf"), ranges, datas, cr3)
    write_lime(os.path.join(out, "dump.lime"), ranges, datas)
    write_kdump(os.path.join(out, "dump.kdump"), ranges, datas, excluded_gfn, cr3)
    with open(os.path.join(out, "layout.json"), "w") as f:
        json.dump({"ranges": ranges, "cr3": cr3, "kdump_excluded_gfn": excluded_gfn,
                   "rom": ROM if rom else None}, f)


if __name__ == "__main__":
    main()
