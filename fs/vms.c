/*
 * vms.c - the VMs of the mount (see internal.h): each with its guest OS
 * (recognised at once, or later for a live guest still in its firmware),
 * at the root or under a group, added and removed while files are open.
 */
#include "fs/internal.h"

/* ---- VMs in the mount ---------------------------------------------------- */

struct fs_vm *fs_vm_new(struct vmemfs *fs, struct vm *vm)
{
    struct fs_vm *fv = calloc(1, sizeof *fv);
    if (!fv) {
        vm_put(vm);
        return NULL;
    }
    atomic_init(&fv->refs, 1);
    pthread_mutex_init(&fv->freeze_lock, NULL);
    fv->vm = vm;
    fv->group = -1;
    struct vmem_os *os = vmem_os_open(vm, &fs->opt.os_opt, fv->os_why,
                                      sizeof fv->os_why);
    fv->os = os;
    if (os) {
        struct vmem_procs *t = vmem_os_procs(os);
        vmem_log(LOG_INFO, "VM '%s': %s guest, %zu processes%s", vm_name(vm),
                 os->ops->name, t ? t->n : 0,
                 t && t->truncated ? " (process list cut short)" : "");
        if (t)
            vmem_os_procs_put(os, t);
    } else {
        vmem_log(LOG_NOTICE, "VM '%s': no proc/: %s", vm_name(vm), fv->os_why);
    }
    return fv;
}

void fs_vm_revisit(struct vmemfs *fs, struct fs_vm *fv, uint64_t now_ns)
{
    if (vm_immutable(fv->vm) || vm_gone(fv->vm))
        return;
    /* The layout changes when the firmware runs (a guest found at -S, as
     * libvirt starts them): every second while a VM is new, then every ten
     * (one 'info mtree -f', a few ms, each time). */
    if (!fv->added_ns)
        fv->added_ns = now_ns;
    if (now_ns >= fv->refresh_ns) {
        vm_refresh(fv->vm);
        fv->refresh_ns = now_ns + (now_ns - fv->added_ns < 60000000000ull
                                   ? 1000000000ull : 10000000000ull);
    }
    if (fv->os || now_ns < fv->os_retry_ns)
        return;
    char why[256];
    struct vmem_os *os = vmem_os_open(fv->vm, &fs->opt.os_opt, why, sizeof why);
    if (!os) {
        /* 5 s, 10 s, 20 s ... up to a minute: a guest still in its firmware
         * costs a banner scan now and then, not a steady load. */
        unsigned shift = fv->os_retries < 4 ? fv->os_retries : 4;
        fv->os_retry_ns = now_ns + (5000000000ull << shift);
        if (fv->os_retries < 32)
            fv->os_retries++;
        return;
    }
    struct vmem_os *none = NULL;
    if (!atomic_compare_exchange_strong(&fv->os, &none, os)) {
        vmem_os_close(os);
        return;
    }
    /* Live entries expire after a second: proc/ shows up without a nudge. */
    vmem_log(LOG_INFO, "VM '%s': %s guest recognised now: proc/ is there",
             vm_name(fv->vm), os->ops->name);
}

struct fs_vm *fs_vm_get(struct fs_vm *fv)
{
    atomic_fetch_add(&fv->refs, 1);
    return fv;
}

void fs_vm_put(struct fs_vm *fv)
{
    if (!fv || atomic_fetch_sub(&fv->refs, 1) != 1)
        return;
    vmem_os_close(fv->os);
    vm_put(fv->vm);
    pthread_mutex_destroy(&fv->freeze_lock);
    free(fv);
}

struct fs_vm *fv_of_ino(struct vmemfs *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID || ino_kind(ino) == K_GROUPDIR)
        return NULL;
    size_t slot = ino_slot(ino);
    struct fs_vm *fv = NULL;
    pthread_rwlock_rdlock(&fs->lock);
    if (slot < fs->nslots && fs->slots[slot])
        fv = fs_vm_get(fs->slots[slot]);
    pthread_rwlock_unlock(&fs->lock);
    return fv;
}

/* The index of a group, created when asked; -1 when there is no room.
 * Under the write lock. */
static int group_index(struct vmemfs *fs, const char *group, bool create)
{
    for (size_t g = 0; g < fs->ngroups; g++)
        if (strcmp(fs->groups[g], group) == 0)
            return (int)g;
    if (!create || fs->ngroups == VMEMFS_MAX_GROUPS)
        return -1;
    snprintf(fs->groups[fs->ngroups], sizeof fs->groups[0], "%s", group);
    return (int)fs->ngroups++;
}

int vmemfs_add_group(struct vmemfs *fs, const char *group)
{
    pthread_rwlock_wrlock(&fs->lock);
    int rc = 0;
    for (size_t i = 0; i < fs->nslots; i++)
        if (fs->slots[i] && fs->slots[i]->group < 0 &&
            strcmp(vm_name(fs->slots[i]->vm), group) == 0)
            rc = -EEXIST;
    if (rc == 0 && group_index(fs, group, true) < 0)
        rc = -ENOSPC;
    pthread_rwlock_unlock(&fs->lock);
    return rc;
}

int vmemfs_add_vm(struct vmemfs *fs, const char *group, struct fs_vm *fv)
{
    int rc = -ENOSPC;
    pthread_rwlock_wrlock(&fs->lock);
    fv->group = -1;
    if (group) {
        /* A group's name shares the root with VM names: keep them apart. */
        for (size_t i = 0; i < fs->nslots; i++)
            if (fs->slots[i] && fs->slots[i]->group < 0 &&
                strcmp(vm_name(fs->slots[i]->vm), group) == 0) {
                rc = -EEXIST;
                goto out;
            }
        fv->group = group_index(fs, group, true);
        if (fv->group < 0)
            goto out;
    } else if (group_index(fs, vm_name(fv->vm), false) >= 0) {
        rc = -EEXIST;
        goto out;
    }
    for (size_t i = 0; i < fs->nslots; i++) {
        if (fs->slots[i] && fs->slots[i]->group == fv->group &&
            strcmp(vm_name(fs->slots[i]->vm), vm_name(fv->vm)) == 0) {
            rc = -EEXIST;
            goto out;
        }
    }
    for (size_t i = 0; i < VMEMFS_MAX_VMS; i++) {
        if (!fs->slots[i]) {
            fs->slots[i] = fv;
            fs->generation[i]++;
            if (i >= fs->nslots)
                fs->nslots = i + 1;
            rc = 0;
            break;
        }
    }
out:
    pthread_rwlock_unlock(&fs->lock);
    return rc;
}

int vmemfs_remove_vm(struct vmemfs *fs, const char *group, const char *name)
{
    struct fs_vm *gone = NULL;
    size_t slot = 0;
    pthread_rwlock_wrlock(&fs->lock);
    int g = group ? group_index(fs, group, false) : -1;
    for (size_t i = 0; i < fs->nslots && (!group || g >= 0); i++) {
        if (fs->slots[i] && fs->slots[i]->group == g &&
            strcmp(vm_name(fs->slots[i]->vm), name) == 0) {
            gone = fs->slots[i];
            fs->slots[i] = NULL;
            fs->generation[i]++;
            slot = i;
            break;
        }
    }
    pthread_rwlock_unlock(&fs->lock);
    if (!gone)
        return -ENOENT;
    /* Tell the kernel the directory is gone, so cached lookups do not keep
     * answering for it. */
    (void)slot;
    if (fs->se)
        fuse_lowlevel_notify_inval_entry(fs->se, g < 0 ? FUSE_ROOT_ID
                                         : make_ino((size_t)g, K_GROUPDIR, 0),
                                         name, strlen(name));
    fs_vm_put(gone);
    return 0;
}
