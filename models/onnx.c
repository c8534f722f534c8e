/* pml — ONNX import (models.h describes what is read) and TensorProto files. The protobuf code
 * is generated at build time by protoc-c from the onnx.proto of Debian's libonnx-dev.
 *
 * The importer walks the ONNX nodes in file order (ONNX graphs are topologically sorted). Each
 * ONNX value becomes one of: a tensor (a pml node's output, with its ONNX rank), a constant (an
 * initializer, a Constant or a folded shape computation; integer constants are kept exact, the
 * batch dimension of a Shape as BATCH) or a run-time weight (a graph input no initializer
 * gives). Weights are assigned to parameter and state slots after the graph is finalised. */
#include "models.h"
#include "onnx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An output of an integer element type (ONNX's numbers: uint8 2, int8 3, uint16 4, int16 5,
 * int32 6, int64 7, bool 9, uint32 12, uint64 13): pml computes in float, so each value must be
 * an integer of that type (ONNX would wrap around or truncate where pml does not). */
pml_status pml_onnx_check_output(const pml_onnx *m, int k, const pml_tensor *y)
{
    double lo, hi;
    const char *name;
    const pml_onnx_output *o = &m->outputs[k];
    if (y->ints) return PML_OK; /* exact integers already */
    switch (o->type) {
    case 2: lo = 0, hi = 255, name = "uint8"; break;
    case 3: lo = -128, hi = 127, name = "int8"; break;
    case 4: lo = 0, hi = 65535, name = "uint16"; break;
    case 5: lo = -32768, hi = 32767, name = "int16"; break;
    case 6: lo = -2147483648.0, hi = 2147483647.0, name = "int32"; break;
    case 7: lo = -9223372036854775808.0, hi = 9223372036854775807.0, name = "int64"; break;
    case 9: lo = 0, hi = 1, name = "bool"; break;
    case 12: lo = 0, hi = 4294967295.0, name = "uint32"; break;
    case 13: lo = 0, hi = 18446744073709551615.0, name = "uint64"; break;
    default: return PML_OK;
    }
    for (size_t i = 0; i < y->n; i++) {
        const double v = y->data[i];
        if (!(v >= lo && v <= hi && v == floor(v)))
            return pml_fail(PML_EUNSUPPORTED,
                            "output '%s' (%s): value %zu is %g, not one; pml computes in float "
                            "(no wrap-around or truncation)",
                            pml_dot_brief(o->name ? o->name : ""), name, i, v);
    }
    return PML_OK;
}

void pml_onnx_free(pml_onnx *m)
{
    pml_graph_free(&m->g);
    free(m->params);
    free(m->state);
    for (int i = 0; i < m->ninputs; i++) {
        free(m->inputs[i].name);
        free(m->inputs[i].bind);
    }
    free(m->inputs);
    for (int k = 0; k < m->noutputs; k++) free(m->outputs[k].name);
    free(m->outputs);
    memset(m, 0, sizeof *m);
    pml_graph_init(&m->g, NULL);
}

#ifndef PML_HAVE_ONNX

static pml_status no_onnx(const char *path)
{
    return pml_fail(PML_EUNSUPPORTED,
                    "%s: this pml was built without ONNX (it needs Debian's protobuf-c-compiler, "
                    "libprotobuf-c-dev and libonnx-dev)",
                    path);
}
pml_status pml_onnx_read(const char *path, uint64_t seed, pml_onnx *m)
{
    memset(m, 0, sizeof *m);
    pml_graph_init(&m->g, NULL);
    return no_onnx(path);
}
pml_status pml_onnx_parse(const void *data, size_t len, const char *path, uint64_t seed,
                          pml_onnx *m)
{
    return pml_onnx_read(path, seed, m);
}
pml_status pml_onnx_read_given(const char *path, uint64_t seed, const pml_tensor *given,
                               int ngiven, pml_onnx *m)
{
    return pml_onnx_read(path, seed, m);
}
pml_status pml_onnx_bind(const pml_onnx *m, int input, const pml_tensor *t, float *params,
                         float *state)
{
    return pml_fail(PML_EUNSUPPORTED, "ONNX: not built");
}
pml_status pml_onnx_write(const pml_graph *g, const float *params, const float *state,
                          const char *path)
{
    return no_onnx(path);
}
pml_status pml__pb_tensor_read(const char *path, pml_tensor *t) { return no_onnx(path); }
pml_status pml__pb_tensor_write(const char *path, const pml_tensor *t) { return no_onnx(path); }

#else

#include <onnx.pb-c.h>

/* the batch dimension in a folded shape value */
#define BATCH INT64_MIN

enum { T_FLOAT = 1, T_UINT8 = 2, T_INT8 = 3, T_INT16 = 5, T_INT32 = 6, T_INT64 = 7, T_BOOL = 9,
       T_DOUBLE = 11 };
/* types whose every value a float holds exactly: read as float */
static bool exact_in_float(int t) { return t == T_FLOAT || t == T_UINT8 || t == T_INT8 || t == T_INT16; }

static const char *type_name(int t)
{
    static const char *names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16",
                                  "int32", "int64", "string", "bool", "float16", "double",
                                  "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return t >= 0 && t < (int)(sizeof names / sizeof *names) ? names[t] : "unknown";
}

/* ---------------------------------------------------------------- tensor data */

/* Reads [offset, offset + length) of an external data file, named relative to the model's
 * folder \p dir and never outside it. */
static pml_status external_data(const Onnx__TensorProto *tp, const char *src, const char *dir,
                                size_t want, unsigned char **out)
{
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        if (strcmp(e->key, "location") == 0) loc = e->value;
        else if (strcmp(e->key, "offset") == 0) off = atoll(e->value);
        else if (strcmp(e->key, "length") == 0) len = atoll(e->value);
    }
    if (!loc || !*loc)
        return pml_fail(PML_EFORMAT, "%s: tensor '%s': external data without a location", src,
                        pml_dot_brief(tp->name ? tp->name : ""));
    if (!dir || loc[0] == '/' || strstr(loc, ".."))
        return pml_fail(PML_EFORMAT,
                        "%s: tensor '%s': external data '%s' must be a file beside the model",
                        src, pml_dot_brief(tp->name ? tp->name : ""), pml_dot_brief(loc));
    if (off < 0 || (len >= 0 && (size_t)len != want))
        return pml_fail(PML_EFORMAT,
                        "%s: tensor '%s': external data '%s' gives %lld bytes at offset %lld, the "
                        "tensor needs %zu",
                        src, pml_dot_brief(tp->name ? tp->name : ""), pml_dot_brief(loc), len,
                        off, want);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, loc);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int err = fd < 0 ? errno : EISDIR;
        if (fd >= 0) close(fd);
        return pml_fail(PML_EIO, "%s: tensor '%s': external data '%s': %s", src,
                        pml_dot_brief(tp->name ? tp->name : ""), pml_dot_brief(path),
                        strerror(err));
    }
    if ((unsigned long long)sb.st_size < (unsigned long long)off + want) {
        close(fd);
        return pml_fail(PML_EFORMAT,
                        "%s: tensor '%s': external data '%s' has %lld bytes, the tensor needs %zu "
                        "at offset %lld",
                        src, pml_dot_brief(tp->name ? tp->name : ""), pml_dot_brief(path),
                        (long long)sb.st_size, want, off);
    }
    unsigned char *b = malloc(want ? want : 1);
    size_t got = 0;
    while (b && got < want) {
        ssize_t r = pread(fd, b + got, want - got, (off_t)(off + (long long)got));
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!b) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
    if (got < want) {
        free(b);
        return pml_fail(PML_EIO, "%s: reading external data '%s' failed", src,
                        pml_dot_brief(path));
    }
    *out = b;
    return PML_OK;
}

/* Converts a TensorProto's data into t (floats) and, for integer types when ints is not NULL,
 * exact int64 values into *ints. \p src names the file; \p dir is the model's folder (external
 * data), or NULL. */
static pml_status tp_data(const Onnx__TensorProto *tp, const char *src, const char *dir,
                          pml_tensor *t, int64_t **ints)
{
    const char *nm = pml_dot_brief(tp->name ? tp->name : "");
    memset(t, 0, sizeof *t);
    if (ints) *ints = NULL;
    if (tp->n_dims > PML_TENSOR_MAX_RANK)
        return pml_fail(PML_EUNSUPPORTED, "%s: tensor '%s' has %zu dimensions (pml reads up to %d)",
                        src, nm, tp->n_dims, PML_TENSOR_MAX_RANK);
    t->rank = (int)tp->n_dims;
    for (int i = 0; i < t->rank; i++) t->dims[i] = tp->dims[i];
    int dt = tp->has_data_type ? tp->data_type : 0;
    size_t es;
    switch (dt) {
    case T_FLOAT: case T_INT32: es = 4; break;
    case T_INT64: case T_DOUBLE: es = 8; break;
    case T_INT16: es = 2; break;
    case T_UINT8: case T_INT8: case T_BOOL: es = 1; break;
    default:
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: tensor '%s' is of type %s (pml reads float, double and integer "
                        "tensors)",
                        src, nm, type_name(dt));
    }
    if (tp->segment)
        return pml_fail(PML_EUNSUPPORTED, "%s: tensor '%s' is a segment of a tensor", src, nm);
    size_t n;
    pml_status st = pml__tensor_count(t, 8, src, nm, &n); /* checked before any allocation */
    if (st != PML_OK) return st;
    const unsigned char *raw = NULL;
    unsigned char *ext = NULL;
    size_t typed = 0;
    bool external = tp->has_data_location &&
                    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external) {
        if ((st = external_data(tp, src, dir, n * es, &ext)) != PML_OK) goto fail;
        raw = ext;
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != n * es) {
            st = pml_fail(PML_EFORMAT,
                          "%s: tensor '%s' declares %zu elements (%zu bytes) but holds %zu bytes",
                          src, nm, n, n * es, tp->raw_data.len);
            goto fail;
        }
        raw = tp->raw_data.data;
    } else {
        typed = dt == T_FLOAT    ? tp->n_float_data
                : dt == T_INT64  ? tp->n_int64_data
                : dt == T_DOUBLE ? tp->n_double_data
                                 : tp->n_int32_data;
        if (typed != n) {
            st = pml_fail(PML_EFORMAT, "%s: tensor '%s' declares %zu elements but holds %zu", src,
                          nm, n, typed);
            goto fail;
        }
    }
    if ((st = pml__tensor_alloc(t, src)) != PML_OK) goto fail;
    bool is_int = dt != T_FLOAT && dt != T_DOUBLE;
    if (is_int && ints && !(*ints = malloc((n ? n : 1) * sizeof **ints))) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory", src);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        double f;
        int64_t v = 0;
        if (raw) {
            const unsigned char *p = raw + i * es;
            switch (dt) {
            case T_FLOAT: { float x; memcpy(&x, p, 4); f = x; break; }
            case T_DOUBLE: { memcpy(&f, p, 8); break; }
            case T_INT32: { int32_t x; memcpy(&x, p, 4); v = x; f = (double)x; break; }
            case T_INT64: { memcpy(&v, p, 8); f = (double)v; break; }
            case T_INT16: { int16_t x; memcpy(&x, p, 2); v = x; f = x; break; }
            case T_INT8: v = (int8_t)*p; f = (double)v; break;
            default: v = *p; f = (double)v; break;
            }
        } else {
            switch (dt) {
            case T_FLOAT: f = tp->float_data[i]; break;
            case T_DOUBLE: f = tp->double_data[i]; break;
            case T_INT64: v = tp->int64_data[i]; f = (double)v; break;
            default: v = tp->int32_data[i]; f = (double)v; break;
            }
        }
        t->data[i] = (float)f;
        if (is_int && ints) (*ints)[i] = v;
    }
    free(ext);
    t->type = dt;
    if (tp->name && !(t->name = strdup(tp->name))) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory", src);
        goto fail;
    }
    return PML_OK;
fail:
    free(ext);
    if (ints) {
        free(*ints);
        *ints = NULL;
    }
    pml_tensor_free(t);
    return st;
}

pml_status pml__pb_tensor_read(const char *path, pml_tensor *t)
{
    memset(t, 0, sizeof *t);
    char *buf;
    size_t len;
    pml_status st = pml_read_file(path, PML_TENSOR_MAX_BYTES, &buf, &len);
    if (st != PML_OK) return st;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, (const uint8_t *)buf);
    free(buf);
    if (!tp)
        return pml_fail(PML_EFORMAT, "%s: not an ONNX TensorProto (protobuf cannot parse it)",
                        path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    st = tp_data(tp, path, dir, t, NULL);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

pml_status pml__pb_tensor_write(const char *path, const pml_tensor *t)
{
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    size_t es;
    tp.n_dims = (size_t)t->rank;
    tp.dims = (int64_t *)t->dims;
    tp.has_data_type = 1;
    tp.data_type = pml__tensor_wtype(t, &es);
    tp.name = t->name;
    tp.has_raw_data = 1;
    tp.raw_data.len = t->n * es;
    uint8_t *raw = pml__tensor_bytes(t);
    tp.raw_data.data = raw;
    size_t len = onnx__tensor_proto__get_packed_size(&tp);
    uint8_t *buf = raw ? malloc(len ? len : 1) : NULL;
    if (!buf) {
        free(raw);
        return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    }
    onnx__tensor_proto__pack(&tp, buf);
    free(raw);
    pml_status st = pml_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- the importer */

/* V_MASK, V_INDICES: a Dropout's mask, a MaxPool's Indices (node: the pool), shaped as the
 * tensor (node, rank, views) beside them; V_RUNMEAN, V_RUNVAR: a training-mode
 * BatchNormalization's running statistics after the batch (node: the batchnorm), one value a
 * channel. Taken only as graph outputs (derived outputs) */
typedef enum { V_TENSOR = 1, V_CONST, V_WEIGHT, V_MASK, V_INDICES, V_RUNMEAN, V_RUNVAR } vkind;

static bool derived(vkind k) { return k >= V_MASK; }

static const char *derived_name(vkind k)
{
    return k == V_MASK      ? "Dropout's mask"
           : k == V_INDICES ? "MaxPool's Indices"
           : k == V_RUNMEAN ? "BatchNormalization's running mean"
                            : "BatchNormalization's running variance";
}

typedef struct val {
    const char *name;
    vkind kind;
    int uses;     /* consumers: nodes' inputs and the graph's outputs */
    /* V_TENSOR */
    int node;     /* the pml node producing it */
    int rank;     /* ONNX rank: 2, 3 or 4 (1: an input of rank 1, one sample) */
    int vrank;    /* > 0: node's output seen as vdims (a Flatten over another axis than 1), */
    int64_t vdims[PML_TENSOR_MAX_RANK]; /* vdims[vbatch] times the samples (-1: one sample); */
    int vbatch;   /* only as the graph's output or a Softmax's input */
    bool softmax; /* the softmax of node's output over axis (only as the graph's output) */
    int axis;
    bool coerced; /* opsets before 13: over all axes from axis on */
    bool log;     /* its log (a LogSoftmax) */
    int padh, padw; /* node's output with this zero padding (a Pad), for a Conv or AveragePool */
    /* V_CONST: the values (ints: exact, for integer types); V_WEIGHT: t.dims only */
    pml_tensor t;
    int64_t *ints;
    int input;    /* V_WEIGHT: index in pml_onnx.inputs */
    bool symbolic; /* V_WEIGHT: a dimension is symbolic (only a data input may be so) */
    bool column_major; /* V_INDICES: storage_order 1 */
} val;

struct pml_onnx_bind {
    int node, slot;
    bool state;
    int trows, tcols; /* > 0: the source is (trows, tcols), stored transposed */
    float scale;
    bool broadcast;   /* a source of one value fills the slot */
    int tile[3];      /* > 0: the source is (tile[0], tile[1], tile[2]), each 1 or the node's
                         output's (C, H, W), repeated along its 1s (an add's addend) */
};

typedef struct assign {
    struct pml_onnx_bind b;
    int src; /* val index */
} assign;

typedef struct imp {
    const char *path;
    char dir[4096];
    Onnx__GraphProto *gp;
    pml_onnx *m;
    pml_graph *g;
    val *v;
    int nv, capv;
    assign *as;
    int nas, capas;
    int64_t batch;    /* the data input's declared batch (-1: symbolic) */
    bool whole;       /* every tensor is one sample, its first axis a sample's (see parse) */
    bool joins_batch; /* a node joins tensors along the batch: import again whole */
    const pml_tensor *given; /* values of graph inputs known at import (ngiven of them) */
    int ngiven;
    const Onnx__NodeProto *node; /* the node being imported (messages) */
    int node_index;
    unsigned char *taken; /* [node]: imported with an earlier one (an expanded Softmax's) */
} imp;

/* ---------------------------------------------------------------- messages */

static const char *node_label(const imp *im)
{
    static __thread char buf[160];
    const Onnx__NodeProto *n = im->node;
    if (n->name && *n->name)
        snprintf(buf, sizeof buf, "%s", pml_dot_brief(n->name));
    else if (n->n_output && n->output[0] && *n->output[0])
        snprintf(buf, sizeof buf, "#%d, output %s", im->node_index, pml_dot_brief(n->output[0]));
    else
        snprintf(buf, sizeof buf, "#%d", im->node_index);
    return buf;
}

/* fails naming the file and the node being imported */
static pml_status nfail(imp *im, pml_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pml_status nfail(imp *im, pml_status st, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pml_fail(st, "%s: node '%s' (%s): %s", im->path, node_label(im),
                    pml_dot_brief(im->node->op_type ? im->node->op_type : ""), msg);
}

static const char supported_ops[] =
    "Conv, Gemm, MatMul, Relu, Sigmoid, Tanh, LeakyRelu, Elu, Selu, Softplus, Softsign, "
    "HardSigmoid, ThresholdedRelu, HardSwish, Clip, MaxPool, AveragePool, GlobalAveragePool, "
    "GlobalMaxPool, ReduceMean (over the spatial axes), Mul (of two tensors, or by a value per "
    "channel), "
    "BatchNormalization, Flatten, Reshape, Add, Sum, Concat, Dropout, Softmax, LogSoftmax, "
    "Identity, Pad (zeros, before Conv or AveragePool), an expanded Softmax or LogSoftmax "
    "(ReduceMax, Sub, Exp, ReduceSum, Div or Log and Sub); folded: Constant, Shape, Gather, "
    "Unsqueeze, Squeeze, Concat, Cast, Slice, Transpose (of constants)";

/* ---------------------------------------------------------------- values */

static int find_val(const imp *im, const char *name)
{
    for (int i = im->nv - 1; i >= 0; i--)
        if (strcmp(im->v[i].name, name) == 0) return i;
    return -1;
}

static int new_val(imp *im, const char *name, vkind kind)
{
    if (im->nv == im->capv) {
        int cap = im->capv ? 2 * im->capv : 64;
        val *v = realloc(im->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        im->v = v;
        im->capv = cap;
    }
    val *x = &im->v[im->nv];
    memset(x, 0, sizeof *x);
    x->name = name;
    x->kind = kind;
    x->node = x->input = -1;
    return im->nv++;
}

/* the value an input of the node names (NULL for an absent optional input "") */
static val *in_val(imp *im, int i)
{
    const Onnx__NodeProto *n = im->node;
    if ((size_t)i >= n->n_input || !n->input[i] || !*n->input[i]) return NULL;
    int k = find_val(im, n->input[i]);
    return k < 0 ? NULL : &im->v[k];
}

/* a new value for output i of the node */
static val *out_val(imp *im, int i, vkind kind)
{
    int k = new_val(im, im->node->output[i], kind);
    return k < 0 ? NULL : &im->v[k];
}

static pml_status oom(imp *im) { return pml_fail(PML_ENOMEM, "%s: out of memory", im->path); }

/* uses of every value: counted ahead for values defined later by walking names */
static int uses_of(const imp *im, const char *name)
{
    int u = 0;
    for (size_t i = 0; i < im->gp->n_node; i++)
        for (size_t j = 0; j < im->gp->node[i]->n_input; j++)
            if (im->gp->node[i]->input[j] && strcmp(im->gp->node[i]->input[j], name) == 0) u++;
    for (size_t j = 0; j < im->gp->n_output; j++)
        if (im->gp->output[j]->name && strcmp(im->gp->output[j]->name, name) == 0) u++;
    return u;
}

/* Is graph input `in` (rank 2) read by one node alone, a Gemm's A with transA = 1? Then its
 * columns are the samples (see transposed_input). */
static bool taken_transposed(const imp *im, const pml_onnx_input *in)
{
    const char *name = in->name;
    if (im->whole || in->rank != 2 || uses_of(im, name) != 1) return false;
    for (size_t i = 0; i < im->gp->n_node; i++) {
        const Onnx__NodeProto *n = im->gp->node[i];
        if (n->n_input < 1 || !n->input[0] || strcmp(n->input[0], name) != 0) continue;
        if (!n->op_type || strcmp(n->op_type, "Gemm") != 0) return false;
        for (size_t a = 0; a < n->n_attribute; a++)
            if (n->attribute[a]->name && strcmp(n->attribute[a]->name, "transA") == 0)
                return n->attribute[a]->has_i && n->attribute[a]->i != 0;
        return false;
    }
    return false;
}

/* ---------------------------------------------------------------- attributes */

static const Onnx__AttributeProto *attr(const imp *im, const char *name)
{
    for (size_t i = 0; i < im->node->n_attribute; i++)
        if (im->node->attribute[i]->name && strcmp(im->node->attribute[i]->name, name) == 0)
            return im->node->attribute[i];
    return NULL;
}

static int64_t attr_int(const imp *im, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr(im, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const imp *im, const char *name, float def)
{
    const Onnx__AttributeProto *a = attr(im, name);
    return a && a->has_f ? a->f : def;
}

/* the ints of an attribute: *n of them (0 when absent) */
static const int64_t *attr_ints(const imp *im, const char *name, size_t *n)
{
    const Onnx__AttributeProto *a = attr(im, name);
    *n = a ? a->n_ints : 0;
    return a ? a->ints : NULL;
}

static bool attr_str_is(const imp *im, const char *name, const char *want, bool absent)
{
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a || !a->has_s) return absent;
    return a->s.len == strlen(want) && memcmp(a->s.data, want, a->s.len) == 0;
}

/* Refuses attributes other than those listed (NULL-terminated). */
static pml_status only_attrs(imp *im, const char *const *known)
{
    for (size_t i = 0; i < im->node->n_attribute; i++) {
        const char *a = im->node->attribute[i]->name ? im->node->attribute[i]->name : "";
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, a) == 0;
        if (!ok)
            return nfail(im, PML_EUNSUPPORTED, "attribute '%s' is not supported",
                         pml_dot_brief(a));
    }
    return PML_OK;
}

/* ---------------------------------------------------------------- pml nodes */

/* A name for a new pml node: the ONNX node's name (its first output's when it has none),
 * a leading '/' dropped, made unique and short. */
static void node_name(imp *im, const char *suffix, char *out)
{
    const Onnx__NodeProto *n = im->node;
    const char *base = n && n->name && *n->name                  ? n->name
                       : n && n->n_output && n->output[0] && *n->output[0] ? n->output[0]
                       : suffix                                           ? ""
                                                                          : "node";
    char b[PML_NAME_MAX] = "";
    size_t k = 0;
    if (base[0] == '/' && strchr(base + 1, '/')) {
        /* PyTorch's "/layer1/layer1.0/conv1/Conv": the module's name, "layer1.0.conv1" */
        const char *p = base + 1, *end = strrchr(base, '/');
        while (p < end) {
            const char *q = memchr(p, '/', (size_t)(end - p));
            size_t len = q ? (size_t)(q - p) : (size_t)(end - p);
            if (!(k && len > k && strncmp(p, b, k) == 0 && p[k] == '.')) { /* not "b.x" */
                if (k && k + 1 < sizeof b - 16) b[k++] = '.';
            } else {
                k = 0;
            }
            for (size_t i = 0; i < len && k + 1 < sizeof b - 16; i++) b[k++] = p[i];
            b[k] = 0;
            p += len + 1;
        }
    } else {
        while (*base == '/') base++;
        for (const char *p = base; *p && k + 1 < sizeof b - 16; p++) b[k++] = *p;
    }
    b[k] = 0;
    for (char *p = b; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '\\' || *p == '"') *p = '_';
    if (!k && !suffix) snprintf(b, sizeof b, "node");
    snprintf(out, PML_NAME_MAX, "%s%s", b, suffix ? suffix : "");
    for (int i = 2; pml_graph_find(im->g, out) >= 0; i++)
        snprintf(out, PML_NAME_MAX, "%s%s_%d", b, suffix ? suffix : "", i);
}

/* Adds a node and infers its shape at once (the importer decides by shapes). \return its id, or
 * -1 with the message naming the ONNX node. */
static int add_node(imp *im, const char *suffix, pml_op_type op, const pml_attrs *a, int nin,
                    const int *in)
{
    char name[PML_NAME_MAX];
    node_name(im, suffix, name);
    int id = pml_graph_add(im->g, name, op, a, nin, in);
    if (id < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pml_errmsg());
        nfail(im, PML_EFORMAT, "%s", msg);
        return -1;
    }
    pml_shape s[PML_MAX_INPUTS];
    for (int i = 0; i < nin; i++) s[i] = im->g->nodes[in[i]].out;
    pml_node *n = &im->g->nodes[id];
    if (pml_ops[op].infer(n, s, nin) != PML_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pml_errmsg());
        nfail(im, PML_ESHAPE, "%s", msg);
        return -1;
    }
    return id;
}

static pml_shape shape_of(const imp *im, const val *x) { return im->g->nodes[x->node].out; }

/* Records that slot (node, slot) takes the values of constant or weight \p src (tiled as
 * \p tile says, when tile[0] > 0). */
static pml_status assign_tiled(imp *im, val *src, int node, int slot, bool state, int trows,
                               int tcols, float scale, bool broadcast, const int tile[3])
{
    if (src->kind == V_WEIGHT && im->m->inputs[src->input].data)
        return nfail(im, PML_EUNSUPPORTED,
                     "graph input '%s' is data another node takes; pml takes a graph input as "
                     "data or as a weight, not both",
                     pml_dot_brief(src->name));
    if (src->kind == V_WEIGHT && src->symbolic)
        return nfail(im, PML_EUNSUPPORTED,
                     "graph input '%s' (a weight here) has a symbolic dimension",
                     pml_dot_brief(src->name));
    if (im->nas == im->capas) {
        int cap = im->capas ? 2 * im->capas : 64;
        assign *a = realloc(im->as, (size_t)cap * sizeof *a);
        if (!a) return oom(im);
        im->as = a;
        im->capas = cap;
    }
    im->as[im->nas++] =
        (assign){{node, slot, state, trows, tcols, scale, broadcast, {tile[0], tile[1], tile[2]}},
                 (int)(src - im->v)};
    return PML_OK;
}

/* Records that slot (node, slot) takes the values of constant or weight \p src. */
static pml_status assign_to(imp *im, val *src, int node, int slot, bool state, int trows, int tcols,
                            float scale, bool broadcast)
{
    const int none[3] = {0, 0, 0};
    return assign_tiled(im, src, node, slot, state, trows, tcols, scale, broadcast, none);
}

/* A weight input: a float constant or a run-time weight of the given rank. */
static pml_status weight_in(imp *im, int i, const char *what, int rank, val **out)
{
    val *w = in_val(im, i);
    if (!w)
        return nfail(im, PML_EFORMAT, "its %s (input %d) is missing", what, i);
    if (w->kind == V_TENSOR)
        return nfail(im, PML_EUNSUPPORTED,
                     "its %s '%s' is computed by the graph; pml needs weights from initializers "
                     "or graph inputs",
                     what, pml_dot_brief(w->name));
    if (w->kind == V_WEIGHT && (w->symbolic || im->m->inputs[w->input].data))
        return nfail(im, PML_EUNSUPPORTED,
                     "its %s '%s' is a graph input %s; pml takes weights of known shapes", what,
                     pml_dot_brief(w->name),
                     w->symbolic ? "with a symbolic dimension" : "another node takes as data");
    if (rank >= 0 && w->t.rank != rank)
        return nfail(im, PML_ESHAPE, "its %s '%s' has rank %d, needs %d", what,
                     pml_dot_brief(w->name), w->t.rank, rank);
    *out = w;
    return PML_OK;
}

/* The planes of node id's output when it is 3-D (0 for 2-D): a 3-D window's od, an input's
 * depth, else its first input's (relu, batchnorm, add, dropout and channel concat keep them). */
static int node_depth(const pml_graph *g, int id)
{
    for (;;) {
        const pml_node *n = &g->nodes[id];
        if (n->op == PML_OP_CONV2D || n->op == PML_OP_MAXPOOL2D || n->op == PML_OP_AVGPOOL2D)
            return n->a.depth > 0 ? n->a.od : 0;
        if (n->op == PML_OP_INPUT) return n->a.depth;
        if (n->nin == 0 || n->op == PML_OP_FLATTEN || n->op == PML_OP_LINEAR) return 0;
        id = n->in[0];
    }
}

/* Is tensor x one sample, its ONNX dims a sample's (C[, H[, W]])? An input of rank 1, or any
 * tensor of a model imported whole. */
static bool one_sample(const imp *im, const val *x) { return im->whole || x->rank == 1; }
static bool one_input(const imp *im, const pml_onnx_input *in)
{
    return im->whole || in->rank == 1;
}

/* x's ONNX dims into d (rank returned): d[*batch] times the samples (-1: one sample) */
static int dims_of(const imp *im, const val *x, int64_t *d, int *batch)
{
    if (x->vrank) {
        memcpy(d, x->vdims, sizeof x->vdims);
        *batch = x->vbatch;
        return x->vrank;
    }
    const pml_shape s = im->g->nodes[x->node].out;
    const int64_t all[4] = {1, s.c, s.h, s.w};
    if (x->rank == 5) { /* (N, C, D, H, W): pml's rows are D planes of H */
        const int64_t D = node_depth(im->g, x->node);
        const int64_t all5[5] = {1, s.c, D, D > 0 ? s.h / D : s.h, s.w};
        memcpy(d, all5, sizeof all5);
        *batch = 0;
        return 5;
    }
    if (one_sample(im, x)) { /* (C[, H[, W]]) */
        memcpy(d, all + 1, (size_t)x->rank * sizeof *d);
        *batch = -1;
        return x->rank;
    }
    memcpy(d, all, (size_t)x->rank * sizeof *d);
    *batch = 0;
    return x->rank;
}

static pml_status input_node(imp *im, int idx, int *out);

/* Graph input x, a weight until now, taken as a tensor: a data input, fed like the first (its
 * own input node and per-sample shape, the batch shared). Refused when a node took it as a
 * weight already, or when its batch cannot be the first input's. */
static pml_status to_data(imp *im, val *x)
{
    pml_onnx *m = im->m;
    pml_onnx_input *in = &m->inputs[x->input];
    if (!in->data) {
        for (int i = 0; i < im->nas; i++) {
            const val *s = &im->v[im->as[i].src];
            if (s->kind == V_WEIGHT && s->input == x->input)
                return nfail(im, PML_EUNSUPPORTED,
                             "graph input '%s' is a weight of another node; pml takes a graph "
                             "input as data or as a weight, not both",
                             pml_dot_brief(x->name));
        }
        const pml_onnx_input *first = &m->inputs[0];
        /* one sample (rank 1) with one sample; else the same batch, or a symbolic one */
        const bool one = one_input(im, in), first_one = one_input(im, first);
        const int64_t fbatch = first->transposed ? first->dims[1] : first->dims[0];
        const int at = taken_transposed(im, in); /* its batch's axis */
        const int64_t batch = in->dims[at];
        if (one != first_one || (!one && batch >= 0 && fbatch >= 0 && batch != fbatch)) {
            char b[32], fb[32];
            snprintf(b, sizeof b, one ? "none (rank 1: one sample)" : "%lld", (long long)batch);
            snprintf(fb, sizeof fb, first_one ? "none (rank 1: one sample)" : "%lld",
                     (long long)fbatch);
            return nfail(im, PML_EUNSUPPORTED,
                         "graph input '%s' as data: its batch (dimension %d) is %s, input '%s''s "
                         "%s; pml's data inputs share the batch",
                         pml_dot_brief(x->name), at, b, pml_dot_brief(first->name), fb);
        }
        int id;
        pml_status st = input_node(im, x->input, &id);
        if (st != PML_OK) return st;
    }
    x->kind = V_TENSOR;
    x->node = in->node;
    x->rank = in->rank;
    return PML_OK;
}

/* A tensor the graph computes, which may be a view (a Flatten over another axis than 1). */
static pml_status view_in(imp *im, int i, val **out)
{
    val *x = in_val(im, i);
    if (!x) return nfail(im, PML_EFORMAT, "input %d is missing", i);
    pml_status st;
    if (x->kind == V_WEIGHT && (st = to_data(im, x)) != PML_OK) return st;
    if (derived(x->kind))
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is a %s; pml computes it only as a graph output",
                     pml_dot_brief(x->name), derived_name(x->kind));
    if (x->kind != V_TENSOR)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is a constant or weight where pml needs a tensor the graph "
                     "computes",
                     pml_dot_brief(x->name));
    if (x->softmax)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is a %s; pml takes Softmax and LogSoftmax only as the graph's "
                     "output",
                     pml_dot_brief(x->name), x->log ? "LogSoftmax" : "Softmax");
    if (x->padh || x->padw)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is a Pad; pml takes Pad only before a Conv or AveragePool",
                     pml_dot_brief(x->name));
    *out = x;
    return PML_OK;
}

/* The data input of a node: a tensor the graph computes. */
static pml_status tensor_in(imp *im, int i, val **out)
{
    pml_status st = view_in(im, i, out);
    if (st == PML_OK && (*out)->vrank)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is a Flatten over axis %d; pml takes that only as the graph's "
                     "output (it flattens each sample: axis 1)",
                     pml_dot_brief((*out)->name), (int)(*out)->vdims[0]);
    return st;
}

/* A tensor input that may be a Pad's zero padding: *ph, *pw receive it. */
static pml_status padded_in(imp *im, int i, val **out, int *ph, int *pw)
{
    val *x = in_val(im, i);
    *ph = *pw = 0;
    if (x && x->kind == V_TENSOR && (x->padh || x->padw)) {
        *ph = x->padh;
        *pw = x->padw;
        *out = x;
        return PML_OK;
    }
    return tensor_in(im, i, out);
}

static pml_status tensor_out(imp *im, int node, int rank)
{
    val *y = out_val(im, 0, V_TENSOR);
    if (!y) return oom(im);
    y->node = node;
    y->rank = rank;
    return PML_OK;
}

/* The value of output 0 is input value x (an alias). */
static pml_status alias_out(imp *im, const val *x)
{
    int k = (int)(x - im->v);
    val *y = out_val(im, 0, x->kind);
    if (!y) return oom(im);
    x = &im->v[k]; /* the array may have moved */
    const char *name = y->name;
    int uses = y->uses;
    *y = *x;
    y->name = name;
    y->uses = uses;
    y->t.data = NULL; /* a constant's data stays owned by x: copy it */
    y->t.name = NULL;
    y->ints = NULL;
    if (x->kind != V_TENSOR) {
        size_t n = x->t.n ? x->t.n : 1;
        if (!(y->t.data = malloc(n * sizeof(float)))) return oom(im);
        memcpy(y->t.data, x->t.data, x->t.n * sizeof(float));
        if (x->ints) {
            if (!(y->ints = malloc(n * sizeof(int64_t)))) return oom(im);
            memcpy(y->ints, x->ints, x->t.n * sizeof(int64_t));
        }
    }
    return PML_OK;
}

/* Output i of the node, when it has one, as a value of \p kind shaped as output 0's (a
 * Dropout's mask, a MaxPool's Indices; node: \p node). */
static pml_status derived_out(imp *im, int i, vkind kind, int node)
{
    const Onnx__NodeProto *n = im->node;
    if ((size_t)i >= n->n_output || !n->output[i] || !*n->output[i]) return PML_OK;
    const int k = find_val(im, n->output[0]);
    val *y = out_val(im, i, kind);
    if (!y) return oom(im);
    const val *x = &im->v[k]; /* the array may have moved */
    y->node = node;
    y->rank = x->rank;
    y->vrank = x->vrank;
    memcpy(y->vdims, x->vdims, sizeof y->vdims);
    y->vbatch = x->vbatch;
    return PML_OK;
}

/* ---------------------------------------------------------------- spatial attributes */

typedef struct window {
    int kh, kw, sh, sw, ph, pw, pad_mode, dh, dw;
    int kd, sd, pd, dd; /* rank 5: the depth's (else 1, 1, 0, 1) */
} window;

/* kernel_shape (or the weight's kernel dims), strides, pads, auto_pad, dilations of a conv or
 * pool on a rank-3, rank-4 or rank-5 tensor */
static pml_status window_attrs(imp *im, int rank, const int64_t *kdims, int xph, int xpw,
                               bool dilation, window *w)
{
    int sp = rank - 2; /* spatial dims: 1, 2 or 3 */
    size_t nk, ns, np, nd;
    const int64_t *k = attr_ints(im, "kernel_shape", &nk), *s = attr_ints(im, "strides", &ns),
                  *p = attr_ints(im, "pads", &np), *d = attr_ints(im, "dilations", &nd);
    if (!k && !kdims) return nfail(im, PML_EFORMAT, "kernel_shape is missing");
    if ((k && nk != (size_t)sp) || (s && ns != (size_t)sp) || (p && np != (size_t)(2 * sp)) ||
        (d && nd != (size_t)sp))
        return nfail(im, PML_EFORMAT,
                     "kernel_shape, strides, dilations need %d values and pads %d for a rank-%d "
                     "input",
                     sp, 2 * sp, rank);
    for (int i = 0; i < sp; i++) {
        if (k && kdims && k[i] != kdims[i])
            return nfail(im, PML_ESHAPE, "kernel_shape %lld differs from the weight's %lld",
                         (long long)k[i], (long long)kdims[i]);
        int64_t kv = k ? k[i] : kdims[i];
        if (kv <= 0 || kv > 1 << 16 || (s && (s[i] <= 0 || s[i] > 1 << 16)) ||
            (p && (p[i] < 0 || p[i + sp] < 0 || p[i] > 1 << 16 || p[i + sp] > 1 << 16)))
            return nfail(im, PML_EFORMAT, "kernel_shape, strides or pads out of range");
        if (d && (d[i] < 1 || d[i] > 1 << 16))
            return nfail(im, PML_EFORMAT, "dilations %lld out of range", (long long)d[i]);
        if (d && d[i] != 1 && !dilation)
            return nfail(im, PML_EUNSUPPORTED,
                         "dilations %lld: pml dilates Conv and MaxPool windows only",
                         (long long)d[i]);
        if (p && p[i] != p[i + sp])
            return nfail(im, PML_EUNSUPPORTED,
                         "asymmetric pads (%lld before, %lld after): pml pads both sides alike",
                         (long long)p[i], (long long)p[i + sp]);
    }
    w->kd = w->sd = w->dd = 1, w->pd = 0;
    if (sp == 3) { /* the depth first; then as a rank-4 window */
        w->kd = (int)(k ? k[0] : kdims[0]);
        w->sd = s ? (int)s[0] : 1;
        w->pd = p ? (int)p[0] : 0;
        w->dd = d ? (int)d[0] : 1;
        k = k ? k + 1 : NULL;
        kdims = kdims ? kdims + 1 : NULL;
        s = s ? s + 1 : NULL;
        p = p ? p + 1 : NULL;
        d = d ? d + 1 : NULL;
        sp = 2;
    }
    w->kh = (int)(k ? k[0] : kdims[0]);
    w->kw = sp == 2 ? (int)(k ? k[1] : kdims[1]) : 1;
    w->sh = s ? (int)s[0] : 1;
    w->sw = sp == 2 && s ? (int)s[1] : 1;
    w->ph = p ? (int)p[0] : 0;
    w->pw = sp == 2 && p ? (int)p[1] : 0;
    w->dh = d ? (int)d[0] : 1;
    w->dw = sp == 2 && d ? (int)d[1] : 1;
    w->pad_mode = PML_PAD_EXPLICIT;
    if (attr_str_is(im, "auto_pad", "SAME_UPPER", false)) {
        w->pad_mode = PML_PAD_SAME;
    } else if (attr_str_is(im, "auto_pad", "SAME_LOWER", false)) {
        w->pad_mode = PML_PAD_SAME_LOWER;
    } else if (attr_str_is(im, "auto_pad", "VALID", false)) {
        w->pad_mode = PML_PAD_VALID;
    } else if (!attr_str_is(im, "auto_pad", "NOTSET", true)) {
        return nfail(im, PML_EFORMAT, "auto_pad is not NOTSET, VALID, SAME_UPPER or SAME_LOWER");
    }
    if (w->pad_mode != PML_PAD_EXPLICIT && p)
        return nfail(im, PML_EFORMAT, "pads given with auto_pad");
    if (xph || xpw) { /* a Pad before it */
        if (w->pad_mode != PML_PAD_EXPLICIT)
            return nfail(im, PML_EUNSUPPORTED, "a Pad before a window with auto_pad");
        w->ph += xph;
        w->pw += xpw;
    }
    return PML_OK;
}

static pml_status rank_is_spatial(imp *im, const val *x)
{
    if (x->rank < 3 || x->rank > 5)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' has rank %d; pml's windows take rank 3, 4 or 5",
                     pml_dot_brief(x->name), x->rank);
    return PML_OK;
}

/* ---------------------------------------------------------------- operators */

static pml_status op_conv(imp *im)
{
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads",
                                        "strides", NULL};
    val *x, *w, *b = NULL;
    pml_status st;
    int xph, xpw;
    if ((st = only_attrs(im, known)) != PML_OK || (st = padded_in(im, 0, &x, &xph, &xpw)) != PML_OK ||
        (st = rank_is_spatial(im, x)) != PML_OK ||
        (st = weight_in(im, 1, "weight", x->rank, &w)) != PML_OK)
        return st;
    if (in_val(im, 2) && (st = weight_in(im, 2, "bias", 1, &b)) != PML_OK) return st;
    int64_t group = attr_int(im, "group", 1);
    pml_shape xs = shape_of(im, x);
    if (group < 1 || group > xs.c || xs.c % group || w->t.dims[0] % group)
        return nfail(im, PML_ESHAPE, "group=%lld does not divide the %d input channels and %lld "
                     "filters", (long long)group, xs.c, (long long)w->t.dims[0]);
    if (w->t.dims[1] * group != xs.c || w->t.dims[0] <= 0 || w->t.dims[0] > 1 << 24)
        return nfail(im, PML_ESHAPE,
                     "weight '%s' is %lldx%lld..., the input has %d channels in %lld groups",
                     pml_dot_brief(w->name), (long long)w->t.dims[0], (long long)w->t.dims[1],
                     xs.c, (long long)group);
    if (b && b->t.dims[0] != w->t.dims[0])
        return nfail(im, PML_ESHAPE, "bias '%s' has %lld values for %lld filters",
                     pml_dot_brief(b->name), (long long)b->t.dims[0], (long long)w->t.dims[0]);
    window wd;
    if ((st = window_attrs(im, x->rank, w->t.dims + 2, xph, xpw, true, &wd)) != PML_OK) return st;
    pml_attrs a = pml_attrs_default(PML_OP_CONV2D);
    a.out = (int)w->t.dims[0];
    a.kh = wd.kh, a.kw = wd.kw, a.sh = wd.sh, a.sw = wd.sw;
    a.pad_mode = wd.pad_mode, a.ph = wd.ph, a.pw = wd.pw;
    a.groups = (int)group, a.dh = wd.dh, a.dw = wd.dw;
    if (x->rank == 5) { /* 3-D */
        if (xph || xpw)
            return nfail(im, PML_EUNSUPPORTED, "a Pad before a 3-D Conv");
        a.depth = (int)node_depth(im->g, x->node);
        a.kd = wd.kd, a.sd = wd.sd, a.pd = wd.pd, a.dd = wd.dd;
    }
    a.bias = b != NULL;
    int wi = (int)(w - im->v), bi = b ? (int)(b - im->v) : -1;
    int id = add_node(im, NULL, PML_OP_CONV2D, &a, 1, &x->node);
    if (id < 0) return PML_ESHAPE;
    if ((st = assign_to(im, &im->v[wi], id, 0, false, 0, 0, 1.0f, false)) != PML_OK) return st;
    if (bi >= 0 && (st = assign_to(im, &im->v[bi], id, 1, false, 0, 0, 1.0f, false)) != PML_OK)
        return st;
    return tensor_out(im, id, x->rank);
}

/* Gemm (A B' + C with alpha, beta) and MatMul with a 2-D weight: linear */
/* MatMul of two tensors of a sample's matrices: (N, M, K) by (N, K, P), one matrix a sample
 * (pml's (M, K, 1): its rows the channels), or (N, C, M, K) by (N, C, K, P): pml's matmul. The
 * second a graph input (data then) or a tensor the graph computes, of the first's rank. */
static pml_status batched_matmul(imp *im, val *a)
{
    val *b = in_val(im, 1);
    if (!b) return nfail(im, PML_EFORMAT, "input 1 is missing");
    if (b->kind == V_CONST)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' has rank %d and '%s' is a weight: pml multiplies the matrices "
                     "of two tensors of a rank, or a rank-2 input by a weight",
                     pml_dot_brief(a->name), a->rank, pml_dot_brief(b->name));
    pml_status st = tensor_in(im, 1, &b);
    if (st != PML_OK) return st;
    if (b->rank != a->rank)
        return nfail(im, PML_EUNSUPPORTED,
                     "inputs of ranks %d and %d: pml multiplies the matrices of tensors of one "
                     "rank (no broadcasting)",
                     a->rank, b->rank);
    pml_attrs at = pml_attrs_default(PML_OP_MATMUL);
    at.axis = a->rank == 4;
    int in[2] = {a->node, b->node};
    int id = add_node(im, NULL, PML_OP_MATMUL, &at, 2, in);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, a->rank);
}

/* A Gemm's A with transA = 1: samples are its columns. pml's linear takes samples as rows, so
 * only a graph input A that this node alone reads is taken so: its input node holds a column of
 * A, the batch its columns (input_node), and pml infer reads the tensor transposed. */
static pml_status transposed_input(imp *im, const val *x)
{
    const pml_onnx *m = im->m;
    int k = 0;
    while (k < m->ninputs && !(m->inputs[k].data && m->inputs[k].node == x->node)) k++;
    if (k == m->ninputs || !m->inputs[k].transposed)
        return nfail(im, PML_EUNSUPPORTED,
                     "transA=1: pml's linear takes samples as rows (A transposed only when it is "
                     "a graph input of rank 2 that this node alone reads)");
    return PML_OK;
}

static pml_status op_gemm(imp *im, bool matmul)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    static const char *const none[] = {NULL};
    val *x, *w, *c = NULL;
    pml_status st;
    if ((st = only_attrs(im, matmul ? none : known)) != PML_OK ||
        (st = tensor_in(im, 0, &x)) != PML_OK)
        return st;
    if (matmul && (x->rank == 3 || x->rank == 4) && !one_sample(im, x))
        return batched_matmul(im, x);
    if (x->rank != 2)
        return nfail(im, PML_EUNSUPPORTED, "input '%s' has rank %d; pml's linear takes rank 2",
                     pml_dot_brief(x->name), x->rank);
    if ((st = weight_in(im, 1, "weight", 2, &w)) != PML_OK) return st;
    if (attr_int(im, "transA", 0) != 0 && (st = transposed_input(im, x)) != PML_OK) return st;
    bool tb = attr_int(im, "transB", 0) != 0;
    float alpha = attr_float(im, "alpha", 1.0f), beta = attr_float(im, "beta", 1.0f);
    int64_t K = tb ? w->t.dims[1] : w->t.dims[0], N = tb ? w->t.dims[0] : w->t.dims[1];
    pml_shape xs = shape_of(im, x);
    if (K != xs.c || N <= 0 || N > 1 << 24)
        return nfail(im, PML_ESHAPE, "weight '%s' is %lldx%lld%s; the input has %d features",
                     pml_dot_brief(w->name), (long long)w->t.dims[0], (long long)w->t.dims[1],
                     tb ? " (transposed)" : "", xs.c);
    /* C with a row per sample, a graph input given at run time or a tensor the graph computes
     * (PyTorch's addmm): data, added to the product as Add adds a graph input of the tensor's
     * rank */
    val *cv = matmul ? NULL : in_val(im, 2);
    if (cv &&
        ((cv->kind == V_WEIGHT && cv->t.rank == 2 && cv->t.dims[0] != 1 && cv->t.dims[1] == N) ||
         (cv->kind == V_TENSOR && cv->rank == 2 && shape_of(im, cv).c == N))) {
        if (beta != 1.0f)
            return nfail(im, PML_EUNSUPPORTED,
                         "beta=%g with C '%s' of a row per sample: pml adds such a C as data, "
                         "unscaled",
                         (double)beta, pml_dot_brief(cv->name));
        pml_attrs a = pml_attrs_default(PML_OP_LINEAR);
        a.out = (int)N;
        a.bias = 0;
        int wi = (int)(w - im->v);
        int id = add_node(im, "gemm", PML_OP_LINEAR, &a, 1, &x->node);
        if (id < 0) return PML_ESHAPE;
        if ((st = assign_to(im, &im->v[wi], id, 0, false, tb ? 0 : (int)K, tb ? 0 : (int)N, alpha,
                            false)) != PML_OK ||
            (st = tensor_in(im, 2, &c)) != PML_OK)
            return st;
        int in[2] = {id, c->node};
        int sum = add_node(im, NULL, PML_OP_ADD, NULL, 2, in);
        return sum < 0 ? PML_ESHAPE : tensor_out(im, sum, 2);
    }
    if (!matmul && in_val(im, 2) && (st = weight_in(im, 2, "bias", -1, &c)) != PML_OK) return st;
    bool cb = false;
    if (c) {
        bool vec = (c->t.rank == 1 && c->t.dims[0] == N) ||
                   (c->t.rank == 2 && c->t.dims[0] == 1 && c->t.dims[1] == N);
        cb = c->t.n == 1;
        if (!vec && !cb)
            return nfail(im, PML_EUNSUPPORTED,
                         "bias '%s' is not a vector of %lld or one value (pml's linear has one bias "
                         "per unit)",
                         pml_dot_brief(c->name), (long long)N);
    }
    pml_attrs a = pml_attrs_default(PML_OP_LINEAR);
    a.out = (int)N;
    a.bias = c != NULL;
    int wi = (int)(w - im->v), ci = c ? (int)(c - im->v) : -1;
    int id = add_node(im, NULL, PML_OP_LINEAR, &a, 1, &x->node);
    if (id < 0) return PML_ESHAPE;
    /* pml's W is (out, in) = B when transB = 1; B (in, out) is transposed */
    if ((st = assign_to(im, &im->v[wi], id, 0, false, tb ? 0 : (int)K, tb ? 0 : (int)N, alpha,
                        false)) != PML_OK)
        return st;
    if (ci >= 0 && (st = assign_to(im, &im->v[ci], id, 1, false, 0, 0, beta, cb)) != PML_OK)
        return st;
    return tensor_out(im, id, 2);
}

static pml_status op_relu(imp *im)
{
    static const char *const none[] = {NULL};
    val *x;
    pml_status st;
    if ((st = only_attrs(im, none)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    pml_node *p = &im->g->nodes[x->node];
    /* fused into the conv or linear before it when nothing else reads that one's output */
    if ((p->op == PML_OP_CONV2D || p->op == PML_OP_LINEAR) && p->a.act == PML_ACT_NONE &&
        x->uses == 1) {
        p->a.act = PML_ACT_RELU;
        return alias_out(im, x);
    }
    int id = add_node(im, NULL, PML_OP_RELU, NULL, 1, &x->node);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, x->rank);
}

/* ONNX's pointwise activations: pml's activation op, its function and parameters */
static const struct act_op {
    const char *name;
    int fn;
    const char *alpha, *beta; /* the ONNX attributes that hold them */
} act_ops[] = {
    {"Sigmoid", PML_FN_SIGMOID, NULL, NULL},
    {"Tanh", PML_FN_TANH, NULL, NULL},
    {"LeakyRelu", PML_FN_LEAKY_RELU, "alpha", NULL},
    {"Elu", PML_FN_ELU, "alpha", NULL},
    {"Selu", PML_FN_SELU, "alpha", "gamma"},
    {"Softplus", PML_FN_SOFTPLUS, NULL, NULL},
    {"Softsign", PML_FN_SOFTSIGN, NULL, NULL},
    {"HardSigmoid", PML_FN_HARD_SIGMOID, "alpha", "beta"},
    {"ThresholdedRelu", PML_FN_THRESHOLDED_RELU, "alpha", NULL},
    {"HardSwish", PML_FN_HARD_SWISH, NULL, NULL},
};

/* Clip (ReLU6 and its like): min and max as attributes (opsets before 11) or constant inputs;
 * one left out does not clip */
static pml_status op_clip(imp *im)
{
    static const char *const old[] = {"min", "max", NULL}, *const none[] = {NULL};
    val *x;
    pml_status st;
    if ((st = only_attrs(im, im->m->opset < 11 ? old : none)) != PML_OK ||
        (st = tensor_in(im, 0, &x)) != PML_OK)
        return st;
    float lim[2] = {-FLT_MAX, FLT_MAX};
    for (int i = 0; i < 2; i++) {
        if (im->m->opset < 11) {
            lim[i] = attr_float(im, i ? "max" : "min", lim[i]);
            continue;
        }
        const val *c = in_val(im, i + 1);
        if (!c) continue;
        if (c->kind != V_CONST || c->t.n != 1)
            return nfail(im, PML_EUNSUPPORTED, "%s '%s' is not a constant of one value",
                         i ? "max" : "min", pml_dot_brief(c->name));
        lim[i] = c->t.data[0];
    }
    if (!(lim[0] <= lim[1]) || isnan(lim[0]) || isnan(lim[1]))
        return nfail(im, PML_EFORMAT, "min %g above max %g", (double)lim[0], (double)lim[1]);
    x = in_val(im, 0);
    pml_attrs a = pml_attrs_default(PML_OP_ACTIVATION);
    a.fn = PML_FN_CLIP;
    a.alpha = isinf(lim[0]) ? -FLT_MAX : lim[0];
    a.beta = isinf(lim[1]) ? FLT_MAX : lim[1];
    int id = add_node(im, NULL, PML_OP_ACTIVATION, &a, 1, &x->node);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, x->rank);
}

/* ReduceMean over every spatial axis (a global average pool, as MnasNet's): keepdims keeps the
 * rank; without, (N, C) */
static pml_status op_reducemean(imp *im)
{
    static const char *const known[] = {"axes", "keepdims", NULL};
    val *x;
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    size_t na = 0;
    const int64_t *ax = attr_ints(im, "axes", &na);
    const val *axv = in_val(im, 1); /* opset 18: the axes as an input */
    if (!ax && axv) {
        if (axv->kind != V_CONST || !axv->ints)
            return nfail(im, PML_EUNSUPPORTED, "axes '%s' is not a constant",
                         pml_dot_brief(axv->name));
        ax = axv->ints;
        na = axv->t.n;
    }
    bool spatial = x->rank >= 3 && ax && na == (size_t)(x->rank - 2);
    for (size_t i = 0; spatial && i < na; i++) {
        int64_t k = ax[i] < 0 ? ax[i] + x->rank : ax[i];
        spatial = k >= 2 && k < x->rank;
        for (size_t j = 0; j < i; j++) spatial &= (ax[j] < 0 ? ax[j] + x->rank : ax[j]) != k;
    }
    if (!spatial)
        return nfail(im, PML_EUNSUPPORTED,
                     "pml takes ReduceMean over every spatial axis (2 to %d) of a tensor of rank "
                     "3 to 5 (a global average pool)",
                     x->rank - 1);
    pml_attrs a = pml_attrs_default(PML_OP_AVGPOOL2D);
    a.global = 1;
    a.kh = a.kw = a.sh = a.sw = 1;
    if (x->rank == 5) a.depth = node_depth(im->g, x->node);
    int id = add_node(im, NULL, PML_OP_AVGPOOL2D, &a, 1, &x->node);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, attr_int(im, "keepdims", 1) ? x->rank : 2);
}

/* Mul of two tensors the graph computes: of equal shapes, or one of them a value per channel
 * (N, C, 1, 1) (a squeeze-and-excitation block's scale; x * Sigmoid(x), SiLU, is the first) */
static pml_status op_mul(imp *im)
{
    static const char *const none[] = {NULL};
    pml_status st;
    if ((st = only_attrs(im, none)) != PML_OK) return st;
    if (im->node->n_input != 2) return nfail(im, PML_EFORMAT, "needs two inputs");
    for (int i = 0; i < 2; i++) {
        const val *v = in_val(im, i);
        if (v && v->kind == V_CONST)
            return nfail(im, PML_EUNSUPPORTED,
                         "multiplying by constant '%s': pml multiplies two tensors the graph "
                         "computes (of equal shapes, or one a value per channel)",
                         pml_dot_brief(v->name));
    }
    val *a, *b;
    if ((st = tensor_in(im, 0, &a)) != PML_OK || (st = tensor_in(im, 1, &b)) != PML_OK) return st;
    a = in_val(im, 0); /* the values may have moved */
    const pml_shape sa = shape_of(im, a), sb = shape_of(im, b);
    const bool chan_b = sb.c == sa.c && sb.h == 1 && sb.w == 1,
               chan_a = sa.c == sb.c && sa.h == 1 && sa.w == 1;
    if (a->rank != b->rank || (!pml_shape_eq(sa, sb) && !chan_a && !chan_b))
        return nfail(im, PML_EUNSUPPORTED,
                     "inputs '%s' and '%s' of ranks %d and %d: pml multiplies equal shapes, or "
                     "by one value per channel (N, C, 1, 1)",
                     pml_dot_brief(a->name), pml_dot_brief(b->name), a->rank, b->rank);
    int in[2] = {a->node, b->node}, rank = a->rank;
    if (!pml_shape_eq(sa, sb) && chan_a) in[0] = b->node, in[1] = a->node;
    int id = add_node(im, NULL, PML_OP_MUL, NULL, 2, in);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, rank);
}

static pml_status op_activation(imp *im)
{
    const struct act_op *d = NULL;
    for (size_t i = 0; i < sizeof act_ops / sizeof act_ops[0]; i++)
        if (strcmp(act_ops[i].name, im->node->op_type) == 0) d = &act_ops[i];
    const char *known[3] = {d->alpha, d->alpha ? d->beta : NULL, NULL};
    val *x;
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    pml_attrs a = pml_attrs_default(PML_OP_ACTIVATION);
    a.fn = d->fn;
    pml_fn_defaults(d->fn, &a.alpha, &a.beta);
    if (d->alpha) a.alpha = attr_float(im, d->alpha, a.alpha);
    if (d->beta) a.beta = attr_float(im, d->beta, a.beta);
    if (!isfinite(a.alpha) || !isfinite(a.beta))
        return nfail(im, PML_EFORMAT, "%s %g is not a finite number", d->alpha,
                     (double)(isfinite(a.alpha) ? a.beta : a.alpha));
    int id = add_node(im, NULL, PML_OP_ACTIVATION, &a, 1, &x->node);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, x->rank);
}

static pml_status op_pool(imp *im, pml_op_type op, bool global)
{
    static const char *const maxk[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                       "pads", "storage_order", "strides", NULL};
    static const char *const avgk[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                       "kernel_shape", "pads", "strides", NULL};
    static const char *const none[] = {NULL};
    val *x;
    pml_status st;
    int xph = 0, xpw = 0;
    if ((st = only_attrs(im, global ? none : op == PML_OP_MAXPOOL2D ? maxk : avgk)) != PML_OK ||
        (st = (op == PML_OP_AVGPOOL2D && !global ? padded_in(im, 0, &x, &xph, &xpw)
                                                 : tensor_in(im, 0, &x))) != PML_OK ||
        (st = rank_is_spatial(im, x)) != PML_OK)
        return st;
    pml_attrs a = pml_attrs_default(op);
    if (x->rank == 5) {
        if (xph || xpw) return nfail(im, PML_EUNSUPPORTED, "a Pad before a 3-D AveragePool");
        if (im->node->n_output > 1 && im->node->output[1] && *im->node->output[1])
            return nfail(im, PML_EUNSUPPORTED, "Indices of a 3-D MaxPool");
        a.depth = node_depth(im->g, x->node);
    }
    if (global) {
        a.global = 1;
        a.kh = a.kw = a.sh = a.sw = 1;
    } else {
        window wd;
        if ((st = window_attrs(im, x->rank, NULL, xph, xpw, op == PML_OP_MAXPOOL2D, &wd)) !=
            PML_OK)
            return st;
        if ((xph || xpw) && attr_int(im, "count_include_pad", 0) == 0 &&
            (wd.ph != xph || wd.pw != xpw))
            return nfail(im, PML_EUNSUPPORTED, "a Pad before an AveragePool with pads of its own");
        if (wd.ph >= wd.kh || wd.pw >= wd.kw || wd.pd >= wd.kd)
            return nfail(im, PML_EUNSUPPORTED,
                         "pads %dx%d%s not smaller than the kernel %dx%d (windows wholly in the "
                         "padding)",
                         wd.ph, wd.pw, wd.pd >= wd.kd ? " (or the depth's)" : "", wd.kh, wd.kw);
        a.kh = wd.kh, a.kw = wd.kw, a.sh = wd.sh, a.sw = wd.sw, a.dh = wd.dh, a.dw = wd.dw;
        if (a.depth > 0) a.kd = wd.kd, a.sd = wd.sd, a.pd = wd.pd, a.dd = wd.dd;
        a.pad_mode = wd.pad_mode, a.ph = wd.ph, a.pw = wd.pw;
        a.ceil_mode = attr_int(im, "ceil_mode", 0) != 0;
        a.count_pad = attr_int(im, "count_include_pad", 0) != 0 || xph || xpw; /* Pad: zeros */
        if (a.kh == 1 && a.kw == 1 && a.sh == 1 && a.sw == 1 && a.dh == 1 && a.dw == 1 &&
            (a.depth == 0 || (a.kd == 1 && a.sd == 1 && a.pd == 0)) &&
            (a.pad_mode != PML_PAD_EXPLICIT || (a.ph == 0 && a.pw == 0)))
            return alias_out(im, x); /* a window of one (AdaptiveAvgPool2d to its own size) */
    }
    int id = add_node(im, NULL, op, &a, 1, &x->node);
    if (id < 0) return PML_ESHAPE;
    if ((st = tensor_out(im, id, x->rank)) != PML_OK ||
        (st = derived_out(im, 1, V_INDICES, id)) != PML_OK)
        return st;
    if (im->node->n_output > 1 && im->node->output[1] && *im->node->output[1])
        im->v[im->nv - 1].column_major = attr_int(im, "storage_order", 0) != 0;
    return PML_OK;
}

static pml_status op_batchnorm(imp *im)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial",
                                        "is_test", "consumed_inputs", NULL};
    val *x, *w[4];
    static const char *const what[4] = {"scale", "bias", "mean", "var"};
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    /* training mode: the batch's statistics normalise (batch_stats), and the running ones
     * after the batch may be outputs 1 and 2 */
    const bool train_mode = attr_int(im, "training_mode", 0) != 0;
    if (im->node->n_output > (train_mode ? 3 : 1))
        return nfail(im, PML_EUNSUPPORTED,
                     "%zu outputs (pml computes Y, and the running mean and variance in "
                     "training_mode)",
                     im->node->n_output);
    if (attr_int(im, "spatial", 1) != 1) return nfail(im, PML_EUNSUPPORTED, "spatial=0");
    int c = shape_of(im, x).c, wi[4];
    for (int i = 0; i < 4; i++) {
        if ((st = weight_in(im, i + 1, what[i], 1, &w[i])) != PML_OK) return st;
        if (w[i]->t.dims[0] != c)
            return nfail(im, PML_ESHAPE, "%s '%s' has %lld values for %d channels", what[i],
                         pml_dot_brief(w[i]->name), (long long)w[i]->t.dims[0], c);
        wi[i] = (int)(w[i] - im->v);
    }
    pml_attrs a = pml_attrs_default(PML_OP_BATCHNORM);
    a.eps = attr_float(im, "epsilon", 1e-5f);
    a.momentum = attr_float(im, "momentum", 0.9f); /* ONNX's convention is Keras's */
    a.batch_stats = train_mode;
    int id = add_node(im, NULL, PML_OP_BATCHNORM, &a, 1, &x->node);
    if (id < 0) return PML_ESHAPE;
    for (int i = 0; i < 4; i++)
        if ((st = assign_to(im, &im->v[wi[i]], id, i & 1, i >= 2, 0, 0, 1.0f, false)) != PML_OK)
            return st;
    if ((st = tensor_out(im, id, x->rank)) != PML_OK ||
        (st = derived_out(im, 1, V_RUNMEAN, id)) != PML_OK)
        return st;
    return derived_out(im, 2, V_RUNVAR, id);
}

/* a flatten of x to (batch, rest) */
static pml_status flatten_to_2d(imp *im, val *x)
{
    if (x->rank == 2) { /* already (N, C) */
        pml_status st = alias_out(im, x);
        if (st == PML_OK) im->v[im->nv - 1].rank = 2;
        return st;
    }
    int id = add_node(im, NULL, PML_OP_FLATTEN, NULL, 1, &x->node);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, 2);
}

static pml_status op_flatten(imp *im)
{
    static const char *const known[] = {"axis", NULL};
    val *x;
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK || (st = view_in(im, 0, &x)) != PML_OK) return st;
    int64_t d[PML_TENSOR_MAX_RANK];
    int b, r = dims_of(im, x, d, &b);
    int64_t axis = attr_int(im, "axis", 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis > r)
        return nfail(im, PML_EFORMAT, "axis %lld is outside rank %d",
                     (long long)attr_int(im, "axis", 1), r);
    if (axis == 1 && !x->vrank && x->rank >= 2) return flatten_to_2d(im, x);
    /* another axis keeps pml's tensor as it is and sees it as (rows, columns) */
    int64_t rows = 1, cols = 1;
    for (int i = 0; i < r; i++) *(i < axis ? &rows : &cols) *= d[i];
    if ((st = alias_out(im, x)) != PML_OK) return st;
    val *y = &im->v[im->nv - 1];
    y->vrank = 2;
    y->vdims[0] = rows;
    y->vdims[1] = cols;
    y->vbatch = b < 0 ? -1 : b < axis ? 0 : 1;
    return PML_OK;
}

/* ---------------------------------------------------------------- constants */

/* a constant value as a new value for output 0; takes data and ints */
static pml_status const_out(imp *im, const pml_tensor *t, int64_t *ints)
{
    val *y = out_val(im, 0, V_CONST);
    if (!y) {
        free(ints);
        return oom(im);
    }
    y->t = *t;
    y->t.name = NULL;
    y->ints = ints;
    return PML_OK;
}

static pml_status const_in(imp *im, int i, bool need_ints, val **out)
{
    val *x = in_val(im, i);
    if (!x) return nfail(im, PML_EFORMAT, "input %d is missing", i);
    if (x->kind != V_CONST)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is not a constant; pml folds this operator on shape values only",
                     pml_dot_brief(x->name));
    if (need_ints && !x->ints)
        return nfail(im, PML_EFORMAT, "input '%s' must be integers", pml_dot_brief(x->name));
    *out = x;
    return PML_OK;
}

/* a new constant of rank r with dims d: t allocated, ints too when is_int */
static pml_status new_const(imp *im, int r, const int64_t *d, bool is_int, pml_tensor *t,
                            int64_t **ints)
{
    memset(t, 0, sizeof *t);
    *ints = NULL;
    t->rank = r;
    for (int i = 0; i < r; i++) t->dims[i] = d[i];
    if (pml__tensor_alloc(t, im->path) != PML_OK) return PML_ENOMEM;
    if (is_int && !(*ints = malloc((t->n ? t->n : 1) * sizeof **ints))) {
        pml_tensor_free(t);
        return oom(im);
    }
    return PML_OK;
}

static void set_elem(pml_tensor *t, int64_t *ints, size_t i, int64_t v, float f)
{
    if (ints) {
        ints[i] = v;
        t->data[i] = v == BATCH ? -1.0f : (float)v;
    } else {
        t->data[i] = f;
    }
}

static pml_status op_constant(imp *im)
{
    static const char *const known[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints", NULL};
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK) return st;
    if (im->node->n_attribute != 1)
        return nfail(im, PML_EFORMAT, "needs exactly one value attribute");
    const Onnx__AttributeProto *a = im->node->attribute[0];
    pml_tensor t;
    int64_t *ints = NULL;
    if (strcmp(a->name, "value") == 0) {
        if (!a->t) return nfail(im, PML_EFORMAT, "value is not a tensor");
        if ((st = tp_data(a->t, im->path, im->dir, &t, &ints)) != PML_OK) return st;
        free(t.name);
        t.name = NULL;
        return const_out(im, &t, ints);
    }
    bool is_int = strncmp(a->name, "value_int", 9) == 0;
    bool list = a->name[strlen(a->name) - 1] == 's';
    size_t n = list ? (is_int ? a->n_ints : a->n_floats) : 1;
    int64_t d[1] = {(int64_t)n};
    if ((st = new_const(im, list ? 1 : 0, d, is_int, &t, &ints)) != PML_OK) return st;
    for (size_t i = 0; i < n; i++)
        set_elem(&t, ints, i, is_int ? (list ? a->ints[i] : a->i) : 0,
                 is_int ? 0 : (list ? a->floats[i] : a->f));
    return const_out(im, &t, ints);
}

static pml_status op_shape(imp *im)
{
    static const char *const known[] = {"start", "end", NULL};
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK) return st;
    val *x = in_val(im, 0);
    if (!x) return nfail(im, PML_EFORMAT, "input 0 is missing");
    int64_t dims[PML_TENSOR_MAX_RANK];
    int r;
    if (x->kind == V_TENSOR) {
        pml_shape s = shape_of(im, x);
        r = x->rank;
        int64_t per[3] = {s.c, s.h, s.w};
        dims[0] = BATCH;
        for (int i = 1; i < r; i++) dims[i] = per[i - 1];
    } else {
        r = x->t.rank;
        memcpy(dims, x->t.dims, sizeof dims);
    }
    int64_t b = attr_int(im, "start", 0), e = attr_int(im, "end", r);
    if (b < 0) b += r;
    if (e < 0) e += r;
    b = b < 0 ? 0 : b > r ? r : b;
    e = e < b ? b : e > r ? r : e;
    pml_tensor t;
    int64_t *ints, d[1] = {e - b};
    if ((st = new_const(im, 1, d, true, &t, &ints)) != PML_OK) return st;
    for (int64_t i = b; i < e; i++) set_elem(&t, ints, (size_t)(i - b), dims[i], 0);
    return const_out(im, &t, ints);
}

/* an axes list from the attribute (older opsets) or input 1 */
static pml_status axes_of(imp *im, int64_t *axes, int *n)
{
    size_t na = 0;
    const int64_t *a = attr_ints(im, "axes", &na);
    if (!a && in_val(im, 1)) {
        val *v;
        pml_status st = const_in(im, 1, true, &v);
        if (st != PML_OK) return st;
        a = v->ints;
        na = v->t.n;
    }
    if (na > PML_TENSOR_MAX_RANK) return nfail(im, PML_EUNSUPPORTED, "too many axes");
    for (size_t i = 0; i < na; i++) axes[i] = a[i];
    *n = (int)na;
    return PML_OK;
}

static pml_status op_unsqueeze(imp *im, bool squeeze)
{
    static const char *const known[] = {"axes", NULL};
    pml_status st;
    val *x = in_val(im, 0);
    int64_t axes[PML_TENSOR_MAX_RANK];
    int na = 0;
    if ((st = only_attrs(im, known)) != PML_OK || (st = axes_of(im, axes, &na)) != PML_OK)
        return st;
    if (x && x->kind == V_TENSOR) {
        /* (N, C, L) and (N, C, L, 1) are the same pml tensor: a trailing axis of one */
        pml_shape s = shape_of(im, x);
        int64_t ax = na == 1 ? axes[0] : -99;
        if (ax < 0) ax += squeeze ? x->rank : x->rank + 1;
        bool ok = na == 1 && ((!squeeze && x->rank == 3 && ax == 3) ||
                              (squeeze && x->rank == 4 && ax == 3 && s.w == 1));
        if (!ok)
            return nfail(im, PML_EUNSUPPORTED,
                         "pml adds or removes only a trailing axis of one (rank 3 <-> 4) of a "
                         "tensor");
        if ((st = tensor_in(im, 0, &x)) != PML_OK || (st = alias_out(im, x)) != PML_OK) return st;
        im->v[im->nv - 1].rank = squeeze ? 3 : 4;
        return PML_OK;
    }
    if ((st = const_in(im, 0, false, &x)) != PML_OK) return st;
    int r = squeeze ? x->t.rank - na : x->t.rank + na;
    if (squeeze && !na) r = 0; /* every dim of one */
    int64_t d[PML_TENSOR_MAX_RANK];
    if (r < 0 || r > PML_TENSOR_MAX_RANK) return nfail(im, PML_EUNSUPPORTED, "rank %d", r);
    bool mark[PML_TENSOR_MAX_RANK * 2] = {false};
    int rr = squeeze ? x->t.rank : r;
    for (int i = 0; i < na; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + rr : axes[i];
        if (ax < 0 || ax >= rr || mark[ax]) return nfail(im, PML_EFORMAT, "axes out of range");
        mark[ax] = true;
    }
    int k = 0;
    if (squeeze) {
        for (int i = 0; i < x->t.rank; i++)
            if (!(na ? mark[i] : x->t.dims[i] == 1)) d[k++] = x->t.dims[i];
        r = k;
    } else {
        for (int i = 0, j = 0; i < r; i++) d[i] = mark[i] ? 1 : x->t.dims[j++];
    }
    pml_tensor t;
    int64_t *ints;
    if ((st = new_const(im, r, d, x->ints != NULL, &t, &ints)) != PML_OK) return st;
    for (size_t i = 0; i < t.n; i++) set_elem(&t, ints, i, x->ints ? x->ints[i] : 0, x->t.data[i]);
    return const_out(im, &t, ints);
}

static pml_status op_gather(imp *im)
{
    static const char *const known[] = {"axis", NULL};
    pml_status st;
    val *x, *ix;
    if ((st = only_attrs(im, known)) != PML_OK || (st = const_in(im, 0, false, &x)) != PML_OK ||
        (st = const_in(im, 1, true, &ix)) != PML_OK)
        return st;
    if (x->t.rank != 1 || attr_int(im, "axis", 0) != 0 || ix->t.rank > 1)
        return nfail(im, PML_EUNSUPPORTED, "pml folds Gather of a vector's elements only");
    pml_tensor t;
    int64_t *ints;
    if ((st = new_const(im, ix->t.rank, ix->t.dims, x->ints != NULL, &t, &ints)) != PML_OK)
        return st;
    for (size_t i = 0; i < t.n; i++) {
        int64_t k = ix->ints[i] < 0 ? ix->ints[i] + x->t.dims[0] : ix->ints[i];
        if (k < 0 || k >= x->t.dims[0]) {
            free(ints);
            pml_tensor_free(&t);
            return nfail(im, PML_EFORMAT, "index %lld is out of range",
                         (long long)ix->ints[i]);
        }
        set_elem(&t, ints, i, x->ints ? x->ints[k] : 0, x->t.data[k]);
    }
    return const_out(im, &t, ints);
}

static pml_status op_cast(imp *im)
{
    static const char *const known[] = {"to", NULL};
    pml_status st;
    val *x;
    if ((st = only_attrs(im, known)) != PML_OK || (st = const_in(im, 0, false, &x)) != PML_OK)
        return st;
    int64_t to = attr_int(im, "to", 0);
    bool is_int = to != T_FLOAT && to != T_DOUBLE;
    pml_tensor t;
    int64_t *ints;
    if ((st = new_const(im, x->t.rank, x->t.dims, is_int, &t, &ints)) != PML_OK) return st;
    for (size_t i = 0; i < t.n; i++)
        set_elem(&t, ints, i, x->ints ? x->ints[i] : (int64_t)x->t.data[i], x->t.data[i]);
    return const_out(im, &t, ints);
}

/* Transpose of a constant (old PyTorch exports transpose a Linear's weight before MatMul) */
static pml_status op_transpose(imp *im)
{
    static const char *const known[] = {"perm", NULL};
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK) return st;
    val *x = in_val(im, 0);
    if (!x) return nfail(im, PML_EFORMAT, "input 0 is missing");
    if (x->kind != V_CONST)
        return nfail(im, PML_EUNSUPPORTED,
                     "input '%s' is not a constant; pml folds Transpose of initializers and "
                     "constants only",
                     pml_dot_brief(x->name));
    const int r = x->t.rank;
    size_t np = 0;
    const int64_t *perm = attr_ints(im, "perm", &np);
    int p[PML_TENSOR_MAX_RANK];
    unsigned seen = 0;
    if (perm && np != (size_t)r)
        return nfail(im, PML_EFORMAT, "perm has %zu axes, the input %d", np, r);
    for (int i = 0; i < r; i++) {
        int64_t a = perm ? perm[i] : r - 1 - i;
        if (a < 0 || a >= r || (seen >> a & 1u))
            return nfail(im, PML_EFORMAT, "perm is not a permutation of the input's %d axes", r);
        seen |= 1u << a;
        p[i] = (int)a;
    }
    int64_t d[PML_TENSOR_MAX_RANK], xs[PML_TENSOR_MAX_RANK];
    for (int i = 0; i < r; i++) d[i] = x->t.dims[p[i]];
    /* strides of the input, in elements */
    for (int i = r - 1; i >= 0; i--) xs[i] = i == r - 1 ? 1 : xs[i + 1] * x->t.dims[i + 1];
    pml_tensor t;
    int64_t *ints;
    if ((st = new_const(im, r, d, x->ints != NULL, &t, &ints)) != PML_OK) return st;
    for (size_t k = 0; k < t.n; k++) {
        size_t rest = k, src = 0;
        for (int i = r - 1; i >= 0; i--) {
            src += (size_t)(rest % (size_t)d[i]) * (size_t)xs[p[i]];
            rest /= (size_t)d[i];
        }
        set_elem(&t, ints, k, x->ints ? x->ints[src] : 0, x->t.data[src]);
    }
    return const_out(im, &t, ints);
}

static pml_status op_slice(imp *im)
{
    static const char *const known[] = {"starts", "ends", "axes", NULL};
    pml_status st;
    val *x;
    if ((st = only_attrs(im, known)) != PML_OK || (st = const_in(im, 0, false, &x)) != PML_OK)
        return st;
    if (x->t.rank != 1) return nfail(im, PML_EUNSUPPORTED, "pml folds Slice of a vector only");
    int64_t se[4] = {0, x->t.dims[0], 0, 1}; /* start, end, axis, step */
    static const char *const names[3] = {"starts", "ends", "axes"};
    for (int k = 0; k < 4; k++) {
        size_t n = 0;
        const int64_t *a = k < 3 ? attr_ints(im, names[k], &n) : NULL;
        val *v = NULL;
        if (!a && in_val(im, k + 1)) {
            if ((st = const_in(im, k + 1, true, &v)) != PML_OK) return st;
            a = v->ints;
            n = v->t.n;
        }
        if (a && n != 1) return nfail(im, PML_EUNSUPPORTED, "pml folds Slice of one axis only");
        if (a) se[k] = a[0];
    }
    int64_t len = x->t.dims[0];
    if ((se[2] != 0 && se[2] != -1) || se[3] != 1)
        return nfail(im, PML_EUNSUPPORTED, "pml folds Slice with step 1 only");
    int64_t b = se[0] < 0 ? se[0] + len : se[0], e = se[1] < 0 ? se[1] + len : se[1];
    b = b < 0 ? 0 : b > len ? len : b;
    e = e < b ? b : e > len ? len : e;
    pml_tensor t;
    int64_t *ints, d[1] = {e - b};
    if ((st = new_const(im, 1, d, x->ints != NULL, &t, &ints)) != PML_OK) return st;
    for (int64_t i = b; i < e; i++)
        set_elem(&t, ints, (size_t)(i - b), x->ints ? x->ints[i] : 0, x->t.data[i]);
    return const_out(im, &t, ints);
}

/* ---------------------------------------------------------------- shape-bearing ops */

static pml_status op_concat(imp *im)
{
    static const char *const known[] = {"axis", NULL};
    pml_status st;
    if ((st = only_attrs(im, known)) != PML_OK) return st;
    int64_t axis = attr_int(im, "axis", 1);
    int n = (int)im->node->n_input;
    if (n < 1) return nfail(im, PML_EFORMAT, "no inputs");
    val *first = in_val(im, 0);
    if (!first) return nfail(im, PML_EFORMAT, "input 0 is missing");
    if (first->kind == V_CONST) { /* shapes: 1-D constants end to end */
        int64_t total = 0;
        bool is_int = true;
        for (int i = 0; i < n; i++) {
            val *v;
            if ((st = const_in(im, i, false, &v)) != PML_OK) return st;
            if (v->t.rank != 1)
                return nfail(im, PML_EUNSUPPORTED, "pml folds Concat of vectors only");
            total += v->t.dims[0];
            is_int = is_int && v->ints;
        }
        pml_tensor t;
        int64_t *ints, d[1] = {total};
        if ((st = new_const(im, 1, d, is_int, &t, &ints)) != PML_OK) return st;
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            val *v = in_val(im, i);
            for (size_t j = 0; j < v->t.n; j++, k++)
                set_elem(&t, ints, k, v->ints ? v->ints[j] : 0, v->t.data[j]);
        }
        return const_out(im, &t, ints);
    }
    if (n > PML_MAX_INPUTS)
        return nfail(im, PML_EUNSUPPORTED, "%d inputs (pml's concat takes up to %d)", n,
                     PML_MAX_INPUTS);
    int in[PML_MAX_INPUTS], rank = first->rank;
    for (int i = 0; i < n; i++) {
        val *v;
        if ((st = tensor_in(im, i, &v)) != PML_OK) return st;
        if (v->rank != rank) return nfail(im, PML_ESHAPE, "inputs of different ranks");
        in[i] = v->node;
    }
    /* a sample's axes: (N, C), (N, C, L), (N, C, H, W) are channels, rows, columns from
     * axis 1; one sample (rank 1, or a model imported whole) has its channels at axis 0. A
     * model that joins its batch is imported again whole (see parse). */
    if (axis < -rank || axis >= rank)
        return nfail(im, PML_EFORMAT, "axis=%lld is out of range for rank %d", (long long)axis,
                     rank);
    if (axis < 0) axis += rank;
    const bool one = one_sample(im, first);
    if (axis == 0 && !one) {
        im->joins_batch = true;
        return nfail(im, PML_EUNSUPPORTED,
                     "axis=%lld is the batch: pml concatenates within each sample (%s %d)",
                     (long long)attr_int(im, "axis", 1), rank == 2 ? "axis" : "axes 1 to",
                     rank - 1);
    }
    if (rank == 5 && axis != 1)
        return nfail(im, PML_EUNSUPPORTED,
                     "axis=%lld of a rank-5 tensor: pml concatenates 3-D tensors' channels (axis 1)",
                     (long long)attr_int(im, "axis", 1));
    pml_attrs a = pml_attrs_default(PML_OP_CONCAT);
    a.axis = one ? (int)axis : (int)axis - 1;
    int id = add_node(im, NULL, PML_OP_CONCAT, &a, n, in);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, rank);
}

/* How constant or weight b broadcasts onto each sample of tensor a: into tile, b's extent along
 * a sample's (C, H, W), each 1 or a's. \return false when b spans the batch or does not
 * broadcast so. */
static bool addend_tile(const imp *im, const val *a, const val *b, int tile[3])
{
    int64_t d[PML_TENSOR_MAX_RANK];
    int batch, r = dims_of(im, a, d, &batch);
    tile[0] = tile[1] = tile[2] = 1;
    if (b->t.rank > r) return false;
    if (r == 5) { /* 3-D: one value a channel, or one for all */
        for (int j = 0; j < b->t.rank; j++) {
            const int k = j + r - b->t.rank;
            if (b->t.dims[j] == 1) continue;
            if (k != 1 || b->t.dims[j] != d[1]) return false;
            tile[0] = (int)d[1];
        }
        return true;
    }
    for (int j = 0; j < b->t.rank; j++) {
        const int k = j + r - b->t.rank; /* a's axis, right-aligned */
        const int64_t bd = b->t.dims[j];
        if (bd == 1) continue;
        if (k == batch || bd != d[k]) return false;
        tile[batch < 0 ? k : k - 1] = (int)bd;
    }
    return true;
}

static pml_status op_add(imp *im)
{
    static const char *const none[] = {NULL};
    pml_status st;
    if ((st = only_attrs(im, none)) != PML_OK) return st;
    val *a = in_val(im, 0), *b = in_val(im, 1);
    if (!a || !b) return nfail(im, PML_EFORMAT, "needs two inputs");
    /* a: the tensor (a graph input given at run time may become one), b the other */
    int ia = a->kind == V_TENSOR ? 0 : b->kind == V_TENSOR ? 1 : a->kind == V_WEIGHT ? 0 : 1;
    if (ia == 1) {
        a = b;
        b = in_val(im, 0);
    }
    if (a->kind == V_CONST)
        return nfail(im, PML_EUNSUPPORTED, "pml folds no arithmetic on constants");
    if ((st = tensor_in(im, ia, &a)) != PML_OK) return st;
    b = in_val(im, 1 - ia);
    if (b->kind != V_TENSOR) {
        /* a bias: into the linear (or conv) before, when it has none and only this reads it */
        pml_node *p = &im->g->nodes[a->node];
        int64_t c = p->out.c;
        bool vec = (b->t.rank == 1 && b->t.dims[0] == c) ||
                   (b->t.rank == 2 && b->t.dims[0] == 1 && b->t.dims[1] == c && a->rank == 2);
        int tile[3];
        const bool bcast = addend_tile(im, a, b, tile);
        /* a map's bias is one value per channel, (C, 1, 1) or (1, C, 1, 1) */
        const bool chan = a->rank >= 3 && bcast && tile[0] == c && tile[1] == 1 && tile[2] == 1;
        bool bias = (p->op == PML_OP_LINEAR || p->op == PML_OP_CONV2D) && !p->a.bias &&
                    p->a.act == PML_ACT_NONE && a->uses == 1 && ((vec && a->rank == 2) || chan);
        const bool addend = !bias && bcast;
        /* a graph input of a's rank that is not a bias: data, added sample by sample (unless
         * its batch of one broadcasts over more) */
        if (!bias && b->kind == V_WEIGHT && b->t.rank == a->rank &&
            !(addend && b->t.dims[0] == 1 && im->batch != 1)) {
            if ((st = tensor_in(im, 1 - ia, &b)) != PML_OK) return st;
            goto tensors;
        }
        if (addend) { /* the same values added to every sample: add's learned addend */
            int ai = (int)(a - im->v), bi = (int)(b - im->v), id = a->node;
            if (p->op == PML_OP_ADD && !p->a.addend && a->uses == 1) {
                /* into the add before, when only this reads it */
                p->a.addend = 1;
                pml_shape s[PML_MAX_INPUTS];
                for (int i = 0; i < p->nin; i++) s[i] = im->g->nodes[p->in[i]].out;
                if (pml_ops[p->op].infer(p, s, p->nin) != PML_OK)
                    return nfail(im, PML_ESHAPE, "%s", pml_errmsg());
            } else {
                pml_attrs at = pml_attrs_default(PML_OP_ADD);
                at.addend = 1;
                if ((id = add_node(im, NULL, PML_OP_ADD, &at, 1, &a->node)) < 0) return PML_ESHAPE;
            }
            if ((st = assign_tiled(im, &im->v[bi], id, 0, false, 0, 0, 1.0f, false, tile)) !=
                PML_OK)
                return st;
            if (id == im->v[ai].node) return alias_out(im, &im->v[ai]);
            return tensor_out(im, id, im->v[ai].rank);
        }
        if (!bias)
            return nfail(im, PML_EUNSUPPORTED,
                         "adding %s '%s': pml adds a constant or weight as the bias of the MatMul, "
                         "Gemm or Conv before it, or one the same for every sample (it "
                         "broadcasts over the batch)%s",
                         b->kind == V_WEIGHT ? "graph input" : "constant", pml_dot_brief(b->name),
                         b->kind == V_WEIGHT ? ", and a graph input of the tensor's rank as data"
                                             : "");
        p->a.bias = 1;
        int ai = (int)(a - im->v);
        if ((st = assign_to(im, b, a->node, 1, false, 0, 0, 1.0f, false)) != PML_OK) return st;
        /* the bias slot exists once the shape is inferred again */
        pml_shape s = im->g->nodes[p->in[0]].out;
        if (pml_ops[p->op].infer(p, &s, 1) != PML_OK) return nfail(im, PML_ESHAPE, "%s", pml_errmsg());
        return alias_out(im, &im->v[ai]);
    }
    if ((st = tensor_in(im, 1 - ia, &b)) != PML_OK) return st;
tensors:
    a = in_val(im, ia); /* the values may have moved */
    if (a->rank != b->rank || !pml_shape_eq(shape_of(im, a), shape_of(im, b)))
        return nfail(im, PML_EUNSUPPORTED,
                     "inputs of different shapes: pml adds equal shapes (no broadcasting)");
    int in[2] = {a->node, b->node}, rank = a->rank;
    int id = add_node(im, NULL, PML_OP_ADD, NULL, 2, in);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, rank);
}

/* Sum of tensors of equal shapes (no broadcasting): add */
static pml_status op_sum(imp *im)
{
    static const char *const none[] = {NULL};
    pml_status st;
    if ((st = only_attrs(im, none)) != PML_OK) return st;
    int n = (int)im->node->n_input;
    if (n < 1) return nfail(im, PML_EFORMAT, "no inputs");
    if (n > PML_MAX_INPUTS)
        return nfail(im, PML_EUNSUPPORTED, "%d inputs (pml's add takes up to %d)", n,
                     PML_MAX_INPUTS);
    int in[PML_MAX_INPUTS], rank = 0;
    pml_shape s0 = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        val *v;
        if ((st = tensor_in(im, i, &v)) != PML_OK) return st;
        if (n == 1) return alias_out(im, v);
        if (i == 0) rank = v->rank, s0 = shape_of(im, v);
        if (v->rank != rank || !pml_shape_eq(shape_of(im, v), s0))
            return nfail(im, PML_EUNSUPPORTED,
                         "inputs of different shapes: pml adds equal shapes (no broadcasting)");
        in[i] = v->node;
    }
    int id = add_node(im, NULL, PML_OP_ADD, NULL, n, in);
    return id < 0 ? PML_ESHAPE : tensor_out(im, id, rank);
}

static pml_status op_reshape(imp *im)
{
    static const char *const known[] = {"allowzero", NULL};
    pml_status st;
    val *x, *s;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK ||
        (st = const_in(im, 1, true, &s)) != PML_OK)
        return st;
    pml_shape xs = shape_of(im, x);
    int64_t per = (int64_t)pml_shape_size(xs);
    bool allowzero = attr_int(im, "allowzero", 0) != 0;
    if (s->t.rank == 1 && s->t.n == 2) {
        int64_t d0 = s->ints[0], d1 = s->ints[1];
        bool batch0 = d0 == BATCH || (d0 == 0 && !allowzero) || (im->batch > 0 && d0 == im->batch);
        if ((batch0 && (d1 == -1 || d1 == per)) || (d0 == -1 && d1 == per))
            return flatten_to_2d(im, x);
    }
    /* a reshape that keeps each sample's (C, H, W) as it is */
    if (s->t.rank == 1 && s->t.n == (size_t)x->rank) {
        int64_t want[4] = {0, xs.c, xs.h, xs.w};
        bool same = true;
        for (int i = 1; i < x->rank; i++) same = same && s->ints[i] == want[i];
        if (same) return alias_out(im, x);
    }
    /* any other shape as the graph's output, when the batch is fixed: a view */
    int64_t d[PML_TENSOR_MAX_RANK], want[PML_TENSOR_MAX_RANK];
    int b, r = dims_of(im, x, d, &b);
    const int64_t samples = b < 0 ? 1 : im->batch; /* 0: an empty batch, as declared */
    if (s->t.rank == 1 && s->t.n <= PML_TENSOR_MAX_RANK && samples >= 0) {
        int64_t total = 1, prod = 1;
        int free_dim = -1;
        for (int i = 0; i < r; i++) total *= d[i] * (i == b ? samples : 1);
        bool ok = true;
        for (size_t i = 0; ok && i < s->t.n; i++) {
            int64_t v = s->ints[i];
            if (v == 0 && !allowzero) v = (int)i < r ? d[i] * ((int)i == b ? samples : 1) : -2;
            if (v == -1 && free_dim < 0) free_dim = (int)i;
            else if (v < 0 || v > (int64_t)1 << 40) ok = false;
            else if (v > 0 && prod > ((int64_t)1 << 40) / v) ok = false; /* far too many */
            else prod *= v;
            want[i] = v;
        }
        if (ok && free_dim >= 0) {
            ok = prod > 0 && total % prod == 0;
            if (ok) want[free_dim] = total / prod, prod = total;
        }
        if (ok && prod == total) {
            if ((st = alias_out(im, x)) != PML_OK) return st;
            val *y = &im->v[im->nv - 1];
            y->vrank = (int)s->t.n;
            memcpy(y->vdims, want, s->t.n * sizeof *want);
            y->vbatch = -1; /* the whole shape: for the declared batch only */
            return PML_OK;
        }
    }
    return nfail(im, PML_EUNSUPPORTED,
                 "a reshape to other than (batch, -1): pml reshapes by flattening each sample "
                 "(another shape only as the graph's output, of a fixed batch)");
}

static pml_status op_dropout(imp *im)
{
    static const char *const known[] = {"ratio", "is_test", "seed", NULL};
    pml_status st;
    val *x;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    float rate = attr_float(im, "ratio", 0.5f);
    val *r = in_val(im, 1), *tm = in_val(im, 2);
    if (r) {
        if (r->kind != V_CONST || r->t.n != 1)
            return nfail(im, PML_EUNSUPPORTED, "ratio '%s' is not a constant",
                         pml_dot_brief(r->name));
        rate = r->t.data[0];
    }
    if (!(rate >= 0.0f && rate < 1.0f))
        return nfail(im, PML_EFORMAT, "ratio %g is not in [0, 1)", (double)rate);
    if (tm && (tm->kind != V_CONST || tm->t.n != 1))
        return nfail(im, PML_EUNSUPPORTED, "training_mode '%s' is not a constant",
                     pml_dot_brief(tm->name));
    /* training mode draws a random mask (nothing at ratio 0, as in the inference form): with
     * the node's seed the one ONNX's reference draws, else pml's own, new each step */
    const bool train = tm && tm->t.data[0] != 0.0f && rate != 0.0f;
    const bool seeded = train && attr(im, "seed");
    const int64_t seed = attr_int(im, "seed", -1);
    if (seeded && (seed < 0 || seed > INT_MAX))
        return nfail(im, PML_EUNSUPPORTED, "seed %lld: pml draws a seeded mask for seeds 0 to %d",
                     (long long)seed, INT_MAX);
    if (rate == 0.0f) {
        st = alias_out(im, x);
    } else {
        pml_attrs a = pml_attrs_default(PML_OP_DROPOUT);
        a.rate = rate;
        a.always = train;
        a.seed = seeded ? (int)seed : -1;
        int id = add_node(im, NULL, PML_OP_DROPOUT, &a, 1, &x->node);
        st = id < 0 ? PML_ESHAPE : tensor_out(im, id, x->rank);
    }
    /* the mask: true everywhere in the inference form, else the node's */
    return st == PML_OK ? derived_out(im, 1, V_MASK, im->v[im->nv - 1].node) : st;
}

/* Output 0 is x seen through a softmax over `axis` (given: ONNX's, maybe negative) */
static pml_status softmax_out(imp *im, val *x, int64_t given, bool coerced, bool take_log)
{
    int64_t d[PML_TENSOR_MAX_RANK];
    int b, r = dims_of(im, x, d, &b);
    int64_t axis = given;
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r)
        return nfail(im, PML_EFORMAT, "axis %lld is outside rank %d", (long long)given, r);
    pml_status st;
    if ((st = alias_out(im, x)) != PML_OK) return st;
    val *y = &im->v[im->nv - 1];
    y->softmax = true;
    y->axis = (int)axis;
    y->coerced = coerced;
    y->log = take_log;
    return PML_OK;
}

/* Softmax and LogSoftmax (take_log): the graph's output seen through it */
static pml_status op_softmax(imp *im, bool take_log)
{
    static const char *const known[] = {"axis", NULL};
    pml_status st;
    val *x;
    if ((st = only_attrs(im, known)) != PML_OK || (st = view_in(im, 0, &x)) != PML_OK) return st;
    /* opset 13 made the last axis the default and the softmax one axis's */
    const bool coerced = im->m->opset < 13;
    return softmax_out(im, x, attr_int(im, "axis", coerced ? 1 : -1), coerced, take_log);
}

/* The first node after node i that is an `op` whose input j is `name`, or -1 */
static int consumer(const imp *im, size_t i, const char *name, const char *op, size_t j)
{
    for (size_t k = i + 1; k < im->gp->n_node; k++) {
        const Onnx__NodeProto *n = im->gp->node[k];
        if (n->op_type && strcmp(n->op_type, op) == 0 && n->n_input > j && n->input[j] &&
            strcmp(n->input[j], name) == 0 && n->n_output >= 1 && n->output[0] && *n->output[0])
            return (int)k;
    }
    return -1;
}

/* A reduction over one axis, its dims kept: the axis from the attribute `axes` or, as later
 * opsets give it, a constant input 1. False for anything else. */
static bool one_axis_kept(imp *im, const Onnx__NodeProto *n, int64_t *axis)
{
    const Onnx__NodeProto *was = im->node;
    im->node = n;
    size_t na = 0;
    const int64_t *a = attr_ints(im, "axes", &na);
    const bool kept = attr_int(im, "keepdims", 1) == 1;
    if (!a && n->n_input > 1 && n->input[1] && *n->input[1]) {
        int k = find_val(im, n->input[1]);
        if (k >= 0 && im->v[k].kind == V_CONST && im->v[k].ints) {
            a = im->v[k].ints;
            na = im->v[k].t.n;
        }
    }
    im->node = was;
    if (!kept || na != 1) return false;
    *axis = a[0];
    return true;
}

/* ReduceMax, as exporters and ONNX's own function bodies expand a Softmax or a LogSoftmax over
 * one axis (dims kept by the reductions):
 *   s = Sub(x, ReduceMax(x, axis)); e = Exp(s); r = ReduceSum(e, axis)
 *   softmax: y = Div(e, r)        log-softmax: y = Sub(s, Log(r))
 * is imported as y = Softmax(x, axis) or LogSoftmax (the graph's output, as those are), the
 * nodes after it taken along. Any other ReduceMax is not supported. */
static pml_status op_reducemax(imp *im)
{
    const size_t i = (size_t)im->node_index;
    const Onnx__NodeProto *rm = im->node, *const *nd = (const Onnx__NodeProto *const *)im->gp->node;
    int64_t a1, a2;
    int sub = -1, ex = -1, rs = -1, dv = -1, lg = -1, out = -1;
    const char *xn = rm->n_input ? rm->input[0] : NULL;
    bool is = xn && one_axis_kept(im, rm, &a1) &&
              (sub = consumer(im, i, rm->output[0], "Sub", 1)) >= 0 &&
              strcmp(nd[sub]->input[0], xn) == 0 &&
              (ex = consumer(im, (size_t)sub, nd[sub]->output[0], "Exp", 0)) >= 0 &&
              (rs = consumer(im, (size_t)ex, nd[ex]->output[0], "ReduceSum", 0)) >= 0 &&
              one_axis_kept(im, nd[rs], &a2) && a1 == a2 && uses_of(im, rm->output[0]) == 1 &&
              uses_of(im, nd[rs]->output[0]) == 1;
    bool take_log = false;
    if (is && (dv = consumer(im, (size_t)rs, nd[ex]->output[0], "Div", 0)) >= 0 &&
        nd[dv]->n_input == 2 && nd[dv]->input[1] &&
        strcmp(nd[dv]->input[1], nd[rs]->output[0]) == 0 &&
        uses_of(im, nd[sub]->output[0]) == 1 && uses_of(im, nd[ex]->output[0]) == 2) {
        out = dv;
    } else if (is && (lg = consumer(im, (size_t)rs, nd[rs]->output[0], "Log", 0)) >= 0 &&
               (dv = consumer(im, (size_t)lg, nd[sub]->output[0], "Sub", 0)) >= 0 &&
               nd[dv]->n_input == 2 && nd[dv]->input[1] &&
               strcmp(nd[dv]->input[1], nd[lg]->output[0]) == 0 &&
               uses_of(im, nd[sub]->output[0]) == 2 && uses_of(im, nd[ex]->output[0]) == 1 &&
               uses_of(im, nd[lg]->output[0]) == 1) {
        out = dv;
        take_log = true;
    }
    if (out < 0)
        return nfail(im, PML_EUNSUPPORTED, "pml does not support this operator (it imports: %s)",
                     supported_ops);
    val *x;
    pml_status st = view_in(im, 0, &x);
    if (st != PML_OK) return st;
    im->node = nd[out]; /* the softmax's output is the last node's */
    im->node_index = out;
    st = softmax_out(im, x, a1, false, take_log);
    im->taken[sub] = im->taken[ex] = im->taken[rs] = im->taken[out] = 1;
    if (lg >= 0) im->taken[lg] = 1;
    return st;
}

/* Pad with zeros of the spatial dims, both sides alike: taken by the Conv or AveragePool after
 * it (PyTorch exports avg_pool2d(count_include_pad=True) so) */
static pml_status op_pad(imp *im)
{
    static const char *const known[] = {"mode", "pads", "value", NULL};
    pml_status st;
    val *x;
    if ((st = only_attrs(im, known)) != PML_OK || (st = tensor_in(im, 0, &x)) != PML_OK) return st;
    if (!attr_str_is(im, "mode", "constant", true))
        return nfail(im, PML_EUNSUPPORTED, "pml pads with zeros only (mode constant)");
    size_t np = 0;
    const int64_t *p = attr_ints(im, "pads", &np);
    float value = attr_float(im, "value", 0.0f);
    if (!p) {
        val *v;
        if ((st = const_in(im, 1, true, &v)) != PML_OK) return st;
        p = v->ints;
        np = v->t.n;
        val *cv = in_val(im, 2);
        if (cv && (cv->kind != V_CONST || cv->t.n != 1))
            return nfail(im, PML_EUNSUPPORTED, "constant_value is not a constant");
        if (cv) value = cv->t.data[0];
    }
    if (in_val(im, 3)) return nfail(im, PML_EUNSUPPORTED, "the axes input");
    int r = x->rank;
    if (np != (size_t)(2 * r))
        return nfail(im, PML_EFORMAT, "pads has %zu values for rank %d", np, r);
    if (r == 5) return nfail(im, PML_EUNSUPPORTED, "pml pads tensors of rank 3 and 4");
    if (value != 0.0f) return nfail(im, PML_EUNSUPPORTED, "padding with %g (pml pads zeros)", (double)value);
    if (r < 3 || p[0] || p[1] || p[r] || p[r + 1])
        return nfail(im, PML_EUNSUPPORTED, "pml pads the spatial dims only");
    for (int i = 2; i < r; i++)
        if (p[i] != p[i + r] || p[i] < 0 || p[i] > 1 << 16)
            return nfail(im, PML_EUNSUPPORTED, "pads %lld before and %lld after: pml pads both "
                         "sides alike", (long long)p[i], (long long)p[i + r]);
    if ((st = alias_out(im, x)) != PML_OK) return st;
    val *y = &im->v[im->nv - 1];
    y->padh += (int)p[2];
    y->padw += r == 4 ? (int)p[3] : 0;
    return PML_OK;
}

static pml_status op_identity(imp *im)
{
    static const char *const none[] = {NULL};
    pml_status st;
    if ((st = only_attrs(im, none)) != PML_OK) return st;
    val *x = in_val(im, 0);
    if (!x) return nfail(im, PML_EFORMAT, "input 0 is missing");
    return alias_out(im, x);
}

typedef struct op_entry {
    const char *name;
    pml_status (*fn)(imp *im);
} op_entry;

static pml_status op_matmul(imp *im) { return op_gemm(im, true); }
static pml_status op_gemm2(imp *im) { return op_gemm(im, false); }
static pml_status op_maxpool(imp *im) { return op_pool(im, PML_OP_MAXPOOL2D, false); }
static pml_status op_avgpool(imp *im) { return op_pool(im, PML_OP_AVGPOOL2D, false); }
static pml_status op_gavgpool(imp *im) { return op_pool(im, PML_OP_AVGPOOL2D, true); }
static pml_status op_gmaxpool(imp *im) { return op_pool(im, PML_OP_MAXPOOL2D, true); }
static pml_status op_unsq(imp *im) { return op_unsqueeze(im, false); }
static pml_status op_sq(imp *im) { return op_unsqueeze(im, true); }
static pml_status op_softmax1(imp *im) { return op_softmax(im, false); }
static pml_status op_logsoftmax(imp *im) { return op_softmax(im, true); }

static const op_entry ops[] = {
    {"Conv", op_conv},
    {"Gemm", op_gemm2},
    {"MatMul", op_matmul},
    {"Relu", op_relu},
    {"Sigmoid", op_activation},
    {"Tanh", op_activation},
    {"LeakyRelu", op_activation},
    {"Elu", op_activation},
    {"Selu", op_activation},
    {"Softplus", op_activation},
    {"Softsign", op_activation},
    {"HardSigmoid", op_activation},
    {"ThresholdedRelu", op_activation},
    {"HardSwish", op_activation},
    {"Clip", op_clip},
    {"ReduceMean", op_reducemean},
    {"Mul", op_mul},
    {"MaxPool", op_maxpool},
    {"AveragePool", op_avgpool},
    {"GlobalAveragePool", op_gavgpool},
    {"GlobalMaxPool", op_gmaxpool},
    {"BatchNormalization", op_batchnorm},
    {"Flatten", op_flatten},
    {"Reshape", op_reshape},
    {"Add", op_add},
    {"Concat", op_concat},
    {"Dropout", op_dropout},
    {"Softmax", op_softmax1},
    {"LogSoftmax", op_logsoftmax},
    {"Identity", op_identity},
    {"ReduceMax", op_reducemax},
    {"Pad", op_pad},
    {"Constant", op_constant},
    {"Shape", op_shape},
    {"Gather", op_gather},
    {"Unsqueeze", op_unsq},
    {"Squeeze", op_sq},
    {"Cast", op_cast},
    {"Slice", op_slice},
    {"Transpose", op_transpose},
    {"Sum", op_sum},
};

/* ---------------------------------------------------------------- the graph */

/* the opset of the default domain */
static pml_status opset_of(imp *im, const Onnx__ModelProto *mp)
{
    int64_t v = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0)
            v = o->has_version ? o->version : -1;
    }
    if (v < 1 || v > 17)
        return pml_fail(PML_EUNSUPPORTED,
                        v < 0 ? "%s: the model imports no opset of the default ONNX domain (pml "
                                "imports that domain's operators, opsets 1 to 17)"
                              : "%s: opset %lld: pml imports opsets 1 to 17",
                        im->path, (long long)v);
    im->m->opset = (int)v;
    return PML_OK;
}

static bool is_initializer(const imp *im, const char *name)
{
    for (size_t i = 0; i < im->gp->n_initializer; i++)
        if (im->gp->initializer[i]->name && strcmp(im->gp->initializer[i]->name, name) == 0)
            return true;
    return false;
}

/* An input node for graph input idx: its per-sample shape from the declared dims (all but the
 * batch; rank 1: one sample). */
static pml_status input_node(imp *im, int idx, int *out)
{
    pml_onnx_input *in = &im->m->inputs[idx];
    const char *name = in->name;
    if (in->rank < 1 || in->rank > 5)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: input '%s' has rank %d; pml's inputs are (N, C), (N, C, L), "
                        "(N, C, H, W), (N, C, D, H, W) or one sample (C)",
                        im->path, pml_dot_brief(name), in->rank);
    in->transposed = taken_transposed(im, in);
    const bool one = one_input(im, in);
    if (one && in->rank > 3)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: input '%s' has rank %d; a model that joins its batch (imported as "
                        "one sample) takes up to 3",
                        im->path, pml_dot_brief(name), in->rank);
    int per[4] = {1, 1, 1, 1};
    for (int d = one ? 0 : 1; d < in->rank; d++) {
        const int at = in->transposed ? 1 - d : d; /* (features, samples) */
        if (in->dims[at] <= 0 || in->dims[at] > 1 << 24)
            return pml_fail(PML_EUNSUPPORTED,
                            "%s: input '%s': dimension %d is not a known size (pml needs "
                            "each sample's shape; only the batch may be symbolic)",
                            im->path, pml_dot_brief(name), at);
        per[d - !one] = (int)in->dims[at];
    }
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){per[0], per[1], per[2]};
    if (in->rank == 5) { /* D planes of H rows: the rows */
        if ((int64_t)per[1] * per[2] > 1 << 24)
            return pml_fail(PML_EUNSUPPORTED, "%s: input '%s': %d planes of %d rows are too many",
                            im->path, pml_dot_brief(name), per[1], per[2]);
        a.shape = (pml_shape){per[0], per[1] * per[2], per[3]};
        a.depth = per[1];
    }
    char base[PML_NAME_MAX], nm[PML_NAME_MAX];
    snprintf(base, sizeof base, "%s", name);
    for (char *p = base; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '\\' || *p == '"') *p = '_';
    if (!*base || base[0] == ' ') snprintf(base, sizeof base, "input");
    snprintf(nm, sizeof nm, "%s", base);
    for (int i = 2; pml_graph_find(im->g, nm) >= 0; i++) {
        snprintf(nm, sizeof nm, "%.50s_%d", base, i);
    }
    int id = pml_graph_add(im->g, nm, PML_OP_INPUT, &a, 0, NULL);
    if (id < 0) return pml_fail_ctx(PML_EFORMAT, "%s: ", im->path);
    pml_shape none;
    if (pml_ops[PML_OP_INPUT].infer(&im->g->nodes[id], &none, 0) != PML_OK)
        return pml_fail_ctx(PML_ESHAPE, "%s: ", im->path);
    in->data = true;
    in->node = id;
    *out = id;
    return PML_OK;
}

/* The graph inputs no initializer gives: the first is a data input (a pml input node), the
 * others run-time weights until a node takes one as a tensor (to_data). */
static pml_status graph_inputs(imp *im)
{
    const Onnx__GraphProto *gp = im->gp;
    pml_onnx *m = im->m;
    m->inputs = calloc(gp->n_input ? gp->n_input : 1, sizeof *m->inputs);
    if (!m->inputs) return oom(im);
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = vi->name ? vi->name : "";
        if (!*name) return pml_fail(PML_EFORMAT, "%s: graph input %zu has no name", im->path, i);
        if (is_initializer(im, name)) continue;
        if (find_val(im, name) >= 0)
            return pml_fail(PML_EFORMAT, "%s: graph input '%s' is named twice", im->path,
                            pml_dot_brief(name));
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
            !tp->tensor_type->shape)
            return pml_fail(PML_EUNSUPPORTED, "%s: graph input '%s' is not a tensor of known rank",
                            im->path, pml_dot_brief(name));
        int et = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
        const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
        pml_onnx_input *in = &m->inputs[m->ninputs];
        if (!(in->name = strdup(name))) return oom(im);
        if (sh->n_dim > PML_TENSOR_MAX_RANK)
            return pml_fail(PML_EUNSUPPORTED, "%s: graph input '%s' has rank %zu", im->path,
                            pml_dot_brief(name), sh->n_dim);
        in->rank = (int)sh->n_dim;
        for (int d = 0; d < in->rank; d++) {
            const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
            in->dims[d] = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                              ? dm->dim_value
                              : -1;
            if (in->dims[d] < -1 || in->dims[d] > 1 << 30)
                return pml_fail(PML_EFORMAT, "%s: graph input '%s': dimension %d is %lld",
                                im->path, pml_dot_brief(name), d, (long long)in->dims[d]);
        }
        bool first = m->ninputs == 0;
        m->ninputs++;
        const int idx = m->ninputs - 1;
        const bool integer = et == T_INT64 || et == T_INT32;
        /* a Dropout's ratio or training_mode, a Clip's min */
        const bool scalar = (exact_in_float(et) || et == T_BOOL) && in->rank == 0;
        if (!first && (integer || scalar) && idx < im->ngiven && im->given[idx].data) {
            /* an integer input (a shape) or a scalar given now: a constant */
            const pml_tensor *gt = &im->given[idx];
            bool same = gt->rank == in->rank;
            for (int d = 0; same && d < in->rank; d++)
                same = in->dims[d] < 0 || gt->dims[d] == in->dims[d];
            if (!same)
                return pml_fail(PML_ESHAPE, "%s: graph input '%s': the value given has another "
                                            "shape than the model declares",
                                im->path, pml_dot_brief(name));
            int v = new_val(im, name, V_CONST);
            if (v < 0) return oom(im);
            pml_tensor *t = &im->v[v].t;
            t->rank = gt->rank;
            memcpy(t->dims, gt->dims, sizeof t->dims);
            t->n = gt->n;
            t->data = malloc((gt->n ? gt->n : 1) * sizeof(float));
            int64_t *ints = malloc((gt->n ? gt->n : 1) * sizeof(int64_t));
            im->v[v].ints = ints;
            if (!t->data || !ints) return oom(im);
            for (size_t e = 0; e < gt->n; e++) {
                if (integer && gt->data[e] != floorf(gt->data[e]))
                    return pml_fail(PML_EFORMAT, "%s: graph input '%s' (%s) is given %g",
                                    im->path, pml_dot_brief(name), type_name(et),
                                    (double)gt->data[e]);
                t->data[e] = gt->data[e];
                ints[e] = (int64_t)gt->data[e];
            }
            if (!integer) {
                free(ints);
                im->v[v].ints = NULL;
            }
            in->given = true;
            continue;
        }
        in->type = et;
        if (!exact_in_float(et))
            return pml_fail(PML_EUNSUPPORTED,
                            "%s: graph input '%s' is of type %s (pml takes float, and uint8, int8 "
                            "and int16 as float%s)",
                            im->path, pml_dot_brief(name), type_name(et),
                            !first && (integer || (et == T_BOOL && in->rank == 0))
                                ? "; pml infer folds an integer input or a scalar given with the "
                                  "others"
                                : "");
        if (first) {
            int id;
            pml_status st = input_node(im, idx, &id);
            if (st != PML_OK) return st;
            im->batch = one_input(im, in) ? 1 : in->transposed ? in->dims[1] : in->dims[0];
            int k = new_val(im, gp->input[i]->name, V_TENSOR);
            if (k < 0) return oom(im);
            im->v[k].node = id;
            im->v[k].rank = in->rank;
        } else {
            /* a weight given at run time, or, once a node takes it as a tensor, a data input */
            int k = new_val(im, gp->input[i]->name, V_WEIGHT);
            if (k < 0) return oom(im);
            im->v[k].input = m->ninputs - 1;
            im->v[k].t.rank = in->rank;
            size_t n = 1;
            for (int d = 0; d < in->rank; d++) {
                im->v[k].t.dims[d] = in->dims[d];
                im->v[k].symbolic |= in->dims[d] < 0;
                n *= in->dims[d] < 0 ? 0 : (size_t)in->dims[d];
            }
            im->v[k].t.n = n;
        }
    }
    if (m->ninputs == 0 || !m->inputs[0].data)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: the graph has no input that an initializer does not give (pml's models "
                        "compute from one input)",
                        im->path);
    return PML_OK;
}

static pml_status initializers(imp *im)
{
    for (size_t i = 0; i < im->gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = im->gp->initializer[i];
        if (!tp->name || !*tp->name)
            return pml_fail(PML_EFORMAT, "%s: initializer %zu has no name", im->path, i);
        int k = new_val(im, tp->name, V_CONST);
        if (k < 0) return oom(im);
        pml_status st = tp_data(tp, im->path, im->dir, &im->v[k].t, &im->v[k].ints);
        if (st != PML_OK) return st;
    }
    return PML_OK;
}

static pml_status import_nodes(imp *im)
{
    if (!(im->taken = calloc(im->gp->n_node + 1, 1))) return oom(im);
    for (size_t i = 0; i < im->gp->n_node; i++) {
        const Onnx__NodeProto *n = im->gp->node[i];
        if (im->taken[i]) continue;
        im->node = n;
        im->node_index = (int)i;
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0)
            return nfail(im, PML_EUNSUPPORTED, "domain '%s': pml imports the default domain",
                         pml_dot_brief(n->domain));
        if (!n->op_type || !*n->op_type) return nfail(im, PML_EFORMAT, "no op_type");
        size_t k = 0;
        while (k < sizeof ops / sizeof *ops && strcmp(ops[k].name, n->op_type) != 0) k++;
        if (k == sizeof ops / sizeof *ops)
            return nfail(im, PML_EUNSUPPORTED, "pml does not support this operator (it imports: %s)",
                         supported_ops);
        if (n->n_output < 1 || !n->output[0] || !*n->output[0])
            return nfail(im, PML_EFORMAT, "no output");
        for (size_t j = 0; j < n->n_input; j++)
            if (n->input[j] && *n->input[j] && find_val(im, n->input[j]) < 0)
                return nfail(im, PML_EFORMAT,
                             "input '%s' is not defined before it (no graph input, initializer "
                             "or earlier node gives it)",
                             pml_dot_brief(n->input[j]));
        for (size_t j = 0; j < n->n_output; j++)
            if (n->output[j] && *n->output[j] && find_val(im, n->output[j]) >= 0)
                return nfail(im, PML_EFORMAT, "output '%s' is defined twice",
                             pml_dot_brief(n->output[j]));
        if (im->whole && ops[k].fn != op_concat && ops[k].fn != op_identity &&
            ops[k].fn != op_relu && ops[k].fn != op_activation && ops[k].fn != op_constant)
            return nfail(im, PML_EUNSUPPORTED, "not imported whole");
        int before = im->nv;
        pml_status st = ops[k].fn(im);
        if (st != PML_OK) return st;
        for (int v = before; v < im->nv; v++) im->v[v].uses = uses_of(im, im->v[v].name);
    }
    return PML_OK;
}

/* Graph output k: what it is, in m->outputs[k]. */
static pml_status graph_output(imp *im, int k)
{
    const Onnx__GraphProto *gp = im->gp;
    pml_onnx_output *o = &im->m->outputs[k];
    const char *name = gp->output[k]->name ? gp->output[k]->name : "";
    int i = find_val(im, name);
    if (i < 0)
        return pml_fail(PML_EFORMAT, "%s: output '%s' is not computed by any node", im->path,
                        pml_dot_brief(name));
    const val *y = &im->v[i];
    if (y->kind == V_CONST || y->kind == V_WEIGHT)
        return pml_fail(PML_EUNSUPPORTED, "%s: output '%s' is a constant, not computed from the input",
                        im->path, pml_dot_brief(name));
    if (k == 0 && y->kind != V_TENSOR)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: output '%s' is a %s; pml's first output is the model's (it gets the "
                        "loss)",
                        im->path, pml_dot_brief(name),
                        derived_name(y->kind));
    if (!(o->name = strdup(name))) return oom(im);
    const Onnx__TypeProto *otp = gp->output[k]->type;
    if (otp && otp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && otp->tensor_type &&
        otp->tensor_type->has_elem_type)
        o->type = otp->tensor_type->elem_type;
    o->kind = y->kind == V_MASK      ? PML_ONNX_OUT_MASK
              : y->kind == V_INDICES ? PML_ONNX_OUT_INDICES
              : y->kind == V_RUNMEAN ? PML_ONNX_OUT_RUNNING_MEAN
              : y->kind == V_RUNVAR  ? PML_ONNX_OUT_RUNNING_VAR
                                     : PML_ONNX_OUT_TENSOR;
    o->node = y->node;
    if (y->kind == V_RUNMEAN || y->kind == V_RUNVAR) { /* (C), whatever the batch */
        o->rank = 1;
        o->dims[0] = im->g->nodes[y->node].out.c;
        o->batch = -1;
        o->samples = -1;
    } else {
        o->rank = dims_of(im, y, o->dims, &o->batch);
        o->samples = o->batch < 0 ? (int)im->batch : 0;
    }
    o->softmax = y->softmax;
    o->axis = y->axis;
    o->coerced = y->coerced;
    o->log = y->log;
    o->column_major = y->column_major;
    if (o->kind == PML_ONNX_OUT_MASK || o->kind == PML_ONNX_OUT_INDICES) /* ONNX's types */
        o->type = o->kind == PML_ONNX_OUT_MASK ? T_BOOL : T_INT64;
    if (k > 0 && o->kind == PML_ONNX_OUT_TENSOR && o->node != im->m->outputs[0].node) {
        /* pml's graph has one head: another output must feed the first */
        bool feeds = false;
        for (int v = 0; v < im->g->nnodes && !feeds; v++)
            for (int j = 0; j < im->g->nodes[v].nin; j++) feeds |= im->g->nodes[v].in[j] == o->node;
        if (!feeds)
            return pml_fail(PML_EUNSUPPORTED,
                            "%s: output '%s' is not on the way to output '%s'; pml's models have "
                            "one head",
                            im->path, pml_dot_brief(name), pml_dot_brief(im->m->outputs[0].name));
    }
    return PML_OK;
}

/* the model's outputs; the first gets the loss head */
static pml_status output_head(imp *im)
{
    const Onnx__GraphProto *gp = im->gp;
    pml_onnx *m = im->m;
    if (gp->n_output < 1)
        return pml_fail(PML_EFORMAT, "%s: the graph has no output", im->path);
    if (gp->n_output > PML_ONNX_MAX_OUTPUTS)
        return pml_fail(PML_EUNSUPPORTED, "%s: the graph has %zu outputs; pml takes up to %d",
                        im->path, gp->n_output, PML_ONNX_MAX_OUTPUTS);
    if (!(m->outputs = calloc(gp->n_output, sizeof *m->outputs))) return oom(im);
    m->noutputs = (int)gp->n_output;
    pml_status st;
    for (int k = 0; k < m->noutputs; k++) {
        /* the first before the others: they are checked against it */
        if ((st = graph_output(im, k)) != PML_OK) return st;
    }
    int logits = m->outputs[0].node;
    pml_shape s = im->g->nodes[logits].out;
    static const Onnx__NodeProto none = ONNX__NODE_PROTO__INIT;
    im->node = &none;
    if (s.h != 1 || s.w != 1 || im->g->nodes[logits].op == PML_OP_INPUT) {
        logits = add_node(im, "output_flatten", PML_OP_FLATTEN, NULL, 1, &logits);
        if (logits < 0) return PML_ESHAPE;
    }
    /* one value a sample: a binary classifier's logit (softmax_xent reads it as (0, z)) */
    return add_node(im, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &logits) < 0 ? PML_ESHAPE : PML_OK;
}

/* the source values binding b takes */
static size_t bind_wants(const pml_onnx *m, const struct pml_onnx_bind *b)
{
    const pml_node *nd = &m->g.nodes[b->node];
    if (b->tile[0] > 0) return (size_t)b->tile[0] * b->tile[1] * b->tile[2];
    return b->state ? nd->state_size[b->slot] : nd->param_size[b->slot];
}

/* puts n source values into slot b, as the binding says */
static pml_status put(const pml_onnx *m, const struct pml_onnx_bind *b, const float *src, size_t n,
                      const char *what, float *params, float *state)
{
    const pml_node *nd = &m->g.nodes[b->node];
    const size_t size = b->state ? nd->state_size[b->slot] : nd->param_size[b->slot];
    const size_t want = bind_wants(m, b);
    float *dst = (b->state ? state + nd->state_off[b->slot] : params + nd->param_off[b->slot]);
    if (n != want && !(b->broadcast && n == 1))
        return pml_fail(PML_ESHAPE, "'%s' has %zu values; node '%s' needs %zu", what, n, nd->name,
                        want);
    if (b->tile[0] > 0) { /* repeated along the tile's 1s to the output's (C, H, W) */
        const pml_shape s = nd->out;
        const int *t = b->tile;
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    dst[((size_t)c * s.h + h) * s.w + w] =
                        src[((size_t)(t[0] > 1 ? c : 0) * t[1] + (t[1] > 1 ? h : 0)) * t[2] +
                            (t[2] > 1 ? w : 0)] *
                        b->scale;
    } else if (b->broadcast && n == 1) {
        for (size_t i = 0; i < size; i++) dst[i] = src[0] * b->scale;
    } else if (b->trows > 0) {
        for (int r = 0; r < b->trows; r++)
            for (int c = 0; c < b->tcols; c++)
                dst[(size_t)c * b->trows + r] = src[(size_t)r * b->tcols + c] * b->scale;
    } else if (b->scale != 1.0f) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i] * b->scale;
    } else {
        memcpy(dst, src, n * sizeof *dst);
    }
    return PML_OK;
}

static pml_status weights(imp *im, uint64_t seed)
{
    pml_onnx *m = im->m;
    const pml_graph *g = &m->g;
    m->params = malloc((g->nparams ? g->nparams : 1) * sizeof(float));
    m->state = malloc((g->nstate ? g->nstate : 1) * sizeof(float));
    if (!m->params || !m->state) return oom(im);
    pml_params_init(g, m->params, m->state, seed);
    for (int i = 0; i < im->nas; i++) {
        const assign *a = &im->as[i];
        val *s = &im->v[a->src];
        if (s->kind == V_CONST) {
            pml_status st = put(m, &a->b, s->t.data, s->t.n, s->name, m->params, m->state);
            if (st != PML_OK) return pml_fail_ctx(st, "%s: ", im->path);
            continue;
        }
        pml_onnx_input *in = &m->inputs[s->input];
        struct pml_onnx_bind *nb = realloc(in->bind, (size_t)(in->nbind + 1) * sizeof *nb);
        if (!nb) return oom(im);
        in->bind = nb;
        in->bind[in->nbind++] = a->b;
        /* its size is checked now: pml_onnx_bind then checks the tensor's shape */
        const pml_node *nd = &g->nodes[a->b.node];
        size_t size = bind_wants(m, &a->b);
        if (s->t.n != size && !(a->b.broadcast && s->t.n == 1))
            return pml_fail(PML_ESHAPE, "%s: input '%s' has %zu values; node '%s' needs %zu",
                            im->path, pml_dot_brief(s->name), s->t.n, nd->name, size);
    }
    return PML_OK;
}

pml_status pml_onnx_bind(const pml_onnx *m, int input, const pml_tensor *t, float *params,
                         float *state)
{
    if (input < 0 || input >= m->ninputs || m->inputs[input].data)
        return pml_fail(PML_EINVAL, "ONNX input %d is not a weight", input);
    const pml_onnx_input *in = &m->inputs[input];
    if (in->given) return PML_OK; /* folded at import */
    bool same = t->rank == in->rank;
    for (int d = 0; same && d < in->rank; d++) same = t->dims[d] == in->dims[d];
    if (!same)
        return pml_fail(PML_ESHAPE, "input '%s': the tensor's shape is not the model's",
                        pml_dot_brief(in->name));
    for (int i = 0; i < in->nbind; i++) {
        pml_status st = put(m, &in->bind[i], t->data, t->n, in->name, params, state);
        if (st != PML_OK) return st;
    }
    return PML_OK;
}

/* Puts the data inputs' nodes first, in the graph's order (a data input found only as a node
 * takes it was added later): pml's inputs, as exported, then follow the ONNX model's. */
static pml_status order_inputs(imp *im)
{
    pml_onnx *m = im->m;
    pml_graph *g = im->g;
    const int n = g->nnodes;
    bool sorted = true;
    for (int k = 0, next = 0; k < m->ninputs; k++)
        if (m->inputs[k].data) sorted = sorted && m->inputs[k].node == next++;
    if (sorted) return PML_OK;
    int *to = malloc((size_t)n * sizeof *to);
    pml_node *nodes = malloc((size_t)g->cap * sizeof *nodes);
    if (!to || !nodes) {
        free(to);
        free(nodes);
        return oom(im);
    }
    int next = 0;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k].data) to[m->inputs[k].node] = next++;
    for (int v = 0; v < n; v++)
        if (g->nodes[v].op != PML_OP_INPUT) to[v] = next++;
    for (int v = 0; v < n; v++) {
        nodes[to[v]] = g->nodes[v];
        for (int j = 0; j < g->nodes[v].nin; j++) nodes[to[v]].in[j] = to[g->nodes[v].in[j]];
    }
    free(g->nodes);
    g->nodes = nodes;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k].data) m->inputs[k].node = to[m->inputs[k].node];
    for (int i = 0; i < im->nv; i++)
        if (im->v[i].kind != V_CONST && im->v[i].kind != V_WEIGHT && im->v[i].node >= 0)
            im->v[i].node = to[im->v[i].node];
    for (int i = 0; i < im->nas; i++) im->as[i].b.node = to[im->as[i].b.node];
    for (int k = 0; k < m->noutputs; k++) m->outputs[k].node = to[m->outputs[k].node];
    free(to);
    return PML_OK;
}

static void free_vals(imp *im)
{
    for (int i = 0; i < im->nv; i++) {
        free(im->v[i].t.data);
        free(im->v[i].t.name);
        free(im->v[i].ints);
    }
    free(im->v);
    free(im->as);
    free(im->taken);
}


static pml_status parse(const void *data, size_t len, const char *path, uint64_t seed,
                       const pml_tensor *given, int ngiven, pml_onnx *m);

pml_status pml_onnx_read_given(const char *path, uint64_t seed, const pml_tensor *given,
                               int ngiven, pml_onnx *m)
{
    memset(m, 0, sizeof *m);
    pml_graph_init(&m->g, NULL);
    char *buf;
    size_t len;
    pml_status st = pml_read_file(path, PML_ONNX_MAX_BYTES, &buf, &len);
    if (st != PML_OK) return st;
    st = parse(buf, len, path, seed, given, ngiven, m);
    free(buf);
    return st;
}

pml_status pml_onnx_read(const char *path, uint64_t seed, pml_onnx *m)
{
    return pml_onnx_read_given(path, seed, NULL, 0, m);
}

pml_status pml_onnx_parse(const void *data, size_t len, const char *path, uint64_t seed,
                          pml_onnx *m)
{
    return parse(data, len, path, seed, NULL, 0, m);
}

/* The graph of mp into m (model name, nodes, outputs, weights). */
static pml_status import_graph(imp *im, const Onnx__ModelProto *mp, uint64_t seed)
{
    pml_onnx *m = im->m;
    pml_status st;
    snprintf(im->dir, sizeof im->dir, "%s", im->path);
    char *slash = strrchr(im->dir, '/');
    if (slash) *slash = 0;
    else snprintf(im->dir, sizeof im->dir, ".");
    if (!mp->graph) return pml_fail(PML_EFORMAT, "%s: the model has no graph", im->path);
    if ((st = opset_of(im, mp)) != PML_OK || (st = initializers(im)) != PML_OK ||
        (st = graph_inputs(im)) != PML_OK || (st = import_nodes(im)) != PML_OK ||
        (st = output_head(im)) != PML_OK)
        return st;
    if (mp->graph->name && *mp->graph->name && pml_dot_name_ok(mp->graph->name) &&
        strlen(mp->graph->name) < PML_NAME_MAX && strcmp(mp->graph->name, "main_graph") != 0 &&
        strcmp(mp->graph->name, "torch_jit") != 0)
        snprintf(m->g.name, sizeof m->g.name, "%s", mp->graph->name);
    m->onnx_nodes = (int)mp->graph->n_node;
    m->whole = im->whole;
    if ((st = order_inputs(im)) != PML_OK) return st;
    if ((st = pml_graph_finalize(&m->g)) != PML_OK) return pml_fail_ctx(st, "%s: ", im->path);
    return weights(im, seed);
}

/* A model that joins tensors along their first axis (a Concat of axis 0: ONNX's node tests)
 * has no batch pml could split: it is imported again whole, each tensor one sample of its
 * whole shape (up to rank 3: the sample's C, H, W), when its nodes are all ones that do not
 * tell a batch from a sample's axes (Concat, Identity, pointwise activations); else the first
 * import's message stands. */
static pml_status parse(const void *data, size_t len, const char *path, uint64_t seed,
                       const pml_tensor *given, int ngiven, pml_onnx *m)
{
    memset(m, 0, sizeof *m);
    char base[PML_NAME_MAX];
    pml_dot_source_name(path, "onnx", base, sizeof base);
    pml_graph_init(&m->g, base);
    Onnx__ModelProto *mp = len ? onnx__model_proto__unpack(NULL, len, (const uint8_t *)data) : NULL;
    if (!mp)
        return pml_fail(PML_EFORMAT,
                        "%s: not an ONNX model (protobuf cannot parse it as a ModelProto: cut, "
                        "corrupted or another kind of file)",
                        path);
    imp im = {.path = path, .m = m, .g = &m->g, .gp = mp->graph, .batch = -1, .given = given,
              .ngiven = ngiven};
    pml_status st = import_graph(&im, mp, seed);
    free_vals(&im);
    char msg[1024];
    if (st == PML_EUNSUPPORTED && im.joins_batch) {
        snprintf(msg, sizeof msg, "%s", pml_errmsg());
        pml_onnx_free(m);
        pml_graph_init(&m->g, base);
        imp whole = {.path = path, .m = m, .g = &m->g, .gp = mp->graph, .batch = -1,
                     .given = given, .ngiven = ngiven, .whole = true};
        pml_status again = import_graph(&whole, mp, seed);
        free_vals(&whole);
        if (again == PML_OK) st = PML_OK;
        else pml_fail(st, "%s", msg);
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st != PML_OK) {
        snprintf(msg, sizeof msg, "%s", pml_errmsg());
        pml_onnx_free(m);
        pml_fail(st, "%s", msg);
    }
    return st;
}

/* ---------------------------------------------------------------- export
 *
 * One ONNX node per pml op (a fused relu: a Relu after it; a linear on a rank-4 tensor: a
 * Flatten before it), weights as initializers in ONNX's layouts, opset 13; the graph's output is
 * the logits (the loss head is pml's). Tensors of pml shape (C, 1, 1) made by flatten and linear
 * are rank 2 (N, C); all others rank 4 (N, C, H, W). */

typedef struct ex {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto op, *ops[1];
    Onnx__NodeProto **nodes;
    int nn, capn;
    Onnx__TensorProto **inits;
    int ni, capi;
    struct ex_vi { /* a graph input or output: the inputs in id order, then the output */
        Onnx__ValueInfoProto v;
        Onnx__TypeProto tp;
        Onnx__TypeProto__Tensor tt;
        Onnx__TensorShapeProto sh;
        Onnx__TensorShapeProto__Dimension dim[5], *dimp[5];
    } *io;
    Onnx__ValueInfoProto **inp, *outp[1];
    int nio;
    char **names; /* every string made here, freed at the end */
    int nnames, capnames;
    bool oom;
} ex;

static char *ex_str(ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ex_str(ex *e, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (e->nnames == e->capnames) {
        int cap = e->capnames ? 2 * e->capnames : 256;
        char **n = realloc(e->names, (size_t)cap * sizeof *n);
        if (!n) {
            e->oom = true;
            return (char *)"";
        }
        e->names = n;
        e->capnames = cap;
    }
    char *s = strdup(buf);
    if (!s) {
        e->oom = true;
        return (char *)"";
    }
    return e->names[e->nnames++] = s;
}

static void *ex_push(ex *e, void ***arr, int *n, int *cap, size_t size)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        void **a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a) {
            e->oom = true;
            return NULL;
        }
        *arr = a;
        *cap = c;
    }
    void *x = calloc(1, size);
    if (!x) {
        e->oom = true;
        return NULL;
    }
    return (*arr)[(*n)++] = x;
}

/* a node op(inputs) -> out; attributes added with ex_attr_* */
static Onnx__NodeProto *ex_node(ex *e, const char *op, const char *name, char *out, int nin,
                                char *const *in)
{
    Onnx__NodeProto *n = ex_push(e, (void ***)&e->nodes, &e->nn, &e->capn, sizeof *n);
    if (!n) return NULL;
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    n->op_type = (char *)op;
    n->name = ex_str(e, "%s", name);
    n->input = calloc((size_t)(nin ? nin : 1), sizeof *n->input);
    n->output = calloc(1, sizeof *n->output);
    if (!n->input || !n->output) {
        e->oom = true;
        return n;
    }
    for (int i = 0; i < nin; i++) n->input[i] = in[i];
    n->n_input = (size_t)nin;
    n->output[0] = out;
    n->n_output = 1;
    return n;
}

static Onnx__AttributeProto *ex_attr(ex *e, Onnx__NodeProto *n, const char *name, int type)
{
    if (!n) return NULL;
    Onnx__AttributeProto **a = realloc(n->attribute, (n->n_attribute + 1) * sizeof *a);
    Onnx__AttributeProto *x = calloc(1, sizeof *x);
    if (!a || !x) {
        if (a) n->attribute = a;
        free(x);
        e->oom = true;
        return NULL;
    }
    *x = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    x->name = (char *)name;
    x->has_type = 1;
    x->type = (Onnx__AttributeProto__AttributeType)type;
    n->attribute = a;
    a[n->n_attribute++] = x;
    return x;
}

static void ex_attr_i(ex *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void ex_attr_f(ex *e, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

static void ex_attr_ints(ex *e, Onnx__NodeProto *n, const char *name, int k, const int64_t *v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return;
    if (!(a->ints = malloc((size_t)k * sizeof *a->ints))) {
        e->oom = true;
        return;
    }
    memcpy(a->ints, v, (size_t)k * sizeof *v);
    a->n_ints = (size_t)k;
}

/* a float initializer of rank r and dims d (a copy of the data) */
static char *ex_init(ex *e, const char *name, int r, const int64_t *d, const float *data)
{
    Onnx__TensorProto *t = ex_push(e, (void ***)&e->inits, &e->ni, &e->capi, sizeof *t);
    if (!t) return (char *)"";
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    t->name = ex_str(e, "%s", name);
    size_t n = 1;
    if (!(t->dims = malloc((size_t)(r ? r : 1) * sizeof *t->dims))) {
        e->oom = true;
        return t->name;
    }
    for (int i = 0; i < r; i++) n *= (size_t)(t->dims[i] = d[i]);
    t->n_dims = (size_t)r;
    t->has_data_type = 1;
    t->data_type = T_FLOAT;
    t->has_raw_data = 1;
    t->raw_data.len = n * sizeof(float); /* little-endian (x86-64) */
    if ((t->raw_data.data = malloc(n ? n * sizeof(float) : 1)))
        memcpy(t->raw_data.data, data, n * sizeof(float));
    else
        e->oom = true;
    return t->name;
}

/* a scalar bool initializer */
static char *ex_init_bool(ex *e, const char *name, bool v)
{
    const float f = 0.0f;
    char *s = ex_init(e, name, 0, NULL, &f);
    if (e->oom) return s;
    Onnx__TensorProto *t = e->inits[e->ni - 1];
    t->data_type = T_BOOL;
    t->raw_data.len = 1;
    t->raw_data.data[0] = v;
    return s;
}

static void ex_io(ex *e, int k, const char *name, int rank, const int64_t *d)
{
    struct ex_vi *x = &e->io[k];
    Onnx__ValueInfoProto *v = &x->v;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    x->tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    x->tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    x->sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *dm = &x->dim[i];
        *dm = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (i == 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = (char *)"N";
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = d[i];
        }
        x->dimp[i] = dm;
    }
    x->sh.n_dim = (size_t)rank;
    x->sh.dim = x->dimp;
    x->tt.has_elem_type = 1;
    x->tt.elem_type = T_FLOAT;
    x->tt.shape = &x->sh;
    x->tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    x->tp.tensor_type = &x->tt;
    v->name = (char *)name;
    v->type = &x->tp;
}

static void ex_free(ex *e)
{
    for (int i = 0; i < e->nn; i++) {
        Onnx__NodeProto *n = e->nodes[i];
        for (size_t j = 0; j < n->n_attribute; j++) {
            free(n->attribute[j]->ints);
            free(n->attribute[j]);
        }
        free(n->attribute);
        free(n->input);
        free(n->output);
        free(n);
    }
    for (int i = 0; i < e->ni; i++) {
        free(e->inits[i]->dims);
        free(e->inits[i]->raw_data.data);
        free(e->inits[i]);
    }
    for (int i = 0; i < e->nnames; i++) free(e->names[i]);
    free(e->nodes);
    free(e->inits);
    free(e->names);
    free(e->io);
    free(e->inp);
}

/* a window's attributes: kernel, strides, dilations, and the padding as given (same: auto_pad;
 * ceil_mode's extra cells are ONNX's as they are pml's) */
static void ex_window(ex *e, Onnx__NodeProto *n, const pml_node *p)
{
    const pml_attrs *a = &p->a;
    const int t = a->depth > 0; /* 3-D: the depth's first */
    const int sp = 2 + t;
    int64_t k[3] = {a->kd, a->kh, a->kw}, s[3] = {a->sd, a->sh, a->sw};
    ex_attr_ints(e, n, "kernel_shape", sp, k + 1 - t);
    ex_attr_ints(e, n, "strides", sp, s + 1 - t);
    if (a->dh > 1 || a->dw > 1 || (t && a->dd > 1)) {
        int64_t dl[3] = {a->dd > 1 ? a->dd : 1, a->dh > 1 ? a->dh : 1, a->dw > 1 ? a->dw : 1};
        ex_attr_ints(e, n, "dilations", sp, dl + 1 - t);
    }
    if (a->pad_mode == PML_PAD_SAME || a->pad_mode == PML_PAD_SAME_LOWER) {
        Onnx__AttributeProto *x = ex_attr(e, n, "auto_pad", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
        if (x) {
            x->has_s = 1;
            x->s.data = (uint8_t *)(a->pad_mode == PML_PAD_SAME ? "SAME_UPPER" : "SAME_LOWER");
            x->s.len = strlen((const char *)x->s.data);
        }
    } else {
        const int ph = a->pad_mode == PML_PAD_EXPLICIT ? a->ph : 0;
        const int pw = a->pad_mode == PML_PAD_EXPLICIT ? a->pw : 0;
        const int pd = a->pad_mode == PML_PAD_EXPLICIT ? a->pd : 0;
        int64_t pads[6] = {ph, pw, ph, pw}, pads3[6] = {pd, ph, pw, pd, ph, pw};
        ex_attr_ints(e, n, "pads", 2 * sp, t ? pads3 : pads);
    }
}

/* The rank each node's output is written with: 4 (N, C, H, W) but for linear and flatten (N, C)
 * and ops that keep their input's. An input is (N, C) when it is a vector that no window reads
 * and that meets no rank-4 tensor in an add or concat (ONNX would broadcast (N, C) against
 * (N, C, 1, 1) to (N, C, N, C)): raised to 4 then, through the ops that keep ranks. */
static int ex_keeps_rank(pml_op_type op)
{
    return op == PML_OP_RELU || op == PML_OP_ADD || op == PML_OP_CONCAT ||
           op == PML_OP_BATCHNORM || op == PML_OP_DROPOUT || op == PML_OP_ACTIVATION ||
           op == PML_OP_MUL;
}

static bool ex_raise(const pml_graph *g, int *rank, int id)
{
    const pml_node *p = &g->nodes[id];
    if (p->op == PML_OP_INPUT && rank[id] == 2) return rank[id] = 4, true;
    bool changed = false;
    if (ex_keeps_rank(p->op))
        for (int i = 0; i < p->nin; i++) changed |= ex_raise(g, rank, p->in[i]);
    return changed;
}

static void ex_ranks(const pml_graph *g, int *rank)
{
    for (int id = 0; id < g->nnodes; id++) {
        const pml_node *p = &g->nodes[id];
        if (p->op != PML_OP_INPUT) continue;
        rank[id] = p->out.h == 1 && p->out.w == 1 ? 2 : 4;
        int uses = 0, matrices = 0; /* read by matmuls of one matrix a sample only: (N, M, K) */
        for (int j = 0; j < g->nnodes; j++)
            for (int i = 0; i < g->nodes[j].nin; i++) {
                if (g->nodes[j].in[i] != id) continue;
                uses++;
                matrices += g->nodes[j].op == PML_OP_MATMUL && g->nodes[j].a.axis == 0;
                if (g->nodes[j].op == PML_OP_CONV2D || g->nodes[j].op == PML_OP_MAXPOOL2D ||
                    g->nodes[j].op == PML_OP_AVGPOOL2D)
                    rank[id] = 4;
            }
        if (uses > 0 && matrices == uses && p->out.w == 1) rank[id] = 3;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (int k = 0; k < g->nnodes; k++) {
            const int id = g->order[k];
            const pml_node *p = &g->nodes[id];
            if (p->op == PML_OP_INPUT) continue;
            rank[id] = ex_keeps_rank(p->op)                               ? rank[p->in[0]]
                       : p->op == PML_OP_LINEAR || p->op == PML_OP_FLATTEN ? 2
                       : p->op == PML_OP_MATMUL && p->a.axis == 0          ? 3
                                                                             : 4;
        }
        for (int id = 0; id < g->nnodes; id++) {
            const pml_node *p = &g->nodes[id];
            if (p->op != PML_OP_ADD && p->op != PML_OP_CONCAT) continue;
            bool four = p->op == PML_OP_CONCAT && p->a.axis != 0; /* rows or columns */
            for (int i = 0; i < p->nin; i++) four |= rank[p->in[i]] == 4;
            for (int i = 0; four && i < p->nin; i++)
                if (rank[p->in[i]] == 2) changed |= ex_raise(g, rank, p->in[i]);
        }
    }
}

/* What ONNX cannot say as pml writes it, refused with one message: a concat of rows or columns
 * joins (N, C, H, W) tensors, and a linear's or flatten's (N, C) cannot be raised to that by an
 * operator pml reads back; a mul of a map by such a vector would broadcast along the columns; a
 * 2-D window on a 3-D tensor has no ONNX operator. */
static pml_status ex_writable(const pml_graph *g, const int *in_rank, const char *path)
{
    for (int id = 0; id < g->nnodes; id++) {
        const pml_node *p = &g->nodes[id];
        for (int i = 0; p->op == PML_OP_CONCAT && p->a.axis != 0 && i < p->nin; i++)
            if (in_rank[p->in[i]] != 4)
                return pml_fail(PML_EUNSUPPORTED,
                                "%s: node '%s' (concat of %s) joins a vector (N, C), which pml "
                                "writes to ONNX as a matrix: ONNX's Concat would take another axis",
                                path, pml_dot_brief(p->name), p->a.axis == 1 ? "rows" : "columns");
        const bool win = p->op == PML_OP_CONV2D || p->op == PML_OP_MAXPOOL2D ||
                         p->op == PML_OP_AVGPOOL2D;
        const int planes = p->nin ? node_depth(g, p->in[0]) : 0;
        if (win && p->a.depth == 0 && planes > 0)
            return pml_fail(PML_EUNSUPPORTED,
                            "%s: node '%s' (%s) is a 2-D window on a 3-D tensor (%d planes): ONNX "
                            "needs it 3-D (depth=%d)",
                            path, pml_dot_brief(p->name), pml_op_name(p->op), planes, planes);
        /* one matrix a sample is (N, M, K) in ONNX; pml writes other tensors (N, C) or
         * (N, C, H, W), and a rank-3 tensor may meet none of those */
        const bool matrix = p->op == PML_OP_MATMUL && p->a.axis == 0;
        const bool keeps = ex_keeps_rank(p->op) || p->op == PML_OP_FLATTEN ||
                           p->op == PML_OP_LINEAR || p->op == PML_OP_SOFTMAX_XENT;
        const bool columns = p->op == PML_OP_CONCAT && p->a.axis == 2; /* axis 3 */
        int threes = 0;
        for (int i = 0; i < p->nin; i++) threes += in_rank[p->in[i]] == 3;
        const bool mixed = threes > 0 && threes < p->nin;
        for (int i = 0; i < p->nin; i++) {
            const bool three = in_rank[p->in[i]] == 3;
            if (matrix && !three)
                return pml_fail(PML_EUNSUPPORTED,
                                "%s: node '%s' (matmul) multiplies one matrix a sample of a "
                                "tensor, which pml writes to ONNX as rank %d: ONNX's MatMul would "
                                "take other axes",
                                path, pml_dot_brief(p->name), in_rank[p->in[i]]);
            if (three && !matrix && (!keeps || mixed || columns))
                return pml_fail(PML_EUNSUPPORTED,
                                "%s: node '%s' (%s) reads a matmul's matrices, (N, M, K) in "
                                "ONNX%s: ONNX's operator would take other axes",
                                path, pml_dot_brief(p->name), pml_op_name(p->op),
                                mixed ? ", with tensors of another rank" : "");
        }
        if (p->op == PML_OP_MUL && (in_rank[p->in[0]] == 2) != (in_rank[p->in[1]] == 2))
            return pml_fail(PML_EUNSUPPORTED,
                            "%s: node '%s' (mul) scales a map by a vector (N, C), which pml "
                            "writes to ONNX as a matrix: ONNX's Mul would broadcast it along the "
                            "columns",
                            path, pml_dot_brief(p->name));
    }
    return PML_OK;
}

pml_status pml_onnx_write(const pml_graph *g, const float *params, const float *state,
                          const char *path)
{
    if (!g->finalized) return pml_fail(PML_EINVAL, "model '%s' is not finalised", g->name);
    ex e;
    memset(&e, 0, sizeof e);
    e.m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    e.g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    e.op = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    e.op.domain = (char *)"";
    e.op.has_version = 1;
    e.op.version = 13; /* 14 when HardSwish or a training-mode BatchNormalization is written */
    e.ops[0] = &e.op;
    e.m.n_opset_import = 1;
    e.m.opset_import = e.ops;
    e.m.has_ir_version = 1;
    e.m.ir_version = 7;
    e.m.producer_name = (char *)"pml";
    e.m.producer_version = (char *)PML_VERSION;
    e.m.graph = &e.g;
    e.g.name = (char *)g->name;
    /* each node's output value and its rank; the graph's inputs (every input node, in id
     * order) and output */
    char **vname = calloc((size_t)g->nnodes, sizeof *vname);
    int *rank = calloc((size_t)g->nnodes, sizeof *rank);
    for (int i = 0; i < g->nnodes; i++) e.nio += g->nodes[i].op == PML_OP_INPUT;
    e.io = calloc((size_t)e.nio + 1, sizeof *e.io);
    e.inp = calloc((size_t)e.nio + 1, sizeof *e.inp);
    if (!vname || !rank || !e.io || !e.inp) {
        free(vname);
        free(rank);
        free(e.io);
        free(e.inp);
        return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    }
    for (int k = 0; k < e.nio; k++) e.inp[k] = &e.io[k].v;
    int *in_rank = calloc((size_t)g->nnodes, sizeof *in_rank);
    if (!in_rank) {
        free(vname);
        free(rank);
        free(e.io);
        free(e.inp);
        return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    }
    ex_ranks(g, in_rank);
    pml_status wst = ex_writable(g, in_rank, path);
    if (wst != PML_OK) {
        free(vname);
        free(rank);
        free(e.io);
        free(e.inp);
        free(in_rank);
        return wst;
    }
    /* in id order when that is topological (so reading it back gives the same ids and
     * parameter layout), else in the graph's topological order */
    bool by_id = true;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) by_id = by_id && g->nodes[i].in[j] < i;
    for (int oi = 0; oi < g->nnodes && !e.oom; oi++) {
        const int id = by_id ? oi : g->order[oi];
        const pml_node *p = &g->nodes[id];
        const pml_attrs *a = &p->a;
        char *in[PML_MAX_INPUTS];
        for (int i = 0; i < p->nin; i++) in[i] = vname[p->in[i]];
        char *out = ex_str(&e, "%s", p->name);
        const int depth = node_depth(g, id); /* 3-D: (N, C, D, H, W) */
        rank[id] = depth > 0 ? 5 : 4;
        const float *w0 = p->nparam > 0 ? params + p->param_off[0] : NULL;
        const float *w1 = p->nparam > 1 ? params + p->param_off[1] : NULL;
        Onnx__NodeProto *n = NULL;
        int64_t d[5];
        switch (p->op) {
        case PML_OP_INPUT: {
            rank[id] = depth > 0 ? 5 : in_rank[id]; /* (N, C) or (N, C, H, W): ex_ranks */
            int64_t dd[5] = {-1, p->out.c, p->out.h, p->out.w};
            if (depth > 0) dd[2] = depth, dd[3] = p->out.h / depth, dd[4] = p->out.w;
            int k = 0; /* its place among the inputs */
            for (int i = 0; i < id; i++) k += g->nodes[i].op == PML_OP_INPUT;
            ex_io(&e, k, out, rank[id], dd);
            e.g.input = e.inp;
            e.g.n_input = (size_t)e.nio;
            break;
        }
        case PML_OP_CONV2D: {
            const pml_shape x = g->nodes[p->in[0]].out;
            char *cin[3] = {in[0], NULL, NULL};
            d[0] = a->out, d[1] = x.c / (a->groups > 1 ? a->groups : 1), d[2] = a->kh, d[3] = a->kw;
            if (a->depth > 0) d[2] = a->kd, d[3] = a->kh, d[4] = a->kw;
            cin[1] = ex_init(&e, ex_str(&e, "%s.weight", p->name), a->depth > 0 ? 5 : 4, d, w0);
            if (a->bias) cin[2] = ex_init(&e, ex_str(&e, "%s.bias", p->name), 1, d, w1);
            char *cout = a->act == PML_ACT_RELU ? ex_str(&e, "%s.conv", p->name) : out;
            n = ex_node(&e, "Conv", p->name, cout, a->bias ? 3 : 2, cin);
            ex_window(&e, n, p);
            if (a->groups > 1) ex_attr_i(&e, n, "group", a->groups);
            if (a->act == PML_ACT_RELU) ex_node(&e, "Relu", ex_str(&e, "%s.relu", p->name), out, 1, &cout);
            break;
        }
        case PML_OP_LINEAR: {
            const pml_shape x = g->nodes[p->in[0]].out;
            char *xin = in[0];
            if (rank[p->in[0]] != 2) { /* (N, C, 1, 1) -> (N, C) */
                xin = ex_str(&e, "%s.flatten", p->name);
                ex_node(&e, "Flatten", xin, xin, 1, &in[0]);
            }
            char *gin[3] = {xin, NULL, NULL};
            d[0] = a->out, d[1] = x.c; /* (out, in), as PyTorch's: Gemm with transB=1 */
            gin[1] = ex_init(&e, ex_str(&e, "%s.weight", p->name), 2, d, w0);
            d[0] = a->out;
            if (a->bias) gin[2] = ex_init(&e, ex_str(&e, "%s.bias", p->name), 1, d, w1);
            char *gout = a->act == PML_ACT_RELU ? ex_str(&e, "%s.gemm", p->name) : out;
            n = ex_node(&e, "Gemm", p->name, gout, a->bias ? 3 : 2, gin);
            ex_attr_i(&e, n, "transB", 1);
            if (a->act == PML_ACT_RELU) ex_node(&e, "Relu", ex_str(&e, "%s.relu", p->name), out, 1, &gout);
            rank[id] = 2;
            break;
        }
        case PML_OP_MAXPOOL2D:
        case PML_OP_AVGPOOL2D:
            if (a->global) {
                n = ex_node(&e, p->op == PML_OP_MAXPOOL2D ? "GlobalMaxPool" : "GlobalAveragePool",
                            p->name, out, 1, in);
                break;
            }
            n = ex_node(&e, p->op == PML_OP_MAXPOOL2D ? "MaxPool" : "AveragePool", p->name, out, 1, in);
            ex_window(&e, n, p);
            if (a->ceil_mode) ex_attr_i(&e, n, "ceil_mode", 1);
            if (p->op == PML_OP_AVGPOOL2D && a->count_pad) ex_attr_i(&e, n, "count_include_pad", 1);
            break;
        case PML_OP_RELU:
            ex_node(&e, "Relu", p->name, out, 1, in);
            rank[id] = rank[p->in[0]];
            break;
        case PML_OP_ACTIVATION: {
            rank[id] = rank[p->in[0]];
            if (a->fn == PML_FN_CLIP) { /* min and max as inputs */
                float lo = a->alpha, hi = a->beta;
                char *cin[3] = {in[0], ex_init(&e, ex_str(&e, "%s.min", p->name), 0, d, &lo),
                                ex_init(&e, ex_str(&e, "%s.max", p->name), 0, d, &hi)};
                ex_node(&e, "Clip", p->name, out, 3, cin);
                break;
            }
            if (a->fn == PML_FN_SILU) { /* no ONNX operator: x * Sigmoid(x) */
                char *sg = ex_str(&e, "%s.sigmoid", p->name), *min[2] = {in[0], sg};
                ex_node(&e, "Sigmoid", sg, sg, 1, in);
                ex_node(&e, "Mul", p->name, out, 2, min);
                break;
            }
            const struct act_op *ao = NULL;
            for (size_t i = 0; i < sizeof act_ops / sizeof act_ops[0]; i++)
                if (act_ops[i].fn == a->fn) ao = &act_ops[i];
            if (!ao) break;
            n = ex_node(&e, ao->name, p->name, out, 1, in);
            if (ao->alpha) ex_attr_f(&e, n, ao->alpha, a->alpha);
            if (ao->beta) ex_attr_f(&e, n, ao->beta, a->beta);
            break;
        }
        case PML_OP_MUL:
            ex_node(&e, "Mul", p->name, out, 2, in);
            rank[id] = rank[p->in[0]];
            break;
        case PML_OP_MATMUL: /* (N, M, K) by (N, K, P), or (N, C, M, K) by (N, C, K, P) */
            ex_node(&e, "MatMul", p->name, out, 2, in);
            rank[id] = a->axis == 0 ? 3 : 4;
            break;
        case PML_OP_FLATTEN:
            n = ex_node(&e, "Flatten", p->name, out, 1, in);
            ex_attr_i(&e, n, "axis", 1);
            rank[id] = 2;
            break;
        case PML_OP_ADD: { /* Add of two, Sum of more (one node either way, as read back); the
                            * addend an initializer of one sample, added after (folded back in) */
            rank[id] = rank[p->in[0]];
            char *sum = p->nin > 1 ? out : in[0];
            if (p->nin > 1 && a->addend) sum = ex_str(&e, "%s.sum", p->name);
            if (p->nin > 1) ex_node(&e, p->nin == 2 ? "Add" : "Sum", p->name, sum, p->nin, in);
            if (a->addend) {
                d[0] = 1, d[1] = p->out.c, d[2] = p->out.h, d[3] = p->out.w;
                if (rank[id] == 5) d[2] = depth, d[3] = p->out.h / depth, d[4] = p->out.w;
                char *ain[2] = {sum, ex_init(&e, ex_str(&e, "%s.addend", p->name), rank[id], d,
                                             w0)};
                ex_node(&e, "Add", p->nin > 1 ? ex_str(&e, "%s.addend_add", p->name) : p->name, out,
                        2, ain);
            }
            break;
        }
        case PML_OP_CONCAT: /* channels, rows or columns: (N, C, H, W)'s axis 1, 2 or 3 */
            n = ex_node(&e, "Concat", p->name, out, p->nin, in);
            ex_attr_i(&e, n, "axis", 1 + a->axis);
            rank[id] = rank[p->in[0]];
            break;
        case PML_OP_BATCHNORM: {
            char *bin[5] = {in[0]};
            d[0] = p->out.c;
            bin[1] = ex_init(&e, ex_str(&e, "%s.weight", p->name), 1, d, w0);
            bin[2] = ex_init(&e, ex_str(&e, "%s.bias", p->name), 1, d, w1);
            bin[3] = ex_init(&e, ex_str(&e, "%s.running_mean", p->name), 1, d,
                             state + p->state_off[0]);
            bin[4] = ex_init(&e, ex_str(&e, "%s.running_var", p->name), 1, d,
                             state + p->state_off[1]);
            n = ex_node(&e, "BatchNormalization", p->name, out, 5, bin);
            ex_attr_f(&e, n, "epsilon", a->eps);
            ex_attr_f(&e, n, "momentum", a->momentum);
            if (a->batch_stats && n) { /* the batch's statistics: training mode (opset 14),
                                        * whose node has the running statistics as outputs too */
                ex_attr_i(&e, n, "training_mode", 1);
                e.op.version = 14;
                char **o3 = realloc(n->output, 3 * sizeof *o3);
                if (!o3) {
                    e.oom = true;
                } else {
                    n->output = o3;
                    o3[1] = ex_str(&e, "%s.running_mean_out", p->name);
                    o3[2] = ex_str(&e, "%s.running_var_out", p->name);
                    n->n_output = 3;
                }
            }
            rank[id] = rank[p->in[0]];
            break;
        }
        case PML_OP_DROPOUT: {
            float r = a->rate;
            char *din[3] = {in[0], ex_init(&e, ex_str(&e, "%s.ratio", p->name), 0, d, &r)};
            /* dropping in inference too: training mode, a constant input */
            if (a->always) din[2] = ex_init_bool(&e, ex_str(&e, "%s.training_mode", p->name), 1);
            n = ex_node(&e, "Dropout", p->name, out, a->always ? 3 : 2, din);
            if (a->seed >= 0 && n) ex_attr_i(&e, n, "seed", a->seed);
            rank[id] = rank[p->in[0]];
            break;
        }
        case PML_OP_SOFTMAX_XENT: { /* the logits are the output */
            const pml_node *l = &g->nodes[p->in[0]];
            /* (N, C) or (N, C, 1, 1) as it is (pml's logits are vectors) */
            int64_t dd[5] = {-1, l->out.c, 1, 1, 1};
            ex_io(&e, e.nio, vname[p->in[0]], rank[p->in[0]], dd);
            e.outp[0] = &e.io[e.nio].v;
            e.g.output = e.outp;
            e.g.n_output = 1;
            break;
        }
        default:
            break;
        }
        vname[id] = out;
    }
    for (int k = 0; k < e.nn; k++)
        if (strcmp(e.nodes[k]->op_type, "HardSwish") == 0) e.op.version = 14;
    e.g.node = e.nodes;
    e.g.n_node = (size_t)e.nn;
    e.g.initializer = e.inits;
    e.g.n_initializer = (size_t)e.ni;
    pml_status st = PML_OK;
    if (e.oom) st = pml_fail(PML_ENOMEM, "%s: out of memory", path);
    size_t len = st == PML_OK ? onnx__model_proto__get_packed_size(&e.m) : 0;
    if (st == PML_OK && len > PML_ONNX_MAX_BYTES)
        st = pml_fail(PML_EUNSUPPORTED, "%s: the model's %zu bytes exceed protobuf's 2 GB", path, len);
    uint8_t *buf = st == PML_OK ? malloc(len ? len : 1) : NULL;
    if (st == PML_OK && !buf) st = pml_fail(PML_ENOMEM, "%s: out of memory", path);
    if (st == PML_OK) {
        onnx__model_proto__pack(&e.m, buf);
        st = pml_write_file_atomic(path, buf, len);
    }
    free(buf);
    free(vname);
    free(rank);
    free(in_rank);
    ex_free(&e);
    return st;
}

#endif
