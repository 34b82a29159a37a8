/*
 * test_isf.c - the ISF profile loader (core/profile/isf*.c): small profiles written
 * by the test (plain, xz, gzip), every lookup, banner decoding, the search
 * of a nested symbols directory by banner, hostile documents, and the real
 * Debian 6.1 profile from ../shared/isf when it is there (skipped, saying
 * so, when it is not).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testenv.h"

#include <errno.h>
#include <ftw.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/profile/isf.h"
#include "core/util/decompress.h"

/* "Linux version 9.9.9-test (t@h) #1 SMP\n" + NUL, base64. */
#define TEST_BANNER "Linux version 9.9.9-test (t@h) #1 SMP\n"
#define TEST_BANNER_B64 "TGludXggdmVyc2lvbiA5LjkuOS10ZXN0ICh0QGgpICMxIFNNUAoA"

static const char small_isf[] =
    "{\n"
    " \"metadata\": {\"format\": \"6.2.0\", \"producer\": {\"name\": \"test\", "
    "\"version\": \"1.0.0\"}},\n"
    " \"base_types\": {\n"
    "  \"int\": {\"size\": 4, \"signed\": true, \"kind\": \"int\", \"endian\": \"little\"},\n"
    "  \"unsigned int\": {\"size\": 4, \"signed\": false, \"kind\": \"int\", \"endian\": \"little\"},\n"
    "  \"char\": {\"size\": 1, \"signed\": true, \"kind\": \"char\", \"endian\": \"little\"},\n"
    "  \"long unsigned int\": {\"size\": 8, \"signed\": false, \"kind\": \"int\", \"endian\": \"little\"},\n"
    "  \"pointer\": {\"size\": 8, \"signed\": false, \"kind\": \"int\", \"endian\": \"little\"},\n"
    "  \"void\": {\"size\": 0, \"signed\": false, \"kind\": \"void\", \"endian\": \"little\"}\n"
    " },\n"
    " \"user_types\": {\n"
    "  \"list_head\": {\"kind\": \"struct\", \"size\": 16, \"fields\": {\n"
    "    \"next\": {\"offset\": 0, \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"struct\", \"name\": \"list_head\"}}},\n"
    "    \"prev\": {\"offset\": 8, \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"struct\", \"name\": \"list_head\"}}}}},\n"
    "  \"task_struct\": {\"kind\": \"struct\", \"size\": 64, \"fields\": {\n"
    "    \"state\": {\"offset\": 0, \"type\": {\"kind\": \"base\", \"name\": \"unsigned int\"}},\n"
    "    \"flags\": {\"offset\": 4, \"type\": {\"kind\": \"bitfield\", \"bit_position\": 3, \"bit_length\": 5, \"type\": {\"kind\": \"base\", \"name\": \"unsigned int\"}}},\n"
    "    \"tasks\": {\"offset\": 8, \"type\": {\"kind\": \"struct\", \"name\": \"list_head\"}},\n"
    "    \"unnamed_field_0\": {\"offset\": 24, \"anonymous\": true, \"type\": {\"kind\": \"union\", \"name\": \"unnamed_1\"}},\n"
    "    \"comm\": {\"offset\": 40, \"type\": {\"kind\": \"array\", \"count\": 16, \"subtype\": {\"kind\": \"base\", \"name\": \"char\"}}},\n"
    "    \"mm\": {\"offset\": 56, \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"struct\", \"name\": \"mm_struct\"}}}}},\n"
    "  \"unnamed_1\": {\"kind\": \"union\", \"size\": 16, \"fields\": {\n"
    "    \"pid\": {\"offset\": 0, \"type\": {\"kind\": \"base\", \"name\": \"int\"}},\n"
    "    \"unnamed_field_0\": {\"offset\": 8, \"anonymous\": true, \"type\": {\"kind\": \"struct\", \"name\": \"unnamed_2\"}}}},\n"
    "  \"unnamed_2\": {\"kind\": \"struct\", \"size\": 8, \"fields\": {\n"
    "    \"tgid\": {\"offset\": 4, \"type\": {\"kind\": \"enum\", \"name\": \"pid_type\"}}}},\n"
    "  \"mm_struct\": {\"kind\": \"struct\", \"size\": 32, \"fields\": {\n"
    "    \"pgd\": {\"offset\": 16, \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"base\", \"name\": \"void\"}}}},\n"
    "    \"fn\": {\"offset\": 24, \"type\": {\"kind\": \"pointer\", \"subtype\": {\"kind\": \"function\"}}}}}\n"
    " },\n"
    " \"enums\": {\n"
    "  \"pid_type\": {\"size\": 4, \"base\": \"unsigned int\", \"constants\": {\"PIDTYPE_PID\": 0, \"PIDTYPE_TGID\": 1, \"PIDTYPE_NEG\": -1, \"PIDTYPE_BIG\": 18446744073709551615}}\n"
    " },\n"
    " \"symbols\": {\n"
    "  \"init_task\": {\"address\": 18446744071606217280, \"type\": {\"kind\": \"struct\", \"name\": \"task_struct\"}},\n"
    "  \"linux_banner\": {\"address\": 18446744071596800512, \"constant_data\": \"" TEST_BANNER_B64 "\", "
    "\"type\": {\"kind\": \"array\", \"count\": 0, \"subtype\": {\"kind\": \"base\", \"name\": \"char\"}}},\n"
    "  \"zero\": {\"address\": 0}\n"
    " },\n"
    " \"later_addition\": [1, {\"x\": [\"}\"]}]\n"
    "}\n";

static char tmpdir[4096];

static char *path_in(const char *rel)
{
    static char buf[8][4200];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%.4095s/%.100s", tmpdir, rel);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *s = dir + strlen(tmpdir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(dir, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void *xz(const char *s, size_t *outlen)
{
    size_t cap = strlen(s) + 4096;
    uint8_t *out = malloc(cap);
    size_t pos = 0;
    assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL,
                                             (const uint8_t *)s, strlen(s),
                                             out, &pos, cap), LZMA_OK);
    *outlen = pos;
    return out;
}

static void *gz(const char *s, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, strlen(s)) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)s;
    z.avail_in = (uInt)strlen(s);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* The same document with its banner replaced. */
static char *with_banner(const char *b64)
{
    const char *at = strstr(small_isf, TEST_BANNER_B64);
    size_t n = strlen(small_isf) - strlen(TEST_BANNER_B64) + strlen(b64) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - small_isf), small_isf, b64,
             at + strlen(TEST_BANNER_B64));
    return s;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_isf.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Every lookup on the small profile, loaded from whatever `path` holds. */
static void check_small(struct isf *f)
{
    char err[256];
    (void)err;
    assert_non_null(f);
    uint64_t v = 0;
    assert_int_equal(isf_symbol(f, "init_task", &v), 0);
    assert_true(v == 18446744071606217280ull);
    assert_int_equal(isf_symbol(f, "zero", &v), 0);
    assert_true(v == 0);
    assert_int_equal(isf_symbol(f, "no_such_symbol", &v), -1);
    assert_int_equal(isf_symbol(f, "task_struct", &v), -1);  /* a type */

    assert_int_equal(isf_type_size(f, "task_struct", &v), 0);
    assert_int_equal(v, 64);
    assert_int_equal(isf_type_size(f, "struct task_struct", &v), 0);
    assert_int_equal(isf_type_size(f, "union task_struct", &v), -1);
    assert_int_equal(isf_type_size(f, "union unnamed_1", &v), 0);
    assert_int_equal(v, 16);
    assert_int_equal(isf_type_size(f, "long unsigned int", &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(isf_type_size(f, "pid_type", &v), 0);
    assert_int_equal(v, 4);
    assert_int_equal(isf_type_size(f, "enum pid_type", &v), 0);
    assert_int_equal(isf_type_size(f, "struct pid_type", &v), -1);
    assert_int_equal(isf_type_size(f, "nothing", &v), -1);

    struct isf_member_info in;
    assert_int_equal(isf_member(f, "task_struct", "tasks", &v, &in), 0);
    assert_int_equal(v, 8);
    assert_int_equal(in.kind, ISF_KIND_STRUCT);
    assert_string_equal(in.type_name, "list_head");
    assert_int_equal(in.size, 16);

    /* through two levels of anonymous members: 24 + 8 + 4 */
    assert_int_equal(isf_member(f, "task_struct", "tgid", &v, &in), 0);
    assert_int_equal(v, 36);
    assert_int_equal(in.kind, ISF_KIND_ENUM);
    assert_string_equal(in.type_name, "pid_type");
    assert_int_equal(in.size, 4);
    assert_int_equal(isf_member(f, "task_struct", "pid", &v, &in), 0);
    assert_int_equal(v, 24);
    assert_int_equal(isf_member(f, "task_struct", "unnamed_field_0", &v, &in), 0);
    assert_true(in.anonymous);
    assert_int_equal(in.kind, ISF_KIND_UNION);

    assert_int_equal(isf_member(f, "task_struct", "comm", &v, &in), 0);
    assert_int_equal(v, 40);
    assert_int_equal(in.kind, ISF_KIND_ARRAY);
    assert_int_equal(in.target_kind, ISF_KIND_BASE);
    assert_string_equal(in.type_name, "char");
    assert_int_equal(in.count, 16);
    assert_int_equal(in.size, 16);
    assert_int_equal(in.target_size, 1);

    assert_int_equal(isf_member(f, "task_struct", "mm", &v, &in), 0);
    assert_int_equal(v, 56);
    assert_int_equal(in.kind, ISF_KIND_POINTER);
    assert_int_equal(in.target_kind, ISF_KIND_STRUCT);
    assert_string_equal(in.type_name, "mm_struct");
    assert_int_equal(in.size, 8);
    assert_int_equal(in.target_size, 32);

    assert_int_equal(isf_member(f, "task_struct", "flags", &v, &in), 0);
    assert_int_equal(v, 4);
    assert_int_equal(in.kind, ISF_KIND_BITFIELD);
    assert_int_equal(in.bit_position, 3);
    assert_int_equal(in.bit_length, 5);
    assert_string_equal(in.type_name, "unsigned int");
    assert_int_equal(in.size, 4);

    assert_int_equal(isf_member(f, "task_struct", "tasks.prev", &v, &in), 0);
    assert_int_equal(v, 16);
    assert_int_equal(isf_member(f, "task_struct", "mm.pgd", &v, NULL), -1);  /* a pointer */
    assert_int_equal(isf_member(f, "task_struct", "tasks.", &v, NULL), -1);
    assert_int_equal(isf_member(f, "task_struct", "nope", &v, NULL), -1);
    assert_int_equal(isf_member(f, "nope", "pid", &v, NULL), -1);
    assert_int_equal(isf_member(f, "int", "pid", &v, NULL), -1);

    assert_int_equal(isf_member(f, "mm_struct", "pgd", &v, &in), 0);
    assert_int_equal(in.kind, ISF_KIND_POINTER);
    assert_int_equal(in.target_kind, ISF_KIND_POINTER);
    assert_null(in.type_name);
    assert_int_equal(in.target_size, 8);
    assert_int_equal(isf_member(f, "mm_struct", "fn", &v, &in), 0);
    assert_int_equal(in.target_kind, ISF_KIND_FUNCTION);
    assert_int_equal(in.target_size, 0);

    int64_t e = 0;
    assert_int_equal(isf_enum_value(f, "pid_type", "PIDTYPE_TGID", &e), 0);
    assert_int_equal(e, 1);
    assert_int_equal(isf_enum_value(f, "pid_type", "PIDTYPE_NEG", &e), 0);
    assert_int_equal(e, -1);
    assert_int_equal(isf_enum_value(f, "enum pid_type", "PIDTYPE_BIG", &e), 0);
    assert_true((uint64_t)e == UINT64_MAX);
    assert_int_equal(isf_enum_value(f, "pid_type", "PIDTYPE_X", &e), -1);

    assert_int_equal(isf_symbol_type(f, "init_task", &in), 0);
    assert_int_equal(in.kind, ISF_KIND_STRUCT);
    assert_string_equal(in.type_name, "task_struct");
    assert_int_equal(isf_symbol_type(f, "zero", &in), 0);
    assert_int_equal(in.kind, ISF_KIND_UNKNOWN);

    assert_string_equal(isf_banner(f), TEST_BANNER);
    assert_string_equal(isf_format(f), "6.2.0");
    struct isf_stats st;
    isf_get_stats(f, &st);
    assert_int_equal(st.user_types, 5);
    assert_int_equal(st.base_types, 6);
    assert_int_equal(st.enums, 1);
    assert_int_equal(st.symbols, 3);
    assert_true(st.bytes > 0);
}

static void test_plain_xz_gz(void **state)
{
    (void)state;
    char err[512] = "";
    size_t n;
    void *x = xz(small_isf, &n);
    write_file(path_in("a.json.xz"), x, n);
    free(x);
    void *g = gz(small_isf, &n);
    write_file(path_in("a.json.gz"), g, n);
    free(g);
    /* Content decides, not the name. */
    write_file(path_in("plain.bin"), small_isf, strlen(small_isf));

    const char *files[] = {"plain.bin", "a.json.xz", "a.json.gz"};
    for (int i = 0; i < 3; i++) {
        struct isf *f = isf_load(path_in(files[i]), err, sizeof err);
        if (!f)
            fail_msg("%s", err);
        check_small(f);
        isf_free(f);
    }
    struct isf *f = isf_load_buffer(small_isf, strlen(small_isf), NULL, err,
                                    sizeof err);
    check_small(f);
    isf_free(f);
    isf_free(NULL);

    char *b = isf_read_banner(path_in("a.json.xz"), err, sizeof err);
    assert_non_null(b);
    assert_string_equal(b, TEST_BANNER);
    free(b);
}

static void test_banner_equal(void **state)
{
    (void)state;
    assert_true(isf_banner_equal("Linux version 1 x\n", "Linux version 1 x"));
    assert_true(isf_banner_equal("Linux version 1 x", "Linux version 1 x \r\n"));
    assert_false(isf_banner_equal("Linux version 1 x", "Linux version 1 y"));
    assert_false(isf_banner_equal("Linux version 1", "Linux version 1 x"));
    assert_false(isf_banner_equal(NULL, "x"));
}

static void test_find_by_banner(void **state)
{
    (void)state;
    char err[512] = "";
    size_t n;
    /* A tree like Volatility's symbols directory: the match deep down,
     * another kernel's profile, a corrupt profile and a README. */
    char *other = with_banner("TGludXggdmVyc2lvbiA4LjguOCAoeCkK");  /* "Linux version 8.8.8 (x)\n" */
    void *g = gz(other, &n);
    write_file(path_in("syms/linux/aaa-other.json.gz"), g, n);
    free(g);
    free(other);
    write_file(path_in("syms/linux/bbb-broken.json"), "{\"metadata\": [", 14);
    write_file(path_in("syms/README.md"), "not a profile", 13);
    void *x = xz(small_isf, &n);
    write_file(path_in("syms/linux/deeper/ccc-match.json.xz"), x, n);
    free(x);

    struct isf *f = isf_find_by_banner(path_in("syms"),
                                       "Linux version 9.9.9-test (t@h) #1 SMP",
                                       err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    check_small(f);
    isf_free(f);

    f = isf_find_by_banner(path_in("syms"), "Linux version 8.8.8 (x)\n", err,
                           sizeof err);
    assert_non_null(f);
    assert_string_equal(isf_banner(f), "Linux version 8.8.8 (x)\n");
    isf_free(f);

    err[0] = '\0';
    f = isf_find_by_banner(path_in("syms"), "Linux version 7", err, sizeof err);
    assert_null(f);
    assert_non_null(strstr(err, "3 ISF files"));
    assert_null(strchr(err, '\n'));

    f = isf_find_by_banner(path_in("no-such-dir"), "Linux version 7", err,
                           sizeof err);
    assert_null(f);
    assert_non_null(strstr(err, "not a directory"));
}

/* Malformed documents: NULL, one line naming the file and the problem. */
static void test_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *expect;
    } cases[] = {
        {"", "not a JSON object"},
        {"[]", "not a JSON object"},
        {"{}", "no \"metadata\""},
        {"{\"metadata\": {}}", "format"},
        {"{\"metadata\": {\"format\": \"1.0.0\"}}", "unsupported ISF format"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}", "expected ',' or '}'"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}} x", "data after"},
        {"{\"metadata\": {\"format\": \"6.2.0\", }}", "invalid JSON"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"symbols\": {\"a\": {}}}",
         "symbols \"a\": no unsigned integer \"address\""},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"symbols\": {\"a\": {\"address\": -1}}}",
         "address"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"symbols\": {\"a\": {\"address\": 1.5}}}",
         "address"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"symbols\": [1]}", "expected a JSON object"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"symbols\": {\"linux_banner\": "
         "{\"address\": 1, \"constant_data\": \"!!\"}}}", "base64"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"user_types\": {\"t\": "
         "{\"kind\": \"struct\", \"size\": 4, \"fields\": {\"f\": {\"offset\": 0, "
         "\"type\": {\"kind\": \"wat\"}}}}}}", "unknown type kind \"wat\""},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"user_types\": {\"t\": "
         "{\"kind\": \"struct\", \"size\": 4, \"fields\": {\"f\": {\"offset\": 0, "
         "\"type\": {\"kind\": \"pointer\"}}}}}}", "without a \"subtype\""},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"user_types\": {\"t\": "
         "{\"kind\": \"enum\", \"size\": 4, \"fields\": {}}}}", "not struct, union or class"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"user_types\": {\"t\": "
         "{\"kind\": \"struct\", \"size\": 4}}}", "no \"fields\""},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"enums\": {\"e\": "
         "{\"size\": 4, \"base\": \"int\", \"constants\": {\"A\": \"x\"}}}}",
         "constant \"A\" is not an integer"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"base_types\": {\"int\": "
         "{\"size\": 4, \"kind\": \"integer\"}}}", "\"kind\" is not one of"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"base_types\": {\"a\\u0000b\": "
         "{\"size\": 4, \"kind\": \"int\"}}}", "NUL"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"x\": \"unterminated", "not terminated"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"x\": [[[[}", "unbalanced"},
        {"{\"metadata\": {\"format\": \"6.2.0\"}, \"x\": \"a\x01\"}", "control character"},
        {"BZh91AY&SY", "bzip2"},
        {"\xFD" "7zXZ\0\0\0\0\0\0\0\0", "xz data"},
        {"\x1f\x8b\x08\0\0\0\0\0\0\0\0\0", "gzip data"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *d = cases[i].doc;
        size_t n = strlen(d);
        if (d[0] == '\xFD' || d[0] == '\x1f')
            n = 12;
        err[0] = '\0';
        struct isf *f = isf_load_buffer(d, n, "hostile.json", err, sizeof err);
        if (f)
            fail_msg("case %zu loaded: %s", i, d);
        if (strncmp(err, "hostile.json: ", 14) != 0 ||
            !strstr(err, cases[i].expect) || strchr(err, '\n'))
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err,
                     cases[i].expect);
    }
    /* A file name reaches the message too. */
    write_file(path_in("bad.json"), "{\"metadata\": 5}", 15);
    struct isf *f = isf_load(path_in("bad.json"), err, sizeof err);
    assert_null(f);
    assert_non_null(strstr(err, path_in("bad.json")));
    f = isf_load(path_in("missing.json"), err, sizeof err);
    assert_null(f);
    assert_non_null(strstr(err, "No such file"));

    /* Every truncation of a valid document fails cleanly (or, at full
     * length, loads). */
    size_t len = strlen(small_isf);
    for (size_t cut = 0; cut < len; cut += 7) {
        f = isf_load_buffer(small_isf, cut, "cut.json", err, sizeof err);
        if (cut < len - 2)
            assert_null(f);
        isf_free(f);
    }
}

static void test_real_profile(void **state)
{
    (void)state;
    const char *dir = testenv_isf_dir();
    if (!dir) {
        print_message("[  SKIPPED ] no shared ISF directory (../shared/isf or "
                      "$VMEMFS_ISF_DIR): the real Debian profile is not "
                      "checked\n");
        skip();
    }
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/linux/6.1.0-50-cloud-amd64.json.xz", dir);
    if (access(path, R_OK) != 0) {
        print_message("[  SKIPPED ] %s is absent\n", path);
        skip();
    }
    struct isf *f = isf_load(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    const char *b = isf_banner(f);
    assert_non_null(b);
    assert_memory_equal(b, "Linux version 6.1.0-50-cloud-amd64 ", 35);
    uint64_t v;
    assert_int_equal(isf_symbol(f, "init_task", &v), 0);
    assert_true(v >= 0xffffffff80000000ull);
    assert_int_equal(isf_symbol(f, "init_top_pgt", &v), 0);
    /* Offsets read off the dwarf2json file itself. */
    struct {
        const char *type, *member;
        uint64_t off;
    } m[] = {
        {"task_struct", "pid", 2416},  {"task_struct", "tgid", 2420},
        {"task_struct", "tasks", 2192}, {"task_struct", "comm", 2976},
        {"task_struct", "mm", 2272},   {"task_struct", "real_parent", 2432},
        {"mm_struct", "pgd", 72},      {"mm_struct", "mm_mt", 0},
        {"list_head", "prev", 8},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        assert_int_equal(isf_member(f, m[i].type, m[i].member, &v, NULL), 0);
        assert_int_equal(v, m[i].off);
    }
    struct isf_member_info in;
    assert_int_equal(isf_member(f, "mm_struct", "mm_mt.ma_root", &v, &in), 0);
    assert_int_equal(v, 8);
    assert_int_equal(in.kind, ISF_KIND_POINTER);
    assert_int_equal(isf_type_size(f, "task_struct", &v), 0);
    assert_int_equal(v, 9728);
    int64_t e;
    assert_int_equal(isf_enum_value(f, "pid_type", "PIDTYPE_SID", &e), 0);
    assert_int_equal(e, 3);

    /* The same file is found by its banner, from the top of the tree. */
    struct isf *g = isf_find_by_banner(dir, b, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    assert_true(isf_banner_equal(isf_banner(g), b));
    isf_free(g);
    isf_free(f);
}

/* The shared lzma decoder: xz and the legacy .lzma format (a kernel
 * compression btf_isf.c meets), round trip, truncation, the size bound. */
static void test_unlzma(void **state)
{
    (void)state;
    static uint8_t plain[200000];
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (uint8_t)(i * 31 / 7);
    for (int legacy = 0; legacy <= 1; legacy++) {
        lzma_stream s = LZMA_STREAM_INIT;
        lzma_options_lzma opt;
        lzma_lzma_preset(&opt, 1);
        if (legacy)
            assert_int_equal(lzma_alone_encoder(&s, &opt), LZMA_OK);
        else
            assert_int_equal(lzma_easy_encoder(&s, 1, LZMA_CHECK_CRC32), LZMA_OK);
        static uint8_t packed[300000];
        s.next_in = plain;
        s.avail_in = sizeof plain;
        s.next_out = packed;
        s.avail_out = sizeof packed;
        assert_int_equal(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
        size_t plen = sizeof packed - s.avail_out;
        lzma_end(&s);
        void *out = NULL;
        size_t outlen = 0;
        char why[256];
        enum vmem_codec c = legacy ? VMEM_CODEC_LZMA : VMEM_CODEC_XZ;
        assert_int_equal(vmem_codec_detect(packed, plen, true), c);
        assert_int_equal(vmem_decompress(c, packed, plen, 1 << 20, 0, &out, &outlen,
                                         why, sizeof why), 1);
        assert_int_equal(outlen, sizeof plain);
        assert_memory_equal(out, plain, sizeof plain);
        free(out);
        assert_int_equal(vmem_decompress(c, packed, plen / 2, 1 << 20, 0, &out, &outlen,
                                         why, sizeof why), -EINVAL);
        assert_int_equal(vmem_decompress(c, packed, plen, 1000, 0, &out, &outlen,
                                         why, sizeof why), -EINVAL);
        assert_non_null(strstr(why, "more than"));
        /* A prefix: the first bytes only, however large the stream. */
        assert_int_equal(vmem_decompress(c, packed, plen, 1000, VMEM_DECOMP_PREFIX,
                                         &out, &outlen, why, sizeof why), 1);
        assert_true(outlen >= 1000 && outlen <= 65536);
        assert_memory_equal(out, plain, 1000);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_xz_gz),
        cmocka_unit_test(test_unlzma),
        cmocka_unit_test(test_banner_equal),
        cmocka_unit_test(test_find_by_banner),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_real_profile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
