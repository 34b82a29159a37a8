# lib.sh - shared by the integration tests: where things are, skipping
# cleanly when FUSE cannot run here, and mounting/unmounting vmemfs.
set -euo pipefail

SRC=${VMEMFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${VMEMFS_BUILD:-$SRC/build}
VMEMFS=$BUILD/vmemfs

skip() { echo "SKIP: $*"; exit 77; }

need_fuse() {
    [ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
    command -v fusermount3 >/dev/null || skip "fusermount3 missing (apt-get install fuse3)"
    [ -x "$VMEMFS" ] || { echo "FAIL: $VMEMFS not built"; exit 1; }
}
