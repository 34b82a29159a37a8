/*
 * fuzz_btf_isf.c - libFuzzer target for profiles made from BTF
 * (core/profile/kimage.c, btf_isf.c, btf_isf_write.c): the input is a kernel image as a user may hand it to
 * vmemfs-profile (raw BTF, an ELF vmlinux, a bzImage, a compressed
 * vmlinux).  When it opens, a profile is generated from it and must load
 * back with vmemfs's own ISF loader: a profile we write and cannot read is
 * a bug, reported by abort().
 *
 * Needs vmemcore built with libbpf (VMEMFS_HAVE_LIBBPF); without it the
 * target accepts every input and does nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef VMEMFS_HAVE_LIBBPF
#include <bpf/libbpf.h>

#include "core/profile/btf_isf.h"
#include "core/profile/isf.h"

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    (void)level; (void)fmt; (void)ap;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct btf_isf_symbols *syms;
    char err[512];
    if (!syms) {
        libbpf_set_print(quiet);
        syms = btf_isf_symbols_new();
        btf_isf_symbols_add(syms, "_text", 0xffffffff91000000ull, 'T');
        btf_isf_symbols_add(syms, "linux_banner", 0xffffffff91000200ull, 'R');
        btf_isf_symbols_add(syms, "init_task", 0xffffffff92000000ull, 'D');
        btf_isf_symbols_add(syms, "__per_cpu_offset", 0xffffffff92001000ull, 'D');
        btf_isf_symbols_add(syms, "runqueues", 0x1000, 'A');
    }
    struct btf_isf_kernel k;
    if (btf_isf_kernel_from_buffer(data, size, "fuzz", syms, &k, err,
                                   sizeof err) != 0)
        return 0;
    struct btf_isf_options o = {
        .banner = k.banner ? k.banner : "Linux version fuzz",
        .link_text = 0xffffffff81000000ull,
        .types_source = "fuzz\"\\\n",
    };
    size_t len;
    char *json = btf_isf_generate(k.btf, syms, &o, &len, NULL, err, sizeof err);
    if (json) {
        struct isf *f = isf_load_buffer(json, len, "generated", err, sizeof err);
        if (!f) {
            fprintf(stderr, "fuzz_btf_isf: the generated profile does not "
                    "load: %s\n", err);
            abort();
        }
        uint64_t v;
        isf_member(f, "task_struct", "pid", &v, NULL);
        isf_free(f);
        free(json);
    }
    btf_isf_kernel_close(&k);
    return 0;
}

#else

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}

#endif
