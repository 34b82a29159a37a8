/*
 * ram.c - where each RAM block of a QEMU lives (see internal.h): a shared
 * memory-backend file, /proc/PID/map_files, or a host address in QEMU's
 * memory found from its maps, each candidate proven against QMP reads of
 * the same guest pages before it is used.
 */
#include "drivers/qemu/internal.h"

/* ------------------------------------------------------------------- open */

/* The blocks: every memory backend (query-memdev), with its type, share
 * and mem-path. */
int qs_load_blocks(struct qemu_src *s, char *err, size_t errlen)
{
    json_object *ret = NULL;
    char qerr[256];
    int rc = qs_exec(s, "query-memdev", NULL, &ret, qerr, sizeof qerr);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, qerr);
        return rc;
    }
    size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
    s->blocks = calloc(n ? n : 1, sizeof *s->blocks);
    if (!s->blocks) {
        json_object_put(ret);
        snprintf(err, errlen, "%s: out of memory", s->sock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(ret, i), *id;
        if (!json_object_object_get_ex(m, "id", &id))
            continue;               /* unnamed: no region name to match */
        struct qemu_block *b = &s->blocks[s->nblocks];
        b->fd = -1;
        b->id = strdup(json_object_get_string(id));
        b->size = qs_json_u64(m, "size", 0);
        b->share = qs_json_flag(m, "share", false);
        if (!b->id)
            continue;
        s->nblocks++;
        char path[300];
        snprintf(path, sizeof path, "/objects/%s", b->id);
        b->type = qs_qom_get_str(s, path, "type");
        if (b->type && strcmp(b->type, "memory-backend-file") == 0) {
            b->mem_path = qs_qom_get_str(s, path, "mem-path");
        }
    }
    json_object_put(ret);
    if (s->nblocks == 0) {
        snprintf(err, errlen, "%s: QEMU has no memory backend (query-memdev is "
                 "empty): no RAM block to read", s->sock);
        return -EINVAL;
    }
    return 0;
}

/* The system address space's RAM as it is now: segments (malloc'd), each
 * checked to lie inside its block.  0, or -errno with err set. */
int qs_read_layout(struct qemu_src *s, struct qemu_ram_seg **segs_out,
                       size_t *nsegs_out, char *err, size_t errlen)
{
    char *text = NULL, qerr[256];
    int rc = qs_hmp(s, "info mtree -f", -1, &text, qerr, sizeof qerr);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, qerr);
        return rc;
    }
    struct qemu_flat *flat = NULL;
    size_t nflat = 0;
    rc = qemu_parse_flatview(text, "memory", &flat, &nflat);
    free(text);
    if (rc < 0) {
        snprintf(err, errlen, "%s: no flat view of the system address space "
                 "(AS \"memory\") in 'info mtree -f'", s->sock);
        return rc == -ENOMEM ? rc : -EIO;
    }
    const char **names = calloc(s->nblocks, sizeof *names);
    if (!names) {
        free(flat);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->nblocks; i++)
        names[i] = s->blocks[i].id;
    struct qemu_ram_seg *segs = NULL;
    size_t nsegs = 0;
    rc = qemu_ram_layout(flat, nflat, names, s->nblocks, &segs, &nsegs);
    free(names);
    free(flat);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", s->sock, rc == -ENOENT
                 ? "no RAM of a memory backend in the system address space"
                 : "overlapping RAM ranges in 'info mtree -f'");
        return rc == -ENOMEM ? rc : -EIO;
    }
    for (size_t i = 0; i < nsegs; i++) {
        const struct qemu_ram_seg *g = &segs[i];
        const struct qemu_block *b = &s->blocks[g->block];
        if (g->block_off > b->size || g->len > b->size - g->block_off) {
            snprintf(err, errlen, "%s: gpa 0x%" PRIx64 "+0x%" PRIx64 " lies "
                     "outside RAM block %s (0x%" PRIx64 " bytes)", s->sock, g->gpa,
                     g->len, b->id, b->size);
            free(segs);
            return -EIO;
        }
    }
    *segs_out = segs;
    *nsegs_out = nsegs;
    return 0;
}

bool qs_seg_uses(const struct qemu_ram_seg *segs, size_t nsegs, size_t bi)
{
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i].block == bi)
            return true;
    return false;
}

/* Guest page gpa through QMP, into buf (4 KiB). */
static int qmp_page(struct qemu_src *s, uint64_t gpa, uint8_t *buf)
{
    char cmd[64], *text = NULL, qerr[256];
    snprintf(cmd, sizeof cmd, "xp /%ux%c 0x%" PRIx64, VMEM_PAGE_SIZE / 8, 'g', gpa);
    int rc = qs_hmp(s, cmd, -1, &text, qerr, sizeof qerr);
    if (rc < 0)
        return rc;
    rc = qemu_parse_xp(text, gpa, buf, VMEM_PAGE_SIZE);
    free(text);
    return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Sample pages of block bi: block offsets of guest-visible pages, evenly
 * spread, with their gpa. */
struct sample {
    uint64_t off, gpa;
    int qstate;                     /* 0 unread, 1 read, <0 error */
    uint8_t *qpage;                 /* the page through QMP, when read */
};

static size_t make_samples(const struct qemu_ram_seg *segs, size_t nsegs, size_t bi,
                           struct sample *out, size_t max)
{
    uint64_t total = 0;
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i].block == bi)
            total += segs[i].len / VMEM_PAGE_SIZE;
    if (!total)
        return 0;
    size_t n = total < max ? (size_t)total : max;
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        uint64_t want = total * j / n, seen = 0;   /* j-th sample's page index */
        for (size_t i = 0; i < nsegs; i++) {
            const struct qemu_ram_seg *g = &segs[i];
            if (g->block != bi)
                continue;
            uint64_t pages = g->len / VMEM_PAGE_SIZE;
            if (want < seen + pages) {
                uint64_t p = want - seen;
                out[k++] = (struct sample){.off = g->block_off + p * VMEM_PAGE_SIZE,
                                           .gpa = g->gpa + p * VMEM_PAGE_SIZE};
                break;
            }
            seen += pages;
        }
    }
    return k;
}

/* V_ERR: QMP could not read the guest's pages (no verdict). */
enum verdict { V_NO, V_BLANK, V_YES, V_ERR };

static void free_samples(struct sample *smp, size_t ns)
{
    for (size_t k = 0; k < ns; k++) {
        free(smp[k].qpage);
        smp[k].qpage = NULL;
        smp[k].qstate = 0;
    }
}

/* Is hva where QEMU keeps the block sampled in smp?  Compare non-zero pages
 * of the candidate with QMP's view of the same guest pages. */
static enum verdict check_candidate(struct qemu_src *s, uint64_t hva,
                                    struct sample *smp, size_t ns, uint8_t *pages)
{
    int *st = malloc(ns * sizeof *st);
    struct xfer *x = malloc(ns * sizeof *x);
    if (!st || !x) {
        free(st);
        free(x);
        return V_NO;
    }
    for (size_t i = 0; i < ns; i++)
        x[i] = (struct xfer){.fd = -1, .raddr = hva + smp[i].off,
                             .buf = pages + i * VMEM_PAGE_SIZE, .len = VMEM_PAGE_SIZE,
                             .status = &st[i]};
    qs_io_xfer(s, x, ns, false);
    free(x);
    size_t nz[VALIDATE_SAMPLES], nnz = 0;
    for (size_t i = 0; i < ns; i++) {
        if (st[i] < 0) {
            free(st);
            return V_NO;
        }
        if (!all_zero(pages + i * VMEM_PAGE_SIZE, VMEM_PAGE_SIZE))
            nz[nnz++] = i;
    }
    free(st);

    size_t pick[VALIDATE_CHECKS], np = 0;
    bool blank = nnz == 0;
    if (blank) {
        /* All zero here: QMP must see zeros too (a few pages). */
        for (size_t k = 0; k < 4 && k < ns; k++)
            pick[np++] = k * ns / 4;
    } else {
        for (size_t k = 0; k < VALIDATE_CHECKS && k < nnz; k++)
            pick[np++] = nz[k * nnz / (nnz < VALIDATE_CHECKS ? nnz : VALIDATE_CHECKS)];
    }
    size_t match = 0;
    for (size_t k = 0; k < np; k++) {
        struct sample *sm = &smp[pick[k]];
        uint8_t *mine = pages + pick[k] * VMEM_PAGE_SIZE;
        bool same = false;
        for (int attempt = 0; attempt < 3 && !same; attempt++) {
            if (attempt > 0) {
                /* The guest runs: read both sides again. */
                sm->qstate = 0;
                if (qs_io_span(s, -1, hva + sm->off, mine, VMEM_PAGE_SIZE, false) < 0)
                    return V_NO;
            }
            if (sm->qstate == 0) {
                if (!sm->qpage)
                    sm->qpage = malloc(VMEM_PAGE_SIZE);
                sm->qstate = sm->qpage ? (qmp_page(s, sm->gpa, sm->qpage) == 0 ? 1 : -1) : -1;
            }
            if (sm->qstate < 0)
                return V_ERR;
            same = memcmp(mine, sm->qpage, VMEM_PAGE_SIZE) == 0;
            if (blank)
                break;              /* zeros do not change under us */
        }
        if (same)
            match++;
    }
    if (blank)
        return match == np ? V_BLANK : V_NO;
    if (match == np || (match >= 3 && match + 1 >= np))
        return V_YES;
    return V_NO;
}

/* Find block bi in QEMU's address space; sets b->hva, b->verified, note.
 * *map_out: the maps entry holding it. */
static int find_hva(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                    size_t nsegs, const struct qemu_map *maps, size_t nmaps,
                    const struct qemu_map **map_out)
{
    struct qemu_block *b = &s->blocks[bi];
    struct sample smp[VALIDATE_SAMPLES];
    size_t ns = make_samples(segs, nsegs, bi, smp, VALIDATE_SAMPLES);
    uint8_t *pages = malloc((size_t)VALIDATE_SAMPLES * VMEM_PAGE_SIZE);
    if (!pages || !ns) {
        free(pages);
        snprintf(b->note, sizeof b->note, "no pages to validate against");
        return -EIO;
    }
    uint64_t yes = 0, blank = 0;
    size_t nyes = 0, nblank = 0, ncand = 0, nerr = 0;
    const struct qemu_map *yes_map = NULL, *blank_map = NULL;
    for (size_t i = 0; i < nmaps; i++) {
        const struct qemu_map *m = &maps[i];
        uint64_t size = m->end - m->start;
        if (m->perms[0] != 'r' || size < b->size)
            continue;
        uint64_t cand[2] = {m->start, m->end - b->size};
        for (int c = 0; c < (size > b->size ? 2 : 1); c++) {
            ncand++;
            enum verdict v = check_candidate(s, cand[c], smp, ns, pages);
            if (v == V_ERR)
                nerr++;
            if (v == V_YES) {
                nyes++;
                yes = cand[c];
                yes_map = m;
            } else if (v == V_BLANK && size == b->size) {
                nblank++;
                blank = cand[c];
                blank_map = m;
            }
        }
        if (qs_proc_gone(s))
            break;
    }
    free_samples(smp, ns);
    free(pages);
    if (nyes == 1) {
        b->hva = yes;
        b->verified = true;
        b->blank = false;
        *map_out = yes_map;
        snprintf(b->note, sizeof b->note, "host address found in /proc/%d/maps "
                 "(%zu candidates) and checked against QMP reads", (int)s->pid, ncand);
        return 0;
    }
    if (nyes > 1) {
        snprintf(b->note, sizeof b->note, "%zu mappings match the guest's pages: "
                 "ambiguous", nyes);
        return -EIO;
    }
    if (nerr > 0) {
        snprintf(b->note, sizeof b->note, "guest pages could not be read through "
                 "QMP to check %zu of %zu candidates", nerr, ncand);
        return -EAGAIN;
    }
    if (nblank == 1) {
        b->hva = blank;
        b->verified = false;
        b->blank = b->was_blank = true;
        *map_out = blank_map;
        snprintf(b->note, sizeof b->note, "guest RAM looks blank: the only "
                 "mapping of the block's size is taken unverified");
        return 0;
    }
    snprintf(b->note, sizeof b->note, "no mapping of QEMU matches the guest's "
             "pages (%zu candidates of 0x%" PRIx64 " bytes or more)", ncand, b->size);
    return -EIO;
}

/* mmap fd [off, off+b->size) into b. */
static int map_block(struct qemu_src *s, struct qemu_block *b, int fd, uint64_t off)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < off + b->size)
        return -EINVAL;
    /* Read-only even with QEMU_OPEN_RW: writes go through the file. */
    void *m = mmap(NULL, b->size, PROT_READ, MAP_SHARED, fd, (off_t)off);
    if (m == MAP_FAILED)
        return -errno;
    b->map = m;
    b->fd = fd;
    b->file_off = off;
    madvise(m, b->size, MADV_SEQUENTIAL);
    return 0;
}

/* Path 1: a shared memory-backend-file whose mem-path is the file QEMU
 * maps.  The path comes from the monitor, which may lie: only a file that
 * the verified QEMU process itself maps is opened (the same device and
 * inode in its /proc/PID/maps), checked before opening (so that a FIFO or
 * a device it names is never opened) and again on the descriptor.  0 if
 * mapped; <0 otherwise (note says why). */
static int try_shared_file(struct qemu_src *s, struct qemu_block *b,
                           const struct qemu_map *maps, size_t nmaps, bool have_maps)
{
    if (!b->share || !b->mem_path)
        return -ENOENT;
    if (!have_maps) {
        snprintf(b->note, sizeof b->note, "mem-path %s not opened: QEMU's mappings "
                 "are unreadable, so it cannot be checked", b->mem_path);
        return -EACCES;
    }
    struct stat st;
    if (stat(b->mem_path, &st) != 0) {
        snprintf(b->note, sizeof b->note, "mem-path %s: %s", b->mem_path,
                 strerror(errno));
        return -errno;
    }
    const struct qemu_map *found = NULL;
    for (size_t i = 0; i < nmaps && S_ISREG(st.st_mode); i++) {
        const struct qemu_map *m = &maps[i];
        if (m->inode == (uint64_t)st.st_ino && m->dev_major == major(st.st_dev) &&
            m->dev_minor == minor(st.st_dev) && m->perms[3] == 's' &&
            m->end - m->start == b->size) {
            found = m;
            break;
        }
    }
    if (!found) {
        snprintf(b->note, sizeof b->note, "mem-path %s is not %s QEMU (pid %d) "
                 "maps: not opened", b->mem_path,
                 S_ISREG(st.st_mode) ? "a file" : "a regular file", (int)s->pid);
        return -ESTALE;
    }
    int fd = open(b->mem_path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY |
                  O_NONBLOCK);
    if (fd < 0) {
        snprintf(b->note, sizeof b->note, "mem-path %s: %s", b->mem_path,
                 strerror(errno));
        return -errno;
    }
    struct stat fst;
    if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino ||
        qs_proc_gone(s)) {
        close(fd);
        snprintf(b->note, sizeof b->note, "mem-path %s changed while it was opened "
                 "(replaced?), or QEMU exited", b->mem_path);
        return -ESTALE;
    }
    uint64_t off = found->offset;
    b->hva = found->start;
    int rc = map_block(s, b, fd, off);
    if (rc < 0) {
        close(fd);
        snprintf(b->note, sizeof b->note, "mem-path %s: cannot map 0x%" PRIx64
                 " bytes: %s", b->mem_path, b->size, strerror(-rc));
        return rc;
    }
    b->file = strdup(b->mem_path);
    b->access = ACCESS_SHARED_FILE;
    b->verified = true;
    snprintf(b->note, sizeof b->note, "same inode as QEMU's mapping");
    return 0;
}

/* Path 1b: QEMU's shared mapping of a file we cannot name (memfd, deleted
 * file, temporary file in a mem-path directory) via /proc/PID/map_files. */
static int try_map_files(struct qemu_src *s, struct qemu_block *b,
                         const struct qemu_map *m)
{
    if (!b->share || m->perms[3] != 's' || m->inode == 0)
        return -ENOENT;
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
             (int)s->pid, m->start, m->end);
    int fd = open(path, (s->rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    /* The file of that mapping, in the process the pidfd pins. */
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != m->inode ||
        major(st.st_dev) != m->dev_major || minor(st.st_dev) != m->dev_minor ||
        qs_proc_gone(s)) {
        close(fd);
        return -ESTALE;
    }
    int rc = map_block(s, b, fd, m->offset + (b->hva - m->start));
    if (rc < 0) {
        close(fd);
        return rc;
    }
    char what[512];
    snprintf(what, sizeof what, "%s (%s)", path, m->path[0] ? m->path : "anonymous");
    b->file = strdup(what);
    b->access = ACCESS_MAP_FILES;
    return 0;
}

static void load_maps(struct qemu_src *s, struct maps_info *mi)
{
    if (mi->read)
        return;
    mi->read = true;
    mi->err = ESRCH;
    if (s->pid <= 0)
        return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
    char *text = qs_read_text(path);
    mi->err = errno;
    if (text && qemu_parse_maps(text, &mi->maps, &mi->n) == 0 && mi->n > 0)
        mi->have = true;
    free(text);
    /* Read from a pid that no longer names QEMU: not QEMU's mappings. */
    if (mi->have && qs_proc_gone(s)) {
        mi->have = false;
        mi->err = ESRCH;
    }
}

/* Find how to reach block bi (guest RAM in segs): sets b->access and the
 * rest.  0, or -errno with err set (-EAGAIN: QMP failed, try again). */
int qs_setup_block(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                       size_t nsegs, struct maps_info *mi, char *err, size_t errlen)
{
    struct qemu_block *b = &s->blocks[bi];
    load_maps(s, mi);
    if (try_shared_file(s, b, mi->maps, mi->n, mi->have) == 0)
        return 0;
    char why[160];
    snprintf(why, sizeof why, "%s", b->note);
    if (!mi->have) {
        if (s->pid > 0)
            snprintf(err, errlen, "%s: cannot read RAM block %s: /proc/%d/maps: "
                     "%s", s->sock, b->id, (int)s->pid, strerror(mi->err));
        else
            snprintf(err, errlen, "%s: cannot read RAM block %s: QEMU's pid "
                     "is unknown (another pid namespace?)", s->sock, b->id);
        snprintf(b->note, sizeof b->note, "QEMU's mappings unreadable");
        return -EACCES;
    }
    if (s->pidfd < 0 && s->memfd < 0) {
        snprintf(err, errlen, "%s: cannot read RAM block %s: cannot open "
                 "/proc/%d/mem: %s", s->sock, b->id, (int)s->pid, strerror(s->mem_errno));
        snprintf(b->note, sizeof b->note, "cannot open /proc/%d/mem", (int)s->pid);
        return -EACCES;
    }
    const struct qemu_map *m = NULL;
    int rc = find_hva(s, bi, segs, nsegs, mi->maps, mi->n, &m);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot find RAM block %s (0x%" PRIx64
                 " bytes) in QEMU pid %d: %s%s%s", s->sock, b->id, b->size,
                 (int)s->pid, b->note, why[0] ? "; " : "", why);
        return qs_proc_gone(s) ? -ENODEV : rc == -EAGAIN ? rc : -EIO;
    }
    if (try_map_files(s, b, m) == 0)
        return 0;
    b->access = ACCESS_PROCESS;
    if (why[0]) {
        size_t l = strlen(b->note);
        snprintf(b->note + l, sizeof b->note - l, "; %s", why);
    }
    return 0;
}

/* Block bi was taken unverified while guest RAM was blank: check it again
 * against the guest's pages now.  Verified, still blank, found elsewhere, or
 * left out (b->failed) when no mapping holds the guest's pages: 0.  -errno
 * when QMP failed (nothing decided; the next refresh tries again). */
int qs_reverify(struct qemu_src *s, size_t bi, const struct qemu_ram_seg *segs,
                    size_t nsegs, struct maps_info *mi)
{
    struct qemu_block *b = &s->blocks[bi];
    struct sample smp[VALIDATE_SAMPLES];
    size_t ns = make_samples(segs, nsegs, bi, smp, VALIDATE_SAMPLES);
    if (!ns)
        return 0;
    uint8_t *pages = malloc((size_t)VALIDATE_SAMPLES * VMEM_PAGE_SIZE);
    if (!pages)
        return -ENOMEM;
    enum verdict v = check_candidate(s, b->hva, smp, ns, pages);
    free_samples(smp, ns);
    free(pages);
    if (qs_proc_gone(s))
        return -ENODEV;
    if (v == V_ERR)
        return -EIO;
    if (v == V_BLANK)
        return 0;                   /* still blank: next time */
    if (v == V_YES) {
        b->blank = false;
        b->verified = true;
        snprintf(b->note, sizeof b->note, "guest RAM was blank when opened; host "
                 "address checked against QMP reads at a layout refresh");
        return 0;
    }
    /* The mapping taken blindly is not the guest's RAM: look again. */
    load_maps(s, mi);
    const struct qemu_map *m = NULL;
    int rc = mi->have ? find_hva(s, bi, segs, nsegs, mi->maps, mi->n, &m) : -EACCES;
    if (rc == -EAGAIN)
        return -EIO;
    if (rc == 0 && b->verified) {
        if (b->access == ACCESS_MAP_FILES) {
            qs_retire_map(s, b);
            if (try_map_files(s, b, m) != 0)
                b->access = ACCESS_PROCESS;
        }
        size_t l = strlen(b->note);
        snprintf(b->note + l, sizeof b->note - l, ", at a layout refresh: the "
                 "mapping taken while RAM was blank was not it");
        return 0;
    }
    qs_retire_map(s, b);
    b->access = ACCESS_NONE;
    b->verified = b->blank = false;
    b->failed = true;
    snprintf(b->note, sizeof b->note, "the mapping taken while guest RAM was blank "
             "does not hold the guest's pages, and no other does: left out of "
             "the layout");
    return 0;
}

/* Re-read the layout (see the top of this file).  1 changed, 0 not, or
 * -errno (the old layout stays). */
