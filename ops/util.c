/* pml — small utilities every layer uses, one copy each: the clock, hashing, statistics, numbers
 * with units for people, and text for people and
 * for JSON (what echoes input is escaped, so that no control character, C1 control or
 * bidirectional override from a file or argv reaches a terminal raw, and JSON strings are valid
 * whatever bytes the input held). */
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double pml_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- hashing */

uint64_t pml_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

uint64_t pml_hash_str(uint64_t h, const char *s)
{
    return pml_hash(h, s, strlen(s));
}

/* ---------------------------------------------------------------- numbers for people */

bool pml_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

const char *pml_fmt_count(char *buf, size_t cap, double v)
{
    char t[48];
    int n = snprintf(t, sizeof t, "%.0f", v), o = 0;
    if (cap == 0) return buf;
    for (int i = 0; i < n && o < (int)cap - 1; i++) {
        if (i && t[i - 1] != '-' && (n - i) % 3 == 0 && o < (int)cap - 2) buf[o++] = ',';
        buf[o++] = t[i];
    }
    buf[o] = 0;
    return buf;
}

const char *pml_fmt_si(char *buf, size_t cap, double v, const char *unit)
{
    static const char *const pre[] = {"", "K", "M", "G", "T", "P", "E"};
    int p = 0;
    while (p < 6 && fabs(v) >= 1000) v /= 1000, p++;
    snprintf(buf, cap, "%.3g %s%s", v, pre[p], unit);
    return buf;
}

const char *pml_fmt_seconds(char *buf, size_t cap, double s, int digits)
{
    if (s == 0)
        snprintf(buf, cap, "0 s");
    else if (!isfinite(s))
        snprintf(buf, cap, "-");
    else if (fabs(s) < 1e-6)
        snprintf(buf, cap, "%.*g ns", digits, s * 1e9);
    else if (fabs(s) < 1e-3)
        snprintf(buf, cap, "%.*g us", digits, s * 1e6);
    else if (fabs(s) < 1)
        snprintf(buf, cap, "%.*g ms", digits, s * 1e3);
    else
        snprintf(buf, cap, "%.*g s", digits, s);
    return buf;
}

/* ---------------------------------------------------------------- caches */

void pml_caches_evict(unsigned char *evict, size_t bytes)
{
    volatile unsigned char *v = evict; /* read and written, so nothing of before stays */
    for (size_t i = 0; i < bytes; i += 64) v[i] = (unsigned char)(v[i] + 1);
}

void pml_caches_as_in_a_step(unsigned char *evict, const float *const *fresh, const size_t *n,
                             int k)
{
    if (evict) pml_caches_evict(evict, PML_EVICT_BYTES);
    volatile float sink = 0;
    for (int j = 0; j < k; j++) {
        float acc = 0;
        for (size_t i = 0; i < n[j]; i += 16) acc += fresh[j][i];
        sink += acc;
    }
    (void)sink;
}

/* ---------------------------------------------------------------- statistics */

int pml_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double pml_median(double *v, int n)
{
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, pml_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void pml_ranks(const double *v, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int less = 0, same = 0;
        for (int j = 0; j < n; j++) {
            less += v[j] < v[i];
            same += v[j] == v[i];
        }
        r[i] = less + (same + 1) / 2.0;
    }
}

double pml_spearman(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    if (!rx || !ry) {
        free(rx);
        free(ry);
        return NAN;
    }
    pml_ranks(x, n, rx);
    pml_ranks(y, n, ry);
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += rx[i] / n, my += ry[i] / n;
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* Bytes of the UTF-8 sequence at s (2..4), or 0 when it is not one (overlong, surrogate, past
 * U+10FFFF, cut short); *cp receives the code point. */
static int utf8_seq(const unsigned char *s, unsigned *cp)
{
    unsigned c = s[0];
    int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n) return 0;
    unsigned v = c & (0x7fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Code points a terminal acts on instead of showing: C1 controls, and the marks and overrides
 * that reorder text (a U+202E in a file name makes "gpj.exe" read "exe.jpg"). */
static bool invisible(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

size_t pml_escape(char *dst, size_t cap, const char *src)
{
    if (!cap) return 0;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (*s) {
        char esc[16];
        const char *piece = esc;
        size_t len, adv = 1;
        unsigned c = *s, cp;
        if (c >= 0x20 && c < 0x7f) {
            esc[0] = (char)c;
            len = 1;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            snprintf(esc, sizeof esc, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
            len = 2;
        } else if (c < 0x80) {
            len = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        } else if ((adv = (size_t)utf8_seq(s, &cp)) == 0) {
            adv = 1; /* not UTF-8: the byte */
            len = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        } else if (invisible(cp)) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", cp);
        } else {
            piece = (const char *)s;
            len = adv;
        }
        if (o + len >= cap) break; /* never half an escape or a character */
        memcpy(dst + o, piece, len);
        o += len;
        s += adv;
    }
    dst[o] = 0;
    return o;
}


void pml_json_str(FILE *f, const char *src)
{
    fputc('"', f);
    const unsigned char *s = (const unsigned char *)src;
    while (*s) {
        unsigned c = *s, cp;
        int n;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            s++;
        } else if (c >= 0x20 && c < 0x7f) {
            fputc((int)c, f);
            s++;
        } else if (c < 0x80) {
            fprintf(f, "\\u%04x", c);
            s++;
        } else if ((n = utf8_seq(s, &cp)) == 0) {
            fputs("\\ufffd", f); /* not UTF-8: the replacement character */
            s++;
        } else if (invisible(cp)) {
            fprintf(f, "\\u%04x", cp);
            s += n;
        } else {
            fwrite(s, 1, (size_t)n, f);
            s += n;
        }
    }
    fputc('"', f);
}
