/*
 * kimage.c - kernel images for BTF -> ISF (see btf_isf.h,
 * btf_isf_internal.h): raw BTF, ELF vmlinux (sections, segments, the BTF
 * and the banner in it), bzImage and the compressed payloads kernels use
 * (unpacked through core/util/decompress.h), opened from a file or a
 * buffer into a struct btf_isf_kernel.  Every header is copied out and
 * every span checked: the image is a user's file.
 */
#include "core/profile/btf_isf_internal.h"

#ifdef BTF_ISF_BUILD

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
        bti_say(why, whylen, "%s (the kernel's scripts/extract-vmlinux does) and give "
            "the vmlinux", msg);
    else if (rc < 0)
        bti_say(why, whylen, "%s", msg);
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
        bti_say(err, errlen, "%s: BTF header is damaged or its sizes run past "
            "the data", name);
        return NULL;
    }
    errno = 0;
    struct btf *b = btf__new(d, (uint32_t)len);
    if (!b || libbpf_get_error(b)) {
        int e = errno ? errno : EINVAL;
        bti_say(err, errlen, "%s: libbpf rejects the BTF data: %s", name,
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
    const struct bsym *lb = bti_sym_find(syms, "linux_banner");
    const struct bsym *tx = bti_sym_find(syms, "_text");
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
        bti_say(err, errlen, "%s: compressed inside itself too many times", name);
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
            bti_say(err, errlen, "%s: only little-endian kernel ELF images "
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
            bti_say(err, errlen, "%s: ELF image without BTF: the kernel was "
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
            bti_say(err, errlen, "%s: bzImage boot protocol %u.%02u predates the "
                "payload fields (2.08)", name, version >> 8, version & 0xff);
            return -1;
        }
        size_t setup = (size_t)(d[0x1f1] ? d[0x1f1] : 4) + 1;
        uint64_t poff = (uint64_t)setup * 512 + vmem_ld_le32(d + 0x248);
        uint64_t plen = vmem_ld_le32(d + 0x24c);
        if (!span_ok(n, poff, plen) || plen < 16) {
            bti_say(err, errlen, "%s: bzImage payload lies outside the file", name);
            return -1;
        }
        void *out = NULL;
        size_t outlen;
        const char *fmt = NULL;
        int r = unpack(d + poff, (size_t)plen, &out, &outlen, &fmt, why, sizeof why);
        if (r <= 0) {
            bti_say(err, errlen, "%s: bzImage payload: %s", name,
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
        bti_say(err, errlen, "%s: %s", name, why);
        return -1;
    }
    if (r > 0) {
        snprintf(k->format + strlen(k->format),
                 sizeof k->format - strlen(k->format), "%s-compressed ", fmt);
        r = open_image(out, outlen, name, syms, k, depth + 1, err, errlen);
        free(out);
        return r;
    }
    bti_say(err, errlen, "%s: not a kernel image: neither raw BTF, an ELF vmlinux, "
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
        bti_say(err, errlen, "%s: no data", name);
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
    void *data = bti_read_whole(path, MAX_IMAGE, &len, err, errlen);
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

#endif /* BTF_ISF_BUILD */
