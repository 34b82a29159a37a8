/*
 * isf_catalog.c - banners compared, and a symbols directory as a catalog of
 * them (see isf_internal.h): every .json, .json.xz and .json.gz below it
 * (bounded in depth and count), each file's banner streamed by
 * isf_banner.c; the profile for a banner found and loaded.
 */
#include "core/profile/isf_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* Banners                                                             */

static size_t trimmed_len(const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                 s[n - 1] == '\t'))
        n--;
    return n;
}

int isf_banner_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t na = trimmed_len(a), nb = trimmed_len(b);
    return na == nb && memcmp(a, b, na) == 0;
}

static bool isf_name(const char *n)
{
    static const char *const ext[] = {".json", ".json.xz", ".json.gz"};
    size_t ln = strlen(n);
    for (size_t i = 0; i < 3; i++) {
        size_t le = strlen(ext[i]);
        if (ln > le && strcmp(n + ln - le, ext[i]) == 0)
            return true;
    }
    return false;
}

static void catalog_add(struct isf_catalog *c, char *path, char *banner)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        struct isf_catalog_entry *ne = realloc(c->entry, nc * sizeof *ne);
        if (!ne) {
            free(path);
            free(banner);
            return;
        }
        c->entry = ne;
        c->cap = nc;
    }
    c->entry[c->n++] = (struct isf_catalog_entry){path, banner};
}

static void catalog_dir(struct isf_catalog *c, const char *dir, int depth)
{
    struct dirent **ents;
    if (depth > 16 || c->n >= ISF_CATALOG_MAX)
        return;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        char *path = NULL;
        struct stat lst, st;
        if (nm[0] != '.' && c->n < ISF_CATALOG_MAX &&
            asprintf(&path, "%s/%s", dir, nm) >= 0 && lstat(path, &lst) == 0) {
            if (S_ISDIR(lst.st_mode)) {
                catalog_dir(c, path, depth + 1);
            } else if (isf_name(nm) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                char e[512];
                char *b = isf_read_banner(path, e, sizeof e);
                catalog_add(c, path, b);
                path = NULL;                /* the catalog owns it now */
            }
        }
        free(path);
        free(ents[i]);
    }
    free(ents);
}

int isf_catalog_load(struct isf_catalog *c, const char *dir, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        say(err, errlen, "%s: not a directory", dir ? dir : "(null)");
        return -1;
    }
    catalog_dir(c, dir, 0);
    return 0;
}

const char *isf_catalog_find(const struct isf_catalog *c, const char *banner)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->entry[i].banner && isf_banner_equal(c->entry[i].banner, banner))
            return c->entry[i].path;
    return NULL;
}

void isf_catalog_free(struct isf_catalog *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->entry[i].path);
        free(c->entry[i].banner);
    }
    free(c->entry);
    memset(c, 0, sizeof *c);
}

struct isf *isf_find_by_banner(const char *dir, const char *banner,
                               char *err, size_t errlen)
{
    if (!dir || !banner) {
        say(err, errlen, "isf_find_by_banner: no directory or banner given");
        return NULL;
    }
    struct isf_catalog c;
    if (isf_catalog_load(&c, dir, err, errlen) != 0)
        return NULL;
    const char *path = isf_catalog_find(&c, banner);
    struct isf *found = NULL;
    if (path) {
        char e[512];
        found = isf_load(path, e, sizeof e);
        if (!found)
            say(err, errlen, "%s: the profile matching the banner does not load: "
                "%s", dir, e);
    } else {
        char b[100];
        isfi_clean(b, sizeof b, banner);
        say(err, errlen, "%s: none of %zu ISF files is for \"%.*s\"", dir,
            c.n, (int)trimmed_len(b), b);
    }
    isf_catalog_free(&c);
    return found;
}
