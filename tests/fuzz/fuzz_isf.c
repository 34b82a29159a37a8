/*
 * fuzz_isf.c - libFuzzer target for the ISF profile loader
 * (core/profile/isf_load.c, isf_scan.c; lookups in isf.c): the input is a
 * profile (JSON, or xz/gzip of one) as a user or a symbols
 * directory might hand us.  Loads it, asks every kind of question of what
 * loaded, and reads its banner the cheap way (the path isf_find_by_banner
 * takes on every file of a directory).  Must never crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/profile/isf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    char *banner = isf_banner_of_buffer(data, size, "fuzz", err, sizeof err);
    free(banner);

    struct isf *f = isf_load_buffer(data, size, "fuzz", err, sizeof err);
    if (!f)
        return 0;
    static const char *const types[] = {
        "task_struct", "struct task_struct", "union u", "t", "int",
        "enum e", "pointer", "unnamed_1", "",
    };
    static const char *const members[] = {
        "pid", "tasks", "tasks.next", "a.b.c", "f", "unnamed_field_0", "", ".",
    };
    uint64_t v;
    int64_t e;
    struct isf_member_info in;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        isf_type_size(f, types[i], &v);
        isf_enum_value(f, types[i], "A", &e);
        for (size_t j = 0; j < sizeof members / sizeof members[0]; j++)
            isf_member(f, types[i], members[j], &v, &in);
    }
    isf_symbol(f, "init_task", &v);
    isf_symbol_type(f, "init_task", &in);
    isf_symbol_type(f, "linux_banner", &in);
    const char *b = isf_banner(f);
    if (b)
        (void)isf_banner_equal(b, "Linux version");
    (void)isf_format(f);
    struct isf_stats st;
    isf_get_stats(f, &st);
    isf_free(f);
    return 0;
}
