/*
 * ksyms_text.c - symbol text for BTF -> ISF (see btf_isf.h,
 * btf_isf_internal.h): a symbol list (name, address, type letter; hashed
 * by name) and its parsing from System.map or /proc/kallsyms text, from a
 * buffer or a file.
 */
#include "core/util/file.h"
#include "core/profile/btf_isf_internal.h"

#ifdef BTF_ISF_BUILD

/* ------------------------------------------------------------------ */
/* Symbol lists                                                        */

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

const struct bsym *bti_sym_find(const struct btf_isf_symbols *s,
                                const char *name)
{
    if (!s || !s->index_cap)
        return NULL;
    size_t mask = s->index_cap - 1;
    for (size_t i = bti_hash64(name, strlen(name), HASH_INIT) & mask;
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
        size_t j = bti_hash64(s->v[k].name, strlen(s->v[k].name), HASH_INIT) & (nc - 1);
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
    if (!s || !name || !*name || bti_sym_find(s, name))
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
    size_t i = bti_hash64(name, strlen(name), HASH_INIT) & mask;
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
    const struct bsym *b = name ? bti_sym_find(s, name) : NULL;
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
        bti_say(err, errlen, "%s: out of memory", name);
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
            bti_say(err, errlen, "%s: out of memory", name);
            btf_isf_symbols_free(s);
            return NULL;
        }
        if (addr)
            nonzero++;
    }
    if (s->n == 0) {
        bti_say(err, errlen, "%s: no \"ADDRESS TYPE NAME\" lines: not a "
            "System.map or kallsyms listing (%zu lines, %zu malformed)",
            name, lines, bad);
        btf_isf_symbols_free(s);
        return NULL;
    }
    if (nonzero == 0) {
        bti_say(err, errlen, "%s: every address is 0: kallsyms read without "
            "privilege (kptr_restrict); read it as root", name);
        btf_isf_symbols_free(s);
        return NULL;
    }
    return s;
}

void *bti_read_whole(const char *path, size_t max, size_t *len, char *err,
                     size_t errlen)
{
    struct stat st;
    int fd = vmem_open_regular(path, "a symbol list or kernel image", &st, err, errlen);
    if (fd < 0)
        return NULL;
    /* Regular files by size; /proc and /sys files (size 0 or a page) by
     * reading until EOF. */
    size_t cap = 1 << 20, got = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (got == cap) {
            if (cap >= max) {
                bti_say(err, errlen, "%s: larger than %zu bytes", path, max);
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
            bti_say(err, errlen, "%s: %s", path, strerror(errno));
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
    bti_say(err, errlen, "%s: out of memory", path);
fail:
    free(buf);
    close(fd);
    return NULL;
}

struct btf_isf_symbols *btf_isf_symbols_load(const char *path, char *err,
                                             size_t errlen)
{
    size_t len;
    char *text = bti_read_whole(path, (size_t)1 << 30, &len, err, errlen);
    if (!text)
        return NULL;
    struct btf_isf_symbols *s = btf_isf_symbols_parse(text, len, path, err, errlen);
    free(text);
    return s;
}

#endif /* BTF_ISF_BUILD */
