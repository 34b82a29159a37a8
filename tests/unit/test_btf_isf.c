/*
 * test_btf_isf.c - profiles made from BTF and a symbol list
 * (core/profile/btf_isf*.c, kimage.c, ksyms_text.c): a BTF built here with libbpf, symbol-list parsing, the
 * KASLR shift, kernel images (raw BTF, ELF, gzip/xz/lz4 bzImage) made
 * here, hostile images, and - when Debian's vmlinuz and the shared
 * dwarf2json profile of the same kernel are both at hand - the offsets of
 * the real kernel compared with dwarf2json's.
 *
 * Needs vmemcore built with libbpf (VMEMFS_HAVE_LIBBPF); without it the
 * one test says so and is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testenv.h"

#ifdef VMEMFS_HAVE_LIBBPF

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#if __has_include(<zstd.h>)
#include <zstd.h>
#define TEST_ZSTD 1
#endif

#include "core/profile/btf_isf.h"
#include "core/profile/isf.h"

#define LINK_TEXT 0xffffffff81000000ull
#define KASLR 0x10000000ull

/* ---- a small kernel's BTF ------------------------------------------ */

static struct btf *make_btf(void)
{
    struct btf *b = btf__new_empty();
    assert_non_null(b);
    int t_int = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
    int t_uint = btf__add_int(b, "unsigned int", 4, 0);
    int t_char = btf__add_int(b, "char", 1, BTF_INT_SIGNED | BTF_INT_CHAR);
    int t_short = btf__add_int(b, "short int", 2, BTF_INT_SIGNED);
    btf__add_int(b, "long unsigned int", 8, 0);
    btf__add_int(b, "_Bool", 1, BTF_INT_BOOL);
    assert_true(t_int > 0 && t_uint > 0 && t_char > 0 && t_short > 0);

    /* struct list_head { struct list_head *next, *prev; } */
    int p_lh = btf__add_ptr(b, (int)btf__type_cnt(b) + 1);
    int lh = btf__add_struct(b, "list_head", 16);
    assert_int_equal(lh, p_lh + 1);
    assert_int_equal(btf__add_field(b, "next", p_lh, 0, 0), 0);
    assert_int_equal(btf__add_field(b, "prev", p_lh, 64, 0), 0);

    int e = btf__add_enum(b, "pid_type", 4);
    btf__add_enum_value(b, "PIDTYPE_PID", 0);
    btf__add_enum_value(b, "PIDTYPE_NEG", -1);
    int e2 = btf__add_enum(b, "big_flags", 4);
    btf__add_enum_value(b, "BIG_A", 1);
    int fwd = btf__add_fwd(b, "mm_struct", BTF_FWD_STRUCT);
    int p_mm = btf__add_ptr(b, fwd);
    int fp = btf__add_func_proto(b, t_int);
    int p_fp = btf__add_ptr(b, fp);
    int c_uint = btf__add_const(b, t_uint);
    int v_c_uint = btf__add_volatile(b, c_uint);
    int anon_a = btf__add_struct(b, NULL, 4);
    btf__add_field(b, "counter", t_int, 0, 0);
    int atomic = btf__add_typedef(b, "atomic_t", anon_a);
    int td_lh = btf__add_typedef(b, "lh_t", lh);
    int td_lh2 = btf__add_typedef(b, "lh2_t", td_lh);
    int pid_t_ = btf__add_typedef(b, "pid_t", t_int);
    int td_enum = btf__add_typedef(b, "pid_type_t", e);
    int arr = btf__add_array(b, t_int, t_char, 16);
    int in_s = btf__add_struct(b, NULL, 4);
    btf__add_field(b, "b", t_short, 0, 0);
    btf__add_field(b, "c", t_short, 16, 0);
    int un = btf__add_union(b, NULL, 8);
    assert_int_equal(btf__add_field(b, "a", t_int, 0, 0), 0);
    assert_int_equal(btf__add_field(b, NULL, in_s, 0, 0), 0);

    int ts = btf__add_struct(b, "task_struct", 80);
    assert_true(ts > 0);
    assert_int_equal(btf__add_field(b, "state", v_c_uint, 0, 0), 0);
    assert_int_equal(btf__add_field(b, "pid", pid_t_, 32, 0), 0);
    assert_int_equal(btf__add_field(b, "tasks", td_lh2, 64, 0), 0);
    assert_int_equal(btf__add_field(b, NULL, un, 192, 0), 0);
    assert_int_equal(btf__add_field(b, "flags", t_uint, 261, 3), 0);
    assert_int_equal(btf__add_field(b, "kind", td_enum, 264, 2), 0);
    assert_int_equal(btf__add_field(b, "comm", arr, 288, 0), 0);
    assert_int_equal(btf__add_field(b, "mm", p_mm, 448, 0), 0);
    assert_int_equal(btf__add_field(b, "fn", p_fp, 512, 0), 0);
    assert_int_equal(btf__add_field(b, "count", atomic, 576, 0), 0);
    assert_int_equal(btf__add_field(b, "big", e2, 608, 0), 0);

    /* A per-CPU variable. */
    int var = btf__add_var(b, "runqueues", BTF_VAR_GLOBAL_ALLOCATED, lh);
    assert_true(var > 0);
    assert_true(btf__add_datasec(b, ".data..percpu", 16) > 0);
    assert_int_equal(btf__add_datasec_var_info(b, var, 0, 16), 0);
    return b;
}

static const char symbols_text[] =
    "ffffffff91000000 T _text\n"
    "ffffffff91000010 t helper\n"
    "ffffffff92000000 D init_task\n"
    "ffffffff92000100 R linux_banner\n"
    "ffffffff92000200 D __per_cpu_offset\n"
    "ffffffff92000220 D after_offsets\n"
    "0000000000001000 A runqueues\n"
    "ffffffffc0000000 t mod_only\t[some_module]\n"
    "this line is not a symbol\n"
    "ffffffff91000010 t helper\n"           /* a duplicate: first wins */
    "\n";

static char *generate(struct btf *b, struct btf_isf_symbols *s,
                      const struct btf_isf_options *o, size_t *len,
                      struct btf_isf_stats *st)
{
    char err[512] = "";
    char *json = btf_isf_generate(b, s, o, len, st, err, sizeof err);
    if (!json)
        fail_msg("%s", err);
    return json;
}

static void test_symbols(void **state)
{
    (void)state;
    char err[512];
    struct btf_isf_symbols *s =
        btf_isf_symbols_parse(symbols_text, strlen(symbols_text), "syms", err,
                              sizeof err);
    if (!s)
        fail_msg("%s", err);
    assert_int_equal(btf_isf_symbols_count(s), 7);
    uint64_t a;
    assert_int_equal(btf_isf_symbols_lookup(s, "helper", &a), 0);
    assert_true(a == 0xffffffff91000010ull);
    assert_int_equal(btf_isf_symbols_lookup(s, "mod_only", &a), -1);
    btf_isf_symbols_free(s);

    s = btf_isf_symbols_parse("0000000000000000 T a\n0000000000000000 t b\n",
                              42, "kallsyms", err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "as root"));
    /* Debian's stub System.map has a sentence, not symbols. */
    const char stub[] = "ffffffffffffffff B The real System.map is in the "
                        "linux-image-<version>-dbg package\n";
    s = btf_isf_symbols_parse(stub, strlen(stub), "System.map", err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "System.map: no"));
    s = btf_isf_symbols_parse("", 0, "empty", err, sizeof err);
    assert_null(s);
    btf_isf_symbols_free(NULL);
}

static void test_generate(void **state)
{
    (void)state;
    char err[512];
    struct btf *b = make_btf();
    struct btf_isf_symbols *s =
        btf_isf_symbols_parse(symbols_text, strlen(symbols_text), "syms", err,
                              sizeof err);
    assert_non_null(s);
    struct btf_isf_options o = {
        .banner = "Linux version 9.9.9 (x@y) #1 SMP",
        .link_text = LINK_TEXT,
        .types_source = "test \"btf\"",
        .symbols_source = "syms",
    };
    size_t len;
    struct btf_isf_stats st;
    char *json = generate(b, s, &o, &len, &st);
    assert_true(st.kaslr_shift == (int64_t)KASLR);
    assert_true(st.banner_symbol);
    assert_int_equal(st.symbols, 7);
    assert_int_equal(st.forward_only, 1);     /* mm_struct */

    struct isf *f = isf_load_buffer(json, len, "generated", err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    assert_string_equal(isf_format(f), "6.2.0");
    assert_string_equal(isf_banner(f), "Linux version 9.9.9 (x@y) #1 SMP\n");

    uint64_t v;
    struct isf_member_info in;
    assert_int_equal(isf_symbol(f, "init_task", &v), 0);
    assert_true(v == 0xffffffff92000000ull - KASLR);
    assert_int_equal(isf_symbol(f, "_text", &v), 0);
    assert_true(v == LINK_TEXT);
    assert_int_equal(isf_symbol(f, "runqueues", &v), 0);
    assert_true(v == 0x1000);                  /* per-CPU: not shifted */
    assert_int_equal(isf_symbol(f, "mod_only", &v), -1);
    assert_int_equal(isf_symbol_type(f, "init_task", &in), 0);
    assert_int_equal(in.kind, ISF_KIND_STRUCT);
    assert_string_equal(in.type_name, "task_struct");
    assert_int_equal(isf_symbol_type(f, "runqueues", &in), 0);  /* from BTF */
    assert_string_equal(in.type_name, "list_head");
    assert_int_equal(isf_symbol_type(f, "linux_banner", &in), 0);
    assert_int_equal(in.kind, ISF_KIND_ARRAY);
    assert_int_equal(isf_symbol_type(f, "__per_cpu_offset", &in), 0);
    assert_int_equal(in.count, 4);             /* 0x20 bytes to the next */
    assert_int_equal(isf_symbol_type(f, "helper", &in), 0);
    assert_int_equal(in.kind, ISF_KIND_BASE);
    assert_string_equal(in.type_name, "void");

    assert_int_equal(isf_type_size(f, "task_struct", &v), 0);
    assert_int_equal(v, 80);
    assert_int_equal(isf_member(f, "task_struct", "state", &v, &in), 0);
    assert_int_equal(v, 0);
    assert_string_equal(in.type_name, "unsigned int");  /* const volatile gone */
    assert_int_equal(isf_member(f, "task_struct", "pid", &v, &in), 0);
    assert_int_equal(v, 4);
    assert_int_equal(in.kind, ISF_KIND_BASE);
    assert_string_equal(in.type_name, "int");            /* typedef resolved */
    assert_int_equal(isf_member(f, "task_struct", "tasks", &v, &in), 0);
    assert_int_equal(v, 8);
    assert_int_equal(in.kind, ISF_KIND_STRUCT);
    assert_string_equal(in.type_name, "lh_t");           /* inner typedef */
    assert_int_equal(in.size, 16);
    assert_int_equal(isf_member(f, "task_struct", "tasks.prev", &v, &in), 0);
    assert_int_equal(v, 16);
    /* anonymous union, and an anonymous struct inside it */
    assert_int_equal(isf_member(f, "task_struct", "a", &v, &in), 0);
    assert_int_equal(v, 24);
    assert_int_equal(isf_member(f, "task_struct", "c", &v, &in), 0);
    assert_int_equal(v, 26);
    assert_int_equal(in.size, 2);
    assert_int_equal(isf_member(f, "task_struct", "unnamed_field_0", &v, &in), 0);
    assert_true(in.anonymous);
    assert_int_equal(in.kind, ISF_KIND_UNION);
    assert_memory_equal(in.type_name, "unnamed_", 8);
    /* bitfields: offset = bit / 8, position = bit % 8 */
    assert_int_equal(isf_member(f, "task_struct", "flags", &v, &in), 0);
    assert_int_equal(v, 32);
    assert_int_equal(in.kind, ISF_KIND_BITFIELD);
    assert_int_equal(in.bit_position, 5);
    assert_int_equal(in.bit_length, 3);
    assert_string_equal(in.type_name, "unsigned int");
    assert_int_equal(isf_member(f, "task_struct", "kind", &v, &in), 0);
    assert_int_equal(v, 33);
    assert_int_equal(in.target_kind, ISF_KIND_ENUM);
    assert_string_equal(in.type_name, "pid_type_t");
    assert_int_equal(isf_member(f, "task_struct", "comm", &v, &in), 0);
    assert_int_equal(v, 36);
    assert_int_equal(in.count, 16);
    assert_string_equal(in.type_name, "char");
    assert_int_equal(isf_member(f, "task_struct", "mm", &v, &in), 0);
    assert_int_equal(in.kind, ISF_KIND_POINTER);
    assert_string_equal(in.type_name, "mm_struct");
    assert_int_equal(isf_type_size(f, "struct mm_struct", &v), 0);  /* declared only */
    assert_int_equal(isf_member(f, "task_struct", "fn", &v, &in), 0);
    assert_int_equal(in.target_kind, ISF_KIND_FUNCTION);
    assert_int_equal(isf_member(f, "task_struct", "count", &v, &in), 0);
    assert_int_equal(v, 72);
    assert_string_equal(in.type_name, "atomic_t");
    assert_int_equal(isf_member(f, "atomic_t", "counter", &v, NULL), 0);
    assert_int_equal(isf_member(f, "task_struct", "big", &v, &in), 0);
    assert_int_equal(v, 76);
    assert_int_equal(isf_type_size(f, "lh2_t", &v), -1);  /* chained: no copy */

    int64_t ev;
    assert_int_equal(isf_enum_value(f, "pid_type", "PIDTYPE_NEG", &ev), 0);
    assert_int_equal(ev, -1);
    assert_int_equal(isf_enum_value(f, "pid_type_t", "PIDTYPE_PID", &ev), 0);
    assert_int_equal(isf_type_size(f, "pointer", &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(isf_type_size(f, "_Bool", &v), 0);
    assert_int_equal(isf_type_size(f, "void", &v), 0);
    isf_free(f);
    free(json);

    /* Addresses kept as listed; no banner, no symbols. */
    o.link_text = 0;
    o.banner = NULL;
    json = generate(b, s, &o, &len, &st);
    f = isf_load_buffer(json, len, "generated", err, sizeof err);
    assert_non_null(f);
    assert_int_equal(isf_symbol(f, "init_task", &v), 0);
    assert_true(v == 0xffffffff92000000ull);
    assert_null(isf_banner(f));
    isf_free(f);
    free(json);
    json = generate(b, NULL, NULL, &len, &st);
    f = isf_load_buffer(json, len, "generated", err, sizeof err);
    assert_non_null(f);
    assert_int_equal(isf_symbol(f, "init_task", &v), -1);
    assert_int_equal(isf_member(f, "task_struct", "pid", &v, NULL), 0);
    isf_free(f);
    free(json);

    btf_isf_symbols_free(s);
    btf__free(b);
}

/* ---- kernel images made here --------------------------------------- */

struct buf {
    uint8_t *p;
    size_t n;
};

static void put(struct buf *b, size_t off, const void *d, size_t n)
{
    if (off + n > b->n) {
        b->p = realloc(b->p, off + n);
        memset(b->p + b->n, 0, off + n - b->n);
        b->n = off + n;
    }
    memcpy(b->p + off, d, n);
}

#define DECOY "\0Linux version 9.9.9-elf (y) # SMP\n"
#define BANNER "\0Linux version 9.9.9-elf (y) #7 SMP\n"

/* A vmlinux-like ELF: .text at LINK_TEXT holding an unfinished build's
 * banner and the real one (at linux_banner, LINK_TEXT + 0x200), .BTF and
 * .shstrtab. */
static struct buf make_elf(const void *btf, size_t btf_len)
{
    struct buf b = {0};
    const char shstr[] = "\0.text\0.BTF\0.shstrtab\0";
    size_t text_off = 0x1000, text_len = 0x1000;
    size_t btf_off = text_off + text_len;
    size_t shstr_off = btf_off + btf_len;
    size_t sh_off = (shstr_off + sizeof shstr + 7) & ~(size_t)7;
    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_shoff = sh_off;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 4;
    eh.e_shstrndx = 3;
    put(&b, 0, &eh, sizeof eh);
    Elf64_Phdr ph = {.p_type = PT_LOAD, .p_flags = PF_R | PF_X,
                     .p_offset = text_off, .p_vaddr = LINK_TEXT,
                     .p_paddr = 0x1000000, .p_filesz = text_len + btf_len,
                     .p_memsz = text_len + btf_len, .p_align = 0x1000};
    put(&b, sizeof eh, &ph, sizeof ph);
    put(&b, text_off + 0x100, DECOY, sizeof DECOY);
    put(&b, text_off + 0x1ff, BANNER, sizeof BANNER);
    put(&b, btf_off, btf, btf_len);
    put(&b, shstr_off, shstr, sizeof shstr);
    Elf64_Shdr sh[4] = {{0}};
    sh[1] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_PROGBITS,
                         .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
                         .sh_addr = LINK_TEXT, .sh_offset = text_off,
                         .sh_size = text_len};
    sh[2] = (Elf64_Shdr){.sh_name = 7, .sh_type = SHT_PROGBITS,
                         .sh_flags = SHF_ALLOC, .sh_addr = LINK_TEXT + text_len,
                         .sh_offset = btf_off, .sh_size = btf_len};
    sh[3] = (Elf64_Shdr){.sh_name = 12, .sh_type = SHT_STRTAB,
                         .sh_offset = shstr_off, .sh_size = sizeof shstr};
    put(&b, sh_off, sh, sizeof sh);
    return b;
}

/* A small greedy LZ4 block compressor (hash of 4 bytes, matches up to 64
 * KiB back), enough to make real LZ4 with literal runs and overlapping
 * matches (runs of zeros) for the decoder to undo.  dst holds
 * n + n / 255 + 16 bytes. */
static size_t lz4_block_compress(const uint8_t *src, size_t n, uint8_t *dst)
{
    static uint32_t table[1 << 12];
    memset(table, 0, sizeof table);
    size_t ip = 0, anchor = 0, op = 0;
#define RD32(p) ((uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | \
                 (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24)
    while (n >= 13 && ip + 12 <= n) {
        uint32_t seq = RD32(src + ip), h = (seq * 2654435761u) >> 20;
        size_t ref = table[h];
        table[h] = (uint32_t)ip + 1;
        if (!ref || ip - (ref - 1) > 65535 || RD32(src + ref - 1) != seq) {
            ip++;
            continue;
        }
        ref--;
        size_t ml = 4;
        while (ip + ml < n - 5 && src[ref + ml] == src[ip + ml])
            ml++;
        size_t lit = ip - anchor, l = lit, m = ml - 4;
        dst[op++] = (uint8_t)((l >= 15 ? 15 : l) << 4 | (m >= 15 ? 15 : m));
        if (l >= 15) {
            for (l -= 15; l >= 255; l -= 255)
                dst[op++] = 255;
            dst[op++] = (uint8_t)l;
        }
        memcpy(dst + op, src + anchor, lit);
        op += lit;
        dst[op++] = (uint8_t)(ip - ref);
        dst[op++] = (uint8_t)((ip - ref) >> 8);
        if (m >= 15) {
            for (m -= 15; m >= 255; m -= 255)
                dst[op++] = 255;
            dst[op++] = (uint8_t)m;
        }
        ip += ml;
        anchor = ip;
    }
#undef RD32
    size_t lit = n - anchor, l = lit;
    dst[op++] = (uint8_t)((l >= 15 ? 15 : l) << 4);
    if (l >= 15) {
        for (l -= 15; l >= 255; l -= 255)
            dst[op++] = 255;
        dst[op++] = (uint8_t)l;
    }
    memcpy(dst + op, src + anchor, lit);
    return op + lit;
}

/* The LZ4 legacy frame the kernel uses: magic, blocks of at most 8 MiB
 * (here 64 KiB, to have several), then the appended size. */
static struct buf lz4_legacy(const uint8_t *d, size_t n)
{
    struct buf o = {0};
    uint32_t magic = 0x184C2102;
    put(&o, 0, &magic, 4);
    uint8_t *blk = malloc((64 << 10) + (64 << 10) / 255 + 16);
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off > (64u << 10) ? (64u << 10) : n - off;
        uint32_t sz = (uint32_t)lz4_block_compress(d + off, chunk, blk);
        put(&o, o.n, &sz, 4);
        put(&o, o.n, blk, sz);
        off += chunk;
    }
    free(blk);
    uint32_t sz = (uint32_t)n;
    put(&o, o.n, &sz, 4);
    return o;
}

static struct buf xz_of(const uint8_t *d, size_t n)
{
    struct buf o = {malloc(n + 65536), 0};
    assert_int_equal(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, d, n,
                                             o.p, &o.n, n + 65536), LZMA_OK);
    uint32_t sz = (uint32_t)n;
    put(&o, o.n, &sz, 4);
    return o;
}

static struct buf gz_of(const uint8_t *d, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    struct buf o = {malloc(deflateBound(&z, n) + 64), 0};
    z.next_in = (Bytef *)d;
    z.avail_in = (uInt)n;
    z.next_out = o.p;
    z.avail_out = (uInt)deflateBound(&z, n) + 64;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    o.n = z.total_out;
    deflateEnd(&z);
    uint32_t sz = (uint32_t)n;
    put(&o, o.n, &sz, 4);
    return o;
}

static struct buf bzimage(const struct buf *payload)
{
    struct buf b = {0};
    uint8_t setup_sects = 1;
    put(&b, 1024, "", 1);
    put(&b, 0x1f1, &setup_sects, 1);
    put(&b, 0x202, "HdrS", 4);
    uint16_t ver = 0x020f;
    put(&b, 0x206, &ver, 2);
    uint32_t off = 0x40, len = (uint32_t)payload->n;
    put(&b, 0x248, &off, 4);
    put(&b, 0x24c, &len, 4);
    put(&b, 1024 + off, payload->p, payload->n);
    return b;
}

static void test_images(void **state)
{
    (void)state;
    char err[512];
    struct btf *b = make_btf();
    uint32_t raw_len;
    const void *raw = btf__raw_data(b, &raw_len);
    assert_non_null(raw);
    unsigned ntypes = btf__type_cnt(b);
    struct btf_isf_kernel k;

    /* raw BTF */
    assert_int_equal(btf_isf_kernel_from_buffer(raw, raw_len, "raw", NULL, &k,
                                                err, sizeof err), 0);
    assert_string_equal(k.format, "raw BTF");
    assert_null(k.banner);
    assert_int_equal(k.text_addr, 0);
    assert_int_equal(btf__type_cnt(k.btf), ntypes);
    btf_isf_kernel_close(&k);

    struct buf elf = make_elf(raw, raw_len);
    /* Without symbols: the finished build's banner, not the decoy. */
    assert_int_equal(btf_isf_kernel_from_buffer(elf.p, elf.n, "elf", NULL, &k,
                                                err, sizeof err), 0);
    assert_string_equal(k.format, "vmlinux ELF");
    assert_string_equal(k.banner, "Linux version 9.9.9-elf (y) #7 SMP");
    assert_true(k.text_addr == LINK_TEXT);
    btf_isf_kernel_close(&k);

    /* With a KASLR'd symbol list naming linux_banner: the string there
     * (here pointed at the decoy, to see that the symbol wins). */
    struct btf_isf_symbols *s = btf_isf_symbols_new();
    btf_isf_symbols_add(s, "_text", LINK_TEXT + KASLR, 'T');
    btf_isf_symbols_add(s, "linux_banner", LINK_TEXT + KASLR + 0x101, 'R');
    assert_int_equal(btf_isf_kernel_from_buffer(elf.p, elf.n, "elf", s, &k,
                                                err, sizeof err), 0);
    assert_string_equal(k.banner, "Linux version 9.9.9-elf (y) # SMP");
    btf_isf_kernel_close(&k);
    btf_isf_symbols_free(s);

    struct {
        struct buf (*pack)(const uint8_t *, size_t);
        const char *format;
    } packs[] = {
        {lz4_legacy, "bzImage, lz4-compressed vmlinux ELF"},
        {xz_of, "bzImage, xz-compressed vmlinux ELF"},
        {gz_of, "bzImage, gzip-compressed vmlinux ELF"},
    };
    for (size_t i = 0; i < 3; i++) {
        struct buf packed = packs[i].pack(elf.p, elf.n);
        struct buf img = bzimage(&packed);
        free(packed.p);
        if (btf_isf_kernel_from_buffer(img.p, img.n, "vmlinuz", NULL, &k, err,
                                       sizeof err) != 0)
            fail_msg("%s: %s", packs[i].format, err);
        assert_string_equal(k.format, packs[i].format);
        assert_string_equal(k.banner, "Linux version 9.9.9-elf (y) #7 SMP");
        assert_true(k.text_addr == LINK_TEXT);
        assert_int_equal(btf__type_cnt(k.btf), ntypes);
        btf_isf_kernel_close(&k);

        /* Damaged: cut anywhere in the payload, or bytes flipped: an error
         * or (a flip in padding) success, never a crash. */
        for (size_t cut = 1024; cut < img.n; cut += img.n / 7) {
            err[0] = '\0';
            assert_int_equal(btf_isf_kernel_from_buffer(img.p, cut, "cut", NULL,
                                                        &k, err, sizeof err), -1);
            assert_true(strncmp(err, "cut: ", 5) == 0);
            assert_null(strchr(err, '\n'));
        }
        for (size_t at = 1024 + 0x40 + 8; at < img.n; at += img.n / 5) {
            img.p[at] ^= 0x55;
            if (btf_isf_kernel_from_buffer(img.p, img.n, "flipped", NULL, &k,
                                           err, sizeof err) == 0)
                btf_isf_kernel_close(&k);
            img.p[at] ^= 0x55;
        }
        free(img.p);
    }

#ifdef TEST_ZSTD
    /* zstd (Debian 13's kernels): read when vmemcore has libzstd, refused
     * with that reason when it has not. */
    {
        size_t cap = ZSTD_compressBound(elf.n) + 4;
        struct buf zs = {malloc(cap), 0};
        zs.n = ZSTD_compress(zs.p, cap, elf.p, elf.n, 3);
        assert_false(ZSTD_isError(zs.n));
        uint32_t sz = (uint32_t)elf.n;
        put(&zs, zs.n, &sz, 4);
        struct buf img = bzimage(&zs);
        free(zs.p);
        if (btf_isf_kernel_from_buffer(img.p, img.n, "vmlinuz", NULL, &k, err,
                                       sizeof err) == 0) {
            assert_string_equal(k.format, "bzImage, zstd-compressed vmlinux ELF");
            assert_string_equal(k.banner, "Linux version 9.9.9-elf (y) #7 SMP");
            btf_isf_kernel_close(&k);
        } else {
            assert_non_null(strstr(err, "without libzstd"));
        }
        free(img.p);
    }
#endif

    /* A compressed vmlinux without the bzImage around it. */
    struct buf xz = xz_of(elf.p, elf.n);
    assert_int_equal(btf_isf_kernel_from_buffer(xz.p, xz.n, "vmlinux.xz", NULL,
                                                &k, err, sizeof err), 0);
    assert_string_equal(k.format, "xz-compressed vmlinux ELF");
    btf_isf_kernel_close(&k);
    free(xz.p);

    /* Not images at all. */
    static const char *const junk[] = {"", "hello", "\x7f" "ELF", "HdrS",
                                       "\x28\xb5\x2f\xfd" "zstd"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        err[0] = '\0';
        assert_int_equal(btf_isf_kernel_from_buffer(junk[i], strlen(junk[i]),
                                                    "junk", NULL, &k, err,
                                                    sizeof err), -1);
        assert_true(strncmp(err, "junk: ", 6) == 0);
    }
    uint8_t zs[64] = {0x28, 0xb5, 0x2f, 0xfd};
    assert_int_equal(btf_isf_kernel_from_buffer(zs, sizeof zs, "z", NULL, &k,
                                                err, sizeof err), -1);
    assert_non_null(strstr(err, "zstd"));
    /* An ELF without BTF. */
    uint8_t nob[4096] = {0};
    memcpy(nob, elf.p, sizeof(Elf64_Ehdr));
    ((Elf64_Ehdr *)nob)->e_shoff = 0;
    ((Elf64_Ehdr *)nob)->e_phoff = 0;
    assert_int_equal(btf_isf_kernel_from_buffer(nob, sizeof nob, "nobtf", NULL,
                                                &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "CONFIG_DEBUG_INFO_BTF"));
    free(elf.p);
    btf__free(b);
}

/* ---- the real kernel ----------------------------------------------- */

/* Debian's vmlinuz: $VMEMFS_VMLINUZ, or the test guest's cache
 * (contrib/guest/mkguest.sh: $VMEMFS_GUEST_CACHE, $XDG_CACHE_HOME or
 * ~/.cache, then vmemfs-guest/vmlinuz). */
static const char *find_vmlinuz(void)
{
    static char buf[4096];
    const char *env = getenv("VMEMFS_VMLINUZ");
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    if ((env = getenv("VMEMFS_GUEST_CACHE")) && *env)
        snprintf(buf, sizeof buf, "%s/vmlinuz", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env)
        snprintf(buf, sizeof buf, "%s/vmemfs-guest/vmlinuz", env);
    else if ((env = getenv("HOME")) && *env)
        snprintf(buf, sizeof buf, "%s/.cache/vmemfs-guest/vmlinuz", env);
    else
        return NULL;
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static void test_real_kernel(void **state)
{
    (void)state;
    const char *dir = testenv_isf_dir();
    const char *vmlinuz = find_vmlinuz();
    if (!dir || !vmlinuz) {
        print_message("[  SKIPPED ] %s: the real kernel's offsets are not "
                      "compared with dwarf2json's\n",
                      !dir ? "no shared ISF directory (../shared/isf or "
                             "$VMEMFS_ISF_DIR)"
                           : "no Debian vmlinuz ($VMEMFS_VMLINUZ, or "
                             "contrib/guest/mkguest.sh's cache)");
        skip();
    }
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/linux/6.1.0-50-cloud-amd64.json.xz", dir);
    struct isf *ref = access(path, R_OK) == 0 ? isf_load(path, err, sizeof err)
                                              : NULL;
    if (!ref) {
        print_message("[  SKIPPED ] %s: no dwarf2json profile of "
                      "6.1.0-50-cloud-amd64 (%s)\n", path, err);
        skip();
    }

    /* A kallsyms of this kernel with KASLR, made from dwarf2json's
     * link-time addresses moved by a shift. */
    static const char *const names[] = {
        "_text", "_end", "linux_banner", "init_task", "init_mm",
        "init_top_pgt", "runqueues", "current_task", "__per_cpu_offset",
        "__per_cpu_start", "modules", "init_uts_ns",
    };
    const uint64_t shift = 0x2a000000;
    struct btf_isf_symbols *s = btf_isf_symbols_new();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint64_t a;
        assert_int_equal(isf_symbol(ref, names[i], &a), 0);
        if (a >= LINK_TEXT)
            a += shift;
        assert_int_equal(btf_isf_symbols_add(s, names[i], a, 'D'), 0);
    }
    struct btf_isf_kernel k;
    if (btf_isf_kernel_open(vmlinuz, s, &k, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (!k.banner || !isf_banner_equal(k.banner, isf_banner(ref))) {
        print_message("[  SKIPPED ] %s is another kernel than the shared "
                      "profile's (banner \"%s\")\n", vmlinuz,
                      k.banner ? k.banner : "?");
        btf_isf_kernel_close(&k);
        btf_isf_symbols_free(s);
        isf_free(ref);
        skip();
    }
    assert_true(k.text_addr == LINK_TEXT);
    struct btf_isf_options o = {.banner = k.banner, .link_text = k.text_addr};
    struct btf_isf_stats st;
    size_t len;
    char *json = btf_isf_generate(k.btf, s, &o, &len, &st, err, sizeof err);
    if (!json)
        fail_msg("%s", err);
    assert_true(st.kaslr_shift == (int64_t)shift);
    struct isf *gen = isf_load_buffer(json, len, "generated", err, sizeof err);
    free(json);
    if (!gen)
        fail_msg("%s", err);

    /* The same banner (bytes and all), so Volatility and vmemfs match both
     * profiles to the same memory image. */
    assert_string_equal(isf_banner(gen), isf_banner(ref));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint64_t a, b;
        assert_int_equal(isf_symbol(ref, names[i], &a), 0);
        assert_int_equal(isf_symbol(gen, names[i], &b), 0);
        if (a != b)
            fail_msg("symbol %s: dwarf2json %#llx, generated %#llx", names[i],
                     (unsigned long long)a, (unsigned long long)b);
    }
    static const struct {
        const char *type, *member;
    } m[] = {
        {"task_struct", "pid"},        {"task_struct", "tgid"},
        {"task_struct", "tasks"},      {"task_struct", "comm"},
        {"task_struct", "mm"},         {"task_struct", "active_mm"},
        {"task_struct", "real_parent"}, {"task_struct", "parent"},
        {"task_struct", "children"},   {"task_struct", "sibling"},
        {"task_struct", "cred"},       {"task_struct", "__state"},
        {"task_struct", "flags"},      {"task_struct", "thread_group"},
        {"mm_struct", "pgd"},          {"mm_struct", "mm_mt"},
        {"mm_struct", "map_count"},    {"mm_struct", "start_code"},
        {"mm_struct", "arg_start"},    {"mm_struct", "mm_mt.ma_root"},
        {"maple_tree", "ma_root"},     {"maple_tree", "ma_flags"},
        {"vm_area_struct", "vm_start"}, {"vm_area_struct", "vm_end"},
        {"vm_area_struct", "vm_mm"},   {"vm_area_struct", "vm_flags"},
        {"vm_area_struct", "vm_file"}, {"vm_area_struct", "vm_pgoff"},
        {"list_head", "next"},         {"list_head", "prev"},
        {"cred", "uid"},               {"file", "f_path"},
        {"maple_node", "slot"},        {"maple_range_64", "pivot"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        uint64_t a, b;
        struct isf_member_info ia, ib;
        if (isf_member(ref, m[i].type, m[i].member, &a, &ia) != 0)
            fail_msg("dwarf2json profile lacks %s.%s", m[i].type, m[i].member);
        if (isf_member(gen, m[i].type, m[i].member, &b, &ib) != 0)
            fail_msg("generated profile lacks %s.%s", m[i].type, m[i].member);
        if (a != b || ia.kind != ib.kind || ia.size != ib.size)
            fail_msg("%s.%s: dwarf2json offset %llu kind %d size %llu, "
                     "generated %llu kind %d size %llu", m[i].type,
                     m[i].member, (unsigned long long)a, ia.kind,
                     (unsigned long long)ia.size, (unsigned long long)b,
                     ib.kind, (unsigned long long)ib.size);
    }
    static const char *const types[] = {"task_struct", "mm_struct",
                                        "vm_area_struct", "maple_tree",
                                        "maple_node", "list_head", "pgd_t"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint64_t a, b;
        assert_int_equal(isf_type_size(ref, types[i], &a), 0);
        assert_int_equal(isf_type_size(gen, types[i], &b), 0);
        if (a != b)
            fail_msg("sizeof %s: %llu vs %llu", types[i],
                     (unsigned long long)a, (unsigned long long)b);
    }
    int64_t ea, eb;
    assert_int_equal(isf_enum_value(ref, "maple_type", "maple_arange_64", &ea), 0);
    assert_int_equal(isf_enum_value(gen, "maple_type", "maple_arange_64", &eb), 0);
    assert_int_equal(ea, eb);

    isf_free(gen);
    isf_free(ref);
    btf_isf_kernel_close(&k);
    btf_isf_symbols_free(s);
}

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt,
                        va_list ap)
{
    (void)level; (void)fmt; (void)ap;
    return 0;
}

int main(void)
{
    libbpf_set_print(quiet_libbpf);     /* the hostile images are noisy */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbols),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_real_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !VMEMFS_HAVE_LIBBPF */

#include <stdio.h>

static void test_btf_isf_unavailable(void **state)
{
    (void)state;
    print_message("[  SKIPPED ] vmemcore is built without libbpf "
                  "(VMEMFS_HAVE_LIBBPF undefined): profiles from BTF are not "
                  "tested\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_btf_isf_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
