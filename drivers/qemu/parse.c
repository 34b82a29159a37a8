/*
 * parse.c - HMP and /proc text parsers for the qemu driver (see parse.h).
 *
 * HMP output through QMP ends its lines with "\r\n"; both endings work.
 */
#include "drivers/qemu/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Iterate over lines: *line and *len the next one without its line ending;
 * returns false at the end. */
static bool next_line(const char **pos, const char **line, size_t *len)
{
    const char *p = *pos;
    if (!*p)
        return false;
    const char *nl = strchr(p, '\n');
    size_t l = nl ? (size_t)(nl - p) : strlen(p);
    *pos = nl ? nl + 1 : p + l;
    while (l > 0 && (p[l - 1] == '\r'))
        l--;
    *line = p;
    *len = l;
    return true;
}

/* Hex number at *p (optional 0x), advancing *p; false if no digit. */
static bool hex_at(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    if (end - s >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    uint64_t x = 0;
    int digits = 0;
    while (s < end && isxdigit((unsigned char)*s)) {
        if (digits == 16)
            return false;           /* more than 64 bits */
        int d = isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10);
        x = (x << 4) | (uint64_t)d;
        digits++;
        s++;
    }
    if (!digits)
        return false;
    *p = s;
    *v = x;
    return true;
}

static bool starts(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(line, prefix, pl) == 0;
}

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    void *na = realloc(arr, nc * elem);
    if (na)
        *cap = nc;
    return na;
}

/* "  START-LAST (prio P, TYPE): NAME[ @OFFSET]" */
static bool parse_flat_line(const char *line, size_t len, struct qemu_flat *f)
{
    const char *p = line, *end = line + len;
    while (p < end && *p == ' ')
        p++;
    if (p == line)
        return false;               /* range lines are indented */
    if (!hex_at(&p, end, &f->start) || p >= end || *p != '-')
        return false;
    p++;
    if (!hex_at(&p, end, &f->last) || f->last < f->start)
        return false;
    static const char prio[] = " (prio ";
    if ((size_t)(end - p) < sizeof prio - 1 || memcmp(p, prio, sizeof prio - 1) != 0)
        return false;
    p += sizeof prio - 1;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (!comma || comma + 2 > end || comma[1] != ' ')
        return false;
    p = comma + 2;
    const char *close = memchr(p, ')', (size_t)(end - p));
    if (!close || close + 3 > end || close[1] != ':' || close[2] != ' ')
        return false;
    size_t tl = (size_t)(close - p);
    if (tl == 0 || tl >= sizeof f->type)
        return false;
    memcpy(f->type, p, tl);
    f->type[tl] = '\0';
    p = close + 3;
    /* The name runs to " @" (then the offset) or to the end of the line. */
    const char *name_end = end;
    f->offset = 0;
    for (const char *s = p; s + 2 < end; s++) {
        if (s[0] == ' ' && s[1] == '@') {
            const char *o = s + 2;
            uint64_t off;
            if (hex_at(&o, end, &off)) {
                f->offset = off;
                name_end = s;
                break;
            }
        }
    }
    while (name_end > p && name_end[-1] == ' ')
        name_end--;
    size_t nl = (size_t)(name_end - p);
    if (nl == 0 || nl >= sizeof f->name)
        return false;
    memcpy(f->name, p, nl);
    f->name[nl] = '\0';
    return true;
}

int qemu_parse_flatview(const char *text, const char *as, struct qemu_flat **out,
                        size_t *n)
{
    char want[160];
    snprintf(want, sizeof want, " AS \"%s\",", as);
    struct qemu_flat *arr = NULL;
    size_t cnt = 0, cap = 0;
    bool in_target = false, found = false;
    const char *pos = text, *line;
    size_t len;
    while (next_line(&pos, &line, &len)) {
        if (starts(line, len, "FlatView #")) {
            if (found)
                break;              /* the target view has ended */
            in_target = false;
            continue;
        }
        if (starts(line, len, want)) {
            in_target = found = true;
            continue;
        }
        if (!in_target)
            continue;
        struct qemu_flat f;
        if (!parse_flat_line(line, len, &f))
            continue;
        struct qemu_flat *na = grow(arr, &cap, cnt, sizeof *arr);
        if (!na) {
            free(arr);
            return -ENOMEM;
        }
        arr = na;
        arr[cnt++] = f;
    }
    if (!found) {
        free(arr);
        return -ENOENT;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

static bool block_matches(const char *name, const char *block)
{
    if (strcmp(name, block) == 0)
        return true;
    /* Backends with x-use-canonical-path-for-ramblock-id name their region
     * by the QOM path. */
    return strncmp(name, "/objects/", 9) == 0 && strcmp(name + 9, block) == 0;
}

int qemu_ram_layout(const struct qemu_flat *flat, size_t nflat,
                    const char *const *blocks, size_t nblocks,
                    struct qemu_ram_seg **out, size_t *n)
{
    struct qemu_ram_seg *arr = NULL;
    size_t cnt = 0, cap = 0;
    for (size_t i = 0; i < nflat; i++) {
        const struct qemu_flat *f = &flat[i];
        /* RAM mapped read-only (PAM) shows as rom; ROM devices are other
         * regions and never match a RAM block's name. */
        if (strcmp(f->type, "ram") != 0 && strcmp(f->type, "rom") != 0 &&
            strcmp(f->type, "nv-ram") != 0 && strcmp(f->type, "nv-rom") != 0)
            continue;
        size_t b;
        for (b = 0; b < nblocks; b++)
            if (block_matches(f->name, blocks[b]))
                break;
        if (b == nblocks)
            continue;
        if (f->last == UINT64_MAX)
            continue;               /* cannot be expressed half-open */
        uint64_t len = f->last - f->start + 1;
        if (cnt > 0) {
            struct qemu_ram_seg *l = &arr[cnt - 1];
            if (l->block == b && l->gpa + l->len == f->start &&
                l->block_off + l->len == f->offset) {
                l->len += len;
                continue;
            }
        }
        struct qemu_ram_seg *na = grow(arr, &cap, cnt, sizeof *arr);
        if (!na) {
            free(arr);
            return -ENOMEM;
        }
        arr = na;
        arr[cnt++] = (struct qemu_ram_seg){.gpa = f->start, .len = len,
                                           .block = b, .block_off = f->offset};
    }
    if (cnt == 0) {
        free(arr);
        return -ENOENT;
    }
    /* A flat view is sorted and disjoint; check rather than trust. */
    for (size_t i = 1; i < cnt; i++)
        if (arr[i].gpa < arr[i - 1].gpa + arr[i - 1].len) {
            free(arr);
            return -EINVAL;
        }
    *out = arr;
    *n = cnt;
    return 0;
}

/* Registers: "KEY=VALUE" tokens after removing the padding before '='
 * ("R8 =..." "ES =0000 base limit flags" "GDT=     base limit"). */
static const char *const gpr64[16] = {"RAX", "RBX", "RCX", "RDX", "RSI", "RDI",
                                      "RBP", "RSP", "R8", "R9", "R10", "R11",
                                      "R12", "R13", "R14", "R15"};
static const char *const gpr32[8] = {"EAX", "EBX", "ECX", "EDX", "ESI", "EDI",
                                     "EBP", "ESP"};
static const char *const segs[6] = {"CS", "SS", "DS", "ES", "FS", "GS"};

int qemu_parse_registers(const char *text, struct vmem_vcpu *out)
{
    unsigned id = out->id;
    memset(out, 0, sizeof *out);
    out->id = id;
    unsigned seen_gpr = 0, have_ip = 0, have_fl = 0, have_cr0 = 0, have_cr3 = 0,
             have_efer = 0, have_seg = 0, have_fs = 0, have_gdt = 0;
    const char *pos = text, *line;
    size_t len;
    while (next_line(&pos, &line, &len)) {
        /* Tokenise the line with the spaces before '=' removed. */
        char buf[512];
        size_t bl = 0;
        for (size_t i = 0; i < len && bl + 1 < sizeof buf; i++) {
            if (line[i] == ' ') {
                size_t j = i;
                while (j < len && line[j] == ' ')
                    j++;
                if (j < len && line[j] == '=') {
                    i = j - 1;
                    continue;
                }
            }
            buf[bl++] = line[i];
        }
        buf[bl] = '\0';
        char *save = NULL;
        char *tok = strtok_r(buf, " ", &save);
        while (tok) {
            char *eq = strchr(tok, '=');
            char *next = strtok_r(NULL, " ", &save);
            if (!eq || eq == tok) {
                tok = next;
                continue;
            }
            *eq = '\0';
            const char *key = tok, *val = eq + 1;
            const char *vend = val + strlen(val);
            uint64_t v = 0;
            bool hv = hex_at(&val, vend, &v) && val == vend;
            bool matched = false;
            for (int r = 0; r < 16 && !matched; r++)
                if (hv && strcmp(key, gpr64[r]) == 0) {
                    out->gpr[r] = v;
                    seen_gpr |= 1u << r;
                    matched = true;
                }
            for (int r = 0; r < 8 && !matched; r++)
                if (hv && strcmp(key, gpr32[r]) == 0) {
                    out->gpr[r] = v;
                    seen_gpr |= 1u << r;
                    matched = true;
                }
            if (matched) {
                tok = next;
                continue;
            }
            if (hv && (strcmp(key, "RIP") == 0 || strcmp(key, "EIP") == 0)) {
                out->rip = v;
                have_ip = 1;
            } else if (hv && (strcmp(key, "RFL") == 0 || strcmp(key, "EFL") == 0)) {
                out->rflags = v;
                have_fl = 1;
            } else if (hv && strcmp(key, "CR0") == 0) {
                out->cr0 = v;
                have_cr0 = 1;
            } else if (hv && strcmp(key, "CR2") == 0) {
                out->cr2 = v;
            } else if (hv && strcmp(key, "CR3") == 0) {
                out->cr3 = v;
                have_cr3 = 1;
            } else if (hv && strcmp(key, "CR4") == 0) {
                out->cr4 = v;
            } else if (hv && strcmp(key, "EFER") == 0) {
                out->efer = v;
                have_efer = 1;
            } else if (strcmp(key, "GDT") == 0 || strcmp(key, "IDT") == 0) {
                /* "GDT=     base limit": after the padding is gone the
                 * base is the value, or the next token. */
                const char *b = hv ? eq + 1 : next;
                uint64_t base;
                if (b && hex_at(&b, b + strlen(b), &base)) {
                    if (key[0] == 'G') {
                        out->gdt_base = base;
                        have_gdt = 1;
                    } else {
                        out->idt_base = base;
                    }
                }
            } else if (hv) {
                for (int s = 0; s < 6; s++) {
                    if (strcmp(key, segs[s]) != 0)
                        continue;
                    uint16_t sel = (uint16_t)v;
                    uint64_t base = 0;
                    const char *b = next;
                    bool hb = b && hex_at(&b, b + strlen(b), &base);
                    switch (s) {
                    case 0: out->cs = sel; break;
                    case 1: out->ss = sel; break;
                    case 2: out->ds = sel; break;
                    case 3: out->es = sel; break;
                    case 4: out->fs = sel; if (hb) { out->fs_base = base; have_fs = 1; } break;
                    case 5: out->gs = sel; if (hb) out->gs_base = base; break;
                    }
                    have_seg = 1;
                    break;
                }
            }
            tok = next;
        }
    }
    if (!have_ip)
        return -EINVAL;
    if ((seen_gpr & 0xff) == 0xff && have_fl && have_seg)
        out->valid |= VMEM_VCPU_GPRS;
    if (have_cr0 && have_cr3 && have_efer)
        out->valid |= VMEM_VCPU_CRS;
    if (have_fs && have_gdt)
        out->valid |= VMEM_VCPU_BASES;
    return 0;
}

int qemu_parse_maps(const char *text, struct qemu_map **out, size_t *n)
{
    struct qemu_map *arr = NULL;
    size_t cnt = 0, cap = 0;
    const char *pos = text, *line;
    size_t len;
    while (next_line(&pos, &line, &len)) {
        char buf[600];
        if (len >= sizeof buf)
            len = sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        struct qemu_map m = {0};
        unsigned long long s, e, off, ino;
        int path_at = -1;
        if (sscanf(buf, "%llx-%llx %4s %llx %x:%x %llu %n", &s, &e, m.perms, &off,
                   &m.dev_major, &m.dev_minor, &ino, &path_at) < 7)
            continue;
        m.start = s;
        m.end = e;
        m.offset = off;
        m.inode = ino;
        if (path_at > 0 && (size_t)path_at <= len)
            snprintf(m.path, sizeof m.path, "%s", buf + path_at);
        struct qemu_map *na = grow(arr, &cap, cnt, sizeof *arr);
        if (!na) {
            free(arr);
            return -ENOMEM;
        }
        arr = na;
        arr[cnt++] = m;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int qemu_parse_ramblock(const char *text, struct qemu_ramblock **out, size_t *n)
{
    struct qemu_ramblock *arr = NULL;
    size_t cnt = 0, cap = 0;
    const char *pos = text, *line;
    size_t len;
    while (next_line(&pos, &line, &len)) {
        /* "NAME  PSIZE UNIT  0xOFFSET 0xUSED 0xTOTAL" */
        char buf[512];
        if (len >= sizeof buf)
            continue;
        memcpy(buf, line, len);
        buf[len] = '\0';
        struct qemu_ramblock b;
        char unit[8];
        unsigned psize;
        unsigned long long off, used, total;
        if (sscanf(buf, " %127s %u %7s %llx %llx %llx", b.name, &psize, unit, &off,
                   &used, &total) != 6)
            continue;
        b.offset = off;
        b.used = used;
        b.total = total;
        struct qemu_ramblock *na = grow(arr, &cap, cnt, sizeof *arr);
        if (!na) {
            free(arr);
            return -ENOMEM;
        }
        arr = na;
        arr[cnt++] = b;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int qemu_parse_xp(const char *text, uint64_t base, void *buf, size_t len)
{
    uint8_t *dst = buf;
    size_t covered = 0;
    uint64_t next = base;
    const char *pos = text, *line;
    size_t ll;
    while (next_line(&pos, &line, &ll)) {
        const char *p = line, *end = line + ll;
        uint64_t addr;
        if (!hex_at(&p, end, &addr) || p >= end || *p != ':')
            continue;
        p++;
        if (addr != next)
            return -EINVAL;         /* a gap, or "Cannot access memory" */
        bool any = false;
        for (;;) {
            while (p < end && *p == ' ')
                p++;
            if (p >= end)
                break;
            uint64_t w;
            const char *s = p;
            if (!hex_at(&p, end, &w) || p - s != 18)
                return -EINVAL;     /* only the /xg format is parsed */
            if (addr < base || addr - base > len - 8 || len < 8)
                return -EINVAL;
            for (int k = 0; k < 8; k++)
                dst[addr - base + (uint64_t)k] = (uint8_t)(w >> (8 * k));
            addr += 8;
            covered += 8;
            any = true;
        }
        if (!any)
            return -EINVAL;
        next = addr;
    }
    return covered == len ? 0 : -EINVAL;
}
