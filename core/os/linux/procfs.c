/*
 * procfs.c - the guest's own /proc texts (see internal.h): dentry paths, maps and
 * status lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

static void file_path(struct linux_os *os, uint64_t file, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t dentry = 0, vfsmnt = 0;
    if (lx_kfieldptr(os, file, o->file_dentry, &dentry) < 0 || !lx_kptr_ok(os, dentry)) {
        sb_printf(out, "[file 0x%" PRIx64 "]", file);
        return;
    }
    lx_kfieldptr(os, file, o->file_mnt, &vfsmnt);
    lx_path_text(os, vfsmnt, dentry, out);
}

void lx_path_text(struct linux_os *os, uint64_t vfsmnt, uint64_t dentry, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    const uint64_t first = dentry;
    char *comp[PATH_COMPS_MAX];
    unsigned nc = 0;
    bool pseudo = false;
    size_t total = 0;
    for (unsigned steps = 0; steps < PATH_COMPS_MAX * 2 && nc < PATH_COMPS_MAX; steps++) {
        uint64_t mnt_root = 0;
        if (lx_kptr_ok(os, vfsmnt))
            lx_kfieldptr(os, vfsmnt, o->vfsmnt_root, &mnt_root);
        if (mnt_root && dentry == mnt_root && o->mount_mnt != NONE) {
            uint64_t mnt = vfsmnt - (uint64_t)o->mount_mnt, parent = 0, mp = 0;
            if (lx_kfieldptr(os, mnt, o->mount_parent, &parent) < 0 || parent == mnt ||
                !lx_kptr_ok(os, parent) ||
                lx_kfieldptr(os, mnt, o->mount_mountpoint, &mp) < 0 || !lx_kptr_ok(os, mp))
                break;                   /* the global root */
            dentry = mp;
            vfsmnt = parent + (uint64_t)o->mount_mnt;
            continue;
        }
        uint64_t parent = 0, nameptr = 0;
        uint32_t nlen = 0;
        if (lx_kfieldptr(os, dentry, o->dentry_parent, &parent) < 0 ||
            lx_kfield32(os, dentry, o->dentry_name_len, &nlen) < 0 ||
            lx_kfieldptr(os, dentry, o->dentry_name, &nameptr) < 0)
            break;
        char name[NAME_MAX_READ + 1];
        long got = lx_kptr_ok(os, nameptr)
                       ? lx_kread_str(os, nameptr, name,
                                   nlen < NAME_MAX_READ ? nlen : NAME_MAX_READ)
                       : -EFAULT;
        if (got < 0)
            break;
        if (parent == dentry) {          /* IS_ROOT, not the mount's root */
            if (!(got == 1 && name[0] == '/')) {
                comp[nc] = strdup(name);
                if (comp[nc])
                    total += (size_t)got + 1, nc++;
            }
            pseudo = true;
            break;
        }
        comp[nc] = strdup(name);
        if (!comp[nc])
            break;
        total += (size_t)got + 1;
        nc++;
        if (total > PATH_OUT_MAX || !lx_kptr_ok(os, parent))
            break;
        dentry = parent;
    }
    if (nc == 0)
        sb_put(out, "/", 1);
    for (unsigned i = nc; i-- > 0;) {
        sb_put(out, "/", 1);
        /* seq_file_path(m, file, "\n") escapes newlines as octal. */
        for (const char *c = comp[i]; *c; c++) {
            if (*c == '\n')
                sb_put(out, "\\012", 4);
            else
                sb_put(out, c, 1);
        }
        free(comp[i]);
    }
    uint64_t pprev = 1, fparent = 0;
    bool deleted = pseudo;
    if (!pseudo && o->dentry_hash_pprev != NONE &&
        lx_kfieldptr(os, first, o->dentry_hash_pprev, &pprev) == 0 &&
        lx_kfieldptr(os, first, o->dentry_parent, &fparent) == 0 &&
        pprev == 0 && fparent != first)
        deleted = true;
    if (deleted)
        sb_put(out, " (deleted)", 10);
}

/* The name column of one VMA, like show_map_vma(). */
static void vma_name(struct linux_os *os, const struct vma *v, uint64_t start_brk,
                     uint64_t brk, uint64_t start_stack, uint64_t vdso, struct sbuf *name)
{
    const struct lx_offsets *o = &os->o;
    if (v->file) {
        if (lx_kptr_ok(os, v->file))
            file_path(os, v->file, name);
        return;
    }
    if (v->ops && lx_kptr_ok(os, v->ops) && o->vmops_name != NONE) {
        uint64_t fn = 0;
        if (lx_kreadptr(os, v->ops + (uint64_t)o->vmops_name, &fn) == 0 && fn) {
            bool special = os->sym_special_mapping_name ? fn == os->sym_special_mapping_name
                                                        : true;
            if (os->sym_gate_vma_name && fn == os->sym_gate_vma_name) {
                sb_put(name, "[vsyscall]", 10);
                return;
            }
            uint64_t np;
            char s[65];
            if (special && lx_kptr_ok(os, v->priv) && o->special_name != NONE &&
                lx_kreadptr(os, v->priv + (uint64_t)o->special_name, &np) == 0 &&
                lx_kptr_ok(os, np) && lx_kread_str(os, np, s, 64) > 0 &&
                (os->sym_special_mapping_name || s[0] == '[')) {
                for (char *c = s; *c; c++)
                    if (*c < 0x20 || *c > 0x7e)
                        *c = '?';
                sb_put(name, s, strlen(s));
                return;
            }
        }
    }
    if (v->start <= brk && v->end >= start_brk) {
        sb_put(name, "[heap]", 6);
        return;
    }
    if (v->start <= start_stack && v->end >= start_stack) {
        sb_put(name, "[stack]", 7);
        return;
    }
    if (vdso && v->start == vdso && !v->ops) {
        sb_put(name, "[vdso]", 6);
        return;
    }
    if (v->anon_name && lx_kptr_ok(os, v->anon_name)) {
        char s[81];
        if (lx_kread_str(os, v->anon_name + (uint64_t)o->anon_vma_name_name, s, 80) >= 0) {
            sb_put(name, "[anon:", 6);
            sb_put(name, s, strlen(s));
            sb_put(name, "]", 1);
        }
    }
}

static void maps_line(struct linux_os *os, const struct vma *v, uint64_t start_brk,
                      uint64_t brk, uint64_t start_stack, uint64_t vdso, struct sbuf *out)
{
    const struct lx_offsets *o = &os->o;
    uint64_t pgoff = 0, ino = 0;
    uint32_t dev = 0;
    if (v->file && lx_kptr_ok(os, v->file)) {
        uint64_t inode = 0, sb = 0;
        pgoff = v->pgoff << 12;
        if (lx_kfieldptr(os, v->file, o->file_inode, &inode) == 0 && lx_kptr_ok(os, inode)) {
            lx_kfieldptr(os, inode, o->inode_ino, &ino);
            if (lx_kfieldptr(os, inode, o->inode_sb, &sb) == 0 && lx_kptr_ok(os, sb))
                lx_kfield32(os, sb, o->sb_dev, &dev);
        }
    }
    size_t line_start = out->len;
    sb_printf(out, "%08" PRIx64 "-%08" PRIx64 " %c%c%c%c %08" PRIx64 " %02x:%02x %" PRIu64 " ",
              v->start, v->end, v->flags & VM_READ ? 'r' : '-',
              v->flags & VM_WRITE ? 'w' : '-', v->flags & VM_EXEC ? 'x' : '-',
              v->flags & VM_MAYSHARE ? 's' : 'p', pgoff, dev >> 20, dev & 0xfffff, ino);
    struct sbuf name = {0};
    vma_name(os, v, start_brk, brk, start_stack, vdso, &name);
    if (name.len) {
        /* seq_pad(m, ' '): spaces up to 25 + 6 * sizeof(void *) - 1 = 72
         * columns (48 on i386), then one more space. */
        size_t col = out->len - line_start, width = 25 + 6 * (size_t)os->psize - 1;
        while (col < width) {
            sb_put(out, " ", 1);
            col++;
        }
        sb_put(out, " ", 1);
        sb_put(out, name.p, name.len);
    }
    free(name.p);
    sb_put(out, "\n", 1);
}

char *linux_os_maps(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    struct sbuf out = {0};
    if (t->kernel_thread || !t->mm_gva)
        return sb_finish(&out, len);
    const struct lx_offsets *o = &os->o;
    uint64_t mm = t->mm_gva;
    struct vma_list l = {0};
    if (o->mm_mt_root != NONE)
        lx_maple_collect(os, mm, &l);
    else if (o->mm_mmap != NONE && o->vma_next != NONE)
        lx_mmap_list_collect(os, mm, &l);
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, lx_cmp_vma);
    uint64_t start_brk = 0, brk = 0, start_stack = 0, vdso = 0;
    lx_kfieldptr(os, mm, o->mm_start_brk, &start_brk);
    lx_kfieldptr(os, mm, o->mm_brk, &brk);
    lx_kfieldptr(os, mm, o->mm_start_stack, &start_stack);
    lx_kfieldptr(os, mm, o->mm_vdso, &vdso);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].start < prev_end)    /* overlapping: a stale entry */
            continue;
        maps_line(os, &l.v[i], start_brk, brk, start_stack, vdso, &out);
        prev_end = l.v[i].end;
    }
    if (os->vsyscall_on) {
        struct vma g = {.gva = os->gate_vma};
        if (lx_kfieldptr(os, g.gva, o->vma_start, &g.start) == 0 &&
            lx_kfieldptr(os, g.gva, o->vma_end, &g.end) == 0 &&
            lx_kfieldptr(os, g.gva, o->vma_flags, &g.flags) == 0 && g.start < g.end) {
            lx_kfieldptr(os, g.gva, o->vma_ops, &g.ops);
            maps_line(os, &g, 0, 0, 0, 0, &out);
        }
    }
    if (l.truncated)
        vmem_log_ratelimited(os->kas, LOG_WARNING, "VM '%s': pid %u: the memory-area "
                             "walk skipped bad nodes or hit a bound", vm_name(os->vm),
                             t->pid);
    free(l.v);
    addrset_free(&l.seen);
    return sb_finish(&out, len);
}

char *linux_os_status(struct linux_os *os, const struct vmem_proc *t, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct sbuf out = {0};
    uint32_t id[8] = {t->uid, t->euid, t->uid, t->uid, 0, 0, 0, 0};
    bool have_gid = false;
    uint64_t cred = 0;
    if (lx_kfieldptr(os, t->task_gva, o->task_real_cred, &cred) == 0 && lx_kptr_ok(os, cred)) {
        long offs[8] = {o->cred_uid, o->cred_euid, o->cred_suid, o->cred_fsuid,
                        o->cred_gid, o->cred_egid, o->cred_sgid, o->cred_fsgid};
        for (int i = 0; i < 8; i++) {
            uint32_t v;
            if (lx_kfield32(os, cred, offs[i], &v) == 0) {
                id[i] = v;
                if (i >= 4)
                    have_gid = true;
            }
        }
    }
    uint32_t tid = t->pid;
    lx_kfield32(os, t->task_gva, o->task_pid, &tid);
    sb_printf(&out, "Name:\t%s\n", t->comm);
    sb_printf(&out, "State:\t%s\n", lx_state_name(t->state));
    sb_printf(&out, "Tgid:\t%u\n", t->pid);
    sb_printf(&out, "Pid:\t%u\n", tid);
    sb_printf(&out, "PPid:\t%u\n", t->ppid);
    sb_printf(&out, "Uid:\t%u\t%u\t%u\t%u\n", id[0], id[1], id[2], id[3]);
    if (have_gid)
        sb_printf(&out, "Gid:\t%u\t%u\t%u\t%u\n", id[4], id[5], id[6], id[7]);
    lx_status_mem(os, t, &out);
    sb_printf(&out, "Threads:\t%u\n", t->nthreads);
    lx_status_more(os, t, &out);
    sb_printf(&out, "Kthread:\t%d\n", t->kernel_thread ? 1 : 0);
    sb_printf(&out, "Dtb:\t0x%" PRIx64 "\n", t->dtb);
    sb_printf(&out, "Task:\t0x%" PRIx64 "\n", t->task_gva);
    sb_printf(&out, "Mm:\t0x%" PRIx64 "\n", t->mm_gva);
    return sb_finish(&out, len);
}
