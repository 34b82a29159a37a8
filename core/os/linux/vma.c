/*
 * vma.c - memory areas of a process (see internal.h): the maple tree (6.1+) or
 * the mmap list before it, bounded and cycle-safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/phys/vm.h"
#include "core/util/log.h"

/* ---- memory areas ----------------------------------------------------------- */



/* Read and check one vm_area_struct; add it when sane. */
static void vma_add(struct linux_os *os, uint64_t mm, struct vma_list *l, uint64_t gva)
{
    const struct lx_offsets *o = &os->o;
    if (!lx_kptr_ok(os, gva) || (gva & (os->psize - 1)))
        return;
    if (l->n >= VMAS_MAX) {
        l->truncated = true;
        return;
    }
    int a = addrset_add(&l->seen, gva);
    if (a <= 0) {
        if (a < 0)
            l->truncated = true;
        return;
    }
    struct vma v = {.gva = gva};
    uint64_t vm_mm = 0;
    if (lx_kfieldptr(os, gva, o->vma_start, &v.start) < 0 ||
        lx_kfieldptr(os, gva, o->vma_end, &v.end) < 0 ||
        lx_kfieldptr(os, gva, o->vma_flags, &v.flags) < 0)
        return;
    if (v.start >= v.end || (v.start & 0xfff) || (v.end & 0xfff) ||
        v.end > lx_user_limit(os))
        return;
    if (o->vma_mm != NONE && (lx_kfieldptr(os, gva, o->vma_mm, &vm_mm) < 0 || vm_mm != mm))
        return;
    lx_kfieldptr(os, gva, o->vma_pgoff, &v.pgoff);
    lx_kfieldptr(os, gva, o->vma_file, &v.file);
    lx_kfieldptr(os, gva, o->vma_ops, &v.ops);
    lx_kfieldptr(os, gva, o->vma_private, &v.priv);
    if (os->have_anon_vma_name && !v.file)
        lx_kfieldptr(os, gva, o->vma_anon_name, &v.anon_name);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        struct vma *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            l->truncated = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
}

/* xa_is_node(): ma_root holding a node (an encoded node pointer tagged
 * as an XArray internal entry).  Inside the tree, slots of internal nodes
 * hold maple_enodes: node | type << 3 | MAPLE_ENODE_NULL (4), untagged. */
static bool mt_root_is_node(uint64_t e)
{
    return (e & 3) == 2 && e > 4096;
}

struct mt_frame {
    uint64_t enode, min, max, parent;
    unsigned depth;
};

/* Collect the VMAs of a maple tree (mm->mm_mt).  Every node's parent
 * pointer must name the node we came from (dead nodes point to
 * themselves); depth, node count and the visited set bound the walk. */
void lx_maple_collect(struct linux_os *os, uint64_t mm, struct vma_list *l)
{
    const struct lx_offsets *o = &os->o;
    const unsigned ps = os->psize;          /* slots and pivots: 8 or 4 bytes */
    uint64_t tree = mm + (uint64_t)o->mm_mt_root;     /* maple_tree.ma_root */
    uint64_t root = 0;
    if (lx_kreadptr(os, tree, &root) < 0) {
        l->truncated = true;
        return;
    }
    if (!root)
        return;
    if (!mt_root_is_node(root)) {
        vma_add(os, mm, l, root);            /* a single entry at index 0 */
        return;
    }
    /* The root node's parent is &mm->mm_mt | MA_ROOT_PARENT: compared
     * masked, like every parent pointer. */
    uint64_t mt_base = mm + (uint64_t)o->mm_mt;
    struct mt_frame stack[MAPLE_DEPTH_MAX * 16 + 16];
    size_t sp = 0;
    stack[sp++] = (struct mt_frame){root, 0, lx_ulong_max(os), mt_base & ~0xffull, 1};
    struct addrset seen = {0};
    unsigned nodes = 0;
    uint8_t nb[256];
    while (sp) {
        struct mt_frame f = stack[--sp];
        uint64_t node = f.enode & ~0xffull;
        unsigned type = (unsigned)(f.enode >> 3) & 0xf;
        if (++nodes > MAPLE_NODES_MAX || !lx_kptr_ok(os, node) ||
            addrset_add(&seen, node) != 1) {
            l->truncated = true;
            if (nodes > MAPLE_NODES_MAX)
                break;
            continue;
        }
        if (lx_kread(os, node, nb, sizeof nb) < 0) {
            l->truncated = true;
            continue;
        }
        if ((lx_ldptr(os, nb) & ~0xffull) != f.parent) {
            l->truncated = true;     /* stale or foreign node */
            continue;
        }
        long piv_off, slot_off;
        unsigned npiv, nslot, end;
        switch (type) {
        case 0:                      /* maple_dense: slots only */
            slot_off = o->dense_slot;
            nslot = o->dense_nslots;
            for (unsigned i = 0; i < nslot && slot_off + ps * (i + 1) <= 256; i++) {
                uint64_t e = lx_ldptr(os, nb + slot_off + ps * i);
                if (e)
                    vma_add(os, mm, l, e);
            }
            continue;
        case 1:                      /* maple_leaf_64 */
        case 2:                      /* maple_range_64 */
            piv_off = o->r64_pivot;
            slot_off = o->r64_slot;
            npiv = o->r64_npivots;
            nslot = o->r64_nslots;
            if (piv_off + (long)ps * npiv > 256 || slot_off + (long)ps * nslot > 256 ||
                npiv == 0) {
                l->truncated = true;
                continue;
            }
            /* ma_data_end() */
            {
                uint64_t lastp = lx_ldptr(os, nb + piv_off + ps * (npiv - 1));
                if (!lastp)
                    end = o->r64_meta >= 0 && o->r64_meta < 256 ? nb[o->r64_meta] : npiv;
                else if (lastp == f.max)
                    end = npiv - 1;
                else
                    end = npiv;
            }
            break;
        case 3:                      /* maple_arange_64 */
            piv_off = o->a64_pivot;
            slot_off = o->a64_slot;
            npiv = o->a64_npivots;
            nslot = o->a64_nslots;
            if (piv_off + (long)ps * npiv > 256 || slot_off + (long)ps * nslot > 256 ||
                npiv == 0) {
                l->truncated = true;
                continue;
            }
            end = o->a64_meta >= 0 && o->a64_meta < 256 ? nb[o->a64_meta] : npiv;
            break;
        default:
            l->truncated = true;
            continue;
        }
        if (end >= nslot)
            end = nslot - 1;
        bool leaf = type < 2;
        /* Children in reverse so the walk visits them in address order. */
        for (int i = (int)end; i >= 0; i--) {
            uint64_t e = lx_ldptr(os, nb + slot_off + ps * (unsigned)i);
            if (!e)
                continue;
            if (leaf) {
                vma_add(os, mm, l, e);
                continue;
            }
            if (!lx_kptr_ok(os, e & ~0xffull) || f.depth >= MAPLE_DEPTH_MAX ||
                sp >= sizeof stack / sizeof stack[0]) {
                l->truncated = true;
                continue;
            }
            uint64_t cmin = i == 0 || (unsigned)(i - 1) >= npiv
                                ? f.min : lx_ldptr(os, nb + piv_off + ps * (unsigned)(i - 1)) + 1;
            uint64_t cmax = f.max;
            if ((unsigned)i < npiv) {
                uint64_t p = lx_ldptr(os, nb + piv_off + ps * (unsigned)i);
                if (p)
                    cmax = p;
            }
            stack[sp++] = (struct mt_frame){e, cmin, cmax, node, f.depth + 1};
        }
    }
    addrset_free(&seen);
}

/* Pre-6.1: mm->mmap, vma->vm_next. */
void lx_mmap_list_collect(struct linux_os *os, uint64_t mm, struct vma_list *l)
{
    uint64_t v = 0;
    if (lx_kfieldptr(os, mm, os->o.mm_mmap, &v) < 0) {
        l->truncated = true;
        return;
    }
    for (unsigned n = 0; v; n++) {
        size_t before = l->seen.n;
        if (n >= VMAS_MAX || !lx_kptr_ok(os, v)) {
            l->truncated = true;
            return;
        }
        vma_add(os, mm, l, v);
        if (l->seen.n == before) {      /* a repeat: the list loops */
            l->truncated = true;
            return;
        }
        if (lx_kfieldptr(os, v, os->o.vma_next, &v) < 0) {
            l->truncated = true;
            return;
        }
    }
}

int lx_cmp_vma(const void *a, const void *b)
{
    const struct vma *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* d_path() of a file, as far as memory allows: dentry names up through the
 * mounts to the global root.  Pseudo files (memfd, shared anonymous
 * memory: a root dentry that is not its mount's root) read as "/name
 * (deleted)", as simple_dname() writes them; unlinked files get
 * " (deleted)". */
