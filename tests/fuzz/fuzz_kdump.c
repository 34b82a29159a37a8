/*
 * fuzz_kdump.c - libFuzzer target for the kdump-compressed parser
 * (drivers/file/kdump*.c): parse the input as a dump (plain or flattened),
 * then read a bounded set of frames: the first pages, both ends of every
 * RAM range, and pfns picked by the input's own bytes.
 *
 * Seeds: tests/fuzz/corpus/fuzz_kdump/ (small dumps: zlib, lzo, snappy,
 * 32-bit big-endian, flattened, split with notes, single bitmap).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/file/kdump.h"

/* drivers/file/elfnotes.c owns dump_parse_notes; until it is in the
 * library this weak no-op keeps the target linkable (the real one wins
 * once linked, and is then fuzzed through this target too). */
__attribute__((weak)) void dump_parse_notes(const uint8_t *notes, size_t len,
                                            int is_64bit, struct dump_layout *out)
{
    (void)notes;
    (void)len;
    (void)is_64bit;
    (void)out;
}

#define MAX_FRAMES 256

static void read_one(struct kdump *kd, uint64_t gfn, uint8_t *buf)
{
    int rc = kdump_read_frame(kd, gfn, buf);
    if (rc != 0 && rc != -ENOENT && rc != -EIO)
        abort();                    /* the contract allows nothing else */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dump_layout layout;
    char err[DUMP_ERR_LEN];
    memset(&layout, 0, sizeof layout);
    (void)dump_is_kdump(data, size);
    int rc = dump_parse_kdump(data, size, &layout, err, sizeof err);
    if (rc != 0) {
        /* A refusal must say why and leave nothing behind. */
        if (layout.backend || !memchr(err, '\0', sizeof err) || err[0] == '\0')
            abort();
        free(layout.vcpus);
        return 0;
    }
    struct kdump *kd = dump_layout_kdump(&layout);
    if (strlen(kdump_describe(kd)) == 0)
        abort();

    uint8_t buf[VMEM_PAGE_SIZE];
    unsigned frames = 0;
    for (uint64_t gfn = 0; gfn < 64; gfn++, frames++)
        read_one(kd, gfn, buf);

    const struct vmem_range *r;
    size_t n;
    kdump_ranges(kd, &r, &n);
    for (size_t i = 0; i < n && frames < MAX_FRAMES; i++, frames += 2) {
        if (r[i].start >= r[i].end || (i && r[i].start < r[i - 1].end))
            abort();                /* ranges must be sorted, disjoint */
        read_one(kd, r[i].start >> VMEM_PAGE_SHIFT, buf);
        read_one(kd, (r[i].end - 1) >> VMEM_PAGE_SHIFT, buf);
    }
    /* pfns chosen by the input: reach pages deep in big bitmaps. */
    uint64_t top = n ? r[n - 1].end >> VMEM_PAGE_SHIFT : 1;
    for (size_t off = 0; off + 8 <= size && frames < MAX_FRAMES; off += 997, frames++) {
        uint64_t v;
        memcpy(&v, data + off, sizeof v);
        read_one(kd, v % (top + 1), buf);
    }

    kdump_close(kd);
    free(layout.vcpus);
    return 0;
}
