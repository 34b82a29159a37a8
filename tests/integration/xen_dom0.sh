#!/bin/sh
# xen_dom0.sh - the dom0 half of t_xen.sh (installed as /xentest.sh in the
# nested dom0's initramfs; busybox sh).  Starts a PV and a PVH domU running
# the test guest, mounts vmemfs --xen, checks both with xen_check, runs the
# benchmark if asked, then destroys the PV domain while a file of it is open.
# Every result is a "XENTEST ..." line on the console.
say() { echo "XENTEST $*"; }
fail=0
check() { if [ "$1" = 0 ]; then say PASS host "$2"; else say FAIL host "$2"; fail=1; fi; }
LOG=/var/log/xen/console
MEM=${XENTEST_MEM:-192}

for vm in pv1:pv pvh1:pvh; do
    name=${vm%%:*}
    cat > /etc/xen/$name.cfg <<CFG
name="$name"
type="${vm#*:}"
kernel="/guest/vmlinuz"
ramdisk="/guest/initramfs.gz"
extra="console=hvc0 panic=-1"
memory=$MEM
vcpus=1
on_crash="destroy"
CFG
    xl create /etc/xen/$name.cfg >/tmp/xl-$name.log 2>&1
    r=$?
    if [ $r != 0 ]; then
        # xl itself has died here under the emulation now and then: once more.
        say INFO "xl create $name: $(tail -n 1 /tmp/xl-$name.log), once more"
        xl destroy $name 2>/dev/null
        xl create /etc/xen/$name.cfg >/tmp/xl-$name.log 2>&1
        r=$?
    fi
    check $r "xl-create-$name"
    [ $r = 0 ] || tail -n 8 /tmp/xl-$name.log
done
t0=$(date +%s)
n=0
until grep -q VMEMFS-READY $LOG/guest-pv1.log 2>/dev/null &&
      grep -q VMEMFS-READY $LOG/guest-pvh1.log 2>/dev/null; do
    n=$((n + 1))
    if [ $((n % 30)) = 0 ]; then
        for g in pv1 pvh1; do
            say INFO $g console: "$(tail -n 1 $LOG/guest-$g.log 2>/dev/null | tr -d '\r' | cut -c1-100)"
        done
    fi
    if [ $n -gt ${XENTEST_GUEST_WAIT:-400} ]; then
        say FAIL host guests-ready "not ready after $((n * 2)) polls"
        xl list; tail -n 5 $LOG/guest-*.log /tmp/xl-*.log
        exit 1
    fi
    sleep 1
done
say INFO host guests ready after $(($(date +%s) - t0)) s
xl list

mkdir -p /mnt/vms
/usr/bin/vmemfs /mnt/vms --xen --symbols /isf
check $? vmemfs-mount
n=0
until [ -e /mnt/vms/pv1/pmem ] && [ -e /mnt/vms/pvh1/pmem ]; do
    n=$((n + 1))
    [ $n -gt 60 ] && break
    sleep 0.5
done
ls /mnt/vms
for vm in pv1 pvh1; do
    grep -E '"(guest_type|p2m|domid|os|paging|frames)"' /mnt/vms/$vm/info.json | tr -d ' ' |
        while read -r l; do say INFO $vm info $l; done
    /bin/xen_check /mnt/vms/$vm $LOG/guest-$vm.log || fail=1
done

# Pause / resume through the control file: xl sees the domain paused.
state() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
echo pause > /mnt/vms/pvh1/control
case $(state pvh1) in *p*) r=0 ;; *) r=1 ;; esac
check $r "control-pause ($(state pvh1))"
echo resume > /mnt/vms/pvh1/control
case $(state pvh1) in *p*) r=1 ;; *) r=0 ;; esac
check $r "control-resume ($(state pvh1))"

if [ -x /bin/bench_xen ] && [ -n "$XENTEST_BENCH" ]; then
    /bin/bench_xen "$(xl domid pvh1)" /mnt/vms/pvh1/pmem.raw 2>&1 |
        while read -r l; do echo "XENBENCH $l"; done
fi

# A domain destroyed while a file of it is open: EIO, the daemon lives, the
# directory goes, the other domain still reads.
vpid=$(pidof vmemfs)
exec 3</mnt/vms/pv1/pmem
dd bs=4096 count=1 <&3 >/dev/null 2>&1
check $? read-before-destroy
xl destroy pv1
err=$(dd bs=4096 count=1 <&3 2>&1 >/dev/null)
case $err in *"I/O error"*) r=0 ;; *) r=1 ;; esac
check $r "read-after-destroy-EIO ($err)"
exec 3<&-
kill -0 "$vpid" 2>/dev/null; check $? daemon-alive
n=0
while [ -e /mnt/vms/pv1 ] && [ $n -lt 30 ]; do sleep 0.5; n=$((n + 1)); done
[ ! -e /mnt/vms/pv1 ]; check $? pv1-dir-gone
dd if=/mnt/vms/pvh1/pmem.raw bs=65536 count=16 2>/dev/null | wc -c | grep -qx 1048576
check $? pvh1-still-reads
fusermount3 -u /mnt/vms 2>/dev/null || umount /mnt/vms
exit $fail
