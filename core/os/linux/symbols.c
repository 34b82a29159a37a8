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

    lx_load_forensic_offsets(f, o);

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

static unsigned size_of(const struct isf *f, const char *type, unsigned dflt)
{
    uint64_t sz;
    if (isf_type_size(f, type, &sz) == 0 && sz > 0 && sz <= 4096)
        return (unsigned)sz;
    return dflt;
}

/* What the responder's files read (issue 11).  Every one optional: a file
 * whose members are missing says so instead of guessing. */
void lx_load_forensic_offsets(const struct isf *f, struct lx_offsets *o)
{
    o->mm_arg_start = off_of(f, "mm_struct", "arg_start");
    o->mm_arg_end = off_of(f, "mm_struct", "arg_end");
    o->mm_env_start = off_of(f, "mm_struct", "env_start");
    o->mm_env_end = off_of(f, "mm_struct", "env_end");
    o->mm_exe_file = off_of(f, "mm_struct", "exe_file");
    o->mm_total_vm = off_of(f, "mm_struct", "total_vm");
    o->mm_hiwater_vm = off_of(f, "mm_struct", "hiwater_vm");
    o->mm_hiwater_rss = off_of(f, "mm_struct", "hiwater_rss");
    o->mm_locked_vm = off_of(f, "mm_struct", "locked_vm");
    o->mm_pinned_vm = off_of(f, "mm_struct", "pinned_vm");
    o->mm_data_vm = off_of(f, "mm_struct", "data_vm");
    o->mm_stack_vm = off_of(f, "mm_struct", "stack_vm");
    o->mm_exec_vm = off_of(f, "mm_struct", "exec_vm");
    /* 6.1 and before: atomic_long_t count[NR_MM_COUNTERS]; 6.2 made them
     * per-cpu counters, which are not read (VmRSS is then left out). */
    o->mm_rss_stat = off_of(f, "mm_struct", "rss_stat.count");
    o->task_files = off_of(f, "task_struct", "files");
    o->task_fs = off_of(f, "task_struct", "fs");
    o->task_nsproxy = off_of(f, "task_struct", "nsproxy");
    o->task_start_boottime = off_of(f, "task_struct", "start_boottime");
    o->task_thread_pid = off_of(f, "task_struct", "thread_pid");
    o->task_pid_links = off_of(f, "task_struct", "pid_links");
    o->task_thread_node = off_of(f, "task_struct", "thread_node");
    o->signal_thread_head = off_of(f, "signal_struct", "thread_head");
    o->files_fdt = off_of(f, "files_struct", "fdt");
    o->fdt_max_fds = off_of(f, "fdtable", "max_fds");
    o->fdt_fd = off_of(f, "fdtable", "fd");
    o->fdt_close_on_exec = off_of(f, "fdtable", "close_on_exec");
    o->file_pos = off_of(f, "file", "f_pos");
    o->file_flags = off_of(f, "file", "f_flags");
    o->file_op = off_of(f, "file", "f_op");
    o->file_private = off_of(f, "file", "private_data");
    o->dentry_d_op = off_of(f, "dentry", "d_op");
    o->fs_root = off_of(f, "fs_struct", "root");
    o->fs_pwd = off_of(f, "fs_struct", "pwd");
    o->path_mnt = off_of(f, "path", "mnt");
    o->path_dentry = off_of(f, "path", "dentry");
    o->cred_cap_inh = off_of(f, "cred", "cap_inheritable");
    o->cred_cap_prm = off_of(f, "cred", "cap_permitted");
    o->cred_cap_eff = off_of(f, "cred", "cap_effective");
    o->cred_cap_bnd = off_of(f, "cred", "cap_bset");
    o->cred_cap_amb = off_of(f, "cred", "cap_ambient");
    o->cap_size = size_of(f, "kernel_cap_struct", 8);
    o->nsproxy_mnt_ns = off_of(f, "nsproxy", "mnt_ns");
    o->nsproxy_net_ns = off_of(f, "nsproxy", "net_ns");
    o->mntns_ns = off_of(f, "mnt_namespace", "ns");
    o->net_ns = off_of(f, "net", "ns");
    o->pidns_ns = off_of(f, "pid_namespace", "ns");
    o->ns_inum = off_of(f, "ns_common", "inum");
    o->pid_level = off_of(f, "pid", "level");
    o->pid_numbers = off_of(f, "pid", "numbers");
    o->pid_tasks = off_of(f, "pid", "tasks");
    o->upid_ns = off_of(f, "upid", "ns");
    o->upid_nr = off_of(f, "upid", "nr");
    o->upid_size = size_of(f, "upid", 16);
    o->pidns_idr = off_of(f, "pid_namespace", "idr");
    o->xa_head = off_of(f, "idr", "idr_rt.xa_head");
    o->xa_node_shift = off_of(f, "xa_node", "shift");
    o->xa_chunk = 64;
    o->xa_node_slots = off_arr(f, "xa_node", "slots", &o->xa_chunk, 64);
    o->mod_list = off_of(f, "module", "list");
    o->mod_name_len = 56;
    o->mod_name = off_arr(f, "module", "name", &o->mod_name_len, 56);
    {
        uint64_t off;
        struct isf_member_info in;
        if (o->mod_name != NONE && isf_member(f, "module", "name", &off, &in) == 0 &&
            in.size > 0 && in.size <= 256)
            o->mod_name_len = (unsigned)in.size;
    }
    o->mod_state = off_of(f, "module", "state");
    o->mod_refcnt = off_of(f, "module", "refcnt");
    o->mod_core_base = off_of(f, "module", "core_layout.base");
    o->mod_core_size = off_of(f, "module", "core_layout.size");
    o->mod_init_size = off_of(f, "module", "init_layout.size");
    o->mod_taints = off_of(f, "module", "taints");
    o->mod_source_list = off_of(f, "module", "source_list");
    o->mod_init = off_of(f, "module", "init");
    o->mod_exit = off_of(f, "module", "exit");
    o->use_source_list = off_of(f, "module_use", "source_list");
    o->use_source = off_of(f, "module_use", "source");
    o->prb_desc_ring = off_of(f, "printk_ringbuffer", "desc_ring");
    o->prb_text_ring = off_of(f, "printk_ringbuffer", "text_data_ring");
    o->dr_count_bits = off_of(f, "prb_desc_ring", "count_bits");
    o->dr_descs = off_of(f, "prb_desc_ring", "descs");
    o->dr_infos = off_of(f, "prb_desc_ring", "infos");
    o->dr_head_id = off_of(f, "prb_desc_ring", "head_id");
    o->dr_tail_id = off_of(f, "prb_desc_ring", "tail_id");
    o->tr_size_bits = off_of(f, "prb_data_ring", "size_bits");
    o->tr_data = off_of(f, "prb_data_ring", "data");
    o->desc_state_var = off_of(f, "prb_desc", "state_var");
    o->desc_text_begin = off_of(f, "prb_desc", "text_blk_lpos.begin");
    o->desc_text_next = off_of(f, "prb_desc", "text_blk_lpos.next");
    o->desc_size = size_of(f, "prb_desc", 0);
    o->info_seq = off_of(f, "printk_info", "seq");
    o->info_ts_nsec = off_of(f, "printk_info", "ts_nsec");
    o->info_text_len = off_of(f, "printk_info", "text_len");
    o->info_facility = off_of(f, "printk_info", "facility");
    o->info_flags_level = off_of(f, "printk_info", "level");
    o->info_caller_id = off_of(f, "printk_info", "caller_id");
    o->info_size = size_of(f, "printk_info", 0);
    o->mnt_list = off_of(f, "mount", "mnt_list");
    o->mnt_devname = off_of(f, "mount", "mnt_devname");
    o->mnt_mnt_ns = off_of(f, "mount", "mnt_ns");
    o->mntns_list = off_of(f, "mnt_namespace", "list");
    o->vfsmnt_flags = off_of(f, "vfsmount", "mnt_flags");
    o->vfsmnt_sb = off_of(f, "vfsmount", "mnt_sb");
    o->sb_flags = off_of(f, "super_block", "s_flags");
    o->sb_type = off_of(f, "super_block", "s_type");
    o->sb_subtype = off_of(f, "super_block", "s_subtype");
    o->fstype_name = off_of(f, "file_system_type", "name");
    o->socket_sk = off_of(f, "socket", "sk");
    o->socket_type = off_of(f, "socket", "type");
    o->sk_family = off_of(f, "sock", "__sk_common.skc_family");
    o->sk_state = off_of(f, "sock", "__sk_common.skc_state");
    o->sk_daddr = off_of(f, "sock", "__sk_common.skc_daddr");
    o->sk_rcv_saddr = off_of(f, "sock", "__sk_common.skc_rcv_saddr");
    o->sk_dport = off_of(f, "sock", "__sk_common.skc_dport");
    o->sk_num = off_of(f, "sock", "__sk_common.skc_num");
    o->sk_v6_daddr = off_of(f, "sock", "__sk_common.skc_v6_daddr");
    o->sk_v6_rcv_saddr = off_of(f, "sock", "__sk_common.skc_v6_rcv_saddr");
    o->sk_type = off_of(f, "sock", "sk_type");
    o->sk_protocol = off_of(f, "sock", "sk_protocol");
    o->sk_uid = off_of(f, "sock", "sk_uid");
    o->sk_rqueue_len = off_of(f, "sock", "sk_receive_queue.qlen");
    o->skc_refcnt_off = off_of(f, "sock", "__sk_common.skc_refcnt");
    o->unix_addr = off_of(f, "unix_sock", "addr");
    o->unix_peer = off_of(f, "unix_sock", "peer");
    o->uaddr_len = off_of(f, "unix_address", "len");
    o->uaddr_name = off_of(f, "unix_address", "name");
}
