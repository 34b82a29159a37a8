/*
 * net.c - kernel/net/{tcp,tcp6,udp,udp6,unix} (see linux.h): the sockets
 * reachable from the processes' descriptor tables (a file whose f_op is
 * socket_file_ops: private_data is the struct socket, ->sk its sock), each
 * once, in the formats of the guest's /proc/net files.  Why the
 * descriptors and not tcp_hashinfo/udp_table: the hash tables' layouts
 * changed across 5.x-6.x (lhash2, bhash2, per-netns tables) while the
 * socket, sock_common and unix_sock members read here did not.  So sockets
 * no process holds (TIME_WAIT, kernel sockets) are not listed, and the
 * columns that need protocol state (tx/rx queues, timers, retransmits) are
 * 0; sl numbers the rows.  Columns after inode are left out.  A socket
 * whose structures cannot be read (a wild pointer), a descriptor table or
 * task list walk that stopped early, each makes the file end with a
 * "# incomplete: ..." line: a socket may be missing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/os/linux/internal.h"

#define AF_UNIX_G  1
#define AF_INET_G  2
#define AF_INET6_G 10

struct net_ctx {
    struct linux_os *os;
    int family, proto;                          /* proto: 6 tcp, 17 udp, 0 unix */
    struct addrset seen;
    struct sbuf *out;
    unsigned row, unreadable;
    uint64_t sockops;
};

static void sock_line(void *vctx, unsigned fd, uint64_t file, bool cloexec)
{
    (void)fd;
    (void)cloexec;
    struct net_ctx *c = vctx;
    struct linux_os *os = c->os;
    const struct lx_offsets *o = &os->o;
    uint64_t fop = 0, sock = 0, sk = 0, inode = 0, ino = 0;
    if (lx_kfieldptr(os, file, o->file_op, &fop) < 0 || fop != c->sockops)
        return;                                 /* not a socket (or unreadable: fds says) */
    if (lx_kfieldptr(os, file, o->file_private, &sock) < 0 || !lx_kptr_ok(os, sock) ||
        lx_kfieldptr(os, sock, o->socket_sk, &sk) < 0 || !lx_kptr_ok(os, sk)) {
        c->unreadable++;
        return;
    }
    if (addrset_add(&c->seen, sk) != 1)
        return;                                 /* shared by descriptors: once */
    uint8_t b[40];
    uint16_t family = 0, type = 0, proto = 0;
    uint8_t state = 0;
    if (lx_kread(os, sk + (uint64_t)o->sk_family, b, 2) < 0) {
        c->unreadable++;
        return;
    }
    family = (uint16_t)(b[0] | b[1] << 8);
    if (family != c->family)
        return;
    if (lx_kread(os, sk + (uint64_t)o->sk_type, b, 2) == 0)
        type = (uint16_t)(b[0] | b[1] << 8);
    if (lx_kread(os, sk + (uint64_t)o->sk_protocol, b, 2) == 0)
        proto = (uint16_t)(b[0] | b[1] << 8);
    lx_kread(os, sk + (uint64_t)o->sk_state, &state, 1);
    if (lx_kfieldptr(os, file, o->file_inode, &inode) == 0 && lx_kptr_ok(os, inode))
        lx_kfieldptr(os, inode, o->inode_ino, &ino);
    uint32_t uid = 0;
    lx_kfield32(os, sk, o->sk_uid, &uid);
    if (c->family == AF_UNIX_G) {
        uint32_t ref = 0, flags = state == 10 ? 0x10000u : 0;  /* TCP_LISTEN: ACCEPTCON */
        lx_kfield32(os, sk, o->skc_refcnt_off, &ref);
        unsigned ss = state == 1 ? 3 : 1;       /* SS_CONNECTED : SS_UNCONNECTED */
        sb_printf(c->out, "%016" PRIx64 ": %08X %08X %08X %04X %02X %5" PRIu64, sk, ref, 0u,
                  flags, type, ss, ino);
        uint64_t addr = 0;
        int32_t alen = 0;
        if (lx_kfieldptr(os, sk, o->unix_addr, &addr) == 0 && addr && lx_kptr_ok(os, addr) &&
            lx_kfield32(os, addr, o->uaddr_len, (uint32_t *)&alen) == 0 && alen > 2 &&
            alen <= 110) {
            char name[110];
            if (lx_kread(os, addr + (uint64_t)o->uaddr_name + 2, name, (size_t)alen - 2) == 0) {
                size_t n = (size_t)alen - 2;
                sb_put(c->out, " ", 1);
                if (name[0] == 0) {
                    name[0] = '@';              /* abstract */
                    for (size_t i = 1; i < n; i++)
                        if (!name[i])
                            name[i] = '@';
                } else
                    n = strnlen(name, n);
                sb_put(c->out, name, n);
            }
        }
        sb_put(c->out, "\n", 1);
        return;
    }
    if ((c->proto == 6 && (type != 1 || proto != 6)) ||          /* SOCK_STREAM */
        (c->proto == 17 && (type != 2 || (proto != 17 && proto != 0))))
        return;
    uint16_t sport = 0, dport = 0;
    if (lx_kread(os, sk + (uint64_t)o->sk_num, b, 2) == 0)
        sport = (uint16_t)(b[0] | b[1] << 8);
    if (lx_kread(os, sk + (uint64_t)o->sk_dport, b, 2) == 0)
        dport = (uint16_t)(b[0] << 8 | b[1]);   /* network order */
    sb_printf(c->out, c->proto == 6 ? "%4u: " : "%5u: ", c->row++);
    if (c->family == AF_INET_G) {
        uint32_t src = 0, dst = 0;
        lx_kfield32(os, sk, o->sk_rcv_saddr, &src);
        lx_kfield32(os, sk, o->sk_daddr, &dst);
        sb_printf(c->out, "%08X:%04X %08X:%04X", src, sport, dst, dport);
    } else {
        uint32_t s6[4] = {0}, d6[4] = {0};
        if (o->sk_v6_rcv_saddr != NONE)
            lx_kread(os, sk + (uint64_t)o->sk_v6_rcv_saddr, s6, 16);
        if (o->sk_v6_daddr != NONE)
            lx_kread(os, sk + (uint64_t)o->sk_v6_daddr, d6, 16);
        sb_printf(c->out, "%08X%08X%08X%08X:%04X %08X%08X%08X%08X:%04X", s6[0], s6[1], s6[2],
                  s6[3], sport, d6[0], d6[1], d6[2], d6[3], dport);
    }
    sb_printf(c->out, " %02X %08X:%08X %02X:%08X %08X %5u %8d %" PRIu64 "\n", state, 0u, 0u,
              0u, 0u, 0u, uid, 0, ino);
}

char *linux_os_net(struct linux_os *os, const char *which, size_t *len)
{
    const struct lx_offsets *o = &os->o;
    struct net_ctx c = {.os = os};
    if (!strcmp(which, "tcp"))
        c.family = AF_INET_G, c.proto = 6;
    else if (!strcmp(which, "tcp6"))
        c.family = AF_INET6_G, c.proto = 6;
    else if (!strcmp(which, "udp"))
        c.family = AF_INET_G, c.proto = 17;
    else if (!strcmp(which, "udp6"))
        c.family = AF_INET6_G, c.proto = 17;
    else if (!strcmp(which, "unix"))
        c.family = AF_UNIX_G;
    else {
        errno = ENOENT;
        return NULL;
    }
    c.sockops = lx_sym(os, "socket_file_ops");
    long need[] = {o->file_op, o->file_private, o->socket_sk, o->sk_family, o->sk_state,
                   o->sk_type, o->sk_num, o->sk_dport, o->sk_rcv_saddr, o->sk_daddr};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i] == NONE || !c.sockops) {
            errno = ENOENT;
            return NULL;
        }
    struct sbuf out = {0};
    c.out = &out;
    if (c.family == AF_UNIX_G)
        sb_printf(&out, "Num       RefCount Protocol Flags    Type St Inode Path\n");
    else if (c.family == AF_INET_G && c.proto == 6)
        sb_printf(&out, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
                  "retrnsmt   uid  timeout inode\n");
    else if (c.family == AF_INET6_G && c.proto == 6)
        sb_printf(&out, "  sl  local_address                         remote_address          "
                  "              st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
                  "inode\n");
    else if (c.family == AF_INET_G)
        sb_printf(&out, "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
                  "retrnsmt   uid  timeout inode ref pointer drops\n");
    else
        sb_printf(&out, "  sl  local_address                         remote_address          "
                  "              st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
                  "inode ref pointer drops\n");
    struct vmem_procs *l = linux_os_tasks(os);
    bool cut_any = false;
    for (size_t i = 0; l && i < l->n; i++) {
        bool cut = false;
        if (!l->proc[i].kernel_thread &&
            lx_fd_walk(os, l->proc[i].task_gva, sock_line, &c, &cut) == -EIO)
            cut = true;                         /* its table cannot be read */
        cut_any |= cut;
    }
    if (!l || l->truncated || cut_any || c.unreadable)
        sb_printf(&out, "# incomplete: %s%s%u sockets could not be read\n",
                  !l ? "no process list; " : l->truncated ? "the task list was cut short; " : "",
                  cut_any ? "a descriptor table was cut short; " : "", c.unreadable);
    if (l)
        linux_tasks_put(os, l);
    addrset_free(&c.seen);
    return sb_finish(&out, len);
}
