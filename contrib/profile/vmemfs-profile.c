/*
 * vmemfs-profile - make a Volatility 3 / vmemfs kernel profile (ISF JSON)
 * from what every modern kernel carries: its BTF and its symbol table.
 *
 *   vmemfs-profile --btf FILE [--symbols FILE] -o OUT.json[.xz|.gz]
 *                  [--banner STRING] [--text-base ADDR] [--keep-addresses]
 *   vmemfs-profile --from-image DUMP -o OUT.json[.xz|.gz]
 *
 * --btf      /sys/kernel/btf/vmlinux (raw BTF), a vmlinux ELF, a vmlinuz
 *            (bzImage) or a compressed vmlinux; recognised by content.
 * --symbols  System.map or /proc/kallsyms (read as root) of that kernel.
 * --banner   the kernel's banner, e.g. "$(cat /proc/version)"; by default
 *            taken from the kernel image (raw BTF has none).
 * --text-base  link-time address of _text, to undo KASLR in a kallsyms
 *            listing; by default from the image, or for raw BTF the x86-64
 *            default 0xffffffff81000000 (i386, 4-byte pointers in the BTF:
 *            0xc1000000).
 * --keep-addresses  write the symbol addresses exactly as listed.
 * --from-image  a memory image (any dump vmemfs reads, or a file: spec) of a
 *            Linux guest: the profile built from its own BTF and kallsyms,
 *            as the mount offers it under <vm>/symbols/linux/.
 * -o         output; ".xz" or ".gz" at the end of the name compresses,
 *            "-" writes plain JSON to standard output.
 *
 * The profile is checked by loading it back (core/isf.c) before it is
 * written; the file appears atomically (written beside, then renamed).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "core/os/linux/linux.h"
#include "core/phys/vm.h"
#include "core/profile/btf_isf.h"
#include "core/profile/btf_mem.h"
#include "core/profile/isf.h"
#include "drivers/registry.h"

#define X86_64_DEFAULT_TEXT 0xffffffff81000000ull
/* i386: PAGE_OFFSET (0xc0000000, the 3G/1G split) + CONFIG_PHYSICAL_START
 * (16 MiB): a 32-bit kernel runs in its linear map, _text = PAGE_OFFSET +
 * its physical load address. */
#define X86_32_DEFAULT_TEXT 0xc1000000ull

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vmemfs-profile --btf FILE [--symbols FILE] -o OUT.json[.xz|.gz]\n"
        "       vmemfs-profile --from-image DUMP -o OUT.json[.xz|.gz]\n"
        "                      [--banner STRING] [--text-base ADDR] [--keep-addresses] [-q]\n"
        "  --btf FILE       /sys/kernel/btf/vmlinux, a vmlinux ELF, a vmlinuz (bzImage)\n"
        "                   or a compressed vmlinux\n"
        "  --symbols FILE   System.map or /proc/kallsyms (as root) of the same kernel\n"
        "  --banner STRING  the kernel banner (default: from the image), e.g.\n"
        "                   \"$(cat /proc/version)\" on the machine itself\n"
        "  --text-base ADDR link-time _text, to undo KASLR in a kallsyms listing\n"
        "                   (default: from the image; for raw BTF 0x%llx,\n"
        "                   or 0x%llx for a 32-bit kernel)\n"
        "  --keep-addresses write symbol addresses as listed\n"
        "  --from-image DUMP a Linux guest's memory image: the profile built from\n"
        "                   its own BTF and kallsyms (the mount's symbols/linux/)\n"
        "  -o OUT           output file; .xz/.gz compress; - for stdout\n"
        "  -q               no summary on stderr\n",
        X86_64_DEFAULT_TEXT, X86_32_DEFAULT_TEXT);
}

/* libbpf's own messages: its warnings only. */
__attribute__((format(printf, 2, 0)))
static int silent_libbpf(enum libbpf_print_level level, const char *fmt,
                         va_list ap)
{
    if (level == LIBBPF_WARN)
        return vfprintf(stderr, fmt, ap);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int write_all(FILE *f, const void *p, size_t n)
{
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int write_xz(FILE *f, const char *buf, size_t len, char *err, size_t errlen)
{
    lzma_mt mt = {
        .threads = 2,
        .preset = 6,
        .check = LZMA_CHECK_CRC64,
        .timeout = 0,
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0)
        mt.threads = (uint32_t)(cpus > 8 ? 8 : cpus);
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_encoder_mt(&s, &mt) != LZMA_OK &&
        lzma_easy_encoder(&s, 6, LZMA_CHECK_CRC64) != LZMA_OK) {
        snprintf(err, errlen, "cannot start the xz encoder");
        return -1;
    }
    uint8_t out[1 << 16];
    s.next_in = (const uint8_t *)buf;
    s.avail_in = len;
    for (;;) {
        s.next_out = out;
        s.avail_out = sizeof out;
        lzma_ret r = lzma_code(&s, LZMA_FINISH);
        if (write_all(f, out, sizeof out - s.avail_out) != 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            lzma_end(&s);
            return -1;
        }
        if (r == LZMA_STREAM_END)
            break;
        if (r != LZMA_OK) {
            snprintf(err, errlen, "xz compression failed (%d)", (int)r);
            lzma_end(&s);
            return -1;
        }
    }
    lzma_end(&s);
    return 0;
}

static int write_gz(FILE *f, const char *buf, size_t len, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errlen, "cannot start the gzip encoder");
        return -1;
    }
    uint8_t out[1 << 16];
    size_t off = 0;
    int r;
    do {
        size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
        z.next_in = (Bytef *)buf + off;
        z.avail_in = (uInt)chunk;
        int flush = off + chunk == len ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = out;
            z.avail_out = sizeof out;
            r = deflate(&z, flush);
            if (write_all(f, out, sizeof out - z.avail_out) != 0) {
                snprintf(err, errlen, "%s", strerror(errno));
                deflateEnd(&z);
                return -1;
            }
        } while (z.avail_out == 0);
        off += chunk - z.avail_in;
    } while (r != Z_STREAM_END && off <= len && r != Z_STREAM_ERROR);
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        snprintf(err, errlen, "gzip compression failed");
        return -1;
    }
    return 0;
}

/* Write buf to path (atomically: a temporary beside it, then rename). */
static int save(const char *path, const char *buf, size_t len, char *err,
                size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        if (write_all(stdout, buf, len) != 0 || fflush(stdout) != 0) {
            snprintf(err, errlen, "stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    char *tmp;
    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    char why[256] = "";
    int r;
    if (ends_with(path, ".xz"))
        r = write_xz(f, buf, len, why, sizeof why);
    else if (ends_with(path, ".gz"))
        r = write_gz(f, buf, len, why, sizeof why);
    else {
        r = write_all(f, buf, len);
        if (r)
            snprintf(why, sizeof why, "%s", strerror(errno));
    }
    if (fclose(f) != 0 && r == 0) {
        r = -1;
        snprintf(why, sizeof why, "%s", strerror(errno));
    }
    if (r == 0 && rename(tmp, path) != 0) {
        r = -1;
        snprintf(why, sizeof why, "rename: %s", strerror(errno));
    }
    if (r != 0) {
        unlink(tmp);
        snprintf(err, errlen, "%s: %s", path, why);
    }
    free(tmp);
    return r;
}

/* --from-image: the profile the mount would build for this dump. */
static int from_image(const char *dump, const char *out_path, bool quiet)
{
    char err[1024], spec[4096];
    if (strchr(dump, ':') && strncmp(dump, "/", 1) != 0)
        snprintf(spec, sizeof spec, "%s", dump);
    else
        snprintf(spec, sizeof spec, "file:%s", dump);
    struct vm_options vo;
    vm_options_default(&vo);
    struct vm *vm = vmem_vm_open("image", spec, &vo, err, sizeof err);
    if (!vm) {
        fprintf(stderr, "vmemfs-profile: %s\n", err);
        return 1;
    }
    struct vmem_os_options lo = {0};
    struct linux_os *os = linux_os_open(vm, &lo, err, sizeof err);
    int rc = 1;
    const struct mem_profile *mp = os ? linux_os_mem_profile(os) : NULL;
    if (!os) {
        fprintf(stderr, "vmemfs-profile: %s: %s\n", dump, err);
    } else if (!mp) {
        fprintf(stderr, "vmemfs-profile: %s: the profile did not come from guest memory\n",
                dump);
    } else {
        size_t len;
        const char *json = mem_profile_json(mp, &len);
        if (save(out_path, json, len, err, sizeof err) != 0) {
            fprintf(stderr, "vmemfs-profile: %s\n", err);
        } else {
            if (!quiet)
                fprintf(stderr, "vmemfs-profile: %s: %s\n  wrote %s (%zu bytes of JSON)\n",
                        dump, mem_profile_summary(mp), out_path, len);
            rc = 0;
        }
    }
    linux_os_close(os);
    vm_put(vm);
    return rc;
}

int main(int argc, char **argv)
{
    const char *btf_path = NULL, *sym_path = NULL, *out_path = NULL;
    const char *banner = NULL, *image = NULL;
    uint64_t text_base = 0;
    bool keep = false, quiet = false, have_text_base = false;
    static const struct option opts[] = {
        {"btf", required_argument, NULL, 'b'},
        {"symbols", required_argument, NULL, 's'},
        {"output", required_argument, NULL, 'o'},
        {"banner", required_argument, NULL, 'B'},
        {"text-base", required_argument, NULL, 't'},
        {"keep-addresses", no_argument, NULL, 'k'},
        {"from-image", required_argument, NULL, 'I'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:s:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'b': btf_path = optarg; break;
        case 's': sym_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'B': banner = optarg; break;
        case 'k': keep = true; break;
        case 'I': image = optarg; break;
        case 'q': quiet = true; break;
        case 't': {
            char *end;
            errno = 0;
            text_base = strtoull(optarg, &end, 0);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "vmemfs-profile: --text-base: not a number: %s\n",
                        optarg);
                return 2;
            }
            have_text_base = true;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (image && !btf_path && !sym_path && out_path && optind == argc) {
        libbpf_set_print(silent_libbpf);
        return from_image(image, out_path, quiet);
    }
    if (!btf_path || !out_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    libbpf_set_print(silent_libbpf);

    char err[1024];
    struct btf_isf_symbols *syms = NULL;
    if (sym_path) {
        syms = btf_isf_symbols_load(sym_path, err, sizeof err);
        if (!syms) {
            fprintf(stderr, "vmemfs-profile: %s\n", err);
            return 1;
        }
    } else {
        fprintf(stderr, "vmemfs-profile: warning: no --symbols: the profile "
                "will have types only (Volatility needs symbols)\n");
    }

    struct btf_isf_kernel k;
    if (btf_isf_kernel_open(btf_path, syms, &k, err, sizeof err) != 0) {
        fprintf(stderr, "vmemfs-profile: %s\n", err);
        btf_isf_symbols_free(syms);
        return 1;
    }
    if (!banner)
        banner = k.banner;
    else if (k.banner && !isf_banner_equal(banner, k.banner))
        fprintf(stderr, "vmemfs-profile: warning: --banner differs from the "
                "image's banner \"%s\"\n", k.banner);

    uint64_t link_text = 0;
    if (!keep) {
        link_text = have_text_base ? text_base : k.text_addr;
        uint64_t listed;
        if (!link_text && syms && btf_isf_symbols_lookup(syms, "_text", &listed) == 0 &&
            listed >= 0xffffffff80000000ull) {
            link_text = X86_64_DEFAULT_TEXT;
            if (!quiet && listed != link_text)
                fprintf(stderr, "vmemfs-profile: note: no image to read the "
                        "link-time _text from; assuming the x86-64 default "
                        "0x%llx (--text-base to change, --keep-addresses to "
                        "keep)\n", X86_64_DEFAULT_TEXT);
        } else if (!link_text && syms && btf__pointer_size(k.btf) == 4 &&
                   btf_isf_symbols_lookup(syms, "_text", &listed) == 0 &&
                   listed >= X86_32_DEFAULT_TEXT && listed <= 0xffffffffull) {
            link_text = X86_32_DEFAULT_TEXT;
            if (!quiet && listed != link_text)
                fprintf(stderr, "vmemfs-profile: note: no image to read the "
                        "link-time _text from; assuming the i386 default "
                        "0x%llx (--text-base to change, --keep-addresses to "
                        "keep)\n", X86_32_DEFAULT_TEXT);
        }
    }

    char *types_src = strdup(btf_path), *syms_src = sym_path ? strdup(sym_path) : NULL;
    struct btf_isf_options o = {
        .banner = banner,
        .link_text = link_text,
        .types_source = types_src ? basename(types_src) : NULL,
        .symbols_source = syms_src ? basename(syms_src) : NULL,
    };
    struct btf_isf_stats st;
    size_t len;
    char *json = btf_isf_generate(k.btf, syms, &o, &len, &st, err, sizeof err);
    int rc = 1;
    if (!json) {
        fprintf(stderr, "vmemfs-profile: %s\n", err);
        goto out;
    }

    /* Check what we made with the loader vmemfs itself uses. */
    struct isf *check = isf_load_buffer(json, len, "generated profile", err,
                                        sizeof err);
    if (!check) {
        fprintf(stderr, "vmemfs-profile: internal error: %s\n", err);
        goto out;
    }
    uint64_t pid_off = 0;
    bool has_pid = isf_member(check, "task_struct", "pid", &pid_off, NULL) == 0;
    isf_free(check);

    if (save(out_path, json, len, err, sizeof err) != 0) {
        fprintf(stderr, "vmemfs-profile: %s\n", err);
        goto out;
    }
    if (!banner)
        fprintf(stderr, "vmemfs-profile: warning: no banner (raw BTF holds "
                "none; give --banner \"$(cat /proc/version)\"): the profile "
                "cannot be matched to a memory image by banner\n");
    else if (!st.banner_symbol)
        fprintf(stderr, "vmemfs-profile: warning: the symbol list has no "
                "linux_banner: the banner could not be recorded\n");
    if (!quiet) {
        fprintf(stderr,
                "vmemfs-profile: %s (%s)\n"
                "  %zu structs/unions, %zu anonymous, %zu typedef copies, "
                "%zu declared only, %zu enums, %zu base types, %zu name "
                "clashes\n"
                "  %zu symbols (%zu typed), KASLR shift undone: %#llx\n"
                "  banner: %s\n"
                "  task_struct.pid at %s%llu\n"
                "  wrote %s (%zu bytes of JSON)\n",
                btf_path, k.format, st.user_types, st.anonymous_types,
                st.typedef_copies, st.forward_only, st.enums, st.base_types,
                st.name_clashes, st.symbols, st.typed_symbols,
                (unsigned long long)st.kaslr_shift, banner ? banner : "(none)",
                has_pid ? "" : "(missing!) ", (unsigned long long)pid_off,
                out_path, len);
    }
    rc = 0;
out:
    free(json);
    free(types_src);
    free(syms_src);
    btf_isf_kernel_close(&k);
    btf_isf_symbols_free(syms);
    return rc;
}
