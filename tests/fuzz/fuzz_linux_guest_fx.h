/*
 * fuzz_linux_guest_fx.h - the kernel tables the responder's files read
 * (issue 11), added to the synthetic guest of fuzz_linux_guest.h: a printk
 * ring buffer, the pid table (init_pid_ns.idr, an XArray) and sockets, in
 * made-up layouts that fg_fx_profile adds to the guest's profile, with
 * builders for tests/unit/test_linux_forensics.c and fuzz_linux.c.
 * Header-only, like fuzz_linux_guest.h.
 */
#ifndef VMEMFS_TESTS_FUZZ_LINUX_GUEST_FX_H
#define VMEMFS_TESTS_FUZZ_LINUX_GUEST_FX_H

#include "tests/fuzz/fuzz_linux_guest.h"


/* Kernel-image variables (offsets past the base guest's FG_X_END). */
#define FX_X_PRB       0xb000ull       /* struct printk_ringbuffer *prb */
#define FX_X_RB        0xb100ull       /* the ring buffer itself */
#define FX_X_PIDNS     0xb200ull       /* init_pid_ns */
#define FX_X_SOCKOPS   0xb400ull       /* socket_file_ops */

/* Made-up layouts, declared in the profile below. */
#define FX_RB_DESC_RING 0x00           /* prb_desc_ring: count_bits@0 descs@8 infos@0x10 */
#define FX_RB_TEXT_RING 0x30           /* prb_data_ring: size_bits@0 data@8 */
#define FX_DR_HEAD     0x18
#define FX_DR_TAIL     0x20
#define FX_DESC_SIZE   0x18            /* state_var@0, text_blk_lpos {begin@8, next@0x10} */
#define FX_INFO_SIZE   0x20            /* seq@0 ts_nsec@8 text_len@0x10 */
#define FX_PIDNS_XA_HEAD 0x18          /* pid_namespace.idr@0x10, idr.idr_rt@0, xa_head@8 */
#define FX_XA_SLOTS    0x28
#define FX_XA_NODE_SIZE (FX_XA_SLOTS + 64 * 8)
#define FX_PID_TASKS   0x10
#define FX_T_PID_LINKS 0xa0
#define FX_F_OP        0x28
#define FX_F_PRIVATE   0x30
#define FX_SOCKET_SK   0x18
#define FX_SK_DADDR    0x00
#define FX_SK_RCV_SADDR 0x04
#define FX_SK_DPORT    0x0c
#define FX_SK_NUM      0x0e
#define FX_SK_FAMILY   0x10
#define FX_SK_STATE    0x12
#define FX_SK_TYPE     0x100
#define FX_SK_PROTOCOL 0x104
#define FX_SK_UID      0x108

FG_FN const char fx_task[] =
    ",\"pid_links\":{\"offset\":160,\"type\":" ARR(8, VPTR) "}";
FG_FN const char fx_file[] =
    ",\"f_op\":{\"offset\":40,\"type\":" VPTR "}"
    ",\"private_data\":{\"offset\":48,\"type\":" VPTR "}";
FG_FN const char fx_types[] =
    ",\"printk_ringbuffer\":{\"kind\":\"struct\",\"size\":96,\"fields\":{"
    "\"desc_ring\":{\"offset\":0,\"type\":" STRUCT("prb_desc_ring") "},"
    "\"text_data_ring\":{\"offset\":48,\"type\":" STRUCT("prb_data_ring") "}}}"
    ",\"prb_desc_ring\":{\"kind\":\"struct\",\"size\":48,\"fields\":{"
    "\"count_bits\":{\"offset\":0,\"type\":" UI "},"
    "\"descs\":{\"offset\":8,\"type\":" VPTR "},"
    "\"infos\":{\"offset\":16,\"type\":" VPTR "},"
    "\"head_id\":{\"offset\":24,\"type\":" UL "},"
    "\"tail_id\":{\"offset\":32,\"type\":" UL "}}}"
    ",\"prb_data_ring\":{\"kind\":\"struct\",\"size\":24,\"fields\":{"
    "\"size_bits\":{\"offset\":0,\"type\":" UI "},"
    "\"data\":{\"offset\":8,\"type\":" VPTR "}}}"
    ",\"prb_data_blk_lpos\":{\"kind\":\"struct\",\"size\":16,\"fields\":{"
    "\"begin\":{\"offset\":0,\"type\":" UL "},"
    "\"next\":{\"offset\":8,\"type\":" UL "}}}"
    ",\"prb_desc\":{\"kind\":\"struct\",\"size\":24,\"fields\":{"
    "\"state_var\":{\"offset\":0,\"type\":" UL "},"
    "\"text_blk_lpos\":{\"offset\":8,\"type\":" STRUCT("prb_data_blk_lpos") "}}}"
    ",\"printk_info\":{\"kind\":\"struct\",\"size\":32,\"fields\":{"
    "\"seq\":{\"offset\":0,\"type\":" UL "},"
    "\"ts_nsec\":{\"offset\":8,\"type\":" UL "},"
    "\"text_len\":{\"offset\":16,\"type\":" UI "}}}"
    ",\"pid_namespace\":{\"kind\":\"struct\",\"size\":64,\"fields\":{"
    "\"idr\":{\"offset\":16,\"type\":" STRUCT("idr") "}}}"
    ",\"idr\":{\"kind\":\"struct\",\"size\":24,\"fields\":{"
    "\"idr_rt\":{\"offset\":0,\"type\":" STRUCT("xarray") "}}}"
    ",\"xarray\":{\"kind\":\"struct\",\"size\":16,\"fields\":{"
    "\"xa_head\":{\"offset\":8,\"type\":" VPTR "}}}"
    ",\"xa_node\":{\"kind\":\"struct\",\"size\":552,\"fields\":{"
    "\"shift\":{\"offset\":0,\"type\":" BASE("unsigned char") "},"
    "\"slots\":{\"offset\":40,\"type\":" ARR(64, VPTR) "}}}"
    ",\"pid\":{\"kind\":\"struct\",\"size\":96,\"fields\":{"
    "\"tasks\":{\"offset\":16,\"type\":" ARR(4, VPTR) "}}}"
    ",\"socket\":{\"kind\":\"struct\",\"size\":48,\"fields\":{"
    "\"sk\":{\"offset\":24,\"type\":" VPTR "}}}"
    ",\"sock_common\":{\"kind\":\"struct\",\"size\":136,\"fields\":{"
    "\"skc_daddr\":{\"offset\":0,\"type\":" UI "},"
    "\"skc_rcv_saddr\":{\"offset\":4,\"type\":" UI "},"
    "\"skc_dport\":{\"offset\":12,\"type\":" UI "},"
    "\"skc_num\":{\"offset\":14,\"type\":" UI "},"
    "\"skc_family\":{\"offset\":16,\"type\":" UI "},"
    "\"skc_state\":{\"offset\":18,\"type\":" BASE("unsigned char") "}}}"
    ",\"sock\":{\"kind\":\"struct\",\"size\":512,\"fields\":{"
    "\"__sk_common\":{\"offset\":0,\"type\":" STRUCT("sock_common") "},"
    "\"sk_type\":{\"offset\":256,\"type\":" UI "},"
    "\"sk_protocol\":{\"offset\":260,\"type\":" UI "},"
    "\"sk_uid\":{\"offset\":264,\"type\":" UI "}}}";


#define FX_X_END      0xb500ull       /* the image's variables end here */

/* The profile again with the layouts above added and the symbols prb,
 * init_pid_ns and socket_file_ops. */
FG_FN bool fg_fx_profile(struct fg *g)
{
    static char syms[256];
    snprintf(syms, sizeof syms,
             ",\"prb\":{\"address\":%llu},\"init_pid_ns\":{\"address\":%llu},"
             "\"socket_file_ops\":{\"address\":%llu}",
             (unsigned long long)(FG_KMAP + FX_X_PRB), (unsigned long long)(FG_KMAP + FX_X_PIDNS),
             (unsigned long long)(FG_KMAP + FX_X_SOCKOPS));
    g->x_task = fx_task;
    g->x_file = fx_file;
    g->x_types = fx_types;
    g->x_syms = syms;
    return fg_reload_isf(g);
}

/* A printk ring buffer: 2^count_bits descriptors, 2^size_bits data bytes. */
struct fg_ring {
    uint64_t descs, infos, data;
    unsigned count_bits, size_bits;
    uint64_t lpos;                  /* next free logical position */
};

FG_FN bool fg_ring_new(struct fg *g, struct fg_ring *r, unsigned count_bits, unsigned size_bits)
{
    r->count_bits = count_bits;
    r->size_bits = size_bits;
    r->lpos = 0;
    r->descs = fg_alloc(g, (size_t)FX_DESC_SIZE << count_bits, 64);
    r->infos = fg_alloc(g, (size_t)FX_INFO_SIZE << count_bits, 64);
    r->data = fg_alloc(g, (size_t)1 << size_bits, 64);
    if (!r->descs || !r->infos || !r->data)
        return false;
    uint64_t rb = fg_kva(FX_X_RB);
    fg_wv64(g, fg_kva(FX_X_PRB), rb);
    fg_wv32(g, rb + FX_RB_DESC_RING, count_bits);
    fg_wv64(g, rb + FX_RB_DESC_RING + 8, r->descs);
    fg_wv64(g, rb + FX_RB_DESC_RING + 16, r->infos);
    fg_wv32(g, rb + FX_RB_TEXT_RING, size_bits);
    fg_wv64(g, rb + FX_RB_TEXT_RING + 8, r->data);
    return true;
}

FG_FN void fg_ring_ids(struct fg *g, uint64_t tail, uint64_t head)
{
    fg_wv64(g, fg_kva(FX_X_RB) + FX_RB_DESC_RING + FX_DR_TAIL, tail);
    fg_wv64(g, fg_kva(FX_X_RB) + FX_RB_DESC_RING + FX_DR_HEAD, head);
}

/* Record `id`: finalized, its text in the data ring after the last one
 * (no wrap: the caller sizes the ring). */
FG_FN void fg_ring_add(struct fg *g, struct fg_ring *r, uint64_t id, uint64_t ts, const char *text)
{
    size_t n = strlen(text), blk = (8 + n + 7) & ~(size_t)7;
    uint64_t begin = r->lpos, next = begin + blk;
    r->lpos = next;
    uint64_t off = begin & ((1ull << r->size_bits) - 1);
    if (off + blk > (1ull << r->size_bits))
        return;
    fg_wv64(g, r->data + off, id);
    memcpy(g->mem + fg_pa(g, r->data + off + 8), text, n);
    uint64_t d = r->descs + (id & ((1ull << r->count_bits) - 1)) * FX_DESC_SIZE;
    uint64_t in = r->infos + (id & ((1ull << r->count_bits) - 1)) * FX_INFO_SIZE;
    fg_wv64(g, d, 2ull << 62 | id);                 /* desc_finalized */
    fg_wv64(g, d + 8, begin);
    fg_wv64(g, d + 16, next);
    fg_wv64(g, in, id);
    fg_wv64(g, in + 8, ts);
    fg_wv32(g, in + 16, (uint32_t)n);
}

/* An XArray node of the pid table (0: out of room). */
FG_FN uint64_t fg_xa_node(struct fg *g)
{
    return fg_alloc(g, FX_XA_NODE_SIZE, 64);
}

/* A struct pid naming task t (PIDTYPE_PID); 0: out of room. */
FG_FN uint64_t fg_pid_of(struct fg *g, uint64_t t)
{
    uint64_t p = fg_alloc(g, 0x60, 64);
    if (p) {
        fg_wv64(g, p + FX_PID_TASKS, t + FX_T_PID_LINKS);
        fg_wv64(g, t + FX_T_PID_LINKS, p);
    }
    return p;
}

/* The task with this pid on the task list, 0 if none. */
FG_FN uint64_t fg_task_of(struct fg *g, uint32_t pid)
{
    uint64_t head = g->init_task + T_TASKS, n = fg_rv64(g, head);
    for (int i = 0; n != head && i < 4096; i++, n = fg_rv64(g, n))
        if ((uint32_t)fg_rv64(g, n - T_TASKS + T_PID) == pid)
            return n - T_TASKS;
    return 0;
}

FG_FN void fg_pidtable_head(struct fg *g, uint64_t entry)
{
    fg_wv64(g, fg_kva(FX_X_PIDNS) + FX_PIDNS_XA_HEAD, entry);
}

/* A socket's file: f_op socket_file_ops, private_data sock_ptr. */
FG_FN uint64_t fg_sock_file(struct fg *g, uint64_t sock_ptr, uint64_t ino)
{
    uint64_t f = fg_file_new(g, "socket", ino, 8);
    if (f) {
        fg_wv64(g, f + FX_F_OP, fg_kva(FX_X_SOCKOPS));
        fg_wv64(g, f + FX_F_PRIVATE, sock_ptr);
    }
    return f;
}

/* A struct socket and its sock: IPv4 TCP, uid 1000, no peer. */
FG_FN uint64_t fg_tcp_sock(struct fg *g, uint32_t saddr, uint16_t sport, uint8_t state)
{
    uint64_t sk = fg_alloc(g, 0x200, 64), so = fg_alloc(g, 0x30, 64);
    if (!sk || !so)
        return 0;
    fg_wv32(g, sk + FX_SK_RCV_SADDR, saddr);
    fg_wv32(g, sk + FX_SK_DADDR, 0);
    fg_wv32(g, sk + FX_SK_DPORT, 0);
    fg_wv32(g, sk + FX_SK_NUM, sport);
    fg_wv32(g, sk + FX_SK_FAMILY, 2);               /* AF_INET */
    g->mem[fg_pa(g, sk + FX_SK_STATE)] = state;
    fg_wv32(g, sk + FX_SK_TYPE, 1);                 /* SOCK_STREAM */
    fg_wv32(g, sk + FX_SK_PROTOCOL, 6);
    fg_wv32(g, sk + FX_SK_UID, 1000);
    fg_wv64(g, so + FX_SOCKET_SK, sk);
    return so;
}

/* fg_populate's guest with the responder's tables filled (fg_fx_profile
 * first): a ring of three records, a pid table of one node naming every
 * task on the list, and the app (pid 7) holding a listening TCP socket as
 * fds 3 and 4. */
FG_FN bool fg_fx_populate(struct fg *g, uint64_t app)
{
    struct fg_ring r;
    if (!fg_ring_new(g, &r, 4, 10))
        return false;
    fg_ring_add(g, &r, 100, 1500000000ull, "hello");
    fg_ring_add(g, &r, 101, 2000001000ull, "two\nlines");
    fg_ring_add(g, &r, 102, 3000000000ull, "three");
    fg_ring_ids(g, 100, 102);
    uint64_t root = fg_xa_node(g);
    if (!root)
        return false;
    const uint32_t pids[] = {1, 2, 3, 5, 7, 9};
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
        uint64_t t = fg_task_of(g, pids[i]), p = t ? fg_pid_of(g, t) : 0;
        if (!p)
            return false;
        fg_wv64(g, root + FX_XA_SLOTS + 8 * pids[i], p);
    }
    fg_pidtable_head(g, root | 2);
    uint64_t arr = fg_files_new(g, app, 16, 16), so = fg_tcp_sock(g, 0x0100007f, 7001, 0x0a);
    uint64_t f = so ? fg_sock_file(g, so, 4242) : 0;
    if (!arr || !f)
        return false;
    fg_wv64(g, arr + 3 * 8, f);
    fg_wv64(g, arr + 4 * 8, f);
    return true;
}

#endif
