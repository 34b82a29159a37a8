/*
 * mounts.c - kernel/mounts (see linux.h): init's mount namespace
 * (init_task.nsproxy->mnt_ns->list, mount.mnt_list) as /proc/mounts prints
 * it (show_vfsmnt): device, mount point, type, options, "0 0".  The options
 * are the generic ones (rw/ro, the superblock's sync/dirsync/mand/lazytime,
 * the mount's nosuid/nodev/noexec/noatime/nodiratime/relatime/nosymfollow);
 * what a file system's own show_options adds (size=, mode=, ...) is code,
 * not data, and is left out.  Bounded (MOUNTS_MAX), cycle-safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

/* mangle(): seq_escape(m, s, " \t\n\\") */
static void mangle(struct sbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\\')
            sb_printf(out, "\\%03o", c);
        else
            sb_put(out, s + i, 1);
    }
}

static void kstr(struct linux_os *os, uint64_t p, const char *dflt, struct sbuf *out)
{
    char s[257];
    long n = lx_kptr_ok(os, p) ? lx_kread_str(os, p, s, 256) : -1;
    if (n < 0)
        mangle(out, dflt, strlen(dflt));
    else
        mangle(out, s, (size_t)n);
}

char *linux_os_mounts(struct linux_os *os, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    long need[] = {o->task_nsproxy, o->nsproxy_mnt_ns, o->mntns_list, o->mnt_list,
                   o->mount_mnt, o->vfsmnt_root, o->vfsmnt_sb, o->sb_type, o->fstype_name};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i] == NONE) {
            errno = ENOENT;
            return NULL;
        }
    uint64_t nsproxy = 0, ns = 0, p = 0;
    if (lx_kfieldptr(os, os->init_task, o->task_nsproxy, &nsproxy) < 0 ||
        !lx_kptr_ok(os, nsproxy) || lx_kfieldptr(os, nsproxy, o->nsproxy_mnt_ns, &ns) < 0 ||
        !lx_kptr_ok(os, ns)) {
        errno = EIO;
        return NULL;
    }
    const uint64_t head = ns + (uint64_t)o->mntns_list;
    if (lx_kreadptr(os, head, &p) < 0) {
        errno = EIO;
        return NULL;
    }
    struct sbuf out = {0};
    struct addrset seen = {0};
    addrset_add(&seen, head);
    bool cut = false;
    for (unsigned n = 0; p != head; n++) {
        if (n >= MOUNTS_MAX || !lx_kptr_ok(os, p) || addrset_add(&seen, p) != 1) {
            cut = true;
            break;
        }
        uint64_t mnt = p - (uint64_t)o->mnt_list, vfs = mnt + (uint64_t)o->mount_mnt;
        uint64_t devname = 0, root = 0, sb = 0, type = 0, tname = 0, sbflags = 0, sub = 0;
        uint32_t mflags = 0;
        lx_kfieldptr(os, mnt, o->mnt_devname, &devname);
        lx_kfieldptr(os, vfs, o->vfsmnt_root, &root);
        lx_kfieldptr(os, vfs, o->vfsmnt_sb, &sb);
        lx_kfield32(os, vfs, o->vfsmnt_flags, &mflags);
        if (lx_kptr_ok(os, sb)) {
            lx_kfieldptr(os, sb, o->sb_type, &type);
            lx_kfieldptr(os, sb, o->sb_flags, &sbflags);
            lx_kfieldptr(os, sb, o->sb_subtype, &sub);
            if (lx_kptr_ok(os, type))
                lx_kfieldptr(os, type, o->fstype_name, &tname);
        }
        kstr(os, devname, "none", &out);
        sb_put(&out, " ", 1);
        if (lx_kptr_ok(os, root)) {
            struct sbuf path = {0};
            lx_path_text(os, vfs, root, &path);
            mangle(&out, path.p ? path.p : "?", path.p ? path.len : 1);
            free(path.p);
        } else
            sb_put(&out, "?", 1);
        sb_put(&out, " ", 1);
        kstr(os, tname, "?", &out);
        if (sub && lx_kptr_ok(os, sub)) {
            sb_put(&out, ".", 1);
            kstr(os, sub, "", &out);
        }
        bool ro = (mflags & 0x40) || (sbflags & 1);     /* MNT_READONLY, SB_RDONLY */
        sb_put(&out, ro ? " ro" : " rw", 3);
        static const struct { uint64_t bit; const char *s; } sbo[] = {
            {16, ",sync"}, {128, ",dirsync"}, {64, ",mand"}, {1u << 25, ",lazytime"},
        }, mno[] = {
            {1, ",nosuid"}, {2, ",nodev"}, {4, ",noexec"}, {8, ",noatime"},
            {0x10, ",nodiratime"}, {0x20, ",relatime"}, {0x80, ",nosymfollow"},
        };
        for (size_t i = 0; i < sizeof sbo / sizeof sbo[0]; i++)
            if (sbflags & sbo[i].bit)
                sb_put(&out, sbo[i].s, strlen(sbo[i].s));
        for (size_t i = 0; i < sizeof mno / sizeof mno[0]; i++)
            if (mflags & mno[i].bit)
                sb_put(&out, mno[i].s, strlen(mno[i].s));
        sb_put(&out, " 0 0\n", 5);
        if (lx_kreadptr(os, p, &p) < 0) {
            cut = true;
            break;
        }
    }
    addrset_free(&seen);
    if (cut)
        sb_printf(&out, "# incomplete: the mount list has a bad link or more than %u "
                  "mounts\n", MOUNTS_MAX);
    return sb_finish(&out, len);
}
