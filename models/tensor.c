/* pml — tensor files: NumPy .npy (read and written here) and ONNX TensorProto .pb (through
 * protobuf-c, models/onnx.c). */
#include "models.h"
#include "onnx_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pml_tensor_is_file(const char *path)
{
    return pml_ends_with(path, ".pb") || pml_ends_with(path, ".npy");
}

void pml_tensor_free(pml_tensor *t)
{
    free(t->data);
    free(t->name);
    free(t->ints);
    memset(t, 0, sizeof *t);
}

/* ONNX element types pml writes, with NumPy's names: float, uint8, int8, int16, int32, int64,
 * bool */
static const struct {
    int type, size;
    const char *descr;
} written[] = {{1, 4, "<f4"}, {2, 1, "|u1"}, {3, 1, "|i1"}, {5, 2, "<i2"},
               {6, 4, "<i4"}, {7, 8, "<i8"}, {9, 1, "|b1"}};

static int written_at(int type)
{
    for (int k = 0; k < (int)(sizeof written / sizeof *written); k++)
        if (written[k].type == type) return k;
    return 0; /* float */
}

int pml__tensor_wtype(const pml_tensor *t, size_t *esize)
{
    const int k = written_at(t->type);
    *esize = (size_t)written[k].size;
    return written[k].type;
}

unsigned char *pml__tensor_bytes(const pml_tensor *t)
{
    size_t es;
    const int type = pml__tensor_wtype(t, &es);
    unsigned char *b = malloc(t->n ? t->n * es : 1);
    if (!b) return NULL;
    if (type == 1) { /* little-endian machines only (x86-64) */
        memcpy(b, t->data, t->n * es);
        return b;
    }
    for (size_t i = 0; i < t->n; i++) {
        const int64_t v = t->ints ? t->ints[i] : (int64_t)t->data[i];
        switch (es) {
        case 1: b[i] = (unsigned char)(type == 9 ? v != 0 : v); break;
        case 2: { int16_t x = (int16_t)v; memcpy(b + 2 * i, &x, 2); break; }
        case 4: { int32_t x = (int32_t)v; memcpy(b + 4 * i, &x, 4); break; }
        default: memcpy(b + 8 * i, &v, 8); break;
        }
    }
    return b;
}

pml_status pml__tensor_count(const pml_tensor *t, size_t esize, const char *src,
                              const char *name, size_t *count)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0 ||
            (t->dims[i] > 0 && n > (PML_TENSOR_MAX_BYTES / esize) / (size_t)t->dims[i]))
            return pml_fail(PML_EFORMAT, "%s: %s%s%sdimension %d of %lld is %s", src,
                            name ? "tensor '" : "", name ? name : "", name ? "': " : "", i,
                            (long long)t->dims[i], t->dims[i] < 0 ? "negative" : "too large");
        n *= (size_t)t->dims[i];
    }
    *count = n;
    return PML_OK;
}

pml_status pml__tensor_alloc(pml_tensor *t, const char *src)
{
    size_t n;
    pml_status st = pml__tensor_count(t, sizeof(float), src, NULL, &n);
    if (st != PML_OK) return st;
    t->n = n;
    t->data = malloc((n ? n : 1) * sizeof(float));
    return t->data ? PML_OK : pml_fail(PML_ENOMEM, "%s: out of memory (%zu floats)", src, n);
}

/* ---------------------------------------------------------------- .npy
 *
 * "\x93NUMPY", major, minor, header length (2 bytes in 1.0, 4 in 2.0 and 3.0), then a Python
 * dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
 * and a newline; then the data, C order. */

static const char *npy_value(const char *h, const char *key)
{
    const char *p = strstr(h, key);
    if (!p) return NULL;
    p += strlen(key);
    while (*p == ' ' || *p == '\'' || *p == '"') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static pml_status npy_read(const char *path, pml_tensor *t)
{
    char *buf;
    size_t len;
    pml_status st = pml_read_file(path, PML_TENSOR_MAX_BYTES, &buf, &len);
    if (st != PML_OK) return st;
    st = PML_EFORMAT;
    const char *why = NULL;
    size_t hlen = 0, off = 0;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        why = "not a .npy file (no \\x93NUMPY magic)";
    } else if (buf[6] == 1) {
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        off = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 |
               (size_t)(unsigned char)buf[10] << 16 | (size_t)(unsigned char)buf[11] << 24;
        off = 12;
    } else {
        why = "an unknown .npy version";
    }
    if (!why && hlen > len - off) why = "the header runs past the end of the file";
    char *h = NULL;
    if (!why && !(h = strndup(buf + off, hlen))) {
        free(buf);
        return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    }
    int size = 0;
    char kind = 0;
    bool swap = false;
    if (!why) {
        const char *d = npy_value(h, "descr"), *f = npy_value(h, "fortran_order"),
                   *s = npy_value(h, "shape");
        if (!d || !f || !s || *d != '\'' || *s != '(') {
            why = "a header without descr, fortran_order and shape";
        } else {
            char endian = d[1];
            kind = d[2];
            size = d[3] - '0';
            if ((endian != '<' && endian != '|' && endian != '=' && endian != '>') ||
                !((kind == 'f' && (size == 4 || size == 8)) ||
                  (kind == 'i' && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                  ((kind == 'u' || kind == 'b') && size == 1)) ||
                d[4] != '\'')
                why = "a dtype other than float32, float64, int8 to int64, uint8 or bool";
            swap = endian == '>';
            if (!why && strncmp(f, "False", 5) != 0) why = "fortran_order (pml reads C order)";
            for (s++; !why && *s != ')';) {
                while (*s == ' ' || *s == ',') s++;
                if (*s == ')') break;
                char *e;
                long long v = strtoll(s, &e, 10);
                if (e == s || v < 0 || t->rank == PML_TENSOR_MAX_RANK)
                    why = "a shape pml cannot read (more than 8 dims, or not numbers)";
                else
                    t->dims[t->rank++] = v;
                s = e;
            }
        }
    }
    if (!why && (st = pml__tensor_alloc(t, path)) != PML_OK) {
        free(h);
        free(buf);
        return st;
    }
    if (!why && (len - off - hlen) / (size_t)size < t->n) why = "the data is shorter than the shape";
    if (!why && (len - off - hlen) != t->n * (size_t)size) why = "data follows the tensor";
    if (!why) {
        const unsigned char *p = (const unsigned char *)buf + off + hlen;
        for (size_t i = 0; i < t->n; i++, p += size) {
            unsigned char b[8];
            for (int k = 0; k < size; k++) b[k] = swap ? p[size - 1 - k] : p[k];
            if (kind == 'f' && size == 4) {
                float v;
                memcpy(&v, b, 4);
                t->data[i] = v;
            } else if (kind == 'f') {
                double v;
                memcpy(&v, b, 8);
                t->data[i] = (float)v;
            } else if (size == 1) {
                t->data[i] = kind == 'i' ? (float)(int8_t)b[0] : kind == 'b' ? b[0] != 0 : b[0];
            } else if (size == 2) {
                int16_t v;
                memcpy(&v, b, 2);
                t->data[i] = v;
            } else if (size == 4) {
                int32_t v;
                memcpy(&v, b, 4);
                t->data[i] = (float)v;
            } else {
                int64_t v;
                memcpy(&v, b, 8);
                t->data[i] = (float)v;
            }
        }
        t->type = kind == 'f' ? 1 : kind == 'b' ? 9 : kind == 'u' ? 2
                  : size == 1 ? 3 : size == 2 ? 5 : size == 4 ? 6 : 7;
        st = PML_OK;
    }
    free(h);
    free(buf);
    if (why) {
        pml_tensor_free(t);
        return pml_fail(PML_EFORMAT, "%s: %s", path, why);
    }
    return st;
}

static pml_status npy_write(const char *path, const pml_tensor *t)
{
    char h[256];
    size_t es;
    const int k = written_at(pml__tensor_wtype(t, &es));
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     written[k].descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(h + n, sizeof h - (size_t)n, "%lld,%s", (long long)t->dims[i],
                      i + 1 < t->rank ? " " : "");
    n += snprintf(h + n, sizeof h - (size_t)n, "), }");
    while ((10 + n + 1) % 64) h[n++] = ' '; /* the data starts 64-byte aligned */
    h[n++] = '\n';
    unsigned char *b = pml__tensor_bytes(t);
    if (!b) return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) {
        free(b);
        return st;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0};
    fwrite(pre, 1, sizeof pre, af.f);
    fwrite(h, 1, (size_t)n, af.f);
    fwrite(b, es, t->n, af.f);
    free(b);
    return pml_afile_commit(&af);
}

pml_status pml_tensor_read(const char *path, pml_tensor *t)
{
    memset(t, 0, sizeof *t);
    if (pml_ends_with(path, ".npy")) return npy_read(path, t);
    return pml__pb_tensor_read(path, t);
}

pml_status pml_tensor_write(const char *path, const pml_tensor *t)
{
    if (pml_ends_with(path, ".npy")) return npy_write(path, t);
    return pml__pb_tensor_write(path, t);
}

bool pml_tensor_compare(const pml_tensor *y, const pml_tensor *e, double rtol, double atol,
                        pml_tensor_diff *d)
{
    bool same = y->rank == e->rank && y->n == e->n;
    for (int i = 0; same && i < e->rank; i++) same = y->dims[i] == e->dims[i];
    if (!same) return false;
    memset(d, 0, sizeof *d);
    double worst = -1;
    for (size_t i = 0; i < e->n; i++) {
        double a = y->data[i], b = e->data[i], diff = fabs(a - b);
        if (a == b || (isnan(a) && isnan(b))) continue;
        if (!(diff <= atol + rtol * fabs(b))) {
            d->bad++;
            if (!(diff <= worst)) {
                worst = isnan(diff) ? INFINITY : diff;
                d->worst = i;
            }
        }
        if (diff > d->max_abs || isnan(diff)) d->max_abs = isnan(diff) ? NAN : diff;
        if (b != 0 && diff / fabs(b) > d->max_rel) d->max_rel = diff / fabs(b);
    }
    return true;
}

void pml_tensor_softmax(pml_tensor *t, int axis, bool coerced, bool take_log)
{
    if (axis < 0 || axis >= t->rank) return;
    size_t outer = 1, len = 1, inner = 1;
    for (int i = 0; i < t->rank; i++) {
        size_t d = (size_t)t->dims[i];
        if (i < axis) outer *= d;
        else if (i == axis || coerced) len *= d;
        else inner *= d;
    }
    if (!len || outer * len * inner != t->n) return;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            float *z = t->data + o * len * inner + i;
            float mx = z[0];
            for (size_t c = 1; c < len; c++) mx = z[c * inner] > mx ? z[c * inner] : mx;
            double sum = 0;
            for (size_t c = 0; c < len; c++) sum += exp((double)z[c * inner] - mx);
            const double lse = mx + (take_log ? log(sum) : 0);
            for (size_t c = 0; c < len; c++)
                z[c * inner] = take_log ? (float)((double)z[c * inner] - lse)
                                        : (float)(exp((double)z[c * inner] - mx) / sum);
        }
}
