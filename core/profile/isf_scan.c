/*
 * isf_scan.c - the scanner over an ISF document's top level (see
 * isf_internal.h): whitespace, strings, values skipped with their nesting
 * bounded, the members of an object walked one at a time, and one entry's
 * bytes handed to json-c.  The error of a load is set here (isfi_fail).
 */
#include "core/profile/isf_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A name as it may appear in a one-line message: printable, bounded. */
void isfi_clean(char *dst, size_t dstlen, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 4 < dstlen; i++)
        dst[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    if (s[i] && dstlen >= 4) {
        memcpy(dst + (i < dstlen - 4 ? i : dstlen - 4), "...", 4);
        return;
    }
    dst[i] = '\0';
}

void isfi_fail(struct loader *L, const char *fmt, ...)
{
    if (L->failed)
        return;
    L->failed = true;
    if (!L->err || !L->errlen)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    snprintf(L->err, L->errlen, "%s: %s", L->name, msg);
}

void isfi_ws(struct loader *L)
{
    while (L->pos < L->len) {
        char c = L->doc[L->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        L->pos++;
    }
}

/* At a '"': find the closing quote; *b..*e is the content, pos moves past
 * it, *esc says whether it holds escapes. */
static int scan_string(struct loader *L, size_t *b, size_t *e, bool *esc)
{
    size_t i = L->pos + 1;
    *esc = false;
    while (i < L->len) {
        unsigned char c = (unsigned char)L->doc[i];
        if (c == '"') {
            *b = L->pos + 1;
            *e = i;
            L->pos = i + 1;
            return 0;
        }
        if (c == '\\') {
            *esc = true;
            i += 2;
            continue;
        }
        if (c < 0x20) {
            isfi_fail(L, "JSON syntax error at byte %zu: control character in a "
                 "string", i);
            return -1;
        }
        i++;
    }
    isfi_fail(L, "JSON syntax error: string at byte %zu is not terminated",
         L->pos);
    return -1;
}

#define MAX_DEPTH 256

/* Skip one value (lax inside containers: json-c checks what is kept). */
int isfi_skip_value(struct loader *L)
{
    size_t b, e;
    bool esc;
    if (L->pos >= L->len) {
        isfi_fail(L, "JSON syntax error: unexpected end of document");
        return -1;
    }
    char c = L->doc[L->pos];
    if (c == '"')
        return scan_string(L, &b, &e, &esc);
    if (c == '{' || c == '[') {
        char stack[MAX_DEPTH];
        int depth = 0;
        while (L->pos < L->len) {
            c = L->doc[L->pos];
            if (c == '"') {
                if (scan_string(L, &b, &e, &esc) != 0)
                    return -1;
                continue;
            }
            if (c == '{' || c == '[') {
                if (depth == MAX_DEPTH) {
                    isfi_fail(L, "JSON nested more than %d deep at byte %zu",
                         MAX_DEPTH, L->pos);
                    return -1;
                }
                stack[depth++] = c == '{' ? '}' : ']';
            } else if (c == '}' || c == ']') {
                if (depth == 0 || stack[depth - 1] != c) {
                    isfi_fail(L, "JSON syntax error at byte %zu: unbalanced '%c'",
                         L->pos, c);
                    return -1;
                }
                if (--depth == 0) {
                    L->pos++;
                    return 0;
                }
            }
            L->pos++;
        }
        isfi_fail(L, "JSON syntax error: document ends inside a value");
        return -1;
    }
    size_t start = L->pos;
    while (L->pos < L->len && !strchr(",:}]{[\" \t\r\n", L->doc[L->pos]))
        L->pos++;
    if (L->pos == start) {
        isfi_fail(L, "JSON syntax error at byte %zu: unexpected '%c'", L->pos, c);
        return -1;
    }
    return 0;
}

/* Parse the object value at pos with json-c (and move past it). */
json_object *isfi_take_object(struct loader *L, const char *what)
{
    size_t b = L->pos;
    if (b >= L->len || L->doc[b] != '{') {
        char k[80];
        isfi_clean(k, sizeof k, L->key ? L->key : "");
        isfi_fail(L, "%s \"%s\": expected a JSON object", what, k);
        return NULL;
    }
    if (isfi_skip_value(L) != 0)
        return NULL;
    size_t n = L->pos - b;
    if (n > INT32_MAX) {
        isfi_fail(L, "%s: an entry larger than 2 GiB", what);
        return NULL;
    }
    json_tokener_reset(L->tok);
    json_object *o = json_tokener_parse_ex(L->tok, L->doc + b, (int)n);
    if (!o || json_tokener_get_parse_end(L->tok) != n) {
        enum json_tokener_error je = json_tokener_get_error(L->tok);
        char k[80];
        isfi_clean(k, sizeof k, L->key ? L->key : "");
        isfi_fail(L, "%s \"%s\": invalid JSON at byte %zu: %s", what, k,
             b + json_tokener_get_parse_end(L->tok),
             o ? "trailing data" : json_tokener_error_desc(je));
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Decode the member name scanned at [b, e) into L->key. */
static int set_key(struct loader *L, size_t b, size_t e, bool esc)
{
    const char *s = L->doc + b;
    size_t n = e - b;
    json_object *str = NULL;
    if (esc) {
        if (e + 1 - (b - 1) > INT32_MAX) {
            isfi_fail(L, "a member name larger than 2 GiB");
            return -1;
        }
        json_tokener_reset(L->tok);
        str = json_tokener_parse_ex(L->tok, L->doc + b - 1, (int)(e + 1 - (b - 1)));
        if (!str || !json_object_is_type(str, json_type_string)) {
            json_object_put(str);
            isfi_fail(L, "JSON syntax error: bad escape in the name at byte %zu",
                 b);
            return -1;
        }
        s = json_object_get_string(str);
        n = (size_t)json_object_get_string_len(str);
        if (strlen(s) != n) {
            json_object_put(str);
            isfi_fail(L, "a name at byte %zu contains a NUL character", b);
            return -1;
        }
    }
    char *k = isfi_grow(L->key, &L->key_cap, n + 1, 1);
    if (!k) {
        json_object_put(str);
        isfi_fail(L, "out of memory");
        return -1;
    }
    L->key = k;
    memcpy(k, s, n);
    k[n] = '\0';
    json_object_put(str);
    return 0;
}

/* Walk the object at pos: for each member, set L->key and call fn with pos
 * at the value; fn consumes the value.  fn returns 0 to go on, 1 to stop
 * early (success), -1 on failure. */
int isfi_for_each_member(struct loader *L, const char *what,
                           int (*fn)(struct loader *, void *), void *ctx)
{
    isfi_ws(L);
    if (L->pos >= L->len || L->doc[L->pos] != '{') {
        isfi_fail(L, "%s: expected a JSON object at byte %zu", what, L->pos);
        return -1;
    }
    L->pos++;
    isfi_ws(L);
    if (L->pos < L->len && L->doc[L->pos] == '}') {
        L->pos++;
        return 0;
    }
    for (;;) {
        size_t b, e;
        bool esc;
        isfi_ws(L);
        if (L->pos >= L->len || L->doc[L->pos] != '"') {
            isfi_fail(L, "%s: JSON syntax error at byte %zu: expected a member "
                 "name", what, L->pos);
            return -1;
        }
        if (scan_string(L, &b, &e, &esc) != 0 || set_key(L, b, e, esc) != 0)
            return -1;
        isfi_ws(L);
        if (L->pos >= L->len || L->doc[L->pos] != ':') {
            isfi_fail(L, "%s: JSON syntax error at byte %zu: expected ':'", what,
                 L->pos);
            return -1;
        }
        L->pos++;
        isfi_ws(L);
        int r = fn(L, ctx);
        if (r != 0)
            return r;
        isfi_ws(L);
        if (L->pos < L->len && L->doc[L->pos] == ',') {
            L->pos++;
            continue;
        }
        if (L->pos < L->len && L->doc[L->pos] == '}') {
            L->pos++;
            return 0;
        }
        isfi_fail(L, "%s: JSON syntax error at byte %zu: expected ',' or '}'",
             what, L->pos);
        return -1;
    }
}
