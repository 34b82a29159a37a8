#!/usr/bin/env python3
"""hardening.py VMEMFS - what a hostile tester broke (issue 13), kept fixed.

  tiny     byte-granular ranges: 300 one-byte ranges in one page (LiME and
           ELF PT_LOADs) read whole through pmem.raw and pmem, byte for byte
  many     millions of ranges (a 2 MiB kdump whose RAM bitmap alternates: 4
           million ranges; a LiME of 1 million): stat, ls -l, info.json and
           the whole memmap read, with the daemon's peak RSS (VmHWM) bounded
  edges    ranges ending above 2^62 refused at open with a reason; FIFOs as a
           dump, a --profile or in --symbols refused without blocking
  control  one word and at most a newline; the log shows a write printable
  nokernel --symbols on a 6 GiB sparse image without a kernel: mounts after
           reading at most the scan bound (the image's pages in the page
           cache, fincore), not the whole image
  bomb     a gzip bomb in the symbols directory: its banner is looked for in
           a stream, the daemon's peak RSS stays small
"""
import base64
import errno
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkdump  # noqa: E402
from vmemfs_test import Checks, Mount, pread_all  # noqa: E402

PAGE = 4096
MiB = 1 << 20
vmemfs = sys.argv[1]
only = sys.argv[2:]
work = tempfile.mkdtemp(prefix="vmemfs-hard-")
c = Checks("hardening")
# ASan keeps freed blocks in a quarantine (256 MiB by default) that would
# count in VmHWM as if the daemon held them: keep it small for the measure.
if "ASAN_OPTIONS" in os.environ:
    os.environ["ASAN_OPTIONS"] += ":quarantine_size_mb=8"


def gen(name):
    return os.path.join(work, name)


def want(part):
    return not only or part in only


def start_fails(args, timeout=30):
    """(exit status, output) of a vmemfs that must refuse to start: None as
    status when it had to be killed (blocked)."""
    mnt = tempfile.mkdtemp(prefix="vmemfs-mnt-", dir=work)
    p = subprocess.Popen([vmemfs, mnt, "-f"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], check=False)
        return None, out.decode(errors="replace")


# ---- tiny: byte-granular ranges ---------------------------------------------

def tiny():
    # 300 one-byte ranges in page 0 (every other byte), then a page of RAM.
    ranges = [(2 * i, 2 * i + 1) for i in range(300)] + [(0x2000, 0x3000)]
    datas = mkdump.fill(ranges, 7)
    datas = [bytes([0x41 + i % 26]) if e - s == 1 else d
             for i, ((s, e), d) in enumerate(zip(ranges, datas))]
    mkdump.write_lime(gen("tiny.lime"), ranges, datas)
    mkdump.write_elf(gen("tiny.elf"), ranges, datas, 0x1000)
    size = ranges[-1][1]
    truth = bytearray(size)
    for (s, e), d in zip(ranges, datas):
        truth[s:e] = d
    with Mount(vmemfs, [("lime", "file:" + gen("tiny.lime")),
                        ("elf", "file:" + gen("tiny.elf"))]) as m:
        for vm in ("lime", "elf"):
            raw = m.path(vm, "pmem.raw")
            c.eq(os.stat(raw).st_size, size, "tiny %s: pmem.raw size" % vm)
            got, e = pread_all(raw, 0, size)
            c.ok(e == 0 and got == bytes(truth),
                 "tiny %s: pmem.raw read whole (%d bytes, errno %d) equals the "
                 "source" % (vm, len(got), e))
            with open(raw, "rb") as f:      # through the page cache, in pieces
                c.ok(f.read() == bytes(truth), "tiny %s: pmem.raw by read()" % vm)
            got, e = pread_all(m.path(vm, "pmem"), 0, size)
            c.ok(e == 0 and got == truth[:1],
                 "tiny %s: pmem stops at the first hole (got %r)" % (vm, got[:4]))
            got, e = pread_all(m.path(vm, "pmem"), 0x2000, PAGE)
            c.ok(got == truth[0x2000:0x3000], "tiny %s: pmem at 0x2000" % vm)
            c.ok(m.alive(), "tiny %s: the daemon lives" % vm)


# ---- many: millions of ranges, memory bounded ---------------------------------

def many_dumps():
    # kdump: 8 Mi pages, every other one RAM: 4 Mi ranges from 2 MiB of
    # bitmaps; no page dumped (a descriptor-free dump is legal).
    max_mapnr = 8 << 20
    bm1 = b"\x55" * (max_mapnr // 8)
    bm2 = bytes(max_mapnr // 8)
    mkdump.write_kdump_bitmaps(gen("many.kdump"), max_mapnr, bm1, bm2, [],
                               lambda g: b"", 0x1000)
    # LiME: 1 Mi ranges of one byte, one every 16 bytes.
    with open(gen("many.lime"), "wb") as f:
        hdr = struct.Struct("<IIQQ8s")
        f.write(b"".join(hdr.pack(0x4C694D45, 1, 16 * i, 16 * i, b"\0" * 8)
                         + bytes([i & 0xff]) for i in range(1 << 20)))
    return {"kd": 4 << 20, "lime": 1 << 20}


def memmap_lines(path):
    """Read memmap whole in 1 MiB reads: (bytes read, lines, first, last)."""
    n, lines, first, tail = 0, 0, b"", b""
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(MiB)
            if not b:
                break
            if not first:
                first = b[:b.index(b"\n") + 1]
            n += len(b)
            lines += b.count(b"\n")
            tail = (tail + b)[-200:]
    return n, lines, first, tail.splitlines()[-1] if tail else b""


def many():
    counts = many_dumps()
    with Mount(vmemfs, [("kd", "file:" + gen("many.kdump")),
                        ("lime", "file:" + gen("many.lime"))], timeout=120) as m:
        hwm0 = m.status("VmHWM")
        for vm, nr in counts.items():
            st = os.stat(m.path(vm, "memmap"))
            for _ in range(20):                   # every stat, and ls -l
                os.stat(m.path(vm, "memmap"))
                subprocess.run(["ls", "-l", m.path(vm)], stdout=subprocess.DEVNULL,
                               check=True)
            with open(m.path(vm, "info.json")) as f:
                info = json.load(f)
            c.eq(info.get("ranges_total"), nr, "many %s: info.json ranges_total" % vm)
            c.eq(info.get("ranges_summarised"), True,
                 "many %s: info.json says it summarised" % vm)
            c.ok(0 < len(info["ranges"]) <= 256,
                 "many %s: info.json lists %d ranges" % (vm, len(info["ranges"])))
            c.eq(info["bytes_present"], nr * (PAGE if vm == "kd" else 1),
                 "many %s: bytes_present" % vm)
            n, lines, first, last = memmap_lines(m.path(vm, "memmap"))
            c.eq(n, st.st_size, "many %s: memmap read == its st_size" % vm)
            c.eq(lines, nr, "many %s: memmap lines" % vm)
            top = (nr - 1) * (2 * PAGE if vm == "kd" else 16)
            c.eq(first, b"00000000-%08x : System RAM\n" % (PAGE - 1 if vm == "kd" else 0),
                 "many %s: memmap's first line" % vm)
            c.eq(last, b"%08x-%08x : System RAM" % (top, top + (PAGE - 1 if vm == "kd" else 0)),
                 "many %s: memmap's last line" % vm)
            # A read in the middle (the cursor goes back to the top).
            got, e = pread_all(m.path(vm, "memmap"), st.st_size // 2, 64)
            c.ok(e == 0 and len(got) == 64 and b"System RAM" in got + b" System RAM",
                 "many %s: memmap read in the middle" % vm)
        got, e = pread_all(m.path("lime", "pmem.raw"), 0, 16 * 4096)
        c.ok(e == 0 and all(got[16 * i] == i & 0xff for i in range(4096)),
             "many lime: pmem.raw bytes")
        hwm = m.status("VmHWM")
        print("many: VmHWM after mount %d MiB, after the reads %d MiB"
              % (hwm0 >> 10, hwm >> 10))
        # The ranges themselves (24 bytes each, 5 Mi of them, plus the
        # parsers' arrays) are the floor; what the reads add must be small.
        c.ok(hwm - hwm0 < 64 * 1024,
             "many: reading stat/info.json/memmap raised VmHWM by %d MiB "
             "(want < 64)" % ((hwm - hwm0) >> 10))
        c.ok(hwm < 768 * 1024, "many: VmHWM %d MiB (want < 768)" % (hwm >> 10))
    for f in ("many.kdump", "many.lime"):
        os.unlink(gen(f))


# ---- edges: refused at the door -----------------------------------------------

def edges():
    # A range ending above 2^62, in LiME and in ELF.
    hi = 1 << 62
    mkdump.write_lime(gen("high.lime"), [(0, PAGE), (hi - PAGE, hi + PAGE)],
                      [bytes(PAGE), bytes(2 * PAGE)])
    mkdump.write_elf(gen("high.elf"), [(0, PAGE), ((1 << 63) - PAGE, 1 << 63)],
                     [bytes(PAGE), bytes(PAGE)], 0x1000)
    for f in ("high.lime", "high.elf"):
        rc, out = start_fails(["--vm", "x=file:" + gen(f)])
        c.ok(rc not in (None, 0) and "2^62" in out and "0x" in out,
             "edges %s: refused at open with a reason (rc %r): %s" % (f, rc, out.strip()))
    # FIFOs: as a dump, as --profile, in --symbols.  None may block.
    fifo = gen("fifo")
    os.mkfifo(fifo)
    rc, out = start_fails(["--vm", "x=file:" + fifo])
    c.ok(rc not in (None, 0) and "not a regular file" in out,
         "edges: a FIFO as a dump is refused at once (rc %r): %s" % (rc, out.strip()))
    mkdump.write_lime(gen("small.lime"), [(0, 16 * PAGE)], [linux_page(16 * PAGE)])
    for opt, arg in (("--profile", fifo), ("--symbols", fifo_dir())):
        mnt = tempfile.mkdtemp(prefix="vmemfs-mnt-", dir=work)
        t0 = time.time()
        try:
            with Mount(vmemfs, [("x", "file:" + gen("small.lime"))], [opt, arg],
                       mountpoint=mnt, timeout=30) as m:
                c.ok(not os.path.exists(m.path("x", "proc")),
                     "edges: %s FIFO: mounted without proc/" % opt)
                time.sleep(0.2)
                out = m.output()
        except RuntimeError as e:         # refusing to start is fine too
            out = str(e)
        # --profile names the FIFO: refused; in --symbols it is no candidate.
        c.ok(("not a regular file" if opt == "--profile" else "(0 files)") in out,
             "edges: %s with a FIFO says why: %s" % (opt, out.strip()[-300:]))
        c.ok(time.time() - t0 < 30, "edges: %s with a FIFO did not block" % opt)


def linux_page(n):
    """n bytes of memory holding a Linux banner (and no kernel)."""
    b = bytearray(n)
    banner = b"Linux version 6.1.0-hardening (x@y) (gcc 12) #1 SMP\n\0"
    b[0x3100:0x3100 + len(banner)] = banner
    return bytes(b)


def fifo_dir():
    d = gen("fifo-symbols")
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(os.path.join(d, "k.json")):
        os.mkfifo(os.path.join(d, "k.json"))
    return d


# ---- control ---------------------------------------------------------------------

def control():
    mkdump.write_lime(gen("ctl.lime"), [(0, PAGE)], [bytes(PAGE)])
    with Mount(vmemfs, [("x", "file:" + gen("ctl.lime"))]) as m:
        ctl = m.path("x", "control")

        def write(data):
            fd = os.open(ctl, os.O_WRONLY)
            try:
                os.write(fd, data)
                return 0
            except OSError as e:
                return e.errno
            finally:
                os.close(fd)
        c.eq(write(b"flush\n"), 0, "control: flush\\n")
        c.eq(write(b"flush"), 0, "control: flush")
        c.eq(write(b"flush\0junk"), errno.EINVAL, "control: flush NUL junk")
        c.eq(write(b"flush \n"), errno.EINVAL, "control: flush, space")
        c.eq(write(b"flush\nflush\n"), errno.EINVAL, "control: two lines")
        c.eq(write(b"\x1b[31mred\x07"), errno.EINVAL, "control: escapes")
        time.sleep(0.2)
        log = m.output()
        c.ok("flush\\x00junk" in log, "control: the log shows the NUL escaped")
        c.ok("\x1b" not in log and "\x07" not in log and "\0" not in log,
             "control: no raw control bytes in the log")


# ---- nokernel: a big image without a kernel, bounded scan ---------------------------

def isf_doc(release):
    banner = b"Linux version %s (x@y) (gcc 12) #1 SMP\n\0" % release
    return json.dumps({
        "metadata": {"format": "6.2.0"}, "base_types": {}, "user_types": {},
        "enums": {}, "symbols": {"linux_banner": {
            "address": 0xffffffff82000100,
            "constant_data": base64.b64encode(banner).decode()}}}).encode()


def fincore_pages(path):
    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", path],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def nokernel():
    if not shutil.which("fincore"):
        print("nokernel: no fincore (util-linux): skipped")
        return
    img = gen("empty.raw")
    with open(img, "wb") as f:
        f.truncate(6 << 30)                 # sparse: no kernel anywhere
    sym = gen("symbols")
    os.makedirs(sym, exist_ok=True)
    with open(os.path.join(sym, "k.json"), "wb") as f:
        f.write(isf_doc(b"6.1.0-nokernel"))
    try:
        with Mount(vmemfs, [("win", "file:" + img)], ["--symbols", sym],
                   timeout=600) as m:
            c.ok(os.path.exists(m.path("win", "pmem.raw")), "nokernel: mounted")
            c.ok(not os.path.exists(m.path("win", "proc")), "nokernel: no proc/")
            cached = fincore_pages(img)
            print("nokernel: %d MiB of the 6 GiB image read" % (cached >> 20))
            c.ok(cached <= (4 << 30) + 16 * MiB,
                 "nokernel: at most the 4 GiB scan bound read (%d MiB)" % (cached >> 20))
            c.ok("first 4 GiB" in m.output(), "nokernel: the log says where it looked")
    finally:
        os.unlink(img)


# ---- bomb: a compressed ISF that expands to 1 GiB ------------------------------------

def bomb():
    sym = gen("bomb-symbols")
    os.makedirs(sym, exist_ok=True)
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(os.path.join(sym, "bomb.json.gz"), "wb") as f:
        f.write(z.compress(b'{"metadata": {"format": "6.2.0"}, "pad": "'))
        block = b"A" * MiB
        for _ in range(1000):
            f.write(z.compress(block))
        f.write(z.compress(b'"}'))
        f.write(z.flush())
    # A real banner after the bomb (sorted after it), so both are read.
    with open(os.path.join(sym, "z.json"), "wb") as f:
        f.write(isf_doc(b"6.1.0-other"))
    mkdump.write_lime(gen("bomb.lime"), [(0, 16 * PAGE)], [linux_page(16 * PAGE)])
    with Mount(vmemfs, [("x", "file:" + gen("bomb.lime"))], ["--symbols", sym],
               timeout=300) as m:
        time.sleep(0.2)
        hwm = m.status("VmHWM")
        out = m.output()
        print("bomb: VmHWM %d MiB" % (hwm >> 10))
        c.ok(hwm < 256 * 1024, "bomb: VmHWM %d MiB (want < 256)" % (hwm >> 10))
        c.ok("6.1.0-hardening" in out, "bomb: the banner was looked up: %s"
             % out.strip()[-300:])


try:
    for part in (tiny, many, edges, control, nokernel, bomb):
        if want(part.__name__):
            t0 = time.time()
            part()
            print("%s: %.1f s" % (part.__name__, time.time() - t0), flush=True)
finally:
    shutil.rmtree(work, ignore_errors=True)
c.finish()
