/*
 * fuzz_btf_mem.c - libFuzzer target for finding the kernel's BTF in guest
 * memory (core/profile/btf_mem.c): the header check and the header scan
 * over arbitrary bytes, then, for a blob found, libbpf's parser through
 * btf_isf (as mem_profile_build does) and the ISF generated from it, which
 * must load back.  A blob the scan accepts must lie inside the input.
 *
 * Needs vmemcore built with libbpf for the parse; without it only the scan
 * runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/profile/btf_mem.h"

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
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    size_t blen = 0;
    long off = btf_mem_scan(buf, size, &blen);
    if (off >= 0) {
        if ((size_t)off > size || blen > size - (size_t)off ||
            btf_mem_blob_len(buf + off, size - (size_t)off) != blen)
            abort();
#ifdef VMEMFS_HAVE_LIBBPF
        static int init;
        if (!init) {
            libbpf_set_print(quiet);
            init = 1;
        }
        struct btf_isf_kernel k;
        char err[512];
        if (btf_isf_kernel_from_buffer(buf + off, blen, "fuzz", NULL, &k, err, sizeof err) == 0) {
            size_t len;
            struct btf_isf_options o = {.banner = "Linux version 6.1.0-fuzz (x) #1"};
            char *json = btf_isf_generate(k.btf, NULL, &o, &len, NULL, err, sizeof err);
            if (json) {
                struct isf *f = isf_load_buffer(json, len, "fuzz", err, sizeof err);
                if (!f)
                    abort();
                isf_free(f);
                free(json);
            }
            btf_isf_kernel_close(&k);
        }
#endif
    }
    free(buf);
    return 0;
}
