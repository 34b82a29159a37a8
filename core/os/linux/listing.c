/*
 * listing.c - processes.json and processes.csv (see linux.h): one row per
 * process for scripts.  Fields, stable names (README documents them):
 *   pid, ppid, name, state, uid, euid, suid, fsuid, gid, egid, sgid, fsgid,
 *   threads, start_ticks (clock ticks since boot, as /proc/<pid>/stat),
 *   kernel_thread, dtb, task, cmdline (arguments joined by spaces), flags
 *   (a list: "hidden_from_task_list", "not_in_pid_table").
 * The JSON's top level also says process_list_truncated (the task list
 * walk stopped early) and pid_table_complete (false: the pid table could
 * not be read whole, so no process is flagged "not_in_pid_table"; null: the
 * profile has none).
 * An id or time the profile cannot give is null (JSON) or empty (CSV).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/os/linux/internal.h"

#define CMDLINE_ROW_MAX 4096u                   /* bytes of arguments per row */

struct row {
    bool have_ids[8], have_start;
    uint32_t id[8];
    uint64_t start_ticks;
    char *cmdline;
};

static void fill_row(struct linux_os *os, const struct vmem_proc *t, struct row *r)
{
    const struct lx_offsets *o = &os->o;
    memset(r, 0, sizeof *r);
    uint64_t cred = 0;
    if (lx_kfieldptr(os, t->task_gva, o->task_real_cred, &cred) == 0 && lx_kptr_ok(os, cred)) {
        long offs[8] = {o->cred_uid, o->cred_euid, o->cred_suid, o->cred_fsuid,
                        o->cred_gid, o->cred_egid, o->cred_sgid, o->cred_fsgid};
        for (int i = 0; i < 8; i++)
            r->have_ids[i] = lx_kfield32(os, cred, offs[i], &r->id[i]) == 0;
    }
    uint64_t start;
    if (o->task_start_boottime != NONE &&
        lx_kread(os, t->task_gva + (uint64_t)o->task_start_boottime, &start, 8) == 0) {
        r->have_start = true;
        r->start_ticks = start / 10000000u;
    }
    size_t n = 0;
    char *c = linux_os_cmdline(os, t, &n);
    if (c) {
        if (n > CMDLINE_ROW_MAX)
            n = CMDLINE_ROW_MAX;
        while (n && c[n - 1] == 0)
            n--;
        for (size_t i = 0; i < n; i++)
            if (c[i] == 0)
                c[i] = ' ';
        c[n] = 0;
    }
    r->cmdline = c;
}

static const char *const id_names[8] = {"uid", "euid", "suid", "fsuid",
                                        "gid", "egid", "sgid", "fsgid"};

char *linux_os_processes_json(struct linux_os *os, size_t *len)
{
    struct vmem_procs *l = linux_os_tasks(os);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        const struct vmem_proc *t = &l->proc[i];
        struct row r;
        char hex[32];
        fill_row(os, t, &r);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "pid", json_object_new_int64(t->pid));
        json_object_object_add(o, "ppid", json_object_new_int64(t->ppid));
        json_object_object_add(o, "name", json_object_new_string(t->comm));
        json_object_object_add(o, "state", json_object_new_string_len(&t->state, 1));
        for (int k = 0; k < 8; k++)
            json_object_object_add(o, id_names[k], r.have_ids[k]
                                   ? json_object_new_int64(r.id[k]) : NULL);
        json_object_object_add(o, "threads", json_object_new_int64(t->nthreads));
        json_object_object_add(o, "start_ticks", r.have_start
                               ? json_object_new_int64((int64_t)r.start_ticks) : NULL);
        json_object_object_add(o, "kernel_thread", json_object_new_boolean(t->kernel_thread));
        snprintf(hex, sizeof hex, "0x%" PRIx64, t->dtb);
        json_object_object_add(o, "dtb", json_object_new_string(hex));
        snprintf(hex, sizeof hex, "0x%" PRIx64, t->task_gva);
        json_object_object_add(o, "task", json_object_new_string(hex));
        json_object_object_add(o, "cmdline", r.cmdline ? json_object_new_string(r.cmdline)
                                                       : NULL);
        json_object *fl = json_object_new_array();
        if (t->flags & LINUX_TASK_HIDDEN_FROM_LIST)
            json_object_array_add(fl, json_object_new_string("hidden_from_task_list"));
        if (t->flags & LINUX_TASK_NOT_IN_PID_TABLE)
            json_object_array_add(fl, json_object_new_string("not_in_pid_table"));
        json_object_object_add(o, "flags", fl);
        json_object_array_add(arr, o);
        free(r.cmdline);
    }
    json_object *top = json_object_new_object();
    json_object_object_add(top, "processes", arr);
    json_object_object_add(top, "process_list_truncated", json_object_new_boolean(l->truncated));
    int pt = lx_snap_of(l)->pidtable;
    json_object_object_add(top, "pid_table_complete", pt < 0 ? NULL
                           : json_object_new_boolean(pt == 1));
    linux_tasks_put(os, l);
    const char *s = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    struct sbuf out = {0};
    if (s) {
        sb_put(&out, s, strlen(s));
        sb_put(&out, "\n", 1);
    }
    json_object_put(top);
    return sb_finish(&out, len);
}

/* RFC 4180: quoted when it has a comma, quote or line break. */
static void csv_field(struct sbuf *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        sb_put(out, s, strlen(s));
        return;
    }
    sb_put(out, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            sb_put(out, "\"", 1);
        sb_put(out, s, 1);
    }
    sb_put(out, "\"", 1);
}

char *linux_os_processes_csv(struct linux_os *os, size_t *len)
{
    struct vmem_procs *l = linux_os_tasks(os);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    struct sbuf out = {0};
    sb_printf(&out, "pid,ppid,name,state,uid,euid,suid,fsuid,gid,egid,sgid,fsgid,threads,"
              "start_ticks,kernel_thread,dtb,task,cmdline,flags\n");
    for (size_t i = 0; i < l->n; i++) {
        const struct vmem_proc *t = &l->proc[i];
        struct row r;
        fill_row(os, t, &r);
        sb_printf(&out, "%u,%u,", t->pid, t->ppid);
        csv_field(&out, t->comm);
        sb_printf(&out, ",%c", t->state);
        for (int k = 0; k < 8; k++)
            r.have_ids[k] ? sb_printf(&out, ",%u", r.id[k]) : sb_put(&out, ",", 1);
        sb_printf(&out, ",%u,", t->nthreads);
        if (r.have_start)
            sb_printf(&out, "%" PRIu64, r.start_ticks);
        sb_printf(&out, ",%d,0x%" PRIx64 ",0x%" PRIx64 ",", t->kernel_thread ? 1 : 0, t->dtb,
                  t->task_gva);
        csv_field(&out, r.cmdline ? r.cmdline : "");
        sb_put(&out, ",", 1);
        const char *f = (t->flags & LINUX_TASK_HIDDEN_FROM_LIST) &&
                                (t->flags & LINUX_TASK_NOT_IN_PID_TABLE)
                            ? "hidden_from_task_list not_in_pid_table"
                        : (t->flags & LINUX_TASK_HIDDEN_FROM_LIST) ? "hidden_from_task_list"
                        : (t->flags & LINUX_TASK_NOT_IN_PID_TABLE) ? "not_in_pid_table"
                                                                   : "";
        sb_put(&out, f, strlen(f));
        sb_put(&out, "\n", 1);
        free(r.cmdline);
    }
    linux_tasks_put(os, l);
    return sb_finish(&out, len);
}
