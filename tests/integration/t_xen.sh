#!/bin/bash
# t_xen.sh - the Xen driver on a real Xen: Debian's Xen 4.17 nested under
# QEMU TCG (contrib/xen/mkdom0.sh builds the host), vmemfs --xen inside
# dom0 against a PV and a PVH domU running the test guest (contrib/guest),
# checked by xen_dom0.sh + xen_check.c inside dom0.  Results come back over
# the serial console as "XENTEST PASS|FAIL ..." lines.
#
# Needs: qemu-system-x86_64, ~2.6 GB of free RAM, the Debian mirror (first
# run: ~75 MB of packages), the shared ISF of the guest kernel
# ($VMEMFS_ISF_DIR or ../shared/isf).  XENTEST_BENCH=1 also runs
# contrib/bench/bench_xen inside dom0 (figures as XENBENCH lines).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Not yet in the default run: on the nested Xen, vmemfs --xen still dies
# in dom0 after mounting (see README, Status), and a run takes 10-15
# minutes on this machine class.  VMEMFS_TEST_XEN=1 runs it.
[ "${VMEMFS_TEST_XEN:-0}" = 1 ] ||
    skip "the nested-Xen test runs with VMEMFS_TEST_XEN=1 (the Xen driver is not yet working on a real Xen)"

ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
avail_kb=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)
[ "$avail_kb" -ge $((2600 * 1024)) ] ||
    skip "a nested Xen needs ~2.6 GB of free RAM, $((avail_kb / 1024)) MB available"
ls "$ISF_DIR"/linux/6.1.0-50-cloud-amd64.json* >/dev/null 2>&1 ||
    skip "no ISF of the guest kernel in $ISF_DIR (set VMEMFS_ISF_DIR)"
pkg-config --exists xencontrol || skip "libxen-dev missing: vmemfs has no Xen driver"

CACHE=${VMEMFS_XEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-xen}
WORK=$(mktemp -d /tmp/vmemfs-xen.XXXXXX)
QPID=
cleanup() {
    [ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# A release build: an ASan one is too slow to mount under this TCG.
REL=$CACHE/build-release
cmake -S "$SRC" -B "$REL" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$REL" -j2 --target vmemfs >/dev/null
cc -O2 -static -Wall -o "$WORK/xen_check" "$SRC/tests/integration/xen_check.c"
cc -O2 -Wall -o "$WORK/bench_xen" "$SRC/contrib/bench/bench_xen.c" \
    $(pkg-config --cflags --libs xenforeignmemory xencontrol)

GUEST=$("$SRC/contrib/guest/mkguest.sh" | tail -n 1)
rc=0
"$SRC/contrib/xen/mkdom0.sh" "$WORK/img" \
    "$REL/vmemfs:/usr/bin/vmemfs" "$WORK/xen_check:/bin/xen_check" \
    "$WORK/bench_xen:/bin/bench_xen" \
    "$SRC/tests/integration/xen_dom0.sh:/xentest.sh" \
    "$GUEST/vmlinuz:/guest/vmlinuz" "$GUEST/initramfs.gz:/guest/initramfs.gz" \
    "$(ls "$ISF_DIR"/linux/6.1.0-50-cloud-amd64.json* | head -n 1):/isf/linux/6.1.0-50-cloud-amd64.json.xz" \
    >/dev/null || rc=$?
[ $rc = 77 ] && skip "the Xen packages cannot be downloaded"
[ $rc = 0 ] || { echo "FAIL: mkdom0.sh ($rc)"; exit 1; }

# The proven recipe (issue 9): SMAP off (PV dom0 crashes), RDTSCP off (PVH
# loops in emulation), AVX2 off (dom0 programs misread data now and then).
SERIAL=$WORK/serial.log
qemu-system-x86_64 -machine pc -accel tcg,thread=multi -cpu max,-smap,-rdtscp,-avx2 \
    -smp 2 -m 2048 -nographic -nodefaults -vga none -no-reboot \
    -serial "file:$SERIAL" \
    -kernel "$WORK/img/xen.elf" \
    -append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 noreboot" \
    -initrd "$WORK/img/vmlinuz console=hvc0 earlyprintk=xen panic=-1 quiet XENTEST_BENCH=${XENTEST_BENCH:-},$WORK/img/dom0.cpio.gz" \
    >"$WORK/qemu.log" 2>&1 &
QPID=$!

deadline=$((SECONDS + ${XENTEST_TIMEOUT:-900}))
while ! grep -q "XENTEST-EXIT" "$SERIAL" 2>/dev/null; do
    if ! kill -0 "$QPID" 2>/dev/null; then
        echo "FAIL: QEMU exited early"; tail -n 30 "$SERIAL" "$WORK/qemu.log"; exit 1
    fi
    if [ $SECONDS -gt $deadline ]; then
        echo "FAIL: no result from dom0 in time"; tail -n 40 "$SERIAL"; exit 1
    fi
    sleep 2
done
tr -d '\r' < "$SERIAL" | grep -E "^(XENTEST|XENBENCH)" | tee "$WORK/results"
cp "$SERIAL" "${XENTEST_KEEP_SERIAL:-/dev/null}" 2>/dev/null || true
grep -q "XENTEST-EXIT 0" "$WORK/results" || { echo "FAIL: see XENTEST lines"; exit 1; }
grep -q "XENTEST FAIL" "$WORK/results" && { echo "FAIL"; exit 1; }
n=$(grep -c "XENTEST PASS" "$WORK/results")
[ "$n" -ge 15 ] || { echo "FAIL: only $n checks passed"; exit 1; }
echo "PASS: $n checks on a PV and a PVH domain of a nested Xen"
