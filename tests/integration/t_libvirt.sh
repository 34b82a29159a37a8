#!/usr/bin/env bash
# The libvirt driver against a real libvirtd that this test starts itself
# (Debian's sysv flavour: virtlogd, then libvirtd --listen on 127.0.0.1
# only, auth_tcp none), with transient TCG domains booting the test guest.
# libvirt_live.py does the checks:
#   - discovery (libvirt_watch: the driver class's discover_start/stop):
#     domains found as they start, lost as they are destroyed, nothing lost
#     across a libvirtd restart
#   - libvirt:DOM on qemu:///system takes the qemu fast paths (a shared
#     memory-backend file: "shared file"; plain RAM: "process memory"), the
#     same domain through qemu+tcp://127.0.0.1 takes memory peek
#   - the guest's processes and a pattern in a process's vmem on every path
#   - pause through control (libvirt says paused), pmem.raw against
#     `virsh dump --memory-only` byte for byte on both paths
#   - virsh keeps working on the mounted domains
#   - libvirtd restarted while mounted: reads go on, control works again
#   - a domain destroyed while being read: EIO, its directories go, the
#     other domain is unharmed
#   - a missing domain and a refused connection: one clear line each
# Everything started here is stopped by pid at the end.
. "$(dirname "$0")/lib.sh"
need_fuse
for c in libvirtd virtlogd virsh qemu-system-x86_64 python3; do
    command -v "$c" >/dev/null ||
        skip "$c missing (contrib/install-deps.sh installs libvirt-daemon-system-sysv, libvirt-clients)"
done
WATCH=$BUILD/tests/libvirt_watch
[ -x "$WATCH" ] || skip "vmemfs built without libvirt (no $WATCH)"
if virsh -q -c qemu:///system version >/dev/null 2>&1; then
    skip "a libvirtd is already running here; this test runs its own"
fi

ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
[ -d "$ISF_DIR" ] || skip "$ISF_DIR absent: the guest's processes cannot be checked"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-libvirt.XXXXXX")
chmod 755 "$WORK"          # QEMU runs as libvirt-qemu and boots files from here
export PYTHONDONTWRITEBYTECODE=1
PORT=$((16600 + $$ % 200))

cleanup() {
    set +e
    # Our domains (names carry our pid), then the daemons, by pid.
    for d in $(virsh -q -c qemu:///system list --name 2>/dev/null); do
        case $d in vmt$$*) virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1 ;; esac
    done
    for p in "$WORK"/mnt*; do
        [ -d "$p" ] && { fusermount3 -u -z "$p" 2>/dev/null; rmdir "$p" 2>/dev/null; }
    done
    for f in watch libvirtd virtlogd; do
        [ -s "$WORK/$f.pid" ] || continue
        pid=$(cat "$WORK/$f.pid")
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# As udev would have it: otherwise every domain start re-probes QEMU's
# capabilities (about 45 s).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    chown root:kvm /dev/kvm && chmod 0660 /dev/kvm
fi

cat >"$WORK/libvirtd.conf" <<EOF
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$PORT"
auth_tcp = "none"
EOF
export VMEMFS_LIBVIRTD_START="libvirtd -d --listen --config $WORK/libvirtd.conf --pid-file $WORK/libvirtd.pid"
export VMEMFS_LIBVIRTD_PIDFILE=$WORK/libvirtd.pid

sh "$SRC/contrib/guest/mkguest.sh" >"$WORK/mkguest.log" 2>&1 ||
    { tail -n 30 "$WORK/mkguest.log"; echo "FAIL: mkguest.sh"; exit 1; }
GUEST=$(tail -n 1 "$WORK/mkguest.log")

start=$(date +%s)
virtlogd -d --pid-file "$WORK/virtlogd.pid" || { echo "FAIL: virtlogd"; exit 1; }
$VMEMFS_LIBVIRTD_START || { echo "FAIL: libvirtd"; exit 1; }
for _ in $(seq 100); do
    virsh -q -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
done
virsh -q -c "qemu+tcp://127.0.0.1:$PORT/system" version >/dev/null ||
    { echo "FAIL: libvirtd does not answer on 127.0.0.1:$PORT"; exit 1; }
echo "libvirtd up in $(( $(date +%s) - start )) s"

rc=0
python3 "$SRC/tests/integration/libvirt_live.py" "$VMEMFS" "$WATCH" "$WORK" "$GUEST" \
    "qemu+tcp://127.0.0.1:$PORT/system" "vmt$$" "$ISF_DIR" || rc=1
echo "t_libvirt: $(( $(date +%s) - start )) s"
[ $rc = 0 ] || { echo "FAIL: t_libvirt"; exit 1; }
echo "PASS: t_libvirt"
