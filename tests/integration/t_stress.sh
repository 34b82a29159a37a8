#!/usr/bin/env bash
# Stress: 16 concurrent readers for a minute (VMEMFS_STRESS_SECS) over
# pmem.raw and pmem of four synthetic VMs (raw, ELF, LiME, kdump) in one
# mount, every byte checked against the source (stress.py).
. "$(dirname "$0")/lib.sh"
need_fuse
exec python3 "$SRC/tests/integration/stress.py" "$VMEMFS" "${VMEMFS_STRESS_SECS:-60}"
