/* pml — a small strict JSON reader (RFC 8259 syntax): the caller walks the text with it, taking
 * the members it wants as they come (pml_json_object calls back per member), so large documents
 * need no tree. Errors name the source, what it is (j->kind) and the line and column. */
#include "ops/ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* position of p as line and column (1-based) */
void pml_json_where(const pml_json *j, const char *p, int *line, int *col)
{
    int l = 1;
    const char *bol = j->s;
    for (const char *q = j->s; q < p && q < j->end; q++)
        if (*q == '\n') {
            l++;
            bol = q + 1;
        }
    *line = l;
    *col = (int)(p - bol) + 1;
}

pml_status pml_json_bad(const pml_json *j, const char *what)
{
    int line, col;
    pml_json_where(j, j->p, &line, &col);
    if (j->p >= j->end)
        return pml_fail(PML_EFORMAT, "%s: the %s ends early, at line %d (truncated?): %s",
                        j->src, j->kind, line, what);
    return pml_fail(PML_EFORMAT, "%s: malformed %s at line %d, column %d: %s", j->src, j->kind, line,
                    col, what);
}

void pml_json_ws(pml_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

bool pml_json_eat(pml_json *j, char c)
{
    pml_json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

int pml_hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string into buf (cap bytes with the NUL; buf may be NULL to skip). *len: its length in
 * bytes (even when longer than buf holds). */
pml_status pml_json_string(pml_json *j, char *buf, size_t cap, size_t *len)
{
    pml_json_ws(j);
    if (j->p >= j->end || *j->p != '"') return pml_json_bad(j, "expected a string");
    j->p++;
    size_t n = 0;
    for (;;) {
        if (j->p >= j->end) return pml_json_bad(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20) return pml_json_bad(j, "control character in a string");
        char out[4];
        int nout = 1;
        if (c == '\\') {
            if (j->p + 1 >= j->end) {
                j->p = j->end;
                return pml_json_bad(j, "unterminated string");
            }
            char e = j->p[1];
            j->p += 2;
            switch (e) {
            case '"':
                out[0] = '"';
                break;
            case '\\':
                out[0] = '\\';
                break;
            case '/':
                out[0] = '/';
                break;
            case 'b':
                out[0] = '\b';
                break;
            case 'f':
                out[0] = '\f';
                break;
            case 'n':
                out[0] = '\n';
                break;
            case 'r':
                out[0] = '\r';
                break;
            case 't':
                out[0] = '\t';
                break;
            case 'u': {
                unsigned u = 0;
                for (int k = 0; k < 4; k++) {
                    int h = j->p + k < j->end ? pml_hex_digit(j->p[k]) : -1;
                    if (h < 0) return pml_json_bad(j, "bad \\u escape in a string");
                    u = u * 16 + (unsigned)h;
                }
                j->p += 4;
                /* UTF-8 of the code unit (a surrogate half is kept as is: names are ASCII) */
                if (u < 0x80) {
                    out[0] = (char)u;
                } else if (u < 0x800) {
                    out[0] = (char)(0xc0 | (u >> 6));
                    out[1] = (char)(0x80 | (u & 0x3f));
                    nout = 2;
                } else {
                    out[0] = (char)(0xe0 | (u >> 12));
                    out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                    out[2] = (char)(0x80 | (u & 0x3f));
                    nout = 3;
                }
                break;
            }
            default:
                j->p--;
                return pml_json_bad(j, "bad escape in a string");
            }
        } else {
            out[0] = (char)c;
            j->p++;
        }
        for (int k = 0; k < nout; k++, n++)
            if (buf && n + 1 < cap) buf[n] = out[k];
    }
    if (buf && cap) buf[n < cap ? n : cap - 1] = 0;
    if (len) *len = n;
    return PML_OK;
}

pml_status pml_json_number(pml_json *j, double *v)
{
    pml_json_ws(j);
    const char *a = j->p, *q = j->p;
    if (q < j->end && *q == '-') q++;
    if (q >= j->end || !(*q >= '0' && *q <= '9')) return pml_json_bad(j, "expected a number");
    if (*q == '0')
        q++;
    else
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    if (q < j->end && *q == '.') {
        q++;
        if (q >= j->end || !(*q >= '0' && *q <= '9')) {
            j->p = q;
            return pml_json_bad(j, "bad number");
        }
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        if (q >= j->end || !(*q >= '0' && *q <= '9')) {
            j->p = q;
            return pml_json_bad(j, "bad number");
        }
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    char buf[64];
    if (q - a >= (long)sizeof buf) return pml_json_bad(j, "number too long");
    memcpy(buf, a, (size_t)(q - a));
    buf[q - a] = 0;
    errno = 0;
    *v = strtod(buf, NULL);
    if (errno == ERANGE && fabs(*v) > 1) return pml_json_bad(j, "number out of range");
    j->p = q;
    return PML_OK;
}

pml_status pml_json_literal(pml_json *j, const char *word)
{
    pml_json_ws(j);
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        if ((size_t)(j->end - j->p) < n && memcmp(j->p, word, (size_t)(j->end - j->p)) == 0)
            j->p = j->end;
        return pml_json_bad(j, "expected a value");
    }
    j->p += n;
    return PML_OK;
}

pml_status pml_json_object(pml_json *j, pml_json_member_fn member, void *ctx)
{
    if (!pml_json_eat(j, '{')) return pml_json_bad(j, "expected an object");
    if (++j->depth > PML_JSON_MAX_DEPTH) return pml_json_bad(j, "nested too deeply");
    pml_status st;
    if (!pml_json_eat(j, '}')) {
        for (;;) {
            char key[64];
            size_t kl;
            if ((st = pml_json_string(j, key, sizeof key, &kl)) != PML_OK) return st;
            if (!pml_json_eat(j, ':')) return pml_json_bad(j, "expected ':' after a member name");
            if ((st = member(j, ctx, key, kl)) != PML_OK) return st;
            if (pml_json_eat(j, ',')) continue;
            if (pml_json_eat(j, '}')) break;
            return pml_json_bad(j, "expected ',' or '}' in an object");
        }
    }
    j->depth--;
    return PML_OK;
}

static pml_status skip_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)ctx, (void)key, (void)kl;
    return pml_json_skip(j);
}

static pml_status skip_elem(pml_json *j, void *ctx, int i)
{
    (void)ctx, (void)i;
    return pml_json_skip(j);
}

pml_status pml_json_array(pml_json *j, pml_json_elem_fn elem, void *ctx)
{
    if (!pml_json_eat(j, '[')) return pml_json_bad(j, "expected an array");
    if (++j->depth > PML_JSON_MAX_DEPTH) return pml_json_bad(j, "nested too deeply");
    pml_status st;
    if (!pml_json_eat(j, ']')) {
        for (int i = 0;; i++) {
            if ((st = elem(j, ctx, i)) != PML_OK) return st;
            if (pml_json_eat(j, ',')) continue;
            if (pml_json_eat(j, ']')) break;
            return pml_json_bad(j, "expected ',' or ']' in an array");
        }
    }
    j->depth--;
    return PML_OK;
}

pml_status pml_json_skip(pml_json *j)
{
    pml_json_ws(j);
    if (j->p >= j->end) return pml_json_bad(j, "expected a value");
    switch (*j->p) {
    case '{':
        return pml_json_object(j, skip_member, NULL);
    case '[':
        return pml_json_array(j, skip_elem, NULL);
    case '"':
        return pml_json_string(j, NULL, 0, NULL);
    case 't':
        return pml_json_literal(j, "true");
    case 'f':
        return pml_json_literal(j, "false");
    case 'n':
        return pml_json_literal(j, "null");
    default: {
        double v;
        return pml_json_number(j, &v);
    }
    }
}

/* a string member into buf, refusing one too long for it */
pml_status pml_json_name(pml_json *j, char *buf, size_t cap, const char *what)
{
    size_t len;
    pml_status st = pml_json_string(j, buf, cap, &len);
    if (st == PML_OK && len >= cap)
        return pml_fail(PML_EFORMAT, "%s: %s is longer than %zu characters", j->src, what, cap - 1);
    return st;
}

/* an integer in [lo, hi] */
pml_status pml_json_int(pml_json *j, long lo, long hi, const char *what, long *out)
{
    const char *at = j->p;
    double v;
    pml_status st = pml_json_number(j, &v);
    if (st != PML_OK) return st;
    if (v != floor(v) || v < (double)lo || v > (double)hi) {
        j->p = at;
        pml_json_ws(j);
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be an integer in [%ld, %ld]", what, lo, hi);
        return pml_json_bad(j, msg);
    }
    *out = (long)v;
    return PML_OK;
}

