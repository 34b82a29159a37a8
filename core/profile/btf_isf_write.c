/*
 * btf_isf_write.c - the ISF document made from BTF and a symbol list (see
 * btf_isf_internal.h): the types of symbols (BTF's VARs, and the
 * well-known globals BTF does not describe), base types, metadata with the
 * banner, the sections in order; btf_isf_write and btf_isf_generate.
 */
#include "core/profile/btf_isf_internal.h"

#ifdef BTF_ISF_BUILD

/* ---- symbol types ---------------------------------------------------- */

/* Types of well-known globals BTF does not describe (it has types only for
 * per-CPU variables): what Volatility's Linux plugins and vmemfs's walkers
 * look up.  "[struct |union |enum ]NAME[ *...][[N]]"; "[?]": as many
 * elements as fit before the next symbol (a size BTF does not give). */
static const struct {
    const char *sym, *type;
} known_types[] = {
    {"init_task", "struct task_struct"},
    {"init_mm", "struct mm_struct"},
    {"init_top_pgt", "pgd_t[]"},
    {"init_level4_pgt", "pgd_t[]"},
    {"swapper_pg_dir", "pgd_t[]"},
    {"linux_banner", "char[]"},
    {"linux_proc_banner", "char[]"},
    {"_text", "char[]"},
    {"_stext", "char[]"},
    {"_etext", "char[]"},
    {"_sdata", "char[]"},
    {"_edata", "char[]"},
    {"_end", "char[]"},
    {"__bss_start", "char[]"},
    {"__per_cpu_start", "char[]"},
    {"__per_cpu_end", "char[]"},
    {"init_uts_ns", "struct uts_namespace"},
    {"init_pid_ns", "struct pid_namespace"},
    {"init_user_ns", "struct user_namespace"},
    {"init_nsproxy", "struct nsproxy"},
    {"init_net", "struct net"},
    {"init_files", "struct files_struct"},
    {"init_fs", "struct fs_struct"},
    {"init_cred", "struct cred"},
    {"modules", "struct list_head"},
    {"mod_tree", "struct mod_tree_root"},
    {"net_namespace_list", "struct list_head"},
    {"super_blocks", "struct list_head"},
    {"tty_drivers", "struct list_head"},
    {"vmap_area_list", "struct list_head"},
    {"mount_hashtable", "struct hlist_head *"},
    {"iomem_resource", "struct resource"},
    {"ioport_resource", "struct resource"},
    {"prb", "struct printk_ringbuffer *"},
    {"log_buf", "char *"},
    {"log_buf_len", "u32"},
    {"jiffies", "long unsigned int"},
    {"jiffies_64", "u64"},
    {"phys_base", "long unsigned int"},
    {"page_offset_base", "long unsigned int"},
    {"vmalloc_base", "long unsigned int"},
    {"vmemmap_base", "long unsigned int"},
    {"max_pfn", "long unsigned int"},
    {"nr_cpu_ids", "unsigned int"},
    {"__per_cpu_offset", "long unsigned int[?]"},   /* NR_CPUS entries */
    {"mem_section", "struct mem_section **"},
    {"idt_table", "gate_desc[256]"},
    {"sys_call_table", "sys_call_ptr_t[]"},
    {"ia32_sys_call_table", "sys_call_ptr_t[]"},
    {"tcp_hashinfo", "struct inet_hashinfo"},
    {"keyring_name_hash", "struct list_head[32]"},
    {"system_state", "enum system_states"},
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Bytes from addr to the next higher symbol address; 0 when unknown. */
static uint64_t gap_after(struct gen *g, const struct btf_isf_symbols *syms,
                          uint64_t addr)
{
    if (!syms || !syms->n)
        return 0;
    if (!g->sorted) {
        g->sorted = malloc(syms->n * sizeof *g->sorted);
        if (!g->sorted)
            return 0;
        for (size_t i = 0; i < syms->n; i++)
            g->sorted[i] = syms->v[i].addr;
        qsort(g->sorted, syms->n, sizeof *g->sorted, cmp_u64);
    }
    size_t lo = 0, hi = syms->n;         /* first address > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->sorted[mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < syms->n ? g->sorted[lo] - addr : 0;
}

/* Write the descriptor a known_types spec means for a symbol at addr;
 * false when BTF lacks the named type (nothing written then). */
static bool wspec(struct gen *g, const char *spec,
                  const struct btf_isf_symbols *syms, uint64_t addr)
{
    char name[96];
    int kind = 0;
    const char *p = spec;
    if (strncmp(p, "struct ", 7) == 0) {
        kind = BTF_KIND_STRUCT;
        p += 7;
    } else if (strncmp(p, "union ", 6) == 0) {
        kind = BTF_KIND_UNION;
        p += 6;
    } else if (strncmp(p, "enum ", 5) == 0) {
        kind = BTF_KIND_ENUM;
        p += 5;
    }
    size_t n = strcspn(p, "*[");
    while (n && p[n - 1] == ' ')
        n--;
    if (n >= sizeof name)
        return false;
    memcpy(name, p, n);
    name[n] = '\0';
    p += n;
    int ptrs = 0;
    for (; *p == ' ' || *p == '*'; p++)
        ptrs += *p == '*';
    bool array = *p == '[';
    bool infer = array && p[1] == '?';
    unsigned long count = array && !infer ? strtoul(p + 1, NULL, 10) : 0;

    int32_t id;
    if (kind)
        id = btf__find_by_name_kind(g->btf, name, kind);
    else {
        id = btf__find_by_name_kind(g->btf, name, BTF_KIND_TYPEDEF);
        if (id <= 0)
            id = btf__find_by_name_kind(g->btf, name, BTF_KIND_INT);
        if (id <= 0)
            id = btf__find_by_name_kind(g->btf, name, BTF_KIND_FLOAT);
    }
    if (id <= 0)
        return false;
    if (infer) {
        int64_t el = ptrs ? (int64_t)btf__pointer_size(g->btf)
                          : btf__resolve_size(g->btf, (uint32_t)id);
        uint64_t gap = gap_after(g, syms, addr);
        if (el > 0 && gap % (uint64_t)el == 0 && gap / (uint64_t)el <= 65536)
            count = (unsigned long)(gap / (uint64_t)el);
    }
    if (array)
        fprintf(g->o, "{\"count\": %lu, \"kind\": \"array\", \"subtype\": ", count);
    for (int i = 0; i < ptrs; i++)
        fputs("{\"kind\": \"pointer\", \"subtype\": ", g->o);
    bti_wdesc(g, (uint32_t)id, 0);
    for (int i = 0; i < ptrs + array; i++)
        putc('}', g->o);
    return true;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void wbase64(FILE *o, const unsigned char *s, size_t n)
{
    putc('"', o);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        putc(b64chars[v >> 18 & 63], o);
        putc(b64chars[v >> 12 & 63], o);
        putc(i + 1 < n ? b64chars[v >> 6 & 63] : '=', o);
        putc(i + 2 < n ? b64chars[v & 63] : '=', o);
    }
    putc('"', o);
}

static void wbase_type(struct gen *g, const char *name, unsigned size,
                       const char *kind, bool is_signed, const char *endian,
                       bool *first)
{
    if (bti_strset_add(&g->bt, name) != 1)
        return;
    fputs(*first ? "\n  " : ",\n  ", g->o);
    *first = false;
    bti_jstr(g->o, name);
    fprintf(g->o, ": {\"endian\": \"%s\", \"kind\": \"%s\", \"signed\": %s, "
            "\"size\": %u}", endian, kind, is_signed ? "true" : "false", size);
    g->st.base_types++;
}

static int write_isf(struct gen *g, const struct btf_isf_symbols *syms,
                     const struct btf_isf_options *opt)
{
    FILE *o = g->o;
    const char *endian =
        btf__endianness(g->btf) == BTF_BIG_ENDIAN ? "big" : "little";
    size_t psize = btf__pointer_size(g->btf);
    if (!psize)
        psize = 8;

    /* metadata */
    fputs("{\n \"metadata\": {\"format\": \"6.2.0\", \"linux\": {", o);
    if (opt && opt->symbols_source) {
        fputs("\"symbols\": [{\"kind\": \"system-map\", \"name\": ", o);
        bti_jstr(o, opt->symbols_source);
        fputs("}]", o);
    }
    if (opt && opt->types_source) {
        fputs(opt->symbols_source ? ", " : "", o);
        fputs("\"types\": [{\"name\": ", o);
        bti_jstr(o, opt->types_source);
        fputs("}]", o);
    }
    fputs("}, \"producer\": {\"name\": \"vmemfs-profile\", \"version\": \""
          VMEMFS_VERSION "\"}},\n", o);

    /* base_types */
    fputs(" \"base_types\": {", o);
    bool first = true;
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!*nm)
            continue;
        if (btf_is_int(t)) {
            unsigned enc = btf_int_encoding(t);
            const char *kind = (enc & BTF_INT_BOOL) ? "bool"
                               : ((enc & BTF_INT_CHAR) || (t->size == 1 && strstr(nm, "char")))
                                   ? "char" : "int";
            /* dwarf2json marks char signed as the x86 ABI has it, and
             * floats signed: follow it so the two kinds of profile agree. */
            bool sg = (enc & BTF_INT_SIGNED) || strcmp(nm, "char") == 0;
            wbase_type(g, nm, t->size, kind, sg, endian, &first);
        } else if (btf_is_float(t)) {
            wbase_type(g, nm, t->size, "float", true, endian, &first);
        }
    }
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        wbase_type(g, bti_int_name_for(sizes[i], true), sizes[i],
                   sizes[i] == 1 ? "char" : "int", true, endian, &first);
        wbase_type(g, bti_int_name_for(sizes[i], false), sizes[i],
                   sizes[i] == 1 ? "char" : "int", false, endian, &first);
    }
    wbase_type(g, "pointer", (unsigned)psize, "int", false, endian, &first);
    wbase_type(g, "void", 0, "void", false, endian, &first);
    fputs("\n },\n", o);

    /* user_types, in plan order */
    fputs(" \"user_types\": {", o);
    first = true;
    struct strset written = {0};
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t id = 1; id < g->n; id++) {
            const struct btf_type *t = T(g, id);
            if (!g->ref[id] || (g->ref_kind[id] & 0x80))
                continue;
            uint8_t rk = g->ref_kind[id];
            if (rk == BTF_KIND_ENUM)
                continue;
            bool named = *NAME(g, t) != '\0';
            bool is_td = btf_is_typedef(t);
            if ((pass == 0 && (is_td || !named)) || (pass == 1 && (is_td || named)) ||
                (pass == 2 && !is_td))
                continue;
            if (bti_strset_add(&written, g->ref[id]) != 1)
                continue;
            uint32_t src = is_td ? bti_skip_typedefs(g, t->type) : id;
            bti_wcomposite(g, src, g->ref[id], &first);
            if (pass == 0)
                g->st.user_types++;
            else if (pass == 1)
                g->st.anonymous_types++;
            else
                g->st.typedef_copies++;
        }
    }
    /* Structs and unions only ever declared: empty, so references resolve. */
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        const char *nm = NAME(g, t);
        if (!btf_is_fwd(t) || !*nm || bti_strset_has(&g->ut, nm))
            continue;
        if (bti_strset_add(&g->ut, nm) < 0 || bti_strset_add(&written, nm) < 0) {
            bti_strset_free(&written);
            return -1;
        }
        fputs(first ? "\n  " : ",\n  ", o);
        first = false;
        bti_jstr(o, nm);
        fprintf(o, ": {\"fields\": {}, \"kind\": \"%s\", \"size\": 0}",
                btf_kflag(t) ? "union" : "struct");
        g->st.forward_only++;
    }
    bti_strset_free(&written);
    fputs("\n },\n", o);

    /* enums */
    fputs(" \"enums\": {", o);
    first = true;
    for (uint32_t id = 1; id < g->n; id++) {
        const struct btf_type *t = T(g, id);
        if (!g->ref[id] || g->ref_kind[id] != BTF_KIND_ENUM)
            continue;
        uint32_t src = btf_is_typedef(t) ? bti_skip_typedefs(g, t->type) : id;
        bti_wenum(g, src, g->ref[id], &first);
        g->st.enums++;
    }
    fputs("\n },\n", o);

    /* symbols */
    fputs(" \"symbols\": {", o);
    first = true;
    /* KASLR moves the kernel image as one piece: every symbol from _text
     * on within the 1 GiB the image may span (sections past _end, such as
     * .init.scratch, included); per-CPU offsets and absolute symbols lie
     * elsewhere and stay. */
    const struct bsym *tx = bti_sym_find(syms, "_text");
    int64_t shift = 0;
    uint64_t lo = 0, hi = 0;
    if (opt && opt->link_text && tx) {
        shift = (int64_t)(tx->addr - opt->link_text);
        lo = tx->addr;
        hi = lo + ((uint64_t)1 << 30) - 1 < lo ? UINT64_MAX
                                                : lo + ((uint64_t)1 << 30) - 1;
    }
    g->st.kaslr_shift = shift;
    for (size_t i = 0; syms && i < syms->n; i++) {
        const struct bsym *s = &syms->v[i];
        uint64_t addr = s->addr;
        if (shift && addr >= lo && addr <= hi)
            addr -= (uint64_t)shift;
        fputs(first ? "\n  " : ",\n  ", o);
        first = false;
        bti_jstr(o, s->name);
        fprintf(o, ": {\"address\": %llu", (unsigned long long)addr);
        if (strcmp(s->name, "linux_banner") == 0 && opt && opt->banner) {
            size_t bl = strlen(opt->banner);
            while (bl && opt->banner[bl - 1] == '\n')
                bl--;
            unsigned char *b = malloc(bl + 2);
            if (!b)
                return -1;
            memcpy(b, opt->banner, bl);
            b[bl] = '\n';       /* the kernel's string: "...\n" and its NUL */
            b[bl + 1] = '\0';
            fputs(", \"constant_data\": ", o);
            wbase64(o, b, bl + 2);
            free(b);
            g->st.banner_symbol = true;
        }
        fputs(", \"type\": ", o);
        bool typed = false;
        if (g->var_type[i] > 0) {
            bti_wdesc(g, (uint32_t)g->var_type[i], 0);
            typed = true;
        } else {
            for (size_t k = 0; k < sizeof known_types / sizeof known_types[0]; k++)
                if (strcmp(known_types[k].sym, s->name) == 0) {
                    typed = wspec(g, known_types[k].type, syms, s->addr);
                    break;
                }
        }
        if (!typed)
            fputs("{\"kind\": \"base\", \"name\": \"void\"}", o);
        else
            g->st.typed_symbols++;
        putc('}', o);
        g->st.symbols++;
    }
    fputs("\n }\n}\n", o);
    return 0;
}

int btf_isf_write(FILE *out, const struct btf *btf,
                  const struct btf_isf_symbols *syms,
                  const struct btf_isf_options *opt,
                  struct btf_isf_stats *stats, char *err, size_t errlen)
{
    struct gen g = {.btf = btf, .o = out};
    int rc = -1;
    if (!out || !btf) {
        bti_say(err, errlen, "btf_isf_write: no output or no BTF");
        return -1;
    }
    g.n = btf__type_cnt(btf);
    g.ref = calloc(g.n ? g.n : 1, sizeof *g.ref);
    g.ref_kind = calloc(g.n ? g.n : 1, 1);
    g.var_type = calloc(syms && syms->n ? syms->n : 1, sizeof *g.var_type);
    if (!g.ref || !g.ref_kind || !g.var_type || bti_plan_names(&g) != 0) {
        bti_say(err, errlen, "generating the ISF: out of memory");
        goto out;
    }
    for (uint32_t id = 1; id < g.n; id++) {
        const struct btf_type *t = T(&g, id);
        if (btf_is_any_enum(t) && btf_kflag(t)) {
            g.enum_signedness = true;
            break;
        }
    }
    /* Per-CPU (and any other) variables BTF has types for. */
    for (uint32_t id = 1; syms && id < g.n; id++) {
        const struct btf_type *t = T(&g, id);
        if (!btf_is_var(t))
            continue;
        const struct bsym *s = bti_sym_find(syms, NAME(&g, t));
        if (s)
            g.var_type[s - syms->v] = (int32_t)t->type;
    }
    if (write_isf(&g, syms, opt) != 0) {
        bti_say(err, errlen, "generating the ISF: out of memory");
        goto out;
    }
    if (fflush(out) != 0 || ferror(out)) {
        bti_say(err, errlen, "writing the ISF: %s", strerror(errno ? errno : EIO));
        goto out;
    }
    rc = 0;
    if (stats)
        *stats = g.st;
out:
    for (uint32_t i = 0; g.ref && i < g.n; i++)
        free(g.ref[i]);
    free(g.ref);
    free(g.ref_kind);
    free(g.var_type);
    free(g.sorted);
    bti_strset_free(&g.ut);
    bti_strset_free(&g.en);
    bti_strset_free(&g.bt);
    return rc;
}

char *btf_isf_generate(const struct btf *btf,
                       const struct btf_isf_symbols *syms,
                       const struct btf_isf_options *opt, size_t *len,
                       struct btf_isf_stats *stats, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) {
        bti_say(err, errlen, "generating the ISF: %s", strerror(errno));
        return NULL;
    }
    int r = btf_isf_write(f, btf, syms, opt, stats, err, errlen);
    if (fclose(f) != 0 && r == 0) {
        bti_say(err, errlen, "generating the ISF: out of memory");
        r = -1;
    }
    if (r != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

#endif /* BTF_ISF_BUILD */
