/*
 * btf_mem.c - a kernel profile from the guest's own BTF and kallsyms (see
 * btf_mem.h for the steps and the checks).
 */
#include "core/util/log.h"
#include "core/profile/btf_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/arch/x86/paging.h"
#include "core/phys/vm.h"
#include "core/profile/btf_isf.h"
#include "core/profile/isf.h"
#include "core/profile/kallsyms_mem.h"

#define KSYMS_BACK (64ull << 20)   /* kallsyms scan around the banner */
#define KSYMS_FWD (64ull << 20)
#define IMAGE_MAX (1ull << 30)     /* a kernel image is smaller */
#define LINK_TEXT_X64 0xffffffff81000000ull   /* __START_KERNEL, default config */
#define LINK_TEXT_I386 0xc1000000ull          /* PAGE_OFFSET + 16 MiB */
#define NO_BTF "no BTF: this kernel was built without CONFIG_DEBUG_INFO_BTF"

/* One message line: vmem_errf (core/util/log.h). */
#define say vmem_errf

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t btf_mem_blob_len(const uint8_t *d, size_t n)
{
    if (n < 24 || d[0] != 0x9f || d[1] != 0xeb || d[2] != 1)
        return 0;
    uint32_t hdr = le32(d + 4), toff = le32(d + 8), tlen = le32(d + 12),
             soff = le32(d + 16), slen = le32(d + 20);
    if (hdr < 24 || hdr > 256 || hdr > n || toff % 4 || hdr % 4 || slen == 0)
        return 0;
    uint64_t end1 = (uint64_t)toff + tlen, end2 = (uint64_t)soff + slen;
    uint64_t total = hdr + (end1 > end2 ? end1 : end2);
    if (total > n || total > BTF_MEM_MAX)
        return 0;
    /* Sections must not overlap, and the string section starts with "". */
    if (!(end1 <= soff || end2 <= toff) || d[hdr + soff] != 0)
        return 0;
    return (size_t)total;
}

long btf_mem_scan(const uint8_t *d, size_t n, size_t *blob_len)
{
    static const uint8_t magic[4] = {0x9f, 0xeb, 0x01, 0x00};
    const uint8_t *p = d;
    while (n >= 24 && (p = memmem(p, n - (size_t)(p - d), magic, 4)) != NULL) {
        size_t off = (size_t)(p - d);
        if (off % 4 == 0) {
            size_t l = btf_mem_blob_len(p, n - off);
            if (l) {
                *blob_len = l;
                return (long)off;
            }
        }
        p++;
        if ((size_t)(p - d) + 24 > n)
            break;
    }
    return -1;
}

#ifdef VMEMFS_HAVE_LIBBPF

struct mem_profile {
    struct isf *isf;
    char *json;
    size_t json_len;
    char file_name[96];
    char summary[512];
    struct json_object *desc;       /* the keys for info.json */
    struct mem_profile_times t;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The physical place of a kernel-image symbol: the image is one piece, so
 * it sits where the banner sits, moved by the distance between the two. */
static bool img_phys(uint64_t va, uint64_t banner_va, uint64_t banner_gpa, uint64_t *gpa)
{
    int64_t d = (int64_t)(va - banner_va);
    if (d > (int64_t)IMAGE_MAX || d < -(int64_t)IMAGE_MAX ||
        (d < 0 && (uint64_t)-d > banner_gpa))
        return false;
    *gpa = banner_gpa + (uint64_t)d;
    return true;
}

/* VMCOREINFO: "KEY=value" lines in the page vmcoreinfo_data points to. */
static bool vmcoreinfo_value(const char *text, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t l = strcspn(p + kl + 1, "\n");
            if (l >= outlen)
                l = outlen - 1;
            memcpy(out, p + kl + 1, l);
            out[l] = 0;
            return true;
        }
    }
    return false;
}

struct build {
    struct vm *vm;
    struct kallsyms_mem *k;         /* the scan's */
    uint64_t banner_va, banner_gpa;
    unsigned psize;
    struct vmem_as *as;
    char checks[512];
    size_t checks_len;
    uint64_t kernel_offset;
    bool have_kernel_offset;
};

static void note(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct build *b, const char *fmt, ...)
{
    if (b->checks_len + 3 >= sizeof b->checks)
        return;
    if (b->checks_len)
        b->checks_len += (size_t)snprintf(b->checks + b->checks_len,
                                          sizeof b->checks - b->checks_len, "; ");
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->checks + b->checks_len, sizeof b->checks - b->checks_len, fmt, ap);
    va_end(ap);
    if (w > 0)
        b->checks_len += (size_t)w;
    if (b->checks_len >= sizeof b->checks)
        b->checks_len = sizeof b->checks - 1;
}

static bool ksym_gpa(struct build *b, const char *name, uint64_t *va, uint64_t *gpa)
{
    return kallsyms_lookup(b->k, name, va) == 0 &&
           img_phys(*va, b->banner_va, b->banner_gpa, gpa);
}

/* Step 2: tie kallsyms to the banner and the page tables. */
static int cross_check(struct build *b, char *why, size_t whylen)
{
    uint64_t va, gpa;
    if (ksym_gpa(b, "kallsyms_token_table", &va, &gpa)) {
        if (gpa != b->k->at_token_table) {
            say(why, whylen, "kallsyms: its linux_banner (0x%" PRIx64 ") and "
                "kallsyms_token_table (0x%" PRIx64 ") put the token table at "
                "0x%" PRIx64 ", but it is at 0x%" PRIx64 " (this banner copy is "
                "not linux_banner, or the table is not this kernel's)",
                b->banner_va, va, gpa, b->k->at_token_table);
            return -1;
        }
        note(b, "kallsyms_token_table where linux_banner says");
    }
    if (b->psize != 8) {
        note(b, "32-bit kernel: page tables checked by the Linux layer");
        return 0;
    }
    uint64_t pgt_va, pgt;
    if (!ksym_gpa(b, "init_top_pgt", &pgt_va, &pgt)) {
        say(why, whylen, "kallsyms has no init_top_pgt in the kernel image");
        return -1;
    }
    /* 5-level paging when the kernel says so (__pgtable_l5_enabled). */
    enum vmem_paging_mode mode = VMEM_PAGING_X86_64_4L;
    uint64_t l5va, l5gpa;
    uint32_t l5 = 0;
    if (ksym_gpa(b, "__pgtable_l5_enabled", &l5va, &l5gpa) &&
        vm_read_phys(b->vm, l5gpa, &l5, 4, VM_READ_PAD) == 4 && l5 == 1)
        mode = VMEM_PAGING_X86_64_5L;
    struct vmem_phys_reader rd;
    vm_phys_reader(b->vm, &rd);
    b->as = vmem_as_new(mode, pgt, &rd);
    uint64_t got = 0;
    if (!b->as || vmem_as_translate(b->as, b->banner_va, &got, NULL) < 0 ||
        got != b->banner_gpa) {
        say(why, whylen, "init_top_pgt at 0x%" PRIx64 " (%s-level) does not map "
            "linux_banner 0x%" PRIx64 " to the banner at 0x%" PRIx64, pgt,
            mode == VMEM_PAGING_X86_64_5L ? "5" : "4", b->banner_va, b->banner_gpa);
        return -1;
    }
    note(b, "init_top_pgt (0x%" PRIx64 ", %s-level) maps linux_banner to the banner",
         pgt, mode == VMEM_PAGING_X86_64_5L ? "5" : "4");

    /* VMCOREINFO, when the kernel kept it: a further check, and the KASLR
     * offset.  vmcoreinfo_data is a pointer to a page of text. */
    uint64_t vi_va, vi_gpa, page_va, page_gpa;
    uint8_t ptr[8];
    if (!ksym_gpa(b, "vmcoreinfo_data", &vi_va, &vi_gpa) ||
        vm_read_phys(b->vm, vi_gpa, ptr, 8, VM_READ_PAD) != 8)
        return 0;
    page_va = (uint64_t)le32(ptr) | (uint64_t)le32(ptr + 4) << 32;
    char text[4097];
    if (!page_va || vmem_as_translate(b->as, page_va, &page_gpa, NULL) < 0 ||
        vm_read_phys(b->vm, page_gpa, text, 4096, VM_READ_PAD) != 4096)
        return 0;
    text[4096] = 0;
    char v[128];
    if (!vmcoreinfo_value(text, "OSRELEASE", v, sizeof v))
        return 0;
    if (vmcoreinfo_value(text, "SYMBOL(init_top_pgt)", v, sizeof v) ||
        vmcoreinfo_value(text, "SYMBOL(swapper_pg_dir)", v, sizeof v)) {
        if (strtoull(v, NULL, 16) != pgt_va) {
            say(why, whylen, "VMCOREINFO says init_top_pgt is 0x%s, kallsyms "
                "0x%" PRIx64, v, pgt_va);
            return -1;
        }
    }
    if (vmcoreinfo_value(text, "KERNELOFFSET", v, sizeof v)) {
        b->kernel_offset = strtoull(v, NULL, 16);
        b->have_kernel_offset = true;
    }
    note(b, "VMCOREINFO agrees%s", b->have_kernel_offset ? ", gives KERNELOFFSET" : "");
    return 0;
}

/* Step 3: the BTF blob. */
static uint8_t *find_btf(struct build *b, size_t *len, uint64_t *at, char *how,
                         size_t howlen, char *why, size_t whylen)
{
    uint64_t sva, eva, sgpa, egpa;
    if (ksym_gpa(b, "__start_BTF", &sva, &sgpa) && ksym_gpa(b, "__stop_BTF", &eva, &egpa)) {
        if (egpa <= sgpa || egpa - sgpa > BTF_MEM_MAX || egpa - sgpa < 24) {
            say(why, whylen, "BTF: __start_BTF..__stop_BTF is %" PRId64 " bytes",
                (int64_t)(egpa - sgpa));
            return NULL;
        }
        size_t n = (size_t)(egpa - sgpa);
        uint8_t *d = malloc(n);
        if (!d || vm_read_phys(b->vm, sgpa, d, n, VM_READ_PAD) != (ssize_t)n) {
            free(d);
            say(why, whylen, "BTF: cannot read %zu bytes at 0x%" PRIx64, n, sgpa);
            return NULL;
        }
        size_t bl = btf_mem_blob_len(d, n);
        if (!bl) {
            free(d);
            say(why, whylen, "BTF at 0x%" PRIx64 " (__start_BTF): the header is "
                "damaged or its sizes do not fit the %zu bytes", sgpa, n);
            return NULL;
        }
        *len = bl;
        *at = sgpa;
        say(how, howlen, "__start_BTF");
        return d;
    }
    /* No symbols for it: look for the header in the image, _text on. */
    uint64_t tva, tgpa, endva, endgpa;
    if (!ksym_gpa(b, "_text", &tva, &tgpa))
        tgpa = b->banner_gpa > (32u << 20) ? b->banner_gpa - (32u << 20) : 0;
    if (!ksym_gpa(b, "_end", &endva, &endgpa) || endgpa <= tgpa || endgpa - tgpa > IMAGE_MAX)
        endgpa = tgpa + (128u << 20);
    size_t n = (size_t)(endgpa - tgpa);
    uint8_t *d = malloc(n);
    if (!d) {
        say(why, whylen, "out of memory");
        return NULL;
    }
    ssize_t got = vm_read_phys(b->vm, tgpa, d, n, VM_READ_PAD);
    size_t bl = 0;
    long off = got > 0 ? btf_mem_scan(d, (size_t)got, &bl) : -1;
    if (off < 0) {
        free(d);
        say(why, whylen, NO_BTF " (no __start_BTF symbol, no BTF header in its "
            "image); give --symbols or --profile");
        return NULL;
    }
    memmove(d, d + off, bl);
    *len = bl;
    *at = tgpa + (uint64_t)off;
    say(how, howlen, "header scan");
    return d;
}

static void release_of(const char *banner, char *out, size_t outlen)
{
    const char *rel = banner + strlen("Linux version ");
    size_t i = 0;
    for (; rel[i] && rel[i] != ' ' && i + 1 < outlen; i++) {
        char ch = rel[i];
        /* A file name: keep it plain. */
        out[i] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' ||
                 ch == '+' ? ch : '_';
    }
    out[i] = 0;
    if (!i || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, outlen, "linux");
}

/* Is there a BTF header within [gpa - 64 MiB, gpa + 64 MiB)?  Only to say
 * which step a kernel lacks: the header alone, sizes plausible. */
static bool btf_header_near(struct vm *vm, uint64_t gpa)
{
    static const uint8_t magic[4] = {0x9f, 0xeb, 0x01, 0x00};
    const size_t chunk = 16u << 20;
    uint8_t *buf = malloc(chunk + 24);
    if (!buf)
        return false;
    uint64_t lo = gpa > KSYMS_BACK ? gpa - KSYMS_BACK : 0;
    bool found = false;
    for (uint64_t a = lo & ~0xfffull; a < gpa + KSYMS_FWD && !found; a += chunk) {
        ssize_t got = vm_read_phys(vm, a, buf, chunk + 24, VM_READ_PAD);
        if (got < 48)
            continue;
        const uint8_t *p = buf;
        size_t lim = (size_t)got - 24;
        while (!found && (size_t)(p - buf) < lim &&
               (p = memmem(p, lim - (size_t)(p - buf), magic, 4)) != NULL) {
            uint32_t hdr = le32(p + 4), tlen = le32(p + 12), slen = le32(p + 20);
            found = ((size_t)(p - buf) % 4) == 0 && hdr == 24 && le32(p + 8) == 0 &&
                    tlen > 1000 && tlen < BTF_MEM_MAX && slen > 1000 && slen < BTF_MEM_MAX;
            p++;
        }
    }
    free(buf);
    return found;
}

struct mem_profile_scan {
    bool tried, ok;
    unsigned psize;
    uint64_t center;                /* where the kallsyms scan looked */
    uint64_t ns;                    /* what the scan took */
    struct kallsyms_mem k;
    char why[384];
};

void mem_profile_scan_free(struct mem_profile_scan *s)
{
    if (s) {
        kallsyms_mem_free(&s->k);
        free(s);
    }
}

/* Step 1, once per open: kallsyms near the first banner that may be
 * linux_banner, 64-bit first; later banners reuse it (or its failure, when
 * they lie within the span already scanned). */
static int scan_kallsyms(struct vm *vm, struct mem_profile_scan *s, uint64_t gpa,
                         char *why, size_t whylen)
{
    if (s->tried && (s->ok || (gpa >= s->center - KSYMS_BACK / 2 &&
                               gpa < s->center + KSYMS_FWD / 2))) {
        if (!s->ok)
            say(why, whylen, "%s", s->why);
        return s->ok ? 0 : -1;
    }
    kallsyms_mem_free(&s->k);
    s->tried = true;
    s->center = gpa;
    char err[384], err32[256];
    s->psize = 8;
    uint64_t t0 = now_ns();
    if (kallsyms_from_vm(vm, gpa, KSYMS_BACK, KSYMS_FWD, 8, &s->k, err, sizeof err) == 0 ||
        (s->psize = 4, kallsyms_from_vm(vm, gpa, KSYMS_BACK, KSYMS_FWD, 4, &s->k, err32,
                                        sizeof err32) == 0)) {
        s->ok = true;
        s->ns = now_ns() - t0;
        return 0;
    }
    if (!btf_header_near(vm, gpa))
        say(s->why, sizeof s->why, NO_BTF " (no BTF header near the banner at 0x%" PRIx64
            "), and no kallsyms was found there either (%s); give --symbols "
            "or --profile", gpa, err);
    else
        say(s->why, sizeof s->why, "no kallsyms near the banner at 0x%" PRIx64 ": %s",
            gpa, err);
    say(why, whylen, "%s", s->why);
    return -1;
}

struct mem_profile *mem_profile_build(struct vm *vm, struct mem_profile_scan **scan,
                                      uint64_t *banner_gpa, const char *banner,
                                      char *why, size_t whylen)
{
    struct build b = {.vm = vm, .banner_gpa = *banner_gpa};
    struct mem_profile *mp = calloc(1, sizeof *mp);
    struct btf_isf_symbols *syms = NULL;
    struct btf_isf_kernel kern = {0};
    uint8_t *btfdata = NULL;
    char err[384];
    if (!mp) {
        say(why, whylen, "out of memory");
        return NULL;
    }
    uint64_t t0 = now_ns();
    /* linux_banner is "...\n\0"; the printk log's copies are not. */
    size_t bl = strlen(banner);
    char tail[2] = {0, 1};
    if (vm_read_phys(vm, b.banner_gpa + bl, tail, 2, VM_READ_PAD) != 2 || tail[0] != '\n' ||
        tail[1] != 0) {
        say(why, whylen, "the banner at 0x%" PRIx64 " is a copy (not followed by "
            "\"\\n\\0\" as linux_banner is)", b.banner_gpa);
        goto fail;
    }
    if (!*scan && !(*scan = calloc(1, sizeof **scan)))
        goto oom;
    if (scan_kallsyms(vm, *scan, b.banner_gpa, why, whylen) < 0)
        goto fail;
    b.k = &(*scan)->k;
    b.psize = (*scan)->psize;
    t0 = now_ns() - (*scan)->ns;    /* the scan counts, whichever try made it */
    mp->t.kallsyms = now_ns() - t0;
    t0 = now_ns();
    if (kallsyms_lookup(b.k, "linux_banner", &b.banner_va) < 0) {
        /* Without CONFIG_KALLSYMS_ALL only text symbols are listed. */
        if (!btf_header_near(vm, b.banner_gpa))
            say(why, whylen, NO_BTF " (no BTF header near the banner at 0x%" PRIx64
                "; its kallsyms, %zu text symbols, has no data symbols either: no "
                "CONFIG_KALLSYMS_ALL); give --symbols or --profile", b.banner_gpa, b.k->n);
        else
            say(why, whylen, "kallsyms (%zu symbols) lists no linux_banner: this kernel "
                "was built without CONFIG_KALLSYMS_ALL; give --symbols or --profile",
                b.k->n);
        goto fail;
    }
    /* The kernel's virtual and physical places differ by a multiple of
     * 2 MiB on x86-64 (KASLR's alignment; 4 KiB is all i386 promises
     * here): a copy of the banner elsewhere cannot be linux_banner. */
    uint64_t align = b.psize == 8 ? (2u << 20) : 4096;
    if (((b.banner_gpa ^ b.banner_va) & (align - 1)) != 0) {
        say(why, whylen, "the banner at 0x%" PRIx64 " is a copy: linux_banner (0x%" PRIx64
            ") cannot be there", b.banner_gpa, b.banner_va);
        goto fail;
    }
    if (cross_check(&b, err, sizeof err) < 0) {
        say(why, whylen, "kallsyms does not fit this kernel: %s", err);
        goto fail;
    }
    mp->t.checks = now_ns() - t0;

    /* Step 3: BTF. */
    t0 = now_ns();
    size_t blen = 0;
    uint64_t bat = 0;
    char how[32];
    btfdata = find_btf(&b, &blen, &bat, how, sizeof how, err, sizeof err);
    if (!btfdata) {
        say(why, whylen, "%s", err);
        goto fail;
    }
    char name[64];
    snprintf(name, sizeof name, "BTF at guest-physical 0x%" PRIx64, bat);
    if (btf_isf_kernel_from_buffer(btfdata, blen, name, NULL, &kern, err, sizeof err) < 0) {
        say(why, whylen, "corrupt BTF refused: %s", err);
        goto fail;
    }
    mp->t.btf = now_ns() - t0;

    /* Step 4: the ISF. */
    t0 = now_ns();
    syms = btf_isf_symbols_new();
    if (!syms)
        goto oom;
    for (size_t i = 0; i < b.k->n; i++)
        if (btf_isf_symbols_add(syms, kallsyms_name(b.k, i), b.k->addr[i], b.k->type[i]) < 0)
            goto oom;
    uint64_t text_va = 0;
    kallsyms_lookup(b.k, "_text", &text_va);
    uint64_t link_text = b.psize == 8 ? LINK_TEXT_X64 : LINK_TEXT_I386;
    if (b.have_kernel_offset && text_va)
        link_text = text_va - b.kernel_offset;
    char ssrc[160], tsrc[160];
    snprintf(ssrc, sizeof ssrc, "kallsyms in guest memory (token table at guest-physical "
             "0x%" PRIx64 ")", b.k->at_token_table);
    snprintf(tsrc, sizeof tsrc, "BTF in guest memory (guest-physical 0x%" PRIx64 ", %zu bytes)",
             bat, blen);
    struct btf_isf_options o = {.banner = banner, .link_text = link_text,
                                .types_source = tsrc, .symbols_source = ssrc};
    struct btf_isf_stats st;
    mp->json = btf_isf_generate(kern.btf, syms, &o, &mp->json_len, &st, err, sizeof err);
    if (!mp->json) {
        say(why, whylen, "building the ISF: %s", err);
        goto fail;
    }
    mp->t.isf_json = now_ns() - t0;
    t0 = now_ns();
    mp->isf = isf_load_buffer(mp->json, mp->json_len, "the ISF built from guest memory",
                              err, sizeof err);
    if (!mp->isf) {
        say(why, whylen, "%s", err);
        goto fail;
    }
    mp->t.isf_load = now_ns() - t0;

    char rel[80];
    release_of(banner, rel, sizeof rel);
    snprintf(mp->file_name, sizeof mp->file_name, "%s.json", rel);
    snprintf(mp->summary, sizeof mp->summary,
             "profile built from guest memory: %zu symbols from kallsyms at 0x%" PRIx64
             " (%s layout), %zu types from BTF at 0x%" PRIx64 " (%zu bytes, found by %s), "
             "KASLR shift 0x%" PRIx64 "; in %.0f ms (kallsyms %.0f, checks %.0f, BTF %.0f, "
             "ISF %.0f + load %.0f)",
             b.k->n, b.k->at_token_table, b.k->layout, st.user_types, bat, blen, how,
             (uint64_t)st.kaslr_shift,
             (mp->t.kallsyms + mp->t.checks + mp->t.btf + mp->t.isf_json + mp->t.isf_load) / 1e6,
             mp->t.kallsyms / 1e6, mp->t.checks / 1e6, mp->t.btf / 1e6, mp->t.isf_json / 1e6,
             mp->t.isf_load / 1e6);
    mp->desc = json_object_new_object();
    if (mp->desc) {
        char buf[512];
        json_object_object_add(mp->desc, "profile_source",
                               json_object_new_string("guest memory (BTF + kallsyms)"));
        snprintf(buf, sizeof buf, "kallsyms at guest-physical 0x%" PRIx64 ", %zu symbols, "
                 "%s layout%s", b.k->at_token_table, b.k->n, b.k->layout,
                 b.k->absolute_percpu ? ", absolute per-CPU" : "");
        json_object_object_add(mp->desc, "profile_symbols", json_object_new_string(buf));
        snprintf(buf, sizeof buf, "BTF at guest-physical 0x%" PRIx64 ", %zu bytes (found by "
                 "%s), %zu structs/unions, %zu enums", bat, blen, how, st.user_types, st.enums);
        json_object_object_add(mp->desc, "profile_types", json_object_new_string(buf));
        json_object_object_add(mp->desc, "profile_checks", json_object_new_string(b.checks));
        json_object_object_add(mp->desc, "profile_file",
                               json_object_new_string(mp->file_name));
        json_object_object_add(
            mp->desc, "profile_build_ms",
            json_object_new_double((double)(mp->t.kallsyms + mp->t.checks + mp->t.btf +
                                            mp->t.isf_json + mp->t.isf_load) / 1e6));
    }
    *banner_gpa = b.banner_gpa;
    goto done;
oom:
    say(why, whylen, "out of memory");
fail:
    mem_profile_free(mp);
    mp = NULL;
done:
    btf_isf_symbols_free(syms);
    btf_isf_kernel_close(&kern);
    free(btfdata);
    vmem_as_free(b.as);
    return mp;
}

void mem_profile_free(struct mem_profile *mp)
{
    if (!mp)
        return;
    isf_free(mp->isf);
    free(mp->json);
    json_object_put(mp->desc);
    free(mp);
}

const struct isf *mem_profile_isf(const struct mem_profile *mp) { return mp->isf; }

const char *mem_profile_json(const struct mem_profile *mp, size_t *len)
{
    *len = mp->json_len;
    return mp->json;
}

const char *mem_profile_file_name(const struct mem_profile *mp) { return mp->file_name; }
const char *mem_profile_summary(const struct mem_profile *mp) { return mp->summary; }

void mem_profile_times(const struct mem_profile *mp, struct mem_profile_times *t)
{
    *t = mp->t;
}

void mem_profile_describe(const struct mem_profile *mp, struct json_object *out)
{
    if (!mp->desc)
        return;
    json_object_object_foreach(mp->desc, key, val)
        json_object_object_add(out, key, json_object_get(val));
}

#else /* no libbpf */

struct mem_profile {
    int unused;
};

struct mem_profile_scan {
    int unused;
};
void mem_profile_scan_free(struct mem_profile_scan *s) { free(s); }
struct mem_profile *mem_profile_build(struct vm *vm, struct mem_profile_scan **scan,
                                      uint64_t *banner_gpa, const char *banner,
                                      char *why, size_t whylen)
{
    say(why, whylen, "no profile from guest memory: vmemfs was built without libbpf; "
        "give --symbols or --profile");
    return NULL;
}
void mem_profile_free(struct mem_profile *mp) { free(mp); }
const struct isf *mem_profile_isf(const struct mem_profile *mp) { return NULL; }
const char *mem_profile_json(const struct mem_profile *mp, size_t *len)
{
    *len = 0;
    return NULL;
}
const char *mem_profile_file_name(const struct mem_profile *mp) { return ""; }
const char *mem_profile_summary(const struct mem_profile *mp) { return ""; }
void mem_profile_times(const struct mem_profile *mp, struct mem_profile_times *t)
{
    memset(t, 0, sizeof *t);
}
void mem_profile_describe(const struct mem_profile *mp, struct json_object *out) {}

#endif
