#!/usr/bin/env python3
"""qemu_boot.py - boot the vmemfs test guest under QEMU (TCG) and leave it
running, for the qemu driver's live tests.

Reuses contrib/guest: mkguest.sh builds the guest (cached), capture.py's QMP
client and its RAM-range logic (flat view of AS "memory", ranges of the
machine's RAM block merged) give ranges.txt.  Unlike capture.py it can put
guest RAM in a shared file (--shared-ram PATH: memory-backend-file,
share=on), the driver's zero-copy path, or in a memfd (--memfd), and it
never dumps.

Writes into --out: ranges.txt (start-end hex, end exclusive), truth.txt
(the guest's own account, as capture.py writes it), mtree.txt
(info mtree -f), ramblock.txt (info ramblock), serial.log, qemu.log,
meta.json; prints QEMU_PID=, QMP_SOCKET=, OUT= on stdout.  The QMP socket is
left free (this script disconnects): QEMU serves one QMP client at a time.
--qmp-socket PATH puts it elsewhere (e.g. in a --qemu-dir directory);
--qmp2 PATH adds a second QMP socket (printed as QMP_SOCKET2=) for a test's
own commands while vmemfs holds the first.
--paused-start starts QEMU with -S, as libvirt does: no guest code has run
(RAM blank, no shadow RAM at 0xc0000-0xfffff yet) and the caller continues
it (QMP "cont"); only mtree.txt, ramblock.txt, meta.json are written then
(no ranges.txt, no truth.txt: the guest has not booted).
The caller stops QEMU (kill QEMU_PID).  TCG only.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST = os.path.join(HERE, "..", "..", "contrib", "guest")


def load_capture():
    spec = importlib.util.spec_from_file_location(
        "capture", os.path.join(GUEST, "capture.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cap = load_capture()


def log(msg):
    print("qemu_boot: " + msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mem", default="256M", type=cap.parse_size)
    ap.add_argument("--machine", default="q35", choices=("q35", "pc"))
    ap.add_argument("--cpu", default="qemu64")
    ap.add_argument("--smp", default=1, type=int)
    ap.add_argument("--shared-ram", metavar="PATH",
                    help="guest RAM in this file: memory-backend-file "
                    "share=on (created by QEMU; the caller deletes it)")
    ap.add_argument("--memfd", action="store_true",
                    help="guest RAM in a memfd (memory-backend-memfd, "
                    "share=on): shared, but with no path to open")
    ap.add_argument("--no-wait", action="store_true",
                    help="do not wait for the guest's VMEMFS-READY")
    ap.add_argument("--timeout", default=300, type=float)
    ap.add_argument("--guest-dir")
    ap.add_argument("--qmp-socket", metavar="PATH",
                    help="the QMP socket's path (default OUT/qmp.sock)")
    ap.add_argument("--qmp2", metavar="PATH",
                    help="a second QMP socket, for a test's own commands "
                    "while vmemfs holds the first (QEMU serves one client "
                    "per socket); this script never connects to it")
    ap.add_argument("--paused-start", action="store_true",
                    help="start QEMU with -S (stopped before the firmware "
                    "runs) and return at once; the caller sends cont")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    a = ap.parse_args()

    qemu_bin = cap.find_qemu(a.qemu)
    if a.guest_dir:
        gdir = os.path.abspath(a.guest_dir)
    else:
        r = subprocess.run(["sh", os.path.join(GUEST, "mkguest.sh")],
                           stdout=subprocess.PIPE, text=True)
        if r.returncode:
            raise cap.Fail("mkguest.sh failed")
        gdir = r.stdout.strip().splitlines()[-1]
    kernel = os.path.join(gdir, "vmlinuz")
    initrd = os.path.join(gdir, "initramfs.gz")

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    if len(out) > 90:
        raise cap.Fail("--out path too long for a unix socket: %s" % out)
    sock = os.path.join(out, "qmp.sock")
    if a.qmp_socket:
        sock = os.path.abspath(a.qmp_socket)
    sock2 = os.path.abspath(a.qmp2) if a.qmp2 else None
    for p in (sock, sock2):
        if p and len(p) > 100:
            raise cap.Fail("path too long for a unix socket: %s" % p)
    if a.qmp_socket and os.path.exists(sock):
        os.unlink(sock)
    if sock2 and os.path.exists(sock2):
        os.unlink(sock2)
    serial = os.path.join(out, "serial.log")
    for n in ("qmp.sock", "serial.log", "ranges.txt", "mtree.txt", "truth.txt",
              "ramblock.txt", "meta.json"):
        if os.path.exists(os.path.join(out, n)):
            os.unlink(os.path.join(out, n))

    mem_mib = a.mem >> 20
    machine = a.machine
    argv = [qemu_bin, "-accel", "tcg", "-cpu", a.cpu, "-m", "%dM" % mem_mib,
            "-smp", str(a.smp), "-nographic", "-nodefaults", "-vga", "none",
            "-no-reboot", "-serial", "file:" + serial,
            "-qmp", "unix:%s,server=on,wait=off" % sock]
    if sock2:
        argv += ["-qmp", "unix:%s,server=on,wait=off" % sock2]
    argv += ["-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1"]
    if a.shared_ram:
        argv += ["-object", "memory-backend-file,id=ram,mem-path=%s,share=on,"
                 "size=%dM" % (os.path.abspath(a.shared_ram), mem_mib)]
        machine += ",memory-backend=ram"
    elif a.memfd:
        argv += ["-object", "memory-backend-memfd,id=ram,share=on,size=%dM"
                 % mem_mib]
        machine += ",memory-backend=ram"
    argv += ["-machine", machine]
    if a.paused_start:
        argv += ["-S"]

    log("starting: " + " ".join(argv))
    t0 = time.monotonic()
    qlog = open(os.path.join(out, "qemu.log"), "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                            stderr=subprocess.STDOUT, start_new_session=True)
    qmp = None
    ok = False
    try:
        qmp = cap.QMP(sock, 30)
        while not a.no_wait and not a.paused_start:
            try:
                with open(serial, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                text = ""
            if re.search(r"^VMEMFS-READY\r?$", text, re.M):
                break
            if proc.poll() is not None:
                raise cap.Fail("QEMU exited (%s) before VMEMFS-READY:\n%s\n%s"
                               % (proc.returncode, cap.tail(serial),
                                  cap.tail(os.path.join(out, "qemu.log"))))
            if time.monotonic() - t0 > a.timeout:
                raise cap.Fail("no VMEMFS-READY within %g s:\n%s"
                               % (a.timeout, cap.tail(serial)))
            time.sleep(0.2)
        boot = round(time.monotonic() - t0, 2)
        log("started paused (-S)" if a.paused_start
            else "guest ready after %.1f s" % boot)
        if not a.no_wait and not a.paused_start:
            lines = [l.rstrip("\r") for l in text.split("\n")]
            try:
                b = lines.index("VMEMFS-TRUTH-BEGIN")
                e = lines.index("VMEMFS-TRUTH-END", b)
            except ValueError:
                raise cap.Fail("truth markers missing in serial.log")
            with open(os.path.join(out, "truth.txt"), "w") as f:
                f.write("\n".join(lines[b + 1:e]) + "\n")

        mtree = qmp.hmp("info mtree -f")
        with open(os.path.join(out, "mtree.txt"), "w") as f:
            f.write(mtree)
        with open(os.path.join(out, "ramblock.txt"), "w") as f:
            f.write(qmp.hmp("info ramblock"))
        backend = qmp.cmd("qom-get", path="/machine", property="memory-backend")
        ram_name = os.path.basename(backend) if backend else "pc.ram"
        flat = cap.system_flatview(mtree)
        ranges = cap.merge([(s, e) for s, e, _, n in flat if n == ram_name])
        total = sum(e - s for s, e in ranges)
        # Before the firmware runs, 0xc0000-0xfffff is ROM, not RAM.
        if not a.paused_start:
            if total != a.mem:
                raise cap.Fail("RAM ranges cover %#x bytes, expected %#x"
                               % (total, a.mem))
            with open(os.path.join(out, "ranges.txt"), "w") as f:
                for s, e in ranges:
                    f.write("%x-%x\n" % (s, e))
        meta = {"argv": argv, "mem": a.mem, "machine": a.machine,
                "paused_start": a.paused_start,
                "ram_block": ram_name, "shared_ram": a.shared_ram,
                "memfd": a.memfd,
                "qemu_version": qmp.version, "boot_seconds": boot,
                "pid": proc.pid, "qmp": sock, "qmp2": sock2,
                "ranges": ["%x-%x" % r for r in ranges]}
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        ok = True
    finally:
        if qmp is not None:
            qmp.close()
        qlog.close()
        if not ok and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    print("QEMU_PID=%d" % proc.pid)
    print("QMP_SOCKET=%s" % sock)
    if sock2:
        print("QMP_SOCKET2=%s" % sock2)
    print("OUT=%s" % out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except cap.Fail as e:
        log("error: %s" % e)
        sys.exit(1)
