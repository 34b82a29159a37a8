/*
 * symbols.c - member offsets from the profile (see internal.h): what the walkers read
 * and where; a member the profile lacks is NONE and its reader degrades.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

/* ---- profile offsets ---------------------------------------------------- */

static long off_of(const struct isf *f, const char *type, const char *member)
{
    uint64_t o;
    if (isf_member(f, type, member, &o, NULL) < 0 || o > (1u << 20))
        return NONE;
    return (long)o;
}

static long off_arr(const struct isf *f, const char *type, const char *member,
                    unsigned *count, unsigned dflt)
{
    uint64_t o;
    struct isf_member_info in;
    if (isf_member(f, type, member, &o, &in) < 0 || o > 4096)
        return NONE;
    *count = dflt;
    if (in.kind == ISF_KIND_ARRAY && in.count > 0 && in.count <= 64)
        *count = (unsigned)in.count;
    return (long)o;
}

/* The guest's pointer size: the profile's "pointer" base type, else what
 * linux_banner's address says (below 4 GiB: i386). */
static unsigned profile_psize(const struct isf *f)
{
    uint64_t sz, banner;
    if (isf_type_size(f, "pointer", &sz) == 0 && (sz == 4 || sz == 8))
        return (unsigned)sz;
    if (isf_symbol(f, "linux_banner", &banner) == 0 && banner < X86_32_TOP)
        return 4;
    return 8;
}

int lx_load_offsets(const struct isf *f, struct lx_offsets *o,
                        char *why, size_t whylen)
{
    o->psize = profile_psize(f);
    o->task_tasks = off_of(f, "task_struct", "tasks");
    o->task_pid = off_of(f, "task_struct", "pid");
    o->task_tgid = off_of(f, "task_struct", "tgid");
    o->task_comm = off_of(f, "task_struct", "comm");
    o->task_mm = off_of(f, "task_struct", "mm");
    o->task_state_size = 4;
    o->task_state = off_of(f, "task_struct", "__state");
    if (o->task_state == NONE) {
        struct isf_member_info in;
        uint64_t so;
        if (isf_member(f, "task_struct", "state", &so, &in) == 0 && so < (1u << 20)) {
            o->task_state = (long)so;
            o->task_state_size = in.size == 8 ? 8 : 4;
        }
    }
    o->task_exit_state = off_of(f, "task_struct", "exit_state");
    o->task_flags = off_of(f, "task_struct", "flags");
    o->task_real_parent = off_of(f, "task_struct", "real_parent");
    o->task_group_leader = off_of(f, "task_struct", "group_leader");
    o->task_real_cred = off_of(f, "task_struct", "real_cred");
    o->task_signal = off_of(f, "task_struct", "signal");
    o->task_thread_group = off_of(f, "task_struct", "thread_group");
    o->signal_nr_threads = off_of(f, "signal_struct", "nr_threads");
    o->cred_uid = off_of(f, "cred", "uid");
    o->cred_gid = off_of(f, "cred", "gid");
    o->cred_suid = off_of(f, "cred", "suid");
    o->cred_sgid = off_of(f, "cred", "sgid");
    o->cred_euid = off_of(f, "cred", "euid");
    o->cred_egid = off_of(f, "cred", "egid");
    o->cred_fsuid = off_of(f, "cred", "fsuid");
    o->cred_fsgid = off_of(f, "cred", "fsgid");

    o->mm_pgd = off_of(f, "mm_struct", "pgd");
    o->mm_mt = off_of(f, "mm_struct", "mm_mt");
    o->mm_mt_root = off_of(f, "mm_struct", "mm_mt.ma_root");
    if (o->mm_mt == NONE)
        o->mm_mt_root = NONE;
    o->mm_mmap = off_of(f, "mm_struct", "mmap");
    o->mm_start_brk = off_of(f, "mm_struct", "start_brk");
    o->mm_brk = off_of(f, "mm_struct", "brk");
    o->mm_start_stack = off_of(f, "mm_struct", "start_stack");
    o->mm_vdso = off_of(f, "mm_struct", "context.vdso");

    o->vma_start = off_of(f, "vm_area_struct", "vm_start");
    o->vma_end = off_of(f, "vm_area_struct", "vm_end");
    o->vma_mm = off_of(f, "vm_area_struct", "vm_mm");
    o->vma_flags = off_of(f, "vm_area_struct", "vm_flags");
    o->vma_next = off_of(f, "vm_area_struct", "vm_next");
    o->vma_ops = off_of(f, "vm_area_struct", "vm_ops");
    o->vma_pgoff = off_of(f, "vm_area_struct", "vm_pgoff");
    o->vma_file = off_of(f, "vm_area_struct", "vm_file");
    o->vma_private = off_of(f, "vm_area_struct", "vm_private_data");
    o->vma_anon_name = off_of(f, "vm_area_struct", "anon_name");

    /* Maple nodes: 256 bytes, layout fixed by the kernel's design
     * (include/linux/maple_tree.h: 64-bit MAPLE_RANGE64_SLOTS 16,
     * MAPLE_ARANGE64_SLOTS 10, MAPLE_NODE_SLOTS 31; 32-bit 32, 21, 63); the
     * profile's numbers win where it has them. */
    if (o->psize == 4) {
        o->r64_pivot = off_arr(f, "maple_range_64", "pivot", &o->r64_npivots, 31);
        o->r64_slot = off_arr(f, "maple_range_64", "slot", &o->r64_nslots, 32);
        o->r64_meta = off_of(f, "maple_range_64", "meta");
        o->a64_pivot = off_arr(f, "maple_arange_64", "pivot", &o->a64_npivots, 20);
        o->a64_slot = off_arr(f, "maple_arange_64", "slot", &o->a64_nslots, 21);
        o->a64_meta = off_of(f, "maple_arange_64", "meta");
        o->dense_slot = off_arr(f, "maple_node", "slot", &o->dense_nslots, 63);
        if (o->r64_pivot == NONE) { o->r64_pivot = 4; o->r64_npivots = 31; }
        if (o->r64_slot == NONE) { o->r64_slot = 128; o->r64_nslots = 32; }
        if (o->r64_meta == NONE) o->r64_meta = 252;
        if (o->a64_pivot == NONE) { o->a64_pivot = 4; o->a64_npivots = 20; }
        if (o->a64_slot == NONE) { o->a64_slot = 84; o->a64_nslots = 21; }
        if (o->a64_meta == NONE) o->a64_meta = 252;
        if (o->dense_slot == NONE) { o->dense_slot = 4; o->dense_nslots = 63; }
    } else {
        o->r64_pivot = off_arr(f, "maple_range_64", "pivot", &o->r64_npivots, 15);
        o->r64_slot = off_arr(f, "maple_range_64", "slot", &o->r64_nslots, 16);
        o->r64_meta = off_of(f, "maple_range_64", "meta");
        o->a64_pivot = off_arr(f, "maple_arange_64", "pivot", &o->a64_npivots, 9);
        o->a64_slot = off_arr(f, "maple_arange_64", "slot", &o->a64_nslots, 10);
        o->a64_meta = off_of(f, "maple_arange_64", "meta");
        o->dense_slot = off_arr(f, "maple_node", "slot", &o->dense_nslots, 31);
        if (o->r64_pivot == NONE) { o->r64_pivot = 8; o->r64_npivots = 15; }
        if (o->r64_slot == NONE) { o->r64_slot = 128; o->r64_nslots = 16; }
        if (o->r64_meta == NONE) o->r64_meta = 248;
        if (o->a64_pivot == NONE) { o->a64_pivot = 8; o->a64_npivots = 9; }
        if (o->a64_slot == NONE) { o->a64_slot = 80; o->a64_nslots = 10; }
        if (o->a64_meta == NONE) o->a64_meta = 240;
        if (o->dense_slot == NONE) { o->dense_slot = 8; o->dense_nslots = 31; }
    }

    o->file_mnt = off_of(f, "file", "f_path.mnt");
    o->file_dentry = off_of(f, "file", "f_path.dentry");
    o->file_inode = off_of(f, "file", "f_inode");
    o->dentry_parent = off_of(f, "dentry", "d_parent");
    o->dentry_name_len = off_of(f, "dentry", "d_name.len");
    o->dentry_name = off_of(f, "dentry", "d_name.name");
    o->dentry_hash_pprev = off_of(f, "dentry", "d_hash.pprev");
    o->inode_ino = off_of(f, "inode", "i_ino");
    o->inode_sb = off_of(f, "inode", "i_sb");
    o->sb_dev = off_of(f, "super_block", "s_dev");
    o->mount_mnt = off_of(f, "mount", "mnt");
    o->mount_parent = off_of(f, "mount", "mnt_parent");
    o->mount_mountpoint = off_of(f, "mount", "mnt_mountpoint");
    o->vfsmnt_root = off_of(f, "vfsmount", "mnt_root");
    o->vmops_name = off_of(f, "vm_operations_struct", "name");
    o->special_name = off_of(f, "vm_special_mapping", "name");
    o->anon_vma_name_name = off_of(f, "anon_vma_name", "name");

    const char *missing = NULL;
    if (o->task_tasks == NONE) missing = "task_struct.tasks";
    else if (o->task_pid == NONE) missing = "task_struct.pid";
    else if (o->task_tgid == NONE) missing = "task_struct.tgid";
    else if (o->task_comm == NONE) missing = "task_struct.comm";
    else if (o->task_mm == NONE) missing = "task_struct.mm";
    else if (o->mm_pgd == NONE) missing = "mm_struct.pgd";
    if (missing) {
        snprintf(why, whylen, "the profile has no %s", missing);
        return -1;
    }
    return 0;
}
