/*
 * printk.c - kernel/dmesg and kernel/cmdline (see linux.h).
 *
 * dmesg reads the lockless printk ring buffer of 5.10+ (`prb`, a pointer to
 * struct printk_ringbuffer: a descriptor ring of 2^count_bits prb_desc and
 * printk_info, and a text data ring of 2^size_bits bytes; see the kernel's
 * kernel/printk/printk_ringbuffer.h) from the tail id to the head id, and
 * prints every finalized record as `dmesg` does: "[%5lu.%06lu] " before
 * each line of its text.  The guest controls every index: ids are checked
 * against the descriptor's own state word, text positions against the data
 * ring, and the walk stops after 2^count_bits (at most PRB_RECORDS_MAX)
 * records, PRB_TEXT_MAX bytes of text, or PRB_UNREADABLE_RUN descriptors
 * in a row that cannot be read (a wild descs pointer).  A record that
 * cannot be read is left out, not printed empty, and counted in a last
 * "# incomplete: ..." line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"
#include "core/util/log.h"

#define DESC_FINALIZED   2u                     /* 2 state bits atop the id */
#define PRB_UNREADABLE_RUN 4096u

struct ring {
    uint64_t descs, infos, data;
    unsigned count_bits, size_bits;
};

static bool read_rings(struct linux_os *os, struct ring *r, uint64_t *tail, uint64_t *head)
{
    const struct lx_offsets *o = &os->o;
    uint64_t prb = 0, sym = lx_sym(os, "prb");
    long need[] = {o->prb_desc_ring, o->prb_text_ring, o->dr_count_bits, o->dr_descs,
                   o->dr_infos, o->dr_head_id, o->dr_tail_id, o->tr_size_bits, o->tr_data,
                   o->desc_state_var, o->desc_text_begin, o->desc_text_next, o->info_seq,
                   o->info_ts_nsec, o->info_text_len};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i] == NONE) {
            errno = ENOENT;
            return false;
        }
    if (!sym || o->desc_state_var + os->psize > o->desc_size ||
        o->desc_text_next + os->psize > o->desc_size ||
        o->desc_text_begin + os->psize > o->desc_size ||
        o->info_ts_nsec + 8 > o->info_size || o->info_text_len + 2 > o->info_size) {
        errno = ENOENT;
        return false;
    }
    uint64_t dr = 0, tr = 0;
    if (lx_kreadptr(os, sym, &prb) < 0 || !lx_kptr_ok(os, prb))
        goto eio;
    dr = prb + (uint64_t)o->prb_desc_ring;
    tr = prb + (uint64_t)o->prb_text_ring;
    uint32_t cb, sb;
    if (lx_kread32(os, dr + (uint64_t)o->dr_count_bits, &cb) < 0 ||
        lx_kreadptr(os, dr + (uint64_t)o->dr_descs, &r->descs) < 0 ||
        lx_kreadptr(os, dr + (uint64_t)o->dr_infos, &r->infos) < 0 ||
        lx_kread32(os, tr + (uint64_t)o->tr_size_bits, &sb) < 0 ||
        lx_kreadptr(os, tr + (uint64_t)o->tr_data, &r->data) < 0 ||
        lx_kreadptr(os, dr + (uint64_t)o->dr_head_id, head) < 0 ||
        lx_kreadptr(os, dr + (uint64_t)o->dr_tail_id, tail) < 0)
        goto eio;
    /* The kernel's limits: LOG_BUF_SHIFT is 12..25, descriptors a quarter. */
    if (cb < 4 || cb > 24 || sb < 8 || sb > 28 || !lx_kptr_ok(os, r->descs) ||
        !lx_kptr_ok(os, r->infos) || !lx_kptr_ok(os, r->data))
        goto eio;
    r->count_bits = cb;
    r->size_bits = sb;
    return true;
eio:
    vmem_log_ratelimited(os, LOG_WARNING, "VM '%s': dmesg: the printk ring buffer at "
                         "0x%" PRIx64 " cannot be read or is not sane", vm_name(os->vm), prb);
    errno = EIO;
    return false;
}

/* The text of one data block, like get_data(): NULL when the positions are
 * not a valid block (overwritten, or wild). */
static char *block_text(struct linux_os *os, const struct ring *r, uint64_t begin,
                        uint64_t next, uint16_t text_len, size_t *n)
{
    const uint64_t size = 1ull << r->size_bits, ps = os->psize;
    uint64_t off, dlen;
    if ((begin & 1) || (next & 1))              /* data-less (FAILED/NO_LPOS) */
        return NULL;
    if (begin >> r->size_bits == next >> r->size_bits && begin < next) {
        off = begin & (size - 1);
        dlen = next - begin;
    } else if ((begin + size) >> r->size_bits == next >> r->size_bits) {
        off = 0;                                /* wrapped: the block starts at 0 */
        dlen = next & (size - 1);
    } else
        return NULL;
    if (dlen < ps || dlen > size || (off & (ps - 1)))
        return NULL;
    dlen -= ps;                                 /* the block's id word */
    if (text_len < dlen)
        dlen = text_len;
    char *t = malloc(dlen + 1);
    if (!t || lx_kread(os, r->data + off + ps, t, dlen) < 0) {
        free(t);
        return NULL;
    }
    *n = dlen;
    return t;
}

char *linux_os_dmesg(struct linux_os *os, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct ring r;
    uint64_t tail, head;
    if (!read_rings(os, &r, &tail, &head))
        return NULL;
    struct sbuf out = {0};
    const unsigned shift = os->psize * 8 - 2;
    const uint64_t count = 1ull << r.count_bits, idmask = (1ull << shift) - 1;
    unsigned skipped = 0;
    /* ids grow by one per record and wrap at the id mask; at most one lap. */
    head &= idmask;
    tail &= idmask;
    uint64_t span = (head - tail) & idmask;
    const uint64_t max_span = (count < PRB_RECORDS_MAX ? count : PRB_RECORDS_MAX) - 1;
    if (span > max_span) {                      /* a lap or more: the newest */
        skipped++;
        tail = (head - max_span) & idmask;
        span = max_span;
    }
    unsigned unreadable_run = 0;
    bool cut = false;
    for (uint64_t k = 0; k <= span && !out.oom; k++) {
        if (out.len >= PRB_TEXT_MAX || unreadable_run >= PRB_UNREADABLE_RUN) {
            cut = true;
            break;
        }
        uint64_t id = (tail + k) & idmask, idx = id & (count - 1);
        uint8_t d[64], info[128];
        if (o->desc_size > sizeof d || o->info_size > sizeof info ||
            lx_kread(os, r.descs + idx * o->desc_size, d, o->desc_size) < 0 ||
            lx_kread(os, r.infos + idx * o->info_size, info, o->info_size) < 0) {
            skipped++;
            unreadable_run++;
            continue;
        }
        unreadable_run = 0;
        uint64_t sv = lx_ldptr(os, d + o->desc_state_var);
        if ((sv & idmask) != id || sv >> shift != DESC_FINALIZED) {
            if ((sv & idmask) != id)
                skipped++;
            continue;
        }
        uint64_t begin = lx_ldptr(os, d + o->desc_text_begin);
        uint64_t next = lx_ldptr(os, d + o->desc_text_next);
        uint64_t ts = vmem_ld_le64(info + o->info_ts_nsec);
        uint16_t tl = (uint16_t)(info[o->info_text_len] | info[o->info_text_len + 1] << 8);
        size_t n = 0;
        char *text = block_text(os, &r, begin, next, tl, &n);
        if (!text && tl) {                      /* its text is gone or wild */
            skipped++;
            continue;
        }
        if (!text && !(text = strdup("")))
            break;
        /* Every line of the record gets the prefix (record_print_text). */
        size_t s = 0;
        do {
            char *nl = memchr(text + s, '\n', n - s);
            size_t e = nl ? (size_t)(nl - text) : n;
            sb_printf(&out, "[%5" PRIu64 ".%06" PRIu64 "] ", ts / 1000000000u,
                      ts % 1000000000u / 1000u);
            for (size_t i = s; i < e; i++)
                if (!text[i])
                    text[i] = ' ';
            sb_put(&out, text + s, e - s);
            sb_put(&out, "\n", 1);
            s = e + 1;
        } while (s < n);
        free(text);
    }
    if (skipped || cut)
        sb_printf(&out, "# incomplete: %u records of the printk ring could not be read or "
                  "were being overwritten%s\n", skipped,
                  cut ? "; the walk stopped early (text bound or a run of unreadable "
                        "descriptors)" : "");
    return sb_finish(&out, len);
}

char *linux_os_kcmdline(struct linux_os *os, size_t *len)
{
    uint64_t sym = lx_sym(os, "saved_command_line"), p = 0;
    if (!sym) {
        errno = ENOENT;
        return NULL;
    }
    char buf[4097];
    long n;
    if (lx_kreadptr(os, sym, &p) < 0 || !lx_kptr_ok(os, p) ||
        (n = lx_kread_str(os, p, buf, sizeof buf - 1)) < 0) {
        errno = EIO;
        return NULL;
    }
    struct sbuf out = {0};
    sb_put(&out, buf, (size_t)n);
    sb_put(&out, "\n", 1);
    return sb_finish(&out, len);
}
