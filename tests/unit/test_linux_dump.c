/* test_linux_dump.c - core/linux.c against a real guest: a capture made by
 * contrib/guest/capture.py (Debian's 6.1 cloud kernel under QEMU TCG, KASLR
 * on) and the guest's own view of itself in its truth.txt.
 *
 * Runs only when $VMEMFS_LINUX_DUMP names a capture directory (the
 * integration test t_linux_dump.sh makes them); otherwise every test is
 * skipped, saying so.  The dump file is $VMEMFS_LINUX_DUMP_FILE (default
 * guest.elf) in that directory.  The profile comes from $VMEMFS_ISF_DIR or
 * $VMEMFS_SRC/../shared/isf (skipped, saying so, when absent).
 *
 * Checks, with no FUSE in between:
 *   - the OS opens: banner, profile, KASLR; init_task and the kernel dtb
 *     agree with the guest's /proc/kallsyms; the paging mode is the one the
 *     guest ran with (LA57 line);
 *   - every PROC line's pid is found with its comm and ppid (kworker names
 *     compared up to the '-' procfs appends; kthread names procfs shows in
 *     full compared on the 15 characters of task_struct.comm);
 *   - every PATTERN region reads back through the process's address space
 *     (the task's dtb, the OS's paging mode): the 8-byte word at virtual
 *     address A is A ^ 0x564d454d46530000 ^ tag;
 *   - the maps text of each pattern process equals the guest's MAPS block
 *     (a difference is printed line by line);
 *   - status carries Name, PPid, Tgid and the Dtb. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/testenv.h"

#include "core/profile/isf.h"
#include "core/os/linux/linux.h"
#include "core/arch/x86/paging.h"
#include "core/phys/vm.h"
#include "drivers/registry.h"

#define PATTERN_KEY 0x564d454d46530000ull

struct proc { uint32_t pid, ppid, uid; char comm[64]; };
struct pattern { uint32_t pid; uint64_t tag, addr, len; char kind[16]; };
struct maps { uint32_t pid; char *text; };
struct ksym { char name[64]; uint64_t addr; };

struct truth {
    bool la57;
    struct proc proc[4096]; size_t nproc;
    struct pattern pat[64]; size_t npat;
    struct maps maps[64]; size_t nmaps;
    struct ksym ksym[64]; size_t nksym;
};

struct fixture {
    struct truth *truth;
    struct vm *vm;
    struct linux_os *os;
    struct vmem_procs *tasks;
    double open_s, tasks_s;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool parse_truth(const char *path, struct truth *t)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    struct maps *cur = NULL;
    size_t cur_len = 0, cur_cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (cur) {
            /* A MAPS block runs until the next keyword line. */
            if (strncmp(line, "MAPS ", 5) && strncmp(line, "KSYM ", 5) &&
                strncmp(line, "IOMEM ", 6) && strncmp(line, "PROC ", 5) &&
                strncmp(line, "PATTERN ", 8) && strncmp(line, "PHYS ", 5) &&
                strncmp(line, "ANONHUGE ", 9) && strncmp(line, "COUNTER ", 8)) {
                size_t l = strlen(line);
                if (cur_len + l + 1 > cur_cap) {
                    cur_cap = (cur_len + l + 1) * 2;
                    cur->text = realloc(cur->text, cur_cap);
                }
                memcpy(cur->text + cur_len, line, l + 1);
                cur_len += l;
                continue;
            }
            cur = NULL;
        }
        unsigned a, b, c;
        char comm[64];
        if (strncmp(line, "LA57 ", 5) == 0) {
            t->la57 = strncmp(line + 5, "yes", 3) == 0;
        } else if (sscanf(line, "PROC %u %u %u %63s", &a, &b, &c, comm) == 4 &&
                   t->nproc < 4096) {
            struct proc *p = &t->proc[t->nproc++];
            p->pid = a; p->ppid = b; p->uid = c;
            snprintf(p->comm, sizeof p->comm, "%s", comm);
        } else if (strncmp(line, "PATTERN ", 8) == 0 && t->npat < 64) {
            struct pattern *p = &t->pat[t->npat];
            unsigned long long tag, addr, len;
            if (sscanf(line, "PATTERN pid=%u tag=%llu kind=%15s addr=%llx len=%llx",
                       &a, &tag, p->kind, &addr, &len) == 5) {
                p->pid = a; p->tag = tag; p->addr = addr; p->len = len;
                t->npat++;
            }
        } else if (sscanf(line, "MAPS %u", &a) == 1 && t->nmaps < 64) {
            cur = &t->maps[t->nmaps++];
            cur->pid = a;
            cur->text = calloc(1, 1);
            cur_len = 0;
            cur_cap = 1;
        } else if (strncmp(line, "KSYM ", 5) == 0 && t->nksym < 64) {
            unsigned long long addr;
            char type[4], name[64];
            if (sscanf(line, "KSYM %llx %3s %63s", &addr, type, name) == 3) {
                struct ksym *k = &t->ksym[t->nksym++];
                k->addr = addr;
                snprintf(k->name, sizeof k->name, "%s", name);
            }
        }
    }
    fclose(f);
    return t->nproc > 0;
}

static bool ksym(const struct truth *t, const char *name, uint64_t *addr)
{
    for (size_t i = 0; i < t->nksym; i++)
        if (strcmp(t->ksym[i].name, name) == 0) {
            *addr = t->ksym[i].addr;
            return true;
        }
    return false;
}

static int setup(void **state)
{
    const char *dir = getenv("VMEMFS_LINUX_DUMP");
    if (!dir || !*dir) {
        *state = NULL;
        return 0;
    }
    const char *isf_dir = testenv_isf_dir();
    if (!isf_dir) {
        *state = NULL;
        return 0;
    }
    struct fixture *fx = calloc(1, sizeof *fx);
    fx->truth = calloc(1, sizeof *fx->truth);
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/truth.txt", dir);
    if (!parse_truth(path, fx->truth)) {
        print_error("cannot read %s\n", path);
        return -1;
    }
    const char *file = getenv("VMEMFS_LINUX_DUMP_FILE");
    char spec[4300];
    snprintf(spec, sizeof spec, "file:%s/%s", dir, file && *file ? file : "guest.elf");
    struct vm_options vo;
    vm_options_default(&vo);
    fx->vm = vmem_vm_open("g", spec, &vo, err, sizeof err);
    if (!fx->vm) {
        print_error("%s\n", err);
        return -1;
    }
    struct vmem_os_options lo = {.symbols_dir = isf_dir};
    double t0 = now_s();
    fx->os = linux_os_open(fx->vm, &lo, err, sizeof err);
    double t1 = now_s();
    if (!fx->os) {
        print_error("linux_os_open: %s\n", err);
        return -1;
    }
    fx->tasks = linux_os_tasks(fx->os);
    double t2 = now_s();
    fx->open_s = t1 - t0;
    fx->tasks_s = t2 - t1;
    print_message("[   INFO   ] %s: open %.3f s, task list %.4f s (%zu processes)\n",
                  spec, fx->open_s, fx->tasks_s, fx->tasks ? fx->tasks->n : 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (!fx)
        return 0;
    if (fx->tasks)
        linux_tasks_put(fx->os, fx->tasks);
    linux_os_close(fx->os);
    vm_put(fx->vm);
    for (size_t i = 0; i < fx->truth->nmaps; i++)
        free(fx->truth->maps[i].text);
    free(fx->truth);
    free(fx);
    return 0;
}

static struct fixture *need(void **state)
{
    struct fixture *fx = *state;
    if (!fx) {
        print_message("[  SKIPPED ] %s\n",
                      !getenv("VMEMFS_LINUX_DUMP")
                          ? "VMEMFS_LINUX_DUMP is not set (t_linux_dump.sh sets it)"
                          : "no shared ISF directory ($VMEMFS_ISF_DIR or "
                            "$VMEMFS_SRC/../shared/isf)");
        skip();
    }
    return fx;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void test_open(void **state)
{
    struct fixture *fx = need(state);
    struct truth *t = fx->truth;
    assert_int_equal(linux_os_paging_mode(fx->os),
                     t->la57 ? VMEM_PAGING_X86_64_5L : VMEM_PAGING_X86_64_4L);
    json_object *o = json_object_new_object();
    linux_os_describe(fx->os, o);
    print_message("[   INFO   ] %s\n",
                  json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    assert_string_equal(jstr(o, "os"), "linux");
    assert_string_equal(jstr(o, "kernel_release"), "6.1.0-50-cloud-amd64");
    uint64_t it;
    if (ksym(t, "init_task", &it)) {
        char want[32];
        snprintf(want, sizeof want, "0x%" PRIx64, it);
        assert_string_equal(jstr(o, "init_task"), want);
    }
    /* The kernel dtb is init_top_pgt, which the kernel maps at its symbol. */
    uint64_t pgt;
    if (ksym(t, "init_top_pgt", &pgt)) {
        struct vmem_phys_reader rd;
        vm_phys_reader(fx->vm, &rd);
        struct vmem_as *kas = vmem_as_new(linux_os_paging_mode(fx->os),
                                          linux_os_kernel_dtb(fx->os), &rd);
        uint64_t gpa = 0;
        assert_int_equal(vmem_as_translate(kas, pgt, &gpa, NULL), 0);
        assert_int_equal(gpa, linux_os_kernel_dtb(fx->os));
        vmem_as_free(kas);
    }
    json_object_put(o);
}

/* procfs shows kworker/N:M-<workqueue> and kthreads' full names; task
 * comm has neither. */
static bool comm_matches(const char *ours, const char *proc)
{
    if (strcmp(ours, proc) == 0)
        return true;
    if (strncmp(proc, "kworker/", 8) == 0) {
        size_t n = strcspn(proc, "-");
        return strlen(ours) == n && strncmp(ours, proc, n) == 0;
    }
    return strlen(ours) == 15 && strncmp(ours, proc, 15) == 0;
}

static void test_processes(void **state)
{
    struct fixture *fx = need(state);
    struct truth *t = fx->truth;
    assert_non_null(fx->tasks);
    assert_false(fx->tasks->truncated);
    unsigned bad = 0, kworker_gone = 0;
    for (size_t i = 0; i < t->nproc; i++) {
        const struct proc *p = &t->proc[i];
        const struct vmem_proc *k = vmem_procs_find(fx->tasks, p->pid);
        if (!k) {
            if (strncmp(p->comm, "kworker/", 8) == 0) {
                kworker_gone++;      /* kworkers may come and go */
                continue;
            }
            print_error("pid %u (%s) not found\n", p->pid, p->comm);
            bad++;
            continue;
        }
        if (!comm_matches(k->comm, p->comm) || k->ppid != p->ppid || k->uid != p->uid) {
            print_error("pid %u: ours comm '%s' ppid %u uid %u, guest '%s' %u %u\n",
                        p->pid, k->comm, k->ppid, k->uid, p->comm, p->ppid, p->uid);
            bad++;
        }
        bool kthread = p->ppid == 2 || p->pid == 2;
        if (kthread != k->kernel_thread || (!k->kernel_thread && !k->dtb)) {
            print_error("pid %u: kernel_thread %d dtb 0x%" PRIx64 "\n", p->pid,
                        k->kernel_thread, k->dtb);
            bad++;
        }
    }
    /* Ours beyond the guest's list: only kworkers started since. */
    for (size_t i = 0; i < fx->tasks->n; i++) {
        const struct vmem_proc *k = &fx->tasks->proc[i];
        bool found = false;
        for (size_t j = 0; j < t->nproc && !found; j++)
            found = t->proc[j].pid == k->pid;
        if (!found && strncmp(k->comm, "kworker/", 8) != 0) {
            print_error("pid %u (%s) is not in the guest's list\n", k->pid, k->comm);
            bad++;
        }
    }
    print_message("[   INFO   ] %zu guest processes, %zu found, %u kworkers gone, "
                  "%u mismatches\n", t->nproc, fx->tasks->n, kworker_gone, bad);
    assert_int_equal(bad, 0);
}

/* Read len bytes at gva of a space, page by page; false at a hole. */
static bool vread(struct vm *vm, struct vmem_as *as, uint64_t gva, void *buf, size_t len)
{
    uint8_t *d = buf;
    while (len) {
        uint64_t gpa;
        if (vmem_as_translate(as, gva, &gpa, NULL) < 0)
            return false;
        size_t n = 4096 - (size_t)(gva & 4095);
        if (n > len)
            n = len;
        if (vm_read_phys(vm, gpa, d, n, VM_READ_STRICT) != (ssize_t)n)
            return false;
        d += n;
        gva += n;
        len -= n;
    }
    return true;
}

static unsigned check_words(struct vm *vm, struct vmem_as *as, const struct pattern *p,
                            uint64_t at, size_t len)
{
    uint64_t buf[512];
    at &= ~7ull;
    if (!vread(vm, as, at, buf, len)) {
        print_error("pid %u %s: 0x%" PRIx64 " does not translate\n", p->pid, p->kind, at);
        return 1;
    }
    for (size_t i = 0; i < len / 8; i++) {
        uint64_t a = at + 8 * i;
        if (buf[i] != (a ^ PATTERN_KEY ^ p->tag)) {
            print_error("pid %u %s: word at 0x%" PRIx64 " is 0x%" PRIx64 "\n", p->pid,
                        p->kind, a, buf[i]);
            return 1;
        }
    }
    return 0;
}

static void test_patterns(void **state)
{
    struct fixture *fx = need(state);
    struct truth *t = fx->truth;
    assert_true(t->npat > 0);
    struct vmem_phys_reader rd;
    vm_phys_reader(fx->vm, &rd);
    unsigned bad = 0;
    for (size_t i = 0; i < t->npat; i++) {
        const struct pattern *p = &t->pat[i];
        const struct vmem_proc *k = vmem_procs_find(fx->tasks, p->pid);
        assert_non_null(k);
        assert_false(k->kernel_thread);
        struct vmem_as *as = vmem_as_new(linux_os_paging_mode(fx->os), k->dtb, &rd);
        assert_non_null(as);
        uint64_t first = (p->addr + 7) & ~7ull;
        size_t n = p->len >= 4096 ? 4096 : (size_t)p->len & ~7ul;
        bad += check_words(fx->vm, as, p, first, n);
        uint64_t last = (p->addr + p->len - 4096) & ~7ull;
        bad += check_words(fx->vm, as, p, last, 4096);
        vmem_as_free(as);
    }
    print_message("[   INFO   ] %zu pattern regions, %u failures\n", t->npat, bad);
    assert_int_equal(bad, 0);
}

static void print_diff(const char *want, const char *got)
{
    const char *w = want, *g = got;
    unsigned line = 1;
    while (*w || *g) {
        size_t wl = strcspn(w, "\n"), gl = strcspn(g, "\n");
        if (wl != gl || memcmp(w, g, wl) != 0) {
            print_error("  line %u\n    guest: %.*s\n    ours:  %.*s\n", line, (int)wl, w,
                        (int)gl, g);
        }
        w += wl + (w[wl] == '\n');
        g += gl + (g[gl] == '\n');
        line++;
    }
}

static void test_maps(void **state)
{
    struct fixture *fx = need(state);
    struct truth *t = fx->truth;
    assert_true(t->nmaps > 0);
    unsigned bad = 0;
    for (size_t i = 0; i < t->nmaps; i++) {
        const struct vmem_proc *k = vmem_procs_find(fx->tasks, t->maps[i].pid);
        assert_non_null(k);
        size_t len;
        char *m = linux_os_maps(fx->os, k, &len);
        assert_non_null(m);
        assert_int_equal(strlen(m), len);
        if (strcmp(m, t->maps[i].text) != 0) {
            print_error("maps of pid %u differ:\n", k->pid);
            print_diff(t->maps[i].text, m);
            bad++;
        }
        free(m);
    }
    print_message("[   INFO   ] %zu maps compared, %u differ\n", t->nmaps, bad);
    assert_int_equal(bad, 0);
}

static void test_status(void **state)
{
    struct fixture *fx = need(state);
    struct truth *t = fx->truth;
    for (size_t i = 0; i < t->nmaps; i++) {
        const struct vmem_proc *k = vmem_procs_find(fx->tasks, t->maps[i].pid);
        assert_non_null(k);
        size_t len;
        char *s = linux_os_status(fx->os, k, &len);
        assert_non_null(s);
        char want[128];
        snprintf(want, sizeof want, "Name:\t%s\n", k->comm);
        assert_non_null(strstr(s, want));
        snprintf(want, sizeof want, "\nTgid:\t%u\n", k->pid);
        assert_non_null(strstr(s, want));
        snprintf(want, sizeof want, "\nPPid:\t%u\n", k->ppid);
        assert_non_null(strstr(s, want));
        snprintf(want, sizeof want, "\nDtb:\t0x%" PRIx64 "\n", k->dtb);
        assert_non_null(strstr(s, want));
        assert_non_null(strstr(s, "\nState:\t"));
        assert_non_null(strstr(s, "\nThreads:\t1\n"));
        free(s);
    }
    /* A kernel thread has no maps. */
    const struct vmem_proc *kt = vmem_procs_find(fx->tasks, 2);
    assert_non_null(kt);
    assert_true(kt->kernel_thread);
    size_t len = 1;
    char *m = linux_os_maps(fx->os, kt, &len);
    assert_non_null(m);
    assert_int_equal(len, 0);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_processes),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
