#!/usr/bin/env python3
"""formats.py VMEMFS - integration test of the file driver in every format.

Makes one guest-physical layout (holes, an unaligned range, RAM above 4 GiB)
as padded raw, ELF core, LiME and kdump-compressed dumps (mkdump.py), mounts
them all in one vmemfs, and checks: the tree, sizes, pmem.raw byte for byte,
the strict view's short read and EIO at holes, SEEK_DATA/SEEK_HOLE, memmap,
info.json; then bad input (refused before mounting, one clear line) and a
dump truncated while mounted (EIO for that read, the daemon keeps serving).
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount, pread_all  # noqa: E402

PAGE = 4096
vmemfs = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="vmemfs-formats-")
c = Checks("formats")


def gen(path):
    return os.path.join(work, path)


subprocess.run([sys.executable, os.path.join(here, "mkdump.py"), work, "--high"],
               check=True)
lay = json.load(open(gen("layout.json")))
ranges = [tuple(r) for r in lay["ranges"]]
size = ranges[-1][1]
excluded = lay["kdump_excluded_gfn"] * PAGE
vms = [("raw", "file:" + gen("padded.raw")), ("elf", "file:" + gen("dump.elf")),
       ("lime", "file:" + gen("dump.lime")), ("kd", "file:" + gen("dump.kdump"))]


def truth_read(off, n, vm):
    with open(gen("padded.raw"), "rb") as f:
        f.seek(off)
        data = bytearray(f.read(n))
    if vm == "kd" and off < excluded + PAGE and off + n > excluded:
        a, b = max(off, excluded), min(off + n, excluded + PAGE)
        data[a - off:b - off] = bytes(b - a)
    return bytes(data)


def check_whole(m, vm):
    """pmem.raw == truth, range by range and holes zero; chunked."""
    chunk = 1 << 20
    path = m.path(vm, "pmem.raw")
    with open(path, "rb") as f:
        off = 0
        while off < size:
            n = min(chunk, size - off)
            got = f.read(n)
            if got != truth_read(off, n, vm):
                c.ok(False, "%s pmem.raw differs in [0x%x, 0x%x)" % (vm, off, off + n))
                return
            off += n
        c.eq(f.read(1), b"", "%s pmem.raw EOF at size" % vm)
    c.ok(True, vm + " pmem.raw byte for byte")


def seek(path, off, whence):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return -e.errno
    finally:
        os.close(fd)


with Mount(vmemfs, vms) as m:
    c.eq(sorted(os.listdir(m.dir)), ["elf", "kd", "lime", "raw"], "mount lists VMs")
    c.eq(sorted(os.listdir(m.path("elf"))),
         ["control", "info.json", "memmap", "pmem", "pmem.raw"], "VM directory")
    # Root-only unless allow_other.
    c.eq(oct(os.stat(m.path("elf", "pmem.raw")).st_mode & 0o777), "0o400", "pmem.raw mode 0400")
    c.eq(oct(os.stat(m.dir).st_mode & 0o777), "0o500", "mount root mode 0500")
    for vm, _ in vms:
        for f in ("pmem", "pmem.raw"):
            c.eq(os.stat(m.path(vm, f)).st_size, size, "%s/%s st_size" % (vm, f))
        check_whole(m, vm)

    expect_memmap = "".join("%08x-%08x : System RAM\n" % (s, e - 1) for s, e in ranges)
    for vm in ("elf", "lime", "kd"):
        c.eq(open(m.path(vm, "memmap")).read(), expect_memmap, vm + " memmap")
        p = m.path(vm, "pmem")
        # Strict view: a read running into the hole at 0xa0000 stops there ...
        data, err = pread_all(p, 0x9F000, 0x2000)
        c.eq((len(data), err), (0x1000, 0), vm + " pmem short read up to hole")
        c.ok(data == truth_read(0x9F000, 0x1000, vm), vm + " pmem data before hole")
        # ... and a read starting in it fails, page aligned or not.
        c.eq(pread_all(p, 0xA0000, 4096)[1], errno.EIO, vm + " pmem EIO in hole")
        c.eq(pread_all(p, 0xA0800, 16)[1], errno.EIO, vm + " pmem EIO mid-hole")
        c.eq(pread_all(p, 0xFFFFF000, 4096)[1], errno.EIO, vm + " pmem EIO below 4 GiB")
        data, err = pread_all(p, 0x100000000, 8192)
        c.ok(err == 0 and data == truth_read(0x100000000, 8192, vm), vm + " pmem above 4 GiB")
        # Padded view: zeros in the hole.
        data, err = pread_all(m.path(vm, "pmem.raw"), 0xA0000, 0x60000)
        c.ok(err == 0 and data == bytes(0x60000), vm + " pmem.raw zeros in hole")
        # SEEK_DATA / SEEK_HOLE report the ranges on both views.
        for f in ("pmem", "pmem.raw"):
            q = m.path(vm, f)
            for off, whence, want in [
                    (0, os.SEEK_DATA, 0), (0, os.SEEK_HOLE, 0xA0000),
                    (0xA0000, os.SEEK_DATA, 0x100000), (0xA0000, os.SEEK_HOLE, 0xA0000),
                    (0x123456, os.SEEK_DATA, 0x123456), (0x123456, os.SEEK_HOLE, 0x900000),
                    (0xB00000, os.SEEK_DATA, 0x100000000),
                    (0x100000000, os.SEEK_HOLE, size), (size - 1, os.SEEK_DATA, size - 1),
                    (size, os.SEEK_DATA, -errno.ENXIO)]:
                c.eq(seek(q, off, whence), want,
                     "%s/%s lseek(0x%x, %s)" % (vm, f, off,
                                                "DATA" if whence == os.SEEK_DATA else "HOLE"))
    # kdump: the page the dump left out is a hole in pmem, zeros in pmem.raw.
    c.eq(pread_all(m.path("kd", "pmem"), excluded - PAGE, 2 * PAGE)[0],
         truth_read(excluded - PAGE, PAGE, "kd"), "kd pmem short read before excluded page")
    c.eq(pread_all(m.path("kd", "pmem"), excluded, PAGE)[1], errno.EIO,
         "kd pmem EIO at excluded page")

    for vm, fmt in (("raw", "raw"), ("elf", "elf"), ("lime", "lime"), ("kd", "kdump")):
        info = json.load(open(m.path(vm, "info.json")))
        c.eq(info["source"]["format"], fmt, vm + " info.json format")
        c.eq(info["phys_size"], size, vm + " info.json phys_size")
        c.eq(info["name"], vm, vm + " info.json name")
    for vm in ("elf", "kd"):
        info = json.load(open(m.path(vm, "info.json")))
        c.eq(info["vcpus"][0]["cr3"], hex(lay["cr3"]), vm + " info.json vCPU CR3 from QEMU note")
        c.eq([(int(r["start"], 16), int(r["end"], 16)) for r in info["ranges"]], ranges,
             vm + " info.json ranges")
    info = json.load(open(m.path("kd", "info.json")))
    c.ok(info["cache"] is not None and info["cache"]["misses"] > 0, "kd info.json cache figures")
    c.ok(m.alive(), "daemon alive after all reads")
    # Read-only by default; the tree is vmemfs's own.
    for f, want in (("pmem", errno.EROFS), ("pmem.raw", errno.EROFS),
                    ("info.json", errno.EACCES), ("memmap", errno.EACCES)):
        try:
            os.close(os.open(m.path("elf", f), os.O_WRONLY))
            c.ok(False, "open %s for writing refused" % f)
        except OSError as e:
            c.eq(e.errno, want, "open %s for writing refused" % f)
    for what, fn in (("create", lambda: open(m.path("elf", "new"), "w")),
                     ("mkdir", lambda: os.mkdir(m.path("elf", "d"))),
                     ("unlink", lambda: os.unlink(m.path("elf", "pmem"))),
                     ("rename", lambda: os.rename(m.path("elf", "pmem"), m.path("elf", "x")))):
        try:
            fn()
            c.ok(False, what + " refused")
        except OSError as e:
            c.eq(e.errno, errno.EPERM, what + " refused with EPERM")
    # control: flush works on any source; pause needs a live one.
    with open(m.path("kd", "control"), "w") as f:
        f.write("flush\n")
    c.ok(True, "control: flush accepted")
    for cmd, want in (("pause\n", errno.EOPNOTSUPP), ("bogus\n", errno.EINVAL)):
        try:
            with open(m.path("kd", "control"), "w") as f:
                f.write(cmd)
            c.ok(False, "control: %r refused" % cmd)
        except OSError as e:
            c.eq(e.errno, want, "control: %r refused" % cmd.strip())
    c.ok("pause" in open(m.path("kd", "control")).read(), "control lists its commands")
    info = json.load(open(m.path("raw", "info.json")))
    c.ok(info["guest"]["os"] is None and info["guest"]["why_no_proc"],
         "info.json says why there is no proc/: %r" % info["guest"].get("why_no_proc"))
    c.ok(not os.path.exists(m.path("raw", "proc")), "no proc/ without a recognised OS")

# ---- the BIOS ROM QEMU's ELF and kdump dumps carry, touching RAM at 4 GiB ----
# It is not RAM (the guest's /proc/iomem calls it Reserved) and it is not one
# range with the RAM above it: memmap and info.json keep both apart.
romdir = gen("rom")
subprocess.run([sys.executable, os.path.join(here, "mkdump.py"), romdir, "--high", "--rom"],
               check=True)
rlay = json.load(open(os.path.join(romdir, "layout.json")))
rom = tuple(rlay["rom"])
rranges = [tuple(r) for r in rlay["ranges"]]
c.ok(rom in rranges and (rom[1], 0x100400000) in rranges, "ROM layout touches RAM at 4 GiB")
with Mount(vmemfs, [("elf", "file:" + os.path.join(romdir, "dump.elf")),
                    ("kd", "file:" + os.path.join(romdir, "dump.kdump"))]) as m:
    want_memmap = "".join("%08x-%08x : %s\n" % (s, e - 1, "Reserved" if (s, e) == rom
                                                  else "System RAM") for s, e in rranges)
    for vm in ("elf", "kd"):
        c.eq(open(m.path(vm, "memmap")).read(), want_memmap, vm + " memmap with the BIOS ROM")
        info = json.load(open(m.path(vm, "info.json")))
        c.eq([(int(r["start"], 16), int(r["end"], 16), r["kind"]) for r in info["ranges"]],
             [(s, e, "rom" if (s, e) == rom else "ram") for s, e in rranges],
             vm + " info.json ranges and kinds with the BIOS ROM")
        data, err = pread_all(m.path(vm, "pmem"), rom[0], 4096)
        with open(os.path.join(romdir, "padded.raw"), "rb") as f:
            f.seek(rom[0])
            c.ok(err == 0 and data == f.read(4096), vm + " the ROM's bytes read back")
    c.ok(m.alive(), "daemon alive after the ROM checks")

# ---- bad input: refused before mounting, one clear line naming the file ----
with open(gen("dump.elf"), "rb") as f:
    elf = f.read()
bad = {
    "missing.elf": None,
    "empty.raw": b"",
    "truncated.elf": elf[:len(elf) // 2],
    "badphoff.elf": elf[:32] + (1 << 40).to_bytes(8, "little") + elf[40:],
    "notcore.elf": elf[:16] + (2).to_bytes(2, "little") + elf[18:],
    "truncated.lime": open(gen("dump.lime"), "rb").read()[:100000],
    "truncated.kdump": open(gen("dump.kdump"), "rb").read()[:5000],
    "odd-size.bin": b"this is not a memory dump\n",
    "gzip.gz": b"\x1f\x8b\x08\x00" + bytes(8188),
}
for name, content in bad.items():
    path = gen(name)
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    mnt = tempfile.mkdtemp(prefix="vmemfs-bad-")
    r = subprocess.run([vmemfs, mnt, "-f", "--vm", "x=file:" + path],
                       capture_output=True, text=True, timeout=30)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    c.ok(r.returncode != 0, "%s: non-zero exit (got %d)" % (name, r.returncode))
    c.ok(len(lines) == 1 and path in lines[0],
         "%s: one line naming the file (got %r)" % (name, r.stderr))
    c.ok(not os.path.ismount(mnt), name + ": nothing mounted")
    print("  %-16s -> %s" % (name, lines[0] if lines else "(nothing)"))
    os.rmdir(mnt)

# ---- a dump that shrinks or is deleted while mounted ----
for fmt, src in (("elf", "dump.elf"), ("kdump", "dump.kdump")):
    victim = gen("victim." + fmt)
    shutil.copyfile(gen(src), victim)
    with Mount(vmemfs, [("v", "file:" + victim), ("ok", "file:" + gen("dump.elf"))]) as m:
        before, err = pread_all(m.path("v", "pmem.raw"), 0x100000, 4096)
        c.ok(err == 0 and before == truth_read(0x100000, 4096, "elf"), fmt + " read before truncation")
        os.truncate(victim, 64 * 1024)
        for f in ("pmem", "pmem.raw"):
            # Frames read before the truncation (the kernel search at mount
            # reads page tables) may still be served from the cache: then
            # the read stops short where the lost part starts, and a read
            # from there fails.
            data, err = pread_all(m.path("v", f), 0x400000, 65536)
            if err == 0 and len(data) < 65536:
                _, err = pread_all(m.path("v", f), 0x400000 + len(data), 65536 - len(data))
            c.eq(err, errno.EIO, "%s truncated while mounted: %s read gives EIO" % (fmt, f))
        c.ok(m.alive(), fmt + " daemon alive after truncation")
        data, err = pread_all(m.path("ok", "pmem.raw"), 0x400000, 65536)
        c.ok(err == 0 and data == truth_read(0x400000, 65536, "elf"), fmt + " other VM unaffected")
        os.unlink(victim)
        c.ok(os.path.exists(m.path("v", "info.json")), fmt + " deleted dump: VM still listed")
        c.ok(m.alive(), fmt + " daemon alive after deletion")

# allow_other: others may read (0444), still nothing writable.
with Mount(vmemfs, [("elf", "file:" + gen("dump.elf"))], extra=["-o", "allow_other"]) as m:
    c.eq(oct(os.stat(m.path("elf", "pmem.raw")).st_mode & 0o777), "0o444",
         "allow_other: pmem.raw mode 0444")

shutil.rmtree(work)
c.finish()
