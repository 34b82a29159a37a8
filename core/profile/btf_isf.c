/*
 * btf_isf.c - Volatility 3 ISF profiles from a kernel's BTF and symbol
 * table (see btf_isf.h).
 *
 * Owns: symbol-list parsing, recognising kernel images (raw BTF, ELF,
 * bzImage, compressed vmlinux) and unpacking them, the banner, and the
 * BTF -> ISF conversion, written as a stream of JSON text (no tree: the
 * kernel's ~100k BTF types become ~40 MB of JSON).
 *
 * Built only where libbpf's headers are (Debian: libbpf-dev); its users
 * must then link libbpf (and through it libelf).  Unused, it costs nothing.
 */
#if defined(__has_include)
#if __has_include(<bpf/btf.h>)
#define BTF_ISF_BUILD 1
#endif
#endif

#ifdef BTF_ISF_BUILD

#include "core/profile/btf_isf.h"

#include "core/util/bytes.h"
#include "core/util/decompress.h"
#include "core/util/log.h"
#include "core/util/version.h"
#include "core/profile/isf.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* A decompressed kernel is ~50-100 MB; refuse anything absurd. */
#define MAX_IMAGE ((size_t)1 << 30)

static void say(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

static uint64_t hash64(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define HASH_INIT 14695981039346656037ull

/* ------------------------------------------------------------------ */
/* A set of strings (names already used in one ISF section)            */

struct strset {
    char **slots;
    size_t cap, n;
};

static bool strset_has(const struct strset *s, const char *k)
{
    if (!s->cap)
        return false;
    size_t mask = s->cap - 1;
    for (size_t i = hash64(k, strlen(k), HASH_INIT) & mask; s->slots[i];
         i = (i + 1) & mask)
        if (strcmp(s->slots[i], k) == 0)
            return true;
    return false;
}

/* 1 added, 0 already there, -1 ENOMEM.  The set keeps its own copy. */
static int strset_add(struct strset *s, const char *k)
{
    if (strset_has(s, k))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        char **t = calloc(nc, sizeof *t);
        if (!t)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t j = hash64(s->slots[i], strlen(s->slots[i]), HASH_INIT) & (nc - 1);
            while (t[j])
                j = (j + 1) & (nc - 1);
            t[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = t;
        s->cap = nc;
    }
    char *c = strdup(k);
    if (!c)
        return -1;
    size_t i = hash64(k, strlen(k), HASH_INIT) & (s->cap - 1);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = c;
    s->n++;
    return 1;
}

static void strset_free(struct strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ */
/* Symbol lists                                                        */

struct bsym {
    char *name;
    uint64_t addr;
    char type;
};

struct btf_isf_symbols {
    struct bsym *v;
    size_t n, cap;
    uint32_t *index;            /* open addressing over v; UINT32_MAX empty */
    size_t index_cap;
};

struct btf_isf_symbols *btf_isf_symbols_new(void)
{
    return calloc(1, sizeof(struct btf_isf_symbols));
}

void btf_isf_symbols_free(struct btf_isf_symbols *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].name);
    free(s->v);
    free(s->index);
    free(s);
}

static const struct bsym *sym_find(const struct btf_isf_symbols *s,
                                   const char *name)
{
    if (!s || !s->index_cap)
        return NULL;
    size_t mask = s->index_cap - 1;
    for (size_t i = hash64(name, strlen(name), HASH_INIT) & mask;
         s->index[i] != UINT32_MAX; i = (i + 1) & mask)
        if (strcmp(s->v[s->index[i]].name, name) == 0)
            return &s->v[s->index[i]];
    return NULL;
}

static int sym_index_grow(struct btf_isf_symbols *s)
{
    size_t nc = s->index_cap ? s->index_cap * 2 : 1024;
    uint32_t *t = malloc(nc * sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < nc; i++)
        t[i] = UINT32_MAX;
    for (size_t k = 0; k < s->n; k++) {
        size_t j = hash64(s->v[k].name, strlen(s->v[k].name), HASH_INIT) & (nc - 1);
        while (t[j] != UINT32_MAX)
            j = (j + 1) & (nc - 1);
        t[j] = (uint32_t)k;
    }
    free(s->index);
    s->index = t;
    s->index_cap = nc;
    return 0;
}

int btf_isf_symbols_add(struct btf_isf_symbols *s, const char *name,
                        uint64_t addr, char type)
{
    if (!s || !name || !*name || sym_find(s, name))
        return 0;
    if (s->n >= UINT32_MAX - 1)
        return -1;
    if ((s->n + 1) * 2 > s->index_cap && sym_index_grow(s) != 0)
        return -1;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        struct bsym *v = realloc(s->v, nc * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = nc;
    }
    char *c = strdup(name);
    if (!c)
        return -1;
    s->v[s->n] = (struct bsym){c, addr, type};
    size_t mask = s->index_cap - 1;
    size_t i = hash64(name, strlen(name), HASH_INIT) & mask;
    while (s->index[i] != UINT32_MAX)
        i = (i + 1) & mask;
    s->index[i] = (uint32_t)s->n++;
    return 0;
}

size_t btf_isf_symbols_count(const struct btf_isf_symbols *s)
{
    return s ? s->n : 0;
}

int btf_isf_symbols_lookup(const struct btf_isf_symbols *s, const char *name,
                           uint64_t *addr)
{
    const struct bsym *b = name ? sym_find(s, name) : NULL;
    if (!b)
        return -1;
    if (addr)
        *addr = b->addr;
    return 0;
}

struct btf_isf_symbols *btf_isf_symbols_parse(const char *text, size_t len,
                                              const char *name, char *err,
                                              size_t errlen)
{
    if (!name)
        name = "symbol list";
    struct btf_isf_symbols *s = btf_isf_symbols_new();
    if (!s) {
        say(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    size_t lines = 0, bad = 0, nonzero = 0;
    size_t pos = 0;
    char buf[512];
    while (pos < len) {
        const char *ln = text + pos;
        const char *nl = memchr(ln, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - ln) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && ln[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        lines++;
        if (n >= sizeof buf) {
            bad++;
            continue;
        }
        memcpy(buf, ln, n);
        buf[n] = '\0';
        /* ADDR TYPE NAME [\t[MODULE]] */
        char *p = buf, *end;
        if (!isxdigit((unsigned char)*p)) {
            bad++;
            continue;
        }
        errno = 0;
        unsigned long long addr = strtoull(p, &end, 16);
        if (errno || end == p || end - p > 16 || *end != ' ') {
            bad++;
            continue;
        }
        p = end + 1;
        char type = *p;
        if (!isalpha((unsigned char)type) && type != '?' && type != '-') {
            bad++;
            continue;
        }
        if (p[1] != ' ' || !p[2]) {
            bad++;
            continue;
        }
        char *sym = p + 2;
        char *tab = strpbrk(sym, " \t");
        if (tab) {
            /* Only a module tag may follow the name. */
            char *rest = tab + strspn(tab, " \t");
            if (*rest == '[')
                continue;       /* a module's symbol: not vmlinux */
            if (*rest) {
                bad++;
                continue;
            }
            *tab = '\0';
        }
        if (btf_isf_symbols_add(s, sym, addr, type) != 0) {
            say(err, errlen, "%s: out of memory", name);
            btf_isf_symbols_free(s);
            return NULL;
        }
        if (addr)
            nonzero++;
    }
    if (s->n == 0) {
        say(err, errlen, "%s: no \"ADDRESS TYPE NAME\" lines: not a "
            "System.map or kallsyms listing (%zu lines, %zu malformed)",
            name, lines, bad);
        btf_isf_symbols_free(s);
        return NULL;
    }
    if (nonzero == 0) {
        say(err, errlen, "%s: every address is 0: kallsyms read without "
            "privilege (kptr_restrict); read it as root", name);
        btf_isf_symbols_free(s);
        return NULL;
    }
    return s;
}

static void *read_whole(const char *path, size_t max, size_t *len, char *err,
                        size_t errlen)
{
    /* O_NONBLOCK, then regular files only: a FIFO must not hold the start
     * in open() or read(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        say(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        say(err, errlen, "%s: not a regular file (a FIFO, a device or a "
            "directory)", path);
        close(fd);
        return NULL;
    }
    /* Regular files by size; /proc and /sys files (size 0 or a page) by
     * reading until EOF. */
    size_t cap = 1 << 20, got = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (got == cap) {
            if (cap >= max) {
                say(err, errlen, "%s: larger than %zu bytes", path, max);
                goto fail;
            }
            size_t nc = cap * 2 > max ? max : cap * 2;
            char *q = realloc(buf, nc + 1);
            if (!q)
                break;
            buf = q;
            cap = nc;
        }
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) {
            close(fd);
            buf[got] = '\0';
            *len = got;
            return buf;
        }
        got += (size_t)r;
    }
    say(err, errlen, "%s: out of memory", path);
fail:
    free(buf);
    close(fd);
    return NULL;
}

struct btf_isf_symbols *btf_isf_symbols_load(const char *path, char *err,
                                             size_t errlen)
{
    size_t len;
    char *text = read_whole(path, (size_t)1 << 30, &len, err, errlen);
    if (!text)
        return NULL;
    struct btf_isf_symbols *s = btf_isf_symbols_parse(text, len, path, err, errlen);
    free(text);
    return s;
}

/* ------------------------------------------------------------------ */
/* Decompressors for kernel payloads                                   */


/* Unpack `in` if it is in a compression kernels use.  1 unpacked (and
 * *fmt names it), 0 not compressed, -errno failed (why set). */
static int unpack(const uint8_t *in, size_t len, void **out, size_t *outlen,
                  const char **fmt, char *why, size_t whylen)
{
    enum vmem_codec c = vmem_codec_detect(in, len, true);
    if (c == VMEM_CODEC_NONE)
        return 0;
    *fmt = vmem_codec_name(c);
    char msg[200] = "";
    int rc = vmem_decompress(c, in, len, MAX_IMAGE, 0, out, outlen, msg, sizeof msg);
    if (rc < 0 && strstr(msg, "not supported here"))
        say(why, whylen, "%s (the kernel's scripts/extract-vmlinux does) and give "
            "the vmlinux", msg);
    else if (rc < 0)
        say(why, whylen, "%s", msg);
    return rc;
}

/* ------------------------------------------------------------------ */
/* ELF images                                                          */

/* Headers are copied out, never used in place: an image in memory may sit
 * at any alignment.  A 32-bit image (an i386 vmlinux) has its headers
 * widened to the 64-bit structures as they are read. */
struct elfimg {
    const uint8_t *d;
    size_t n;
    bool c32;                   /* ELFCLASS32 */
    Elf64_Ehdr eh;
};

/* The ELF header at e->d (class checked by the caller) into e->eh. */
static void elf_load_ehdr(struct elfimg *e)
{
    if (!e->c32) {
        memcpy(&e->eh, e->d, sizeof e->eh);
        return;
    }
    Elf32_Ehdr h;
    memcpy(&h, e->d, sizeof h);
    memset(&e->eh, 0, sizeof e->eh);
    memcpy(e->eh.e_ident, h.e_ident, EI_NIDENT);
    e->eh.e_type = h.e_type;
    e->eh.e_machine = h.e_machine;
    e->eh.e_version = h.e_version;
    e->eh.e_entry = h.e_entry;
    e->eh.e_phoff = h.e_phoff;
    e->eh.e_shoff = h.e_shoff;
    e->eh.e_flags = h.e_flags;
    e->eh.e_ehsize = h.e_ehsize;
    e->eh.e_phentsize = h.e_phentsize;
    e->eh.e_phnum = h.e_phnum;
    e->eh.e_shentsize = h.e_shentsize;
    e->eh.e_shnum = h.e_shnum;
    e->eh.e_shstrndx = h.e_shstrndx;
}

static bool span_ok(size_t n, uint64_t off, uint64_t len)
{
    return off <= n && len <= n - off;
}

static bool elf_shdr(const struct elfimg *e, size_t i, Elf64_Shdr *out)
{
    size_t esz = e->c32 ? sizeof(Elf32_Shdr) : sizeof *out;
    if (e->eh.e_shoff == 0 || i >= e->eh.e_shnum ||
        e->eh.e_shoff > e->n)
        return false;
    uint64_t off = e->eh.e_shoff + (uint64_t)i * esz;
    if (!span_ok(e->n, off, esz))
        return false;
    if (!e->c32) {
        memcpy(out, e->d + off, sizeof *out);
        return true;
    }
    Elf32_Shdr s;
    memcpy(&s, e->d + off, sizeof s);
    *out = (Elf64_Shdr){
        .sh_name = s.sh_name, .sh_type = s.sh_type, .sh_flags = s.sh_flags,
        .sh_addr = s.sh_addr, .sh_offset = s.sh_offset, .sh_size = s.sh_size,
        .sh_link = s.sh_link, .sh_info = s.sh_info,
        .sh_addralign = s.sh_addralign, .sh_entsize = s.sh_entsize,
    };
    return true;
}

static bool elf_section(const struct elfimg *e, const char *name,
                        Elf64_Shdr *out)
{
    Elf64_Shdr strs, sh;
    if (!elf_shdr(e, e->eh.e_shstrndx, &strs) ||
        !span_ok(e->n, strs.sh_offset, strs.sh_size))
        return false;
    size_t want = strlen(name) + 1;
    for (size_t i = 0; i < e->eh.e_shnum; i++) {
        if (!elf_shdr(e, i, &sh))
            return false;
        if (sh.sh_name < strs.sh_size && strs.sh_size - sh.sh_name >= want &&
            memcmp(e->d + strs.sh_offset + sh.sh_name, name, want) == 0) {
            *out = sh;
            return true;
        }
    }
    return false;
}

static bool elf_phdr(const struct elfimg *e, size_t i, Elf64_Phdr *out)
{
    size_t esz = e->c32 ? sizeof(Elf32_Phdr) : sizeof *out;
    if (e->eh.e_phoff == 0 || i >= e->eh.e_phnum || e->eh.e_phoff > e->n)
        return false;
    uint64_t off = e->eh.e_phoff + (uint64_t)i * esz;
    if (!span_ok(e->n, off, esz))
        return false;
    if (!e->c32) {
        memcpy(out, e->d + off, sizeof *out);
        return true;
    }
    Elf32_Phdr p;
    memcpy(&p, e->d + off, sizeof p);
    *out = (Elf64_Phdr){
        .p_type = p.p_type, .p_flags = p.p_flags, .p_offset = p.p_offset,
        .p_vaddr = p.p_vaddr, .p_paddr = p.p_paddr, .p_filesz = p.p_filesz,
        .p_memsz = p.p_memsz, .p_align = p.p_align,
    };
    return true;
}

/* File offset of virtual address va, with at least `need` bytes there. */
static bool elf_va_to_off(const struct elfimg *e, uint64_t va, size_t need,
                          size_t *off)
{
    Elf64_Phdr ph;
    for (size_t i = 0; i < e->eh.e_phnum; i++) {
        if (!elf_phdr(e, i, &ph))
            return false;
        if (ph.p_type != PT_LOAD || va < ph.p_vaddr ||
            va - ph.p_vaddr >= ph.p_filesz)
            continue;
        uint64_t o = ph.p_offset + (va - ph.p_vaddr);
        if (o < ph.p_offset || !span_ok(e->n, o, need))
            return false;
        *off = (size_t)o;
        return true;
    }
    return false;
}

static uint64_t elf_text_addr(const struct elfimg *e)
{
    Elf64_Shdr t;
    Elf64_Phdr ph;
    if (elf_section(e, ".text", &t) && t.sh_addr)
        return t.sh_addr;
    uint64_t best = 0;
    for (size_t i = 0; i < e->eh.e_phnum; i++) {
        if (!elf_phdr(e, i, &ph))
            break;
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_vaddr &&
            (!best || ph.p_vaddr < best))
            best = ph.p_vaddr;
    }
    return best;
}

/* A raw BTF blob at d[n] (header checked): its exact length, or 0. */
static size_t btf_blob_len(const uint8_t *d, size_t n)
{
    if (n < 24 || vmem_ld_le16(d) != 0xEB9F || d[2] != 1)
        return 0;
    uint32_t hdr = vmem_ld_le32(d + 4), toff = vmem_ld_le32(d + 8), tlen = vmem_ld_le32(d + 12),
             soff = vmem_ld_le32(d + 16), slen = vmem_ld_le32(d + 20);
    /* Types are arrays of 32-bit words: the kernel refuses a type section
     * that is not 4-byte aligned, and so do we (libbpf would hand out
     * misaligned structs). */
    if (hdr < 24 || hdr > n || ((uint64_t)hdr + toff) % 4)
        return 0;
    uint64_t end1 = (uint64_t)toff + tlen, end2 = (uint64_t)soff + slen;
    uint64_t total = hdr + (end1 > end2 ? end1 : end2);
    return total <= n ? (size_t)total : 0;
}

static struct btf *btf_from_blob(const uint8_t *d, size_t n, const char *name,
                                 char *err, size_t errlen)
{
    size_t len = btf_blob_len(d, n);
    if (!len || len > UINT32_MAX) {
        say(err, errlen, "%s: BTF header is damaged or its sizes run past "
            "the data", name);
        return NULL;
    }
    errno = 0;
    struct btf *b = btf__new(d, (uint32_t)len);
    if (!b || libbpf_get_error(b)) {
        int e = errno ? errno : EINVAL;
        say(err, errlen, "%s: libbpf rejects the BTF data: %s", name,
            strerror(e));
        return NULL;
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* The banner                                                          */

/* "Linux version ...": printable, ending in "\n" then NUL (or NUL) within
 * 1 KiB, starting a string.  The length up to the newline, or 0. */
static size_t banner_at(const uint8_t *d, size_t n, size_t pos, bool need_start)
{
    if (n - pos < 14 || memcmp(d + pos, "Linux version ", 14) != 0)
        return 0;
    if (need_start && pos && d[pos - 1] != 0)
        return 0;
    for (size_t i = pos; i < n && i - pos < 1024; i++) {
        if (d[i] == '\n' || d[i] == 0)
            return (d[i] == 0 || (i + 1 < n && d[i + 1] == 0)) ? i - pos : 0;
        if (!isprint(d[i]))
            return 0;
    }
    return 0;
}

static char *find_banner(const struct elfimg *e, const uint8_t *d, size_t n,
                         const struct btf_isf_symbols *syms, uint64_t text_addr)
{
    const struct bsym *lb = sym_find(syms, "linux_banner");
    const struct bsym *tx = sym_find(syms, "_text");
    if (e && lb && text_addr) {
        uint64_t va = lb->addr - (tx ? tx->addr - text_addr : 0);
        size_t off, len;
        if (elf_va_to_off(e, va, 14, &off) && (len = banner_at(d, n, off, false)))
            return strndup((const char *)d + off, len);
    }
    /* No symbol to go by: the banner of a finished build ("#<n> ") rather
     * than a leftover of an intermediate link ("# "). */
    char *first = NULL;
    const uint8_t *p = d;
    while ((p = memmem(p, n - (size_t)(p - d), "Linux version ", 14))) {
        size_t pos = (size_t)(p - d), len = banner_at(d, n, pos, true);
        p++;
        if (!len)
            continue;
        const char *hash = memchr(d + pos, '#', len);
        if (hash && hash + 1 < (const char *)d + pos + len &&
            isdigit((unsigned char)hash[1])) {
            free(first);
            return strndup((const char *)d + pos, len);
        }
        if (!first)
            first = strndup((const char *)d + pos, len);
    }
    return first;
}

/* ------------------------------------------------------------------ */
/* Kernel images                                                       */

static int open_image(const uint8_t *d, size_t n, const char *name,
                      const struct btf_isf_symbols *syms,
                      struct btf_isf_kernel *k, int depth, char *err,
                      size_t errlen)
{
    char why[256];
    if (depth > 3) {
        say(err, errlen, "%s: compressed inside itself too many times", name);
        return -1;
    }
    if (n >= 24 && vmem_ld_le16(d) == 0xEB9F) {
        k->btf = btf_from_blob(d, n, name, err, errlen);
        if (!k->btf)
            return -1;
        snprintf(k->format + strlen(k->format),
                 sizeof k->format - strlen(k->format), "raw BTF");
        return 0;
    }
    if (n >= sizeof(Elf32_Ehdr) && memcmp(d, ELFMAG, SELFMAG) == 0) {
        struct elfimg e = {.d = d, .n = n, .c32 = d[EI_CLASS] == ELFCLASS32};
        if ((d[EI_CLASS] != ELFCLASS64 && d[EI_CLASS] != ELFCLASS32) ||
            d[EI_DATA] != ELFDATA2LSB ||
            (!e.c32 && n < sizeof(Elf64_Ehdr))) {
            say(err, errlen, "%s: only little-endian kernel ELF images "
                "(64- or 32-bit) are supported", name);
            return -1;
        }
        elf_load_ehdr(&e);
        Elf64_Shdr sh;
        size_t off = 0, len = 0;
        if (elf_section(&e, ".BTF", &sh) && span_ok(n, sh.sh_offset, sh.sh_size)) {
            off = (size_t)sh.sh_offset;
            len = (size_t)sh.sh_size;
        } else {
            /* Section headers stripped: look for the BTF header itself. */
            const uint8_t *p = d;
            while ((p = memmem(p, n - (size_t)(p - d), "\x9f\xeb\x01\x00\x18\x00\x00\x00", 8))) {
                size_t o = (size_t)(p - d), l = btf_blob_len(p, n - o);
                if (l > 1024) {
                    off = o;
                    len = l;
                    break;
                }
                p++;
            }
        }
        if (!len) {
            say(err, errlen, "%s: ELF image without BTF: the kernel was "
                "built without CONFIG_DEBUG_INFO_BTF", name);
            return -1;
        }
        k->btf = btf_from_blob(d + off, len, name, err, errlen);
        if (!k->btf)
            return -1;
        k->text_addr = elf_text_addr(&e);
        k->banner = find_banner(&e, d, n, syms, k->text_addr);
        snprintf(k->format + strlen(k->format),
                 sizeof k->format - strlen(k->format), "vmlinux ELF");
        return 0;
    }
    if (n > 0x250 && memcmp(d + 0x202, "HdrS", 4) == 0) {
        uint16_t version = vmem_ld_le16(d + 0x206);
        if (version < 0x208) {
            say(err, errlen, "%s: bzImage boot protocol %u.%02u predates the "
                "payload fields (2.08)", name, version >> 8, version & 0xff);
            return -1;
        }
        size_t setup = (size_t)(d[0x1f1] ? d[0x1f1] : 4) + 1;
        uint64_t poff = (uint64_t)setup * 512 + vmem_ld_le32(d + 0x248);
        uint64_t plen = vmem_ld_le32(d + 0x24c);
        if (!span_ok(n, poff, plen) || plen < 16) {
            say(err, errlen, "%s: bzImage payload lies outside the file", name);
            return -1;
        }
        void *out = NULL;
        size_t outlen;
        const char *fmt = NULL;
        int r = unpack(d + poff, (size_t)plen, &out, &outlen, &fmt, why, sizeof why);
        if (r <= 0) {
            say(err, errlen, "%s: bzImage payload: %s", name,
                r < 0 ? why : "not in a known compression");
            return -1;
        }
        snprintf(k->format, sizeof k->format, "bzImage, %s-compressed ", fmt);
        r = open_image(out, outlen, name, syms, k, depth + 1, err, errlen);
        free(out);
        return r;
    }
    void *out = NULL;
    size_t outlen;
    const char *fmt = NULL;
    int r = unpack(d, n, &out, &outlen, &fmt, why, sizeof why);
    if (r < 0) {
        say(err, errlen, "%s: %s", name, why);
        return -1;
    }
    if (r > 0) {
        snprintf(k->format + strlen(k->format),
                 sizeof k->format - strlen(k->format), "%s-compressed ", fmt);
        r = open_image(out, outlen, name, syms, k, depth + 1, err, errlen);
        free(out);
        return r;
    }
    say(err, errlen, "%s: not a kernel image: neither raw BTF, an ELF vmlinux, "
        "a bzImage nor a compressed vmlinux", name);
    return -1;
}

int btf_isf_kernel_from_buffer(const void *data, size_t len, const char *name,
                               const struct btf_isf_symbols *syms,
                               struct btf_isf_kernel *out, char *err,
                               size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "kernel image";
    if (!data) {
        say(err, errlen, "%s: no data", name);
        return -1;
    }
    if (open_image(data, len, name, syms, out, 0, err, errlen) != 0) {
        btf_isf_kernel_close(out);
        return -1;
    }
    return 0;
}

int btf_isf_kernel_open(const char *path, const struct btf_isf_symbols *syms,
                        struct btf_isf_kernel *out, char *err, size_t errlen)
{
    size_t len;
    memset(out, 0, sizeof *out);
    void *data = read_whole(path, MAX_IMAGE, &len, err, errlen);
    if (!data)
        return -1;
    int r = btf_isf_kernel_from_buffer(data, len, path, syms, out, err, errlen);
    free(data);
    return r;
}

void btf_isf_kernel_close(struct btf_isf_kernel *k)
{
    if (!k)
        return;
    btf__free(k->btf);
    free(k->banner);
    memset(k, 0, sizeof *k);
}

/* ------------------------------------------------------------------ */
/* BTF -> ISF                                                          */

struct gen {
    const struct btf *btf;
    FILE *o;
    uint32_t n;                 /* type count (ids 1..n-1) */
    char **ref;                 /* per id: the ISF name a reference uses */
    uint8_t *ref_kind;          /* per id: BTF_KIND_STRUCT/UNION/ENUM of ref */
    struct strset ut, en, bt;   /* names taken in user_types, enums, base */
    struct btf_isf_stats st;
    int32_t *var_type;          /* per symbol index: BTF type of a VAR, or 0 */
    bool enum_signedness;       /* some enum has kflag: BTF records signs */
    uint64_t *sorted;           /* symbol addresses, sorted, made on demand */
};

static void jstr(FILE *o, const char *s)
{
    putc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(o, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(o, "\\u%04x", *p);
        else
            putc(*p, o);
    }
    putc('"', o);
}

static const struct btf_type *T(const struct gen *g, uint32_t id)
{
    return id && id < g->n ? btf__type_by_id(g->btf, id) : NULL;
}

static const char *NAME(const struct gen *g, const struct btf_type *t)
{
    const char *s = t ? btf__name_by_offset(g->btf, t->name_off) : NULL;
    return s ? s : "";
}

/* Through const/volatile/restrict/type tags. */
static uint32_t skip_mods(const struct gen *g, uint32_t id)
{
    for (int i = 0; i < 32; i++) {
        const struct btf_type *t = T(g, id);
        if (!t || !(btf_is_mod(t) || btf_is_type_tag(t)))
            return id;
        id = t->type;
    }
    return 0;
}

/* Through modifiers and typedefs. */
static uint32_t skip_typedefs(const struct gen *g, uint32_t id)
{
    for (int i = 0; i < 64; i++) {
        id = skip_mods(g, id);
        const struct btf_type *t = T(g, id);
        if (!t || !btf_is_typedef(t))
            return id;
        id = t->type;
    }
    return 0;
}

static const char *int_name_for(unsigned size, bool is_signed)
{
    switch (size) {
    case 1: return is_signed ? "signed char" : "unsigned char";
    case 2: return is_signed ? "short int" : "short unsigned int";
    case 8: return is_signed ? "long int" : "long unsigned int";
    default: return is_signed ? "int" : "unsigned int";
    }
}

static void wdesc(struct gen *g, uint32_t id, int depth);

static void wdesc_named(struct gen *g, const char *kind, const char *name)
{
    fprintf(g->o, "{\"kind\": \"%s\", \"name\": ", kind);
    jstr(g->o, name);
    putc('}', g->o);
}

static const char *ref_kind_name(uint8_t k)
{
    k &= 0x7f;                  /* without the "duplicate" mark */
    return k == BTF_KIND_UNION ? "union" : k == BTF_KIND_ENUM ? "enum" : "struct";
}

static void wdesc(struct gen *g, uint32_t id, int depth)
{
    id = skip_mods(g, id);
    const struct btf_type *t = T(g, id);
    /* Real types nest a few levels (a pointer to an array of pointers);
     * only a damaged BTF goes deeper (a pointer cycle), and the ISF loader
     * takes entries nested at most 32 deep. */
    if (!t || depth > 16) {
        wdesc_named(g, "base", "void");
        return;
    }
    switch (btf_kind(t)) {
    case BTF_KIND_INT:
    case BTF_KIND_FLOAT: {
        const char *nm = NAME(g, t);
        wdesc_named(g, "base", *nm ? nm : int_name_for(t->size, true));
        return;
    }
    case BTF_KIND_PTR:
        fputs("{\"kind\": \"pointer\", \"subtype\": ", g->o);
        wdesc(g, t->type, depth + 1);
        putc('}', g->o);
        return;
    case BTF_KIND_ARRAY: {
        const struct btf_array *a = btf_array(t);
        fprintf(g->o, "{\"count\": %u, \"kind\": \"array\", \"subtype\": ",
                a->nelems);
        wdesc(g, a->type, depth + 1);
        putc('}', g->o);
        return;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
    case BTF_KIND_TYPEDEF:
        if (g->ref[id]) {
            wdesc_named(g, ref_kind_name(g->ref_kind[id]), g->ref[id]);
            return;
        }
        if (btf_is_typedef(t)) {
            wdesc(g, t->type, depth + 1);
            return;
        }
        wdesc_named(g, "base", "void");     /* unnamed and unlisted: cannot be */
        return;
    case BTF_KIND_FWD:
        wdesc_named(g, btf_kflag(t) ? "union" : "struct", NAME(g, t));
        return;
    case BTF_KIND_FUNC_PROTO:
    case BTF_KIND_FUNC:
        fputs("{\"kind\": \"function\"}", g->o);
        return;
    default:
        wdesc_named(g, "base", "void");
        return;
    }
}

/* The storage type of a bitfield: a base type or an enum (the schema
 * allows only those), wide enough for bit_position + bit_length. */
static void wbitfield_type(struct gen *g, uint32_t id, unsigned bits_needed)
{
    for (int i = 0; i < 64; i++) {
        id = skip_mods(g, id);
        const struct btf_type *t = T(g, id);
        if (!t)
            break;
        if (btf_is_typedef(t) && g->ref[id] && g->ref_kind[id] == BTF_KIND_ENUM) {
            wdesc_named(g, "enum", g->ref[id]);
            return;
        }
        if (btf_is_typedef(t)) {
            id = t->type;
            continue;
        }
        if (btf_is_any_enum(t) && g->ref[id] && t->size * 8u >= bits_needed) {
            wdesc_named(g, "enum", g->ref[id]);
            return;
        }
        if (btf_is_int(t) && t->size * 8u >= bits_needed && *NAME(g, t)) {
            wdesc_named(g, "base", NAME(g, t));
            return;
        }
        if (btf_is_int(t) || btf_is_any_enum(t)) {
            /* Too narrow for where the bits sit: a wider int of the same
             * signedness. */
            bool sg = btf_is_int(t) && (btf_int_encoding(t) & BTF_INT_SIGNED);
            unsigned sz = t->size ? t->size : 1;
            while (sz * 8 < bits_needed && sz < 8)
                sz *= 2;
            wdesc_named(g, "base", int_name_for(sz, sg));
            return;
        }
        break;
    }
    wdesc_named(g, "base", int_name_for(bits_needed > 32 ? 8 : 4, false));
}

/* The fields of struct/union `id` as an ISF user type named `name`. */
static void wcomposite(struct gen *g, uint32_t id, const char *name, bool *first)
{
    const struct btf_type *t = T(g, id);
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    jstr(g->o, name);
    fputs(": {\"fields\": {", g->o);
    const struct btf_member *m = btf_members(t);
    unsigned anon = 0;
    bool f1 = true;
    for (unsigned i = 0; i < btf_vlen(t); i++) {
        const char *mn = btf__name_by_offset(g->btf, m[i].name_off);
        uint32_t boff = btf_member_bit_offset(t, i);
        uint32_t bsz = btf_member_bitfield_size(t, i);
        uint32_t mt = skip_mods(g, m[i].type);
        const struct btf_type *mtt = T(g, mt);
        char anon_name[32];
        bool is_anon = false;
        if (!mn || !*mn) {
            uint32_t inner = skip_typedefs(g, m[i].type);
            const struct btf_type *it = T(g, inner);
            if (!it || !btf_is_composite(it))
                continue;       /* unnamed padding bitfield */
            snprintf(anon_name, sizeof anon_name, "unnamed_field_%u", anon++);
            mn = anon_name;
            is_anon = true;
        }
        /* Old-style BTF (kflag 0): an int member narrower than its type. */
        if (!bsz && mtt && btf_is_int(mtt) &&
            (btf_int_bits(mtt) != mtt->size * 8 || btf_int_offset(mtt))) {
            boff += btf_int_offset(mtt);
            bsz = btf_int_bits(mtt);
        }
        fputs(f1 ? "" : ", ", g->o);
        f1 = false;
        jstr(g->o, mn);
        if (bsz) {
            unsigned pos = boff % 8;
            fprintf(g->o, ": {\"offset\": %u, \"type\": {\"bit_length\": %u, "
                    "\"bit_position\": %u, \"kind\": \"bitfield\", \"type\": ",
                    boff / 8, bsz, pos);
            wbitfield_type(g, m[i].type, pos + bsz);
            fputs("}}", g->o);
        } else {
            fprintf(g->o, ": {%s\"offset\": %u, \"type\": ",
                    is_anon ? "\"anonymous\": true, " : "", boff / 8);
            wdesc(g, m[i].type, 0);
            putc('}', g->o);
        }
    }
    fprintf(g->o, "}, \"kind\": \"%s\", \"size\": %u}",
            btf_is_union(t) ? "union" : "struct", t->size);
}

static void wenum(struct gen *g, uint32_t id, const char *name, bool *first)
{
    const struct btf_type *t = T(g, id);
    bool sg = btf_kflag(t);
    unsigned vlen = btf_vlen(t);
    /* BTF from pahole >= 1.24 flags signed enums (kflag), and then a
     * "negative" 32-bit value of an unflagged enum is a large unsigned one
     * (0xefffffff).  Older BTF has no flag: a negative value then means a
     * signed enum, as the compiler would have made it. */
    if (!sg && !g->enum_signedness && btf_is_enum(t))
        for (unsigned i = 0; i < vlen; i++)
            if (btf_enum(t)[i].val < 0)
                sg = true;
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    jstr(g->o, name);
    fprintf(g->o, ": {\"base\": \"%s\", \"constants\": {",
            int_name_for(t->size, sg));
    bool c1 = true;
    for (unsigned i = 0; i < vlen; i++) {
        const char *cn;
        if (btf_is_enum(t)) {
            const struct btf_enum *e = &btf_enum(t)[i];
            cn = btf__name_by_offset(g->btf, e->name_off);
            if (!cn || !*cn)
                continue;
            fputs(c1 ? "" : ", ", g->o);
            c1 = false;
            jstr(g->o, cn);
            if (sg)
                fprintf(g->o, ": %d", e->val);
            else
                fprintf(g->o, ": %u", (uint32_t)e->val);
        } else {
            const struct btf_enum64 *e = &btf_enum64(t)[i];
            cn = btf__name_by_offset(g->btf, e->name_off);
            if (!cn || !*cn)
                continue;
            fputs(c1 ? "" : ", ", g->o);
            c1 = false;
            jstr(g->o, cn);
            uint64_t v = btf_enum64_value(e);
            if (sg)
                fprintf(g->o, ": %lld", (long long)(int64_t)v);
            else
                fprintf(g->o, ": %llu", (unsigned long long)v);
        }
    }
    fprintf(g->o, "}, \"size\": %u}", t->size);
}

/* "unnamed_<16 hex>" for an anonymous type, stable for a given BTF. */
static char *unnamed(const struct gen *g, uint32_t id)
{
    const struct btf_type *t = T(g, id);
    uint64_t h = hash64(&id, sizeof id, HASH_INIT);
    uint32_t kv[2] = {t->info, t->size};
    h = hash64(kv, sizeof kv, h);
    if (btf_is_composite(t)) {
        const struct btf_member *m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); i++) {
            const char *mn = btf__name_by_offset(g->btf, m[i].name_off);
            if (mn)
                h = hash64(mn, strlen(mn) + 1, h);
            h = hash64(&m[i].offset, sizeof m[i].offset, h);
        }
    }
    char *s = malloc(32);
    if (s)
        snprintf(s, 32, "unnamed_%016llx", (unsigned long long)h);
    return s;
}

/* Decide the ISF name of every struct, union, enum and of the typedefs
 * that get a copy, in the order they are written. */
static int plan_names(struct gen *g)
{
    /* 1. named structs/unions, 2. named enums: first of a name wins. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!*nm || !(btf_is_composite(t) || btf_is_any_enum(t)))
            continue;
        struct strset *set = btf_is_composite(t) ? &g->ut : &g->en;
        int r = strset_add(set, nm);
        if (r < 0)
            return -1;
        if (r == 0) {
            g->st.name_clashes++;
            /* References by name reach the first definition. */
        }
        if (!(g->ref[id] = strdup(nm)))
            return -1;
        g->ref_kind[id] = btf_is_union(t) ? BTF_KIND_UNION
                          : btf_is_composite(t) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
        if (r == 0)
            g->ref_kind[id] |= 0x80;        /* not written: a duplicate */
    }
    /* 3. anonymous ones. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        if (*NAME(g, t) || !(btf_is_composite(t) || btf_is_any_enum(t)))
            continue;
        char *nm = unnamed(g, id);
        if (!nm)
            return -1;
        struct strset *set = btf_is_composite(t) ? &g->ut : &g->en;
        if (strset_add(set, nm) != 1) {
            /* A hash clash: fall back on the id, unique by construction. */
            snprintf(nm, 32, "unnamed_btf_%u", id);
            if (strset_add(set, nm) < 0) {
                free(nm);
                return -1;
            }
        }
        g->ref[id] = nm;
        g->ref_kind[id] = btf_is_union(t) ? BTF_KIND_UNION
                          : btf_is_composite(t) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
    }
    /* 4. typedefs of structs/unions/enums: a copy under the typedef's name,
     * unless the name is taken (typedef struct foo foo: the same thing). */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!btf_is_typedef(t) || !*nm)
            continue;
        /* Only a typedef of the struct itself: one of another typedef
         * (atomic_long_t of atomic64_t) refers to that one, as in
         * dwarf2json's profiles. */
        uint32_t target = skip_mods(g, t->type);
        const struct btf_type *tt = T(g, target);
        if (!tt || !(btf_is_composite(tt) || btf_is_any_enum(tt)))
            continue;
        struct strset *set = btf_is_composite(tt) ? &g->ut : &g->en;
        int r = strset_add(set, nm);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (!g->ref[target] || strcmp(g->ref[target], nm) != 0)
                g->st.name_clashes++;
            continue;           /* references go to the target's name */
        }
        if (!(g->ref[id] = strdup(nm)))
            return -1;
        g->ref_kind[id] = btf_is_union(tt) ? BTF_KIND_UNION
                          : btf_is_composite(tt) ? BTF_KIND_STRUCT : BTF_KIND_ENUM;
    }
    return 0;
}

/* ---- symbol types ---------------------------------------------------- */

/* Types of well-known globals BTF does not describe (it has types only for
 * per-CPU variables): what Volatility's Linux plugins and vmemfs's walkers
 * look up.  "[struct |union |enum ]NAME[ *...][[N]]"; "[?]": as many
 * elements as fit before the next symbol (a size BTF does not give). */
static const struct {
    const char *sym, *type;
} known_types[] = {
    {"init_task", "struct task_struct"},
    {"init_mm", "struct mm_struct"},
    {"init_top_pgt", "pgd_t[]"},
    {"init_level4_pgt", "pgd_t[]"},
    {"swapper_pg_dir", "pgd_t[]"},
    {"linux_banner", "char[]"},
    {"linux_proc_banner", "char[]"},
    {"_text", "char[]"},
    {"_stext", "char[]"},
    {"_etext", "char[]"},
    {"_sdata", "char[]"},
    {"_edata", "char[]"},
    {"_end", "char[]"},
    {"__bss_start", "char[]"},
    {"__per_cpu_start", "char[]"},
    {"__per_cpu_end", "char[]"},
    {"init_uts_ns", "struct uts_namespace"},
    {"init_pid_ns", "struct pid_namespace"},
    {"init_user_ns", "struct user_namespace"},
    {"init_nsproxy", "struct nsproxy"},
    {"init_net", "struct net"},
    {"init_files", "struct files_struct"},
    {"init_fs", "struct fs_struct"},
    {"init_cred", "struct cred"},
    {"modules", "struct list_head"},
    {"mod_tree", "struct mod_tree_root"},
    {"net_namespace_list", "struct list_head"},
    {"super_blocks", "struct list_head"},
    {"tty_drivers", "struct list_head"},
    {"vmap_area_list", "struct list_head"},
    {"mount_hashtable", "struct hlist_head *"},
    {"iomem_resource", "struct resource"},
    {"ioport_resource", "struct resource"},
    {"prb", "struct printk_ringbuffer *"},
    {"log_buf", "char *"},
    {"log_buf_len", "u32"},
    {"jiffies", "long unsigned int"},
    {"jiffies_64", "u64"},
    {"phys_base", "long unsigned int"},
    {"page_offset_base", "long unsigned int"},
    {"vmalloc_base", "long unsigned int"},
    {"vmemmap_base", "long unsigned int"},
    {"max_pfn", "long unsigned int"},
    {"nr_cpu_ids", "unsigned int"},
    {"__per_cpu_offset", "long unsigned int[?]"},   /* NR_CPUS entries */
    {"mem_section", "struct mem_section **"},
    {"idt_table", "gate_desc[256]"},
    {"sys_call_table", "sys_call_ptr_t[]"},
    {"ia32_sys_call_table", "sys_call_ptr_t[]"},
    {"tcp_hashinfo", "struct inet_hashinfo"},
    {"keyring_name_hash", "struct list_head[32]"},
    {"system_state", "enum system_states"},
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Bytes from addr to the next higher symbol address; 0 when unknown. */
static uint64_t gap_after(struct gen *g, const struct btf_isf_symbols *syms,
                          uint64_t addr)
{
    if (!syms || !syms->n)
        return 0;
    if (!g->sorted) {
        g->sorted = malloc(syms->n * sizeof *g->sorted);
        if (!g->sorted)
            return 0;
        for (size_t i = 0; i < syms->n; i++)
            g->sorted[i] = syms->v[i].addr;
        qsort(g->sorted, syms->n, sizeof *g->sorted, cmp_u64);
    }
    size_t lo = 0, hi = syms->n;         /* first address > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->sorted[mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < syms->n ? g->sorted[lo] - addr : 0;
}

/* Write the descriptor a known_types spec means for a symbol at addr;
 * false when BTF lacks the named type (nothing written then). */
static bool wspec(struct gen *g, const char *spec,
                  const struct btf_isf_symbols *syms, uint64_t addr)
{
    char name[96];
    int kind = 0;
    const char *p = spec;
    if (strncmp(p, "struct ", 7) == 0) {
        kind = BTF_KIND_STRUCT;
        p += 7;
    } else if (strncmp(p, "union ", 6) == 0) {
        kind = BTF_KIND_UNION;
        p += 6;
    } else if (strncmp(p, "enum ", 5) == 0) {
        kind = BTF_KIND_ENUM;
        p += 5;
    }
    size_t n = strcspn(p, "*[");
    while (n && p[n - 1] == ' ')
        n--;
    if (n >= sizeof name)
        return false;
    memcpy(name, p, n);
    name[n] = '\0';
    p += n;
    int ptrs = 0;
    for (; *p == ' ' || *p == '*'; p++)
        ptrs += *p == '*';
    bool array = *p == '[';
    bool infer = array && p[1] == '?';
    unsigned long count = array && !infer ? strtoul(p + 1, NULL, 10) : 0;

    int32_t id;
    if (kind)
        id = btf__find_by_name_kind(g->btf, name, kind);
    else {
        id = btf__find_by_name_kind(g->btf, name, BTF_KIND_TYPEDEF);
        if (id <= 0)
            id = btf__find_by_name_kind(g->btf, name, BTF_KIND_INT);
        if (id <= 0)
            id = btf__find_by_name_kind(g->btf, name, BTF_KIND_FLOAT);
    }
    if (id <= 0)
        return false;
    if (infer) {
        int64_t el = ptrs ? (int64_t)btf__pointer_size(g->btf)
                          : btf__resolve_size(g->btf, (uint32_t)id);
        uint64_t gap = gap_after(g, syms, addr);
        if (el > 0 && gap % (uint64_t)el == 0 && gap / (uint64_t)el <= 65536)
            count = (unsigned long)(gap / (uint64_t)el);
    }
    if (array)
        fprintf(g->o, "{\"count\": %lu, \"kind\": \"array\", \"subtype\": ", count);
    for (int i = 0; i < ptrs; i++)
        fputs("{\"kind\": \"pointer\", \"subtype\": ", g->o);
    wdesc(g, (uint32_t)id, 0);
    for (int i = 0; i < ptrs + array; i++)
        putc('}', g->o);
    return true;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void wbase64(FILE *o, const unsigned char *s, size_t n)
{
    putc('"', o);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        putc(b64chars[v >> 18 & 63], o);
        putc(b64chars[v >> 12 & 63], o);
        putc(i + 1 < n ? b64chars[v >> 6 & 63] : '=', o);
        putc(i + 2 < n ? b64chars[v & 63] : '=', o);
    }
    putc('"', o);
}

static void wbase_type(struct gen *g, const char *name, unsigned size,
                       const char *kind, bool is_signed, const char *endian,
                       bool *first)
{
    if (strset_add(&g->bt, name) != 1)
        return;
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    jstr(g->o, name);
    fprintf(g->o, ": {\"endian\": \"%s\", \"kind\": \"%s\", \"signed\": %s, "
            "\"size\": %u}", endian, kind, is_signed ? "true" : "false", size);
    g->st.base_types++;
}

static int write_isf(struct gen *g, const struct btf_isf_symbols *syms,
                     const struct btf_isf_options *opt)
{
    FILE *o = g->o;
    const char *endian =
        btf__endianness(g->btf) == BTF_BIG_ENDIAN ? "big" : "little";
    size_t psize = btf__pointer_size(g->btf);
    if (!psize)
        psize = 8;

    /* metadata */
    fputs("{\n \"metadata\": {\"format\": \"6.2.0\", \"linux\": {", o);
    if (opt && opt->symbols_source) {
        fputs("\"symbols\": [{\"kind\": \"system-map\", \"name\": ", o);
        jstr(o, opt->symbols_source);
        fputs("}]", o);
    }
    if (opt && opt->types_source) {
        fputs(opt->symbols_source ? ", " : "", o);
        fputs("\"types\": [{\"name\": ", o);
        jstr(o, opt->types_source);
        fputs("}]", o);
    }
    fputs("}, \"producer\": {\"name\": \"vmemfs-profile\", \"version\": \""
          VMEMFS_VERSION "\"}},\n", o);

    /* base_types */
    fputs(" \"base_types\": {", o);
    bool first = true;
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!*nm)
            continue;
        if (btf_is_int(t)) {
            unsigned enc = btf_int_encoding(t);
            const char *kind = (enc & BTF_INT_BOOL) ? "bool"
                               : ((enc & BTF_INT_CHAR) || (t->size == 1 && strstr(nm, "char")))
                                   ? "char" : "int";
            /* dwarf2json marks char signed as the x86 ABI has it, and
             * floats signed: follow it so the two kinds of profile agree. */
            bool sg = (enc & BTF_INT_SIGNED) || strcmp(nm, "char") == 0;
            wbase_type(g, nm, t->size, kind, sg, endian, &first);
        } else if (btf_is_float(t)) {
            wbase_type(g, nm, t->size, "float", true, endian, &first);
        }
    }
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        wbase_type(g, int_name_for(sizes[i], true), sizes[i],
                   sizes[i] == 1 ? "char" : "int", true, endian, &first);
        wbase_type(g, int_name_for(sizes[i], false), sizes[i],
                   sizes[i] == 1 ? "char" : "int", false, endian, &first);
    }
    wbase_type(g, "pointer", (unsigned)psize, "int", false, endian, &first);
    wbase_type(g, "void", 0, "void", false, endian, &first);
    fputs("\n },\n", o);

    /* user_types, in plan order */
    fputs(" \"user_types\": {", o);
    first = true;
    struct strset written = {0};
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t id = 1; id < g->n; id++) {
            const struct btf_type *t = T(g, id);
            if (!g->ref[id] || (g->ref_kind[id] & 0x80))
                continue;
            uint8_t rk = g->ref_kind[id];
            if (rk == BTF_KIND_ENUM)
                continue;
            bool named = *NAME(g, t) != '\0';
            bool is_td = btf_is_typedef(t);
            if ((pass == 0 && (is_td || !named)) || (pass == 1 && (is_td || named)) ||
                (pass == 2 && !is_td))
                continue;
            if (strset_add(&written, g->ref[id]) != 1)
                continue;
            uint32_t src = is_td ? skip_typedefs(g, t->type) : id;
            wcomposite(g, src, g->ref[id], &first);
            if (pass == 0)
                g->st.user_types++;
            else if (pass == 1)
                g->st.anonymous_types++;
            else
                g->st.typedef_copies++;
        }
    }
    /* Structs and unions only ever declared: empty, so references resolve. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!btf_is_fwd(t) || !*nm || strset_has(&g->ut, nm))
            continue;
        if (strset_add(&g->ut, nm) < 0 || strset_add(&written, nm) < 0) {
            strset_free(&written);
            return -1;
        }
        fputs(first ? "\n  " : ",\n  ", o);
        first = false;
        jstr(o, nm);
        fprintf(o, ": {\"fields\": {}, \"kind\": \"%s\", \"size\": 0}",
                btf_kflag(t) ? "union" : "struct");
        g->st.forward_only++;
    }
    strset_free(&written);
    fputs("\n },\n", o);

    /* enums */
    fputs(" \"enums\": {", o);
    first = true;
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        if (!g->ref[id] || g->ref_kind[id] != BTF_KIND_ENUM)
            continue;
        uint32_t src = btf_is_typedef(t) ? skip_typedefs(g, t->type) : id;
        wenum(g, src, g->ref[id], &first);
        g->st.enums++;
    }
    fputs("\n },\n", o);

    /* symbols */
    fputs(" \"symbols\": {", o);
    first = true;
    /* KASLR moves the kernel image as one piece: every symbol from _text
     * on within the 1 GiB the image may span (sections past _end, such as
     * .init.scratch, included); per-CPU offsets and absolute symbols lie
     * elsewhere and stay. */
    const struct bsym *tx = sym_find(syms, "_text");
    int64_t shift = 0;
    uint64_t lo = 0, hi = 0;
    if (opt && opt->link_text && tx) {
        shift = (int64_t)(tx->addr - opt->link_text);
        lo = tx->addr;
        hi = lo + ((uint64_t)1 << 30) - 1 < lo ? UINT64_MAX
                                                : lo + ((uint64_t)1 << 30) - 1;
    }
    g->st.kaslr_shift = shift;
    for (size_t i = 0; syms && i < syms->n; i++) {
        const struct bsym *s = &syms->v[i];
        uint64_t addr = s->addr;
        if (shift && addr >= lo && addr <= hi)
            addr -= (uint64_t)shift;
        fputs(first ? "\n  " : ",\n  ", o);
        first = false;
        jstr(o, s->name);
        fprintf(o, ": {\"address\": %llu", (unsigned long long)addr);
        if (strcmp(s->name, "linux_banner") == 0 && opt && opt->banner) {
            size_t bl = strlen(opt->banner);
            while (bl && opt->banner[bl - 1] == '\n')
                bl--;
            unsigned char *b = malloc(bl + 2);
            if (!b)
                return -1;
            memcpy(b, opt->banner, bl);
            b[bl] = '\n';       /* the kernel's string: "...\n" and its NUL */
            b[bl + 1] = '\0';
            fputs(", \"constant_data\": ", o);
            wbase64(o, b, bl + 2);
            free(b);
            g->st.banner_symbol = true;
        }
        fputs(", \"type\": ", o);
        bool typed = false;
        if (g->var_type[i] > 0) {
            wdesc(g, (uint32_t)g->var_type[i], 0);
            typed = true;
        } else {
            for (size_t k = 0; k < sizeof known_types / sizeof known_types[0]; k++)
                if (strcmp(known_types[k].sym, s->name) == 0) {
                    typed = wspec(g, known_types[k].type, syms, s->addr);
                    break;
                }
        }
        if (!typed)
            fputs("{\"kind\": \"base\", \"name\": \"void\"}", o);
        else
            g->st.typed_symbols++;
        putc('}', o);
        g->st.symbols++;
    }
    fputs("\n }\n}\n", o);
    return 0;
}

int btf_isf_write(FILE *out, const struct btf *btf,
                  const struct btf_isf_symbols *syms,
                  const struct btf_isf_options *opt,
                  struct btf_isf_stats *stats, char *err, size_t errlen)
{
    struct gen g = {.btf = btf, .o = out};
    int rc = -1;
    if (!out || !btf) {
        say(err, errlen, "btf_isf_write: no output or no BTF");
        return -1;
    }
    g.n = btf__type_cnt(btf);
    g.ref = calloc(g.n ? g.n : 1, sizeof *g.ref);
    g.ref_kind = calloc(g.n ? g.n : 1, 1);
    g.var_type = calloc(syms && syms->n ? syms->n : 1, sizeof *g.var_type);
    if (!g.ref || !g.ref_kind || !g.var_type || plan_names(&g) != 0) {
        say(err, errlen, "generating the ISF: out of memory");
        goto out;
    }
    for (uint32_t id = 1; id < g.n; id++) {
        const struct btf_type *t = T(&g, id);
        if (btf_is_any_enum(t) && btf_kflag(t)) {
            g.enum_signedness = true;
            break;
        }
    }
    /* Per-CPU (and any other) variables BTF has types for. */
    for (uint32_t id = 1; syms && id < g.n; id++) {
        const struct btf_type *t = T(&g, id);
        if (!btf_is_var(t))
            continue;
        const struct bsym *s = sym_find(syms, NAME(&g, t));
        if (s)
            g.var_type[s - syms->v] = (int32_t)t->type;
    }
    if (write_isf(&g, syms, opt) != 0) {
        say(err, errlen, "generating the ISF: out of memory");
        goto out;
    }
    if (fflush(out) != 0 || ferror(out)) {
        say(err, errlen, "writing the ISF: %s", strerror(errno ? errno : EIO));
        goto out;
    }
    rc = 0;
    if (stats)
        *stats = g.st;
out:
    for (uint32_t i = 0; g.ref && i < g.n; i++)
        free(g.ref[i]);
    free(g.ref);
    free(g.ref_kind);
    free(g.var_type);
    free(g.sorted);
    strset_free(&g.ut);
    strset_free(&g.en);
    strset_free(&g.bt);
    return rc;
}

char *btf_isf_generate(const struct btf *btf,
                       const struct btf_isf_symbols *syms,
                       const struct btf_isf_options *opt, size_t *len,
                       struct btf_isf_stats *stats, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) {
        say(err, errlen, "generating the ISF: %s", strerror(errno));
        return NULL;
    }
    int r = btf_isf_write(f, btf, syms, opt, stats, err, errlen);
    if (fclose(f) != 0 && r == 0) {
        say(err, errlen, "generating the ISF: out of memory");
        r = -1;
    }
    if (r != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

#endif /* BTF_ISF_BUILD */
