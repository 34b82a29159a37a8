#!/usr/bin/env bash
# Synthetic dumps in every format (raw, ELF, LiME, kdump-zlib) of one layout
# with holes and RAM above 4 GiB, mounted together in one vmemfs; checked
# byte for byte and at the hole edges by formats.py.
. "$(dirname "$0")/lib.sh"
need_fuse
exec python3 "$SRC/tests/integration/formats.py" "$VMEMFS"
