#!/usr/bin/env bash
# Hardening (issue 13): byte-granular ranges, millions of ranges with the
# daemon's peak RSS bounded, ranges above 2^62 and FIFOs refused at the
# door, strict control, a big image without a kernel scanned within bounds,
# a compressed ISF bomb read as a stream (hardening.py).
. "$(dirname "$0")/lib.sh"
need_fuse
exec python3 "$SRC/tests/integration/hardening.py" "$VMEMFS"
