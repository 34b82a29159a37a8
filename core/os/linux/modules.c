/*
 * modules.c - kernel/modules (see linux.h): the `modules` list as
 * /proc/modules prints it (m_show, print_unload_info, module_flags):
 *   name size refcount users,|- state address [(taints)]
 * Bounded (MODULES_MAX, and as many users per module) and cycle-safe.
 * Kernels from 6.4 keep sizes in mod->mem[]: without core_layout in the
 * profile the size and address columns are 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

/* kernel/panic.c taint_flags[]: the letters that apply to modules. */
static const char taint_letter[] = {
    [0] = 'P', [1] = 'F', [10] = 'C', [12] = 'O', [13] = 'E', [15] = 'K',
    [16] = 'X', [17] = 'T', [18] = 'N',
};

static void mod_name(struct linux_os *os, uint64_t mod, char *name)
{
    unsigned n = os->o.mod_name_len < 64 ? os->o.mod_name_len : 64;
    if (lx_kread(os, mod + (uint64_t)os->o.mod_name, name, n) < 0)
        n = 0;
    name[n] = 0;
    for (char *c = name; *c; c++)
        if (*c <= 0x20 || *c > 0x7e)
            *c = '?';
}

char *linux_os_modules(struct linux_os *os, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct sbuf out = {0};
    uint64_t head = lx_sym(os, "modules"), p = 0;
    if (!head || o->mod_list == NONE || o->mod_name == NONE) {
        errno = ENOENT;
        return NULL;
    }
    if (lx_kreadptr(os, head, &p) < 0) {
        errno = EIO;
        return NULL;
    }
    struct addrset seen = {0};
    addrset_add(&seen, head);
    bool cut = false;
    for (unsigned n = 0; p != head; n++) {
        if (n >= MODULES_MAX || !lx_kptr_ok(os, p) || addrset_add(&seen, p) != 1) {
            cut = true;
            break;
        }
        uint64_t mod = p - (uint64_t)o->mod_list;
        char name[65];
        uint32_t state = 0, refcnt = 0, core = 0, init = 0;
        uint64_t base = 0, taints = 0, initfn = 0, exitfn = 0;
        mod_name(os, mod, name);
        lx_kfield32(os, mod, o->mod_state, &state);
        lx_kfield32(os, mod, o->mod_refcnt, &refcnt);
        bool have_size = lx_kfield32(os, mod, o->mod_core_size, &core) == 0;
        lx_kfield32(os, mod, o->mod_init_size, &init);
        lx_kfieldptr(os, mod, o->mod_core_base, &base);
        lx_kfieldptr(os, mod, o->mod_taints, &taints);
        if (state == 3) {                       /* MODULE_STATE_UNFORMED: skipped */
            if (lx_kreadptr(os, p, &p) < 0)
                cut = true;
            if (cut)
                break;
            continue;
        }
        sb_printf(&out, "%s %u %d ", name, have_size ? core + init : 0, (int32_t)(refcnt - 1));
        /* Users: the modules that depend on this one. */
        bool printed = false;
        if (o->mod_source_list != NONE && o->use_source_list != NONE && o->use_source != NONE) {
            uint64_t uhead = mod + (uint64_t)o->mod_source_list, u = 0;
            struct addrset useen = {0};
            addrset_add(&useen, uhead);
            if (lx_kreadptr(os, uhead, &u) == 0)
                for (unsigned k = 0; u != uhead && k < MODULES_MAX && lx_kptr_ok(os, u) &&
                                     addrset_add(&useen, u) == 1; k++) {
                    uint64_t src = 0;
                    char sname[65];
                    if (lx_kreadptr(os, u - (uint64_t)o->use_source_list +
                                            (uint64_t)o->use_source, &src) < 0 ||
                        !lx_kptr_ok(os, src))
                        break;
                    mod_name(os, src, sname);
                    sb_printf(&out, "%s,", sname);
                    printed = true;
                    if (lx_kreadptr(os, u, &u) < 0)
                        break;
                }
            addrset_free(&useen);
        }
        if (lx_kfieldptr(os, mod, o->mod_init, &initfn) == 0 && initfn &&
            lx_kfieldptr(os, mod, o->mod_exit, &exitfn) == 0 && !exitfn) {
            sb_put(&out, "[permanent],", 12);
            printed = true;
        }
        if (!printed)
            sb_put(&out, "-", 1);
        sb_printf(&out, " %s 0x%0*" PRIx64, state == 2 ? "Unloading" : state == 1 ? "Loading"
                                                                                   : "Live",
                  (int)os->psize * 2, base);
        if (taints || state == 1 || state == 2) {
            sb_put(&out, " (", 2);
            for (unsigned b = 0; b < sizeof taint_letter; b++)
                if (taint_letter[b] && (taints >> b & 1))
                    sb_put(&out, &taint_letter[b], 1);
            if (state == 1)
                sb_put(&out, "+", 1);
            if (state == 2)
                sb_put(&out, "-", 1);
            sb_put(&out, ")", 1);
        }
        sb_put(&out, "\n", 1);
        if (lx_kreadptr(os, p, &p) < 0) {
            cut = true;
            break;
        }
    }
    addrset_free(&seen);
    if (cut)
        sb_printf(&out, "# incomplete: the module list has a bad link or more than %u "
                  "modules\n", MODULES_MAX);
    return sb_finish(&out, len);
}
