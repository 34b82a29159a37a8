#!/usr/bin/env python3
"""Boot the vmemfs test guest under QEMU (TCG) and capture its memory.

Builds the guest with mkguest.sh (cached), boots it, waits for VMEMFS-READY
on the serial console, writes the guest's own truth to OUT/truth.txt, stops
the guest and writes, as asked by --formats:

  OUT/guest.elf    QMP dump-guest-memory, format elf, paging=false
  OUT/guest.kdump  QMP dump-guest-memory, format kdump-zlib, as a normal
                   (seekable) diskdump file, "KDUMP   " signature
  OUT/guest.kdump.flat  what QEMU 7.2 actually writes for kdump-*: the
                   makedumpfile "flattened" stream (signature "makedumpfile";
                   QEMU < 8.2 has no kdump-raw-* formats); guest.kdump is
                   made from it here, as `makedumpfile -R` would
  OUT/guest.raw    padded raw image: every guest RAM range pmemsave'd and
                   placed at its guest-physical offset (sparse, zero holes)

and always:

  OUT/ranges.txt   guest RAM ranges, "start-end" in hex, end exclusive
  OUT/roms.txt     ROM-type ranges of the system address space (same format,
                   then the region name)
  OUT/mtree.txt    HMP "info mtree -f" at capture time
  OUT/serial.log   the guest console, OUT/qemu.log QEMU's own output
  OUT/meta.json    command line, versions, timings, sizes

Guest RAM ranges come from the flat view of the system address space
("info mtree -f", the FlatView whose AS list holds "memory"): every flat
range whose memory region is the machine's RAM block (its name is the id of
the machine's memory backend, /machine's "memory-backend" property, i.e.
"pc.ram"), whether QEMU shows it as "ram" or "rom" (the PAM shadow areas
below 1 MiB are RAM mapped read-only), merged when guest-physical adjacent.
The ram-below-4g / ram-above-4g aliases resolve to pc.ram there, so the
ranges are exactly the RAM the guest sees, split around the PCI hole.
ROMs (pc.bios etc.) are not RAM and are not in guest.raw.

--arch i386 boots the 32-bit guest instead (mkguest.sh --arch i386: Debian's
686-pae kernel, i386 busybox, pattern -m32) under qemu-system-i386 with
-cpu qemu32,+nx (PAE); everything else is the same.

Only the Python standard library is used. QEMU runs with TCG only.
"""

import argparse
import json
import os
import re
import shutil
import struct
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ALL_FORMATS = ("elf", "kdump-zlib", "raw")
# A 32-bit guest's CPU: QEMU's 32-bit model has PAE (Debian's 686-pae
# kernel needs it); NX on top, so its page tables carry the XD bit.
I386_CPU = "qemu32,+nx"
OUTNAME = {"elf": "guest.elf", "kdump-zlib": "guest.kdump", "raw": "guest.raw"}


class Fail(Exception):
    pass


def log(msg):
    print("capture: " + msg, file=sys.stderr, flush=True)


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMGT]?)i?B?", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad size: %r" % s)
    mult = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30,
            "T": 1 << 40}[m.group(2).upper()]
    n = int(m.group(1)) * mult
    if n % (1 << 20):
        raise argparse.ArgumentTypeError("size must be a whole MiB: %r" % s)
    return n


class QMP:
    """Minimal synchronous QMP client over a unix socket."""

    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Fail("cannot connect to QMP socket %s" % path)
                time.sleep(0.1)
        self.f = self.sock.makefile("rw", encoding="utf-8", newline="\n")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise Fail("unexpected QMP greeting: %r" % greeting)
        self.version = greeting["QMP"]["version"]
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise Fail("QMP connection closed (QEMU exited?)")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise Fail("QMP %s: %s" % (name, r["error"].get("desc", r)))
            return r.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


FLAT_RE = re.compile(
    r"^\s+([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ([a-z/]+)\): (\S+)(.*)$")


def system_flatview(mtree):
    """Flat ranges (start, end_exclusive, type, name) of AS "memory"."""
    views = re.split(r"\n(?=FlatView #)", mtree)
    for v in views:
        if re.search(r'^ AS "memory",', v, re.M):
            out = []
            for line in v.splitlines():
                m = FLAT_RE.match(line)
                if m:
                    out.append((int(m.group(1), 16), int(m.group(2), 16) + 1,
                                m.group(3), m.group(4)))
            return out
    raise Fail('no FlatView for AS "memory" in info mtree -f')


def merge(ranges):
    out = []
    for s, e in sorted(ranges):
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


def wait_dump(qmp, path, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = qmp.cmd("query-dump")
        if st["status"] == "completed":
            return
        if st["status"] == "failed":
            raise Fail("dump to %s failed" % path)
        if time.monotonic() > deadline:
            raise Fail("dump to %s: timed out (%s)" % (path, st))
        time.sleep(0.1)


def dump(qmp, fmt, path, timeout):
    if os.path.exists(path):
        os.unlink(path)
    qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + path,
            detach=True, format=fmt)
    wait_dump(qmp, path, timeout)


def unflatten(src, dst):
    """makedumpfile flattened format -> plain file (makedumpfile -R).

    A 4096-byte header (signature "makedumpfile", big-endian type 1,
    version 1), then records: big-endian int64 offset, int64 size, data;
    the stream ends with a record whose offset and size are both -1.
    """
    with open(src, "rb") as f, open(dst + ".tmp", "wb") as out:
        hdr = f.read(4096)
        if not hdr.startswith(b"makedumpfile\0"):
            raise Fail("%s: not a makedumpfile flattened file" % src)
        typ, ver = struct.unpack_from(">qq", hdr, 16)
        if typ != 1 or ver != 1:
            raise Fail("%s: flattened type %d version %d" % (src, typ, ver))
        while True:
            rec = f.read(16)
            if len(rec) != 16:
                raise Fail("%s: truncated (no end record)" % src)
            off, size = struct.unpack(">qq", rec)
            if off == -1 and size == -1:
                break
            if off < 0 or size < 0:
                raise Fail("%s: bad record %d/%d" % (src, off, size))
            data = f.read(size)
            if len(data) != size:
                raise Fail("%s: truncated record" % src)
            out.seek(off)
            out.write(data)
    os.replace(dst + ".tmp", dst)


def is_zero(b, _z={}):
    z = _z.get(len(b))
    if z is None:
        z = _z[len(b)] = bytes(len(b))
    return b == z


def raw_image(qmp, ranges, path, tmpdir):
    """pmemsave each range; write it at its offset, holes left sparse."""
    chunk = 1 << 20
    size = max(e for _, e in ranges)
    tmp = os.path.join(tmpdir, "pmemsave.tmp")
    with open(path + ".tmp", "wb") as out:
        out.truncate(size)
        for s, e in ranges:
            if os.path.exists(tmp):
                os.unlink(tmp)
            qmp.cmd("pmemsave", val=s, size=e - s, filename=tmp)
            if os.path.getsize(tmp) != e - s:
                raise Fail("pmemsave %#x-%#x wrote %d bytes" %
                           (s, e, os.path.getsize(tmp)))
            with open(tmp, "rb") as f:
                off = s
                while True:
                    b = f.read(chunk)
                    if not b:
                        break
                    if not is_zero(b):
                        out.seek(off)
                        out.write(b)
                    off += len(b)
            os.unlink(tmp)
    os.replace(path + ".tmp", path)


def find_qemu(name):
    p = shutil.which(name)
    if not p:
        raise Fail("%s not found (run contrib/install-deps.sh)" % name)
    return p


def main():
    ap = argparse.ArgumentParser(
        description="Boot the vmemfs test guest under QEMU TCG and dump it.")
    ap.add_argument("--mem", default="256M", type=parse_size,
                    help="guest RAM (default 256M; e.g. 4608M puts RAM "
                    "above 4 GiB)")
    ap.add_argument("--arch", default="x86_64", choices=("x86_64", "i386"),
                    help="guest architecture (default x86_64: Debian's "
                    "cloud kernel; i386: its 686-pae kernel, PAE paging, "
                    "under qemu-system-i386)")
    ap.add_argument("--cpu",
                    help="QEMU -cpu (default qemu64: 4-level paging; "
                    "max gives LA57, 5-level paging; with --arch i386 "
                    "the default is %s)" % I386_CPU)
    ap.add_argument("--machine", default="q35", choices=("q35", "pc"),
                    help="QEMU machine (default q35)")
    ap.add_argument("--out", default="guest-capture",
                    help="output directory (default ./guest-capture)")
    ap.add_argument("--formats", default=",".join(ALL_FORMATS),
                    help="comma list of elf,kdump-zlib,raw (default all; "
                    "'' for none)")
    ap.add_argument("--keep-running", action="store_true",
                    help="leave QEMU running (guest resumed) after capture; "
                    "print its pid and QMP socket")
    ap.add_argument("--timeout", default=300, type=float,
                    help="seconds to wait for VMEMFS-READY (default 300)")
    ap.add_argument("--dump-timeout", default=1800, type=float,
                    help="seconds allowed per dump (default 1800)")
    ap.add_argument("--vmcoreinfo", action="store_true",
                    help="add -device vmcoreinfo (dumps then carry the "
                    "guest's VMCOREINFO note)")
    ap.add_argument("--append", default="",
                    help="extra kernel command line arguments")
    ap.add_argument("--guest-dir",
                    help="use this prebuilt guest dir instead of running "
                    "mkguest.sh")
    ap.add_argument("--qemu",
                    help="QEMU binary (default qemu-system-x86_64, "
                    "qemu-system-i386 with --arch i386)")
    a = ap.parse_args()

    formats = [f for f in a.formats.split(",") if f]
    for f in formats:
        if f not in ALL_FORMATS:
            ap.error("unknown format %r" % f)

    if a.cpu is None:
        a.cpu = I386_CPU if a.arch == "i386" else "qemu64"
    if a.qemu is None:
        a.qemu = ("qemu-system-i386" if a.arch == "i386"
                  else "qemu-system-x86_64")
    qemu_bin = find_qemu(a.qemu)
    if a.guest_dir:
        gdir = os.path.abspath(a.guest_dir)
    else:
        mk = ["sh", os.path.join(HERE, "mkguest.sh")]
        if a.arch != "x86_64":
            mk += ["--arch", a.arch]
        r = subprocess.run(mk, stdout=subprocess.PIPE, text=True)
        if r.returncode:
            raise Fail("mkguest.sh failed (status %d)" % r.returncode)
        gdir = r.stdout.strip().splitlines()[-1]
    kernel = os.path.join(gdir, "vmlinuz")
    initrd = os.path.join(gdir, "initramfs.gz")
    for p in (kernel, initrd):
        if not os.path.isfile(p):
            raise Fail("missing %s" % p)

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    for n in ("truth.txt", "ranges.txt", "roms.txt", "mtree.txt",
              "meta.json", "serial.log", "qemu.log", "guest.kdump.flat",
              *OUTNAME.values()):
        p = os.path.join(out, n)
        if os.path.exists(p):
            os.unlink(p)
    serial = os.path.join(out, "serial.log")
    # sun_path holds 108 bytes: keep the socket in OUT if it fits.
    sockdir = out if len(out) < 90 else tempfile.mkdtemp(prefix="vmemfs-qmp.")
    sock = os.path.join(sockdir, "qmp.sock")
    if os.path.exists(sock):
        os.unlink(sock)

    append = "console=ttyS0 panic=-1"
    if a.append:
        append += " " + a.append
    mem_mib = a.mem >> 20
    argv = [qemu_bin, "-machine", a.machine, "-accel", "tcg",
            "-cpu", a.cpu, "-m", "%dM" % mem_mib, "-smp", "1",
            "-nographic", "-nodefaults", "-vga", "none", "-no-reboot",
            "-serial", "file:" + serial,
            "-qmp", "unix:%s,server=on,wait=off" % sock,
            "-kernel", kernel, "-initrd", initrd, "-append", append]
    if a.vmcoreinfo:
        argv += ["-device", "vmcoreinfo"]
    meta = {"argv": argv, "mem": a.mem, "cpu": a.cpu, "machine": a.machine,
            "formats": formats}
    if a.arch != "x86_64":
        meta["arch"] = a.arch
    for n in ("kernel-version", "kernel-package"):
        try:
            with open(os.path.join(gdir, n)) as f:
                meta[n.replace("-", "_")] = f.read().strip()
        except OSError:
            pass

    log("starting: " + " ".join(argv))
    t0 = time.monotonic()
    qlog = open(os.path.join(out, "qemu.log"), "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                            stderr=subprocess.STDOUT, start_new_session=True)
    qmp = None
    keep = False
    try:
        qmp = QMP(sock, 30)
        meta["qemu_version"] = qmp.version

        # Wait for the guest to say it is ready.
        deadline = t0 + a.timeout
        text = ""
        while True:
            try:
                with open(serial, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                text = ""
            if re.search(r"^VMEMFS-READY\r?$", text, re.M):
                break
            if proc.poll() is not None:
                raise Fail("QEMU exited (status %s) before VMEMFS-READY.\n"
                           "--- serial.log tail ---\n%s\n--- qemu.log ---\n%s"
                           % (proc.returncode, tail(serial),
                              tail(os.path.join(out, "qemu.log"))))
            if time.monotonic() > deadline:
                raise Fail("no VMEMFS-READY within %g s.\n"
                           "--- serial.log tail ---\n%s"
                           % (a.timeout, tail(serial)))
            time.sleep(0.2)
        meta["boot_seconds"] = round(time.monotonic() - t0, 2)
        log("guest ready after %.1f s" % meta["boot_seconds"])

        lines = [l.rstrip("\r") for l in text.split("\n")]
        try:
            b = lines.index("VMEMFS-TRUTH-BEGIN")
            e = lines.index("VMEMFS-TRUTH-END", b)
        except ValueError:
            raise Fail("truth markers missing in serial.log")
        with open(os.path.join(out, "truth.txt"), "w") as f:
            f.write("\n".join(lines[b + 1:e]) + "\n")

        qmp.cmd("stop")
        if qmp.cmd("query-status")["running"]:
            raise Fail("guest did not stop")

        mtree = qmp.hmp("info mtree -f")
        with open(os.path.join(out, "mtree.txt"), "w") as f:
            f.write(mtree)
        backend = qmp.cmd("qom-get", path="/machine",
                          property="memory-backend")
        ram_name = os.path.basename(backend) if backend else "pc.ram"
        flat = system_flatview(mtree)
        ranges = merge([(s, e) for s, e, _, n in flat if n == ram_name])
        if not ranges:
            raise Fail("no %s ranges in the system flat view" % ram_name)
        total = sum(e - s for s, e in ranges)
        if total != a.mem:
            raise Fail("RAM ranges cover %#x bytes, expected %#x"
                       % (total, a.mem))
        with open(os.path.join(out, "ranges.txt"), "w") as f:
            for s, e in ranges:
                f.write("%x-%x\n" % (s, e))
        roms = [(s, e, n) for s, e, t, n in flat
                if t in ("rom", "romd") and n != ram_name]
        with open(os.path.join(out, "roms.txt"), "w") as f:
            for s, e, n in roms:
                f.write("%x-%x %s\n" % (s, e, n))
        meta["ranges"] = ["%x-%x" % r for r in ranges]
        meta["roms"] = ["%x-%x %s" % r for r in roms]

        meta["seconds"] = {}
        meta["bytes"] = {}
        for fmt in formats:
            path = os.path.join(out, OUTNAME[fmt])
            t = time.monotonic()
            if fmt == "raw":
                raw_image(qmp, ranges, path, out)
            elif fmt.startswith("kdump"):
                dump(qmp, fmt, path + ".flat", a.dump_timeout)
                os.chmod(path + ".flat", 0o644)
                unflatten(path + ".flat", path)
            else:
                dump(qmp, fmt, path, a.dump_timeout)
            dt = round(time.monotonic() - t, 2)
            os.chmod(path, 0o644)  # QEMU creates dumps 0400
            st = os.stat(path)
            meta["seconds"][fmt] = dt
            meta["bytes"][fmt] = {"size": st.st_size,
                                  "allocated": st.st_blocks * 512}
            log("%s: %.1f s, %d bytes (%d allocated)"
                % (OUTNAME[fmt], dt, st.st_size, st.st_blocks * 512))

        if a.keep_running:
            qmp.cmd("cont")
            meta["pid"] = proc.pid
            meta["qmp"] = sock
            keep = True
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        if keep:
            print("QEMU_PID=%d" % proc.pid)
            print("QMP_SOCKET=%s" % sock)
        print("OUT=%s" % out)
        return 0
    finally:
        if not keep:
            if qmp is not None and proc.poll() is None:
                try:
                    qmp.cmd("quit")
                except (Fail, OSError):
                    pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            if os.path.exists(sock):
                os.unlink(sock)
            if sockdir != out:
                shutil.rmtree(sockdir, ignore_errors=True)
        if qmp is not None:
            qmp.close()
        qlog.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("error: %s" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
