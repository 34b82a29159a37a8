/*
 * vm_internal.h - what the pieces of the VM object share, and nobody else:
 * the object itself and its layout snapshots.
 *
 *   vm.c    the object: open over a driver, references, layouts and their
 *           refresh, pause/resume, vCPUs
 *   read.c  the physical and virtual read paths (plan, cache, one driver
 *           batch, reply), writes, SEEK_DATA/SEEK_HOLE
 *   info.c  info.json and memmap, rendered where read
 */
#ifndef VMEMFS_CORE_PHYS_VM_INTERNAL_H
#define VMEMFS_CORE_PHYS_VM_INTERNAL_H

#include "core/phys/vm.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/phys/cache.h"
#include "core/phys/guard.h"
#include "core/util/log.h"
#include "core/arch/x86/paging.h"
#include "core/phys/ranges.h"

#define VM_READ_MAX   (1u << 20)
#define VM_MAX_SLOTS  (VM_READ_MAX / VMEM_PAGE_SIZE + 2)
#define VM_MAX_RA     256u
#define PREFETCH_WINDOW (4u << 20)   /* ahead of a sequential mapped reader */
#define BULK_FRAMES   32u            /* a read this large is a copy or a scan */
#define CLUSTER_FRAMES 16u           /* core reads of slow live sources: 64 KiB */
#define VM_INFO_RANGES 256u          /* ranges info.json lists */

struct vm_layout {
    const struct vmem_range *r;
    size_t n;
    uint64_t phys_size;
    /* Figures of every stat, computed once per layout (a dump may hold
     * millions of ranges): RAM bytes present, and memmap's length. */
    uint64_t present;
    uint64_t memmap_len;
    struct vm_layout *older;
};


struct vm {
    atomic_int refs;
    char *name;
    char *spec;
    struct vmem_driver drv;
    struct vm_options opt;
    /* The guest-physical layout.  Live sources can change it (vm_refresh):
     * readers take one snapshot per operation; old layouts stay until the
     * VM is freed, like the driver's arrays they point into. */
    _Atomic(struct vm_layout *) layout;
    struct vmem_cache *cache;       /* NULL when the driver maps memory */
    atomic_uint_fast64_t ra_frames, batches, frames_read;
    atomic_bool gone;               /* the source has gone for good */
};

static inline const struct vm_layout *layout_of(const struct vm *vm)
{
    return atomic_load(&((struct vm *)vm)->layout);
}

/* Holes of the padded view point here: read-only use only (read.c). */
extern uint8_t vm_zeros[VM_READ_MAX];

/* Figures every stat needs, computed once per layout (info.c). */
void vm_layout_figures(struct vm_layout *L);

#endif
