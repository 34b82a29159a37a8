/*
 * internal.h - what the pieces of the FUSE front end share, and nobody
 * else: the inode numbering (ino = slot << 40 | kind << 32 | pid), the kinds
 * of files, and the operations each piece implements.
 *
 *   fs.c     the operations table, init, and what cannot be done
 *   vms.c    the VMs of the mount: recognising their OS, groups, adding
 *            and removing them while files are open
 *   tree.c   attributes, lookup, directories: the VM's own files and the
 *            rows of its OS's tables (core/os/os.h)
 *   files.c  open files: reads and writes of memory and text, control,
 *            --freeze-on-open, SEEK_DATA/SEEK_HOLE, release
 */
#ifndef VMEMFS_FS_INTERNAL_H
#define VMEMFS_FS_INTERNAL_H

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arch/x86/paging.h"
#include "core/util/log.h"
#include "fs/fs.h"

enum file_kind {
    K_NONE = 0,
    K_VMDIR,
    K_PMEM,
    K_PMEM_RAW,
    K_INFO,
    K_MEMMAP,
    K_CONTROL,
    K_PROCDIR,
    K_KERNELDIR,
    K_PIDDIR,
    K_GROUPDIR,                 /* slot is the group's index, not a VM's */
    K_ROWDIR,                   /* a directory of OS rows ("net/", "symbols/
                                   linux/"): pid says which (rowdir_id) */
    /* Rows of the OS's tables (core/os/os.h): kind = base + row index. */
    K_PROC_ROW = 64,
    K_KERNEL_ROW = 128,
    K_VM_ROW = 192,
    K_ROW_END = 256,
};
#define ROWS_MAX 64u

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static inline bool is_dir(enum file_kind k)
{
    return k == K_VMDIR || k == K_PROCDIR || k == K_KERNELDIR || k == K_PIDDIR ||
           k == K_GROUPDIR || k == K_ROWDIR;
}

/* The OS table row an inode of kind k stands for, or NULL.  The OS can
 * only be set once (never replaced), so a row index stays valid. */
static inline const struct vmem_os_file *os_row(const struct vmem_os *os,
                                         enum file_kind k)
{
    if (!os)
        return NULL;
    const struct vmem_os_ops *o = os->ops;
    if (k >= K_PROC_ROW && k < K_KERNEL_ROW && (size_t)(k - K_PROC_ROW) < o->nproc_files)
        return &o->proc_files[k - K_PROC_ROW];
    if (k >= K_KERNEL_ROW && k < K_VM_ROW && (size_t)(k - K_KERNEL_ROW) < o->nkernel_files)
        return &o->kernel_files[k - K_KERNEL_ROW];
    if (k >= K_VM_ROW && k < K_ROW_END && (size_t)(k - K_VM_ROW) < o->nvm_files)
        return &o->vm_files[k - K_VM_ROW];
    return NULL;
}
static inline bool is_proc_row(enum file_kind k) { return k >= K_PROC_ROW && k < K_KERNEL_ROW; }

/* Rows of the kernel and VM tables may sit in directories ("net/tcp",
 * "symbols/linux/6.1.json").  A directory is named by the row that first
 * has that path and by its depth: rowdir_id(table, depth, row). */
enum { TBL_PROC, TBL_KERNEL, TBL_VM };
static const enum file_kind tbl_base[] = {K_PROC_ROW, K_KERNEL_ROW, K_VM_ROW};

static inline fuse_ino_t make_ino(size_t slot, enum file_kind kind, uint32_t pid)
{
    return ((fuse_ino_t)(slot + 1) << 40) | ((fuse_ino_t)kind << 32) | pid;
}
/* A VM's directory inode, or its group's (-1: the root). */
static inline size_t ino_slot(fuse_ino_t ino) { return (size_t)(ino >> 40) - 1; }
static inline enum file_kind ino_kind(fuse_ino_t ino)
{
    return (enum file_kind)((ino >> 32) & 0xff);
}
static inline uint32_t ino_pid(fuse_ino_t ino) { return (uint32_t)ino; }

static inline struct vmemfs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* ---- vms.c ---- */
/* A counted reference to the VM behind an inode, or NULL if it is gone. */
struct fs_vm *fv_of_ino(struct vmemfs *fs, fuse_ino_t ino);

/* ---- tree.c ---- */
int fill_attr(struct vmemfs *fs, fuse_ino_t ino, struct fs_vm *fv, struct stat *st);
double attr_timeout(struct fs_vm *fv);
char *info_text(struct fs_vm *fv, size_t *len);
/* Does the process exist now?  Fills *out (copy) when it does. */
bool task_lookup(struct fs_vm *fv, uint32_t pid, struct vmem_proc *out);
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- files.c ---- */
extern const char control_help[];
extern const size_t control_help_len;
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
             struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
              struct fuse_file_info *fi);

#endif
