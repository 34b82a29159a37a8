#!/usr/bin/env python3
"""Cross-check a capture.py output directory (stdlib only).

  verify.py OUT

1. guest.raw against guest.elf: every PT_LOAD byte that lies in a RAM range
   (ranges.txt) must equal guest.raw at the same guest-physical address;
   every RAM byte must be covered by some PT_LOAD; PT_LOADs outside the RAM
   ranges (ROMs) are listed.
2. guest.kdump (diskdump, zlib) against guest.raw: every dumped page that
   lies in a RAM range must equal guest.raw; every RAM page must be dumped.
3. The pattern in guest.raw: for every whole page of every PATTERN region in
   truth.txt, the page holding the expected words must exist somewhere in
   guest.raw (found through an index of each page's first word, then checked
   word by word), and every PHYS line's physical address must hold the
   expected word.
Exit status 0 when all checks pass.
"""

import mmap
import os
import re
import struct
import sys
import zlib

MAGIC = 0x564D454D46530000
PAGE = 4096
PT_LOAD = 1


def phdrs(f):
    ident = f.read(64)
    if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
        raise SystemExit("guest.elf: not a little-endian ELF64 file")
    e_phoff, = struct.unpack_from("<Q", ident, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", ident, 54)
    out = []
    for i in range(e_phnum):
        f.seek(e_phoff + i * e_phentsize)
        (p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz,
         p_align) = struct.unpack("<IIQQQQQQ", f.read(56))
        out.append((p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz))
    return out


def check_elf(out, ranges, raw):
    ok = True
    path = os.path.join(out, "guest.elf")
    covered = []
    with open(path, "rb") as f:
        loads = [p for p in phdrs(f) if p[0] == PT_LOAD]
        em = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for _, off, _, pa, fsz, msz in loads:
            if fsz != msz:
                print("elf: PT_LOAD %#x: filesz %#x != memsz %#x"
                      % (pa, fsz, msz))
            inram = False
            for s, e in ranges:
                lo, hi = max(s, pa), min(e, pa + fsz)
                if lo >= hi:
                    continue
                inram = True
                covered.append((lo, hi))
                step = 1 << 24
                for a in range(lo, hi, step):
                    n = min(step, hi - a)
                    if em[off + a - pa:off + a - pa + n] != raw[a:a + n]:
                        print("MISMATCH elf/raw in %#x-%#x" % (a, a + n))
                        ok = False
            if not inram:
                print("elf: PT_LOAD %#x-%#x is outside the RAM ranges"
                      " (not in guest.raw)" % (pa, pa + msz))
            elif (pa, pa + fsz) not in covered:
                print("elf: PT_LOAD %#x-%#x only partly in RAM ranges"
                      % (pa, pa + msz))
        em.close()
    covered.sort()
    pos = None
    for s, e in ranges:
        a = s
        for lo, hi in covered:
            if hi <= a or lo >= e:
                continue
            if lo > a:
                break
            a = max(a, hi)
        if a < e:
            print("RAM %#x-%#x not fully covered by PT_LOADs (gap at %#x)"
                  % (s, e, a))
            ok = False
    print("elf vs raw: %d PT_LOADs, %s" % (len(loads),
                                         "match" if ok else "MISMATCH"))
    return ok


def check_kdump(out, ranges, raw):
    path = os.path.join(out, "guest.kdump")
    with open(path, "rb") as f:
        km = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if km[:8] != b"KDUMP   ":
        print("kdump: bad signature %r" % km[:8])
        return False
    version, = struct.unpack_from("<I", km, 8)
    (block, sub_blocks, bitmap_blocks, mapnr32) = struct.unpack_from(
        "<IIII", km, 428)
    sub = struct.unpack_from("<QIIQQQQQQQQQQQ", km, block)
    phys_base, max_mapnr = sub[0], sub[13] if version >= 6 else mapnr32
    size_vmcoreinfo = sub[6]
    bm = (1 + sub_blocks) * block
    half = bitmap_blocks * block // 2
    bitmap2 = km[bm + half:bm + 2 * half]
    desc = (1 + sub_blocks + bitmap_blocks) * block
    ok = True
    dumped = other = 0
    n = 0
    for byte_i, byte in enumerate(bitmap2):
        if not byte:
            continue
        for bit in range(8):
            if not byte & (1 << bit):
                continue
            pfn = byte_i * 8 + bit
            if pfn >= max_mapnr:
                continue
            off, size, flags, _ = struct.unpack_from("<QIIQ", km,
                                                     desc + 24 * n)
            n += 1
            pa = pfn * block
            if not any(s <= pa < e for s, e in ranges):
                other += 1
                continue
            data = km[off:off + size]
            if flags & 1:
                data = zlib.decompress(data)
            elif flags:
                print("kdump: pfn %#x: unsupported flags %#x" % (pfn, flags))
                ok = False
                continue
            if data != raw[pa:pa + block]:
                print("MISMATCH kdump/raw at pfn %#x" % pfn)
                ok = False
            dumped += 1
    want = sum((e - s) // block for s, e in ranges)
    if dumped != want:
        print("kdump: %d RAM pages dumped, %d expected" % (dumped, want))
        ok = False
    print("kdump vs raw: header v%d, block %d, max_mapnr %#x, phys_base %#x,"
          " vmcoreinfo %d bytes; %d RAM pages %s, %d pages outside RAM"
          % (version, block, max_mapnr, phys_base, size_vmcoreinfo, dumped,
             "match" if ok else "MISMATCH", other))
    km.close()
    return ok


def word(va, tag):
    return struct.pack("<Q", (va ^ MAGIC ^ tag) & 0xFFFFFFFFFFFFFFFF)


def check_pattern(out, raw):
    regions, phys = [], []
    with open(os.path.join(out, "truth.txt")) as f:
        for line in f:
            m = re.match(r"PATTERN pid=(\d+) tag=(\d+) kind=(\w+) "
                         r"addr=0x([0-9a-f]+) len=0x([0-9a-f]+)", line)
            if m:
                regions.append((int(m.group(1)), int(m.group(2)), m.group(3),
                                int(m.group(4), 16), int(m.group(5), 16)))
            m = re.match(r"PHYS pid=(\d+) kind=(\w+) vaddr=0x([0-9a-f]+) "
                         r"paddr=0x([0-9a-f]+)", line)
            if m:
                phys.append((int(m.group(1)), m.group(2),
                             int(m.group(3), 16), int(m.group(4), 16)))
    if not regions:
        print("pattern: no PATTERN lines in truth.txt")
        return False
    tags = {pid: tag for pid, tag, _, _, _ in regions}

    # Index: first word of every page of guest.raw -> page offsets.
    want = {}
    for pid, tag, kind, a, n in regions:
        p = (a + PAGE - 1) & ~(PAGE - 1)
        while p + PAGE <= a + n:
            want[word(p, tag)] = None
            p += PAGE
    index = {}
    for off in range(0, len(raw) - PAGE + 1, PAGE):
        w = raw[off:off + 8]
        if w in want:
            index.setdefault(w, []).append(off)

    ok = True
    for pid, tag, kind, a, n in regions:
        found = total = 0
        p = (a + PAGE - 1) & ~(PAGE - 1)
        while p + PAGE <= a + n:
            total += 1
            page = b"".join(word(p + i, tag) for i in range(0, PAGE, 8))
            if any(raw[o:o + PAGE] == page for o in index.get(word(p, tag),
                                                             ())):
                found += 1
            p += PAGE
        print("pattern pid=%d tag=%d %-4s: %d/%d pages found"
              % (pid, tag, kind, found, total))
        ok &= found == total
    for pid, kind, va, pa in phys:
        if kind == "counter":
            continue  # not a pattern word; it changes while the guest runs
        va8 = (va + 7) & ~7
        pa8 = pa + (va8 - va)
        good = raw[pa8:pa8 + 8] == word(va8, tags[pid])
        print("phys pid=%d %-4s va %#x -> pa %#x: %s"
              % (pid, kind, va, pa, "ok" if good else "WRONG"))
        ok &= good
    return ok


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: verify.py OUT")
    out = sys.argv[1]
    ranges = []
    with open(os.path.join(out, "ranges.txt")) as f:
        for line in f:
            s, e = line.split("-")
            ranges.append((int(s, 16), int(e, 16)))
    if not os.path.exists(os.path.join(out, "guest.raw")):
        raise SystemExit("verify: no guest.raw in %s (capture with raw)" % out)
    with open(os.path.join(out, "guest.raw"), "rb") as f:
        raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        ok = True
        if os.path.exists(os.path.join(out, "guest.elf")):
            ok &= check_elf(out, ranges, raw)
        if os.path.exists(os.path.join(out, "guest.kdump")):
            ok &= check_kdump(out, ranges, raw)
        ok &= check_pattern(out, raw)
    print("verify: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
