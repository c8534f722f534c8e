/* pml — ops: status codes, tensors, the graph IR, the op table, kernels, optimizers.
 *
 * Conventions
 * - Every activation is a float32 NCHW tensor. A per-sample shape is (c, h, w); vectors
 *   (dense layers, logits) have h = w = 1. The batch size N is not part of a graph: it is
 *   given when a graph is executed.
 * - Functions that can fail return a pml_status; on failure pml_errmsg() holds one message
 *   naming the thing at fault. The library never prints and never exits.
 */
#ifndef PML_OPS_H
#define PML_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

#define PML_STATUS_MAP(X)                                                                          \
    X(OK, "ok")                                                                                    \
    X(EINVAL, "invalid argument")                                                                  \
    X(ENOMEM, "out of memory")                                                                     \
    X(EIO, "input/output error")                                                                   \
    X(EFORMAT, "malformed input")                                                                  \
    X(ESHAPE, "shape mismatch")                                                                    \
    X(ENOTFOUND, "not found")                                                                      \
    X(EUNSUPPORTED, "not supported")                                                               \
    X(ENUMERIC, "non-finite value")                                                                \
    X(EINTR, "interrupted")                                                                        \
    X(ENOFIT, "does not fit in memory")                                                            \
    X(EUNKNOWN, "unknown name") /* a model, machine or strategy pml does not know: a usage error */

typedef enum pml_status {
#define PML__X(name, str) PML_##name,
    PML_STATUS_MAP(PML__X)
#undef PML__X
        PML_STATUS_COUNT
} pml_status;

/** \return a static string describing \p st. */
const char *pml_status_str(pml_status st);
/** \return the message of the last failure on this thread ("" if none). */
const char *pml_errmsg(void);
/** Sets this thread's message and \return \p st. printf-style; the message is escaped
 * (pml_escape): whatever it echoes from input reaches a terminal as text. */
pml_status pml_fail(pml_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Prefixes this thread's message with a context ("file.dot: ") and \return \p st. */
pml_status pml_fail_ctx(pml_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- utilities (ops/util.c) */

/** \return monotonic seconds (CLOCK_MONOTONIC), for measuring intervals. */
double pml_now(void);
/** Start value of pml_hash (FNV-1a's offset basis). */
#define PML_HASH_INIT 0xcbf29ce484222325ull
/** \return \p h with the bytes of \p data mixed in (64-bit FNV-1a): pml_hash(PML_HASH_INIT, ...)
 * for a fresh hash. */
uint64_t pml_hash(uint64_t h, const void *data, size_t n);
/** pml_hash of the characters of \p s. */
uint64_t pml_hash_str(uint64_t h, const char *s);

/** \return true when \p s ends in \p suffix and is longer than it ("m.onnx", ".onnx"). */
bool pml_ends_with(const char *s, const char *suffix);
/** Formats 25557032 as "25,557,032". \return buf. */
const char *pml_fmt_count(char *buf, size_t cap, double v);
/** Formats a quantity with an SI prefix and a unit, 3 significant digits: (8.24e9, "FLOP") ->
 * "8.24 GFLOP", (1.2e10, "B/s") -> "12 GB/s". \return buf. */
const char *pml_fmt_si(char *buf, size_t cap, double v, const char *unit);
/** Formats seconds as "0 s", "850 ns", "12.5 us", "3.41 ms" or "2.07 s" with \p digits
 * significant digits ("-" when not finite). \return buf. */
const char *pml_fmt_seconds(char *buf, size_t cap, double s, int digits);

/** Bytes of a buffer larger than any CPU's caches (64 MiB): see pml_caches_as_in_a_step. */
#define PML_EVICT_BYTES ((size_t)64 << 20)
/** Leaves the caches as a training step leaves them for a kernel about to run: everything it
 * touched a pass ago evicted (\p evict, PML_EVICT_BYTES, is read and written through; NULL:
 * skipped), then what its producers just wrote read back (\p fresh[i], \p n[i] floats each, for
 * i < \p k). For timing kernels as they run inside a step. */
void pml_caches_as_in_a_step(unsigned char *evict, const float *const *fresh, const size_t *n,
                             int k);
/** Reads and writes the first \p bytes of \p evict a cache line at a time, so that nothing
 * touched before stays in a cache of that size (pml_caches_as_in_a_step: PML_EVICT_BYTES). */
void pml_caches_evict(unsigned char *evict, size_t bytes);

/** qsort comparison of doubles, ascending. */
int pml_cmp_double(const void *a, const void *b);
/** \return the median of v[0..n) (the mean of the two middle values when n is even; NaN when
 * n <= 0). Sorts \p v. */
double pml_median(double *v, int n);
/** Ranks 1..n of v[0..n) into r, ties given their average rank. */
void pml_ranks(const double *v, int n, double *r);
/** \return Spearman's rank correlation of x and y (Pearson's of their ranks); NaN when n < 2, a
 * side has no spread, or out of memory. */
double pml_spearman(const double *x, const double *y, int n);

/** Copies \p src to \p dst (\p cap bytes, NUL-terminated) with what a terminal would act on
 * escaped: C0 controls and DEL as \n, \t, \r or \xNN, bytes that are not UTF-8 as \xNN,
 * C1 controls and bidirectional marks and overrides as \uNNNN; printable text, other UTF-8
 * and backslashes are kept (escaping escaped text changes nothing). Cuts at a whole character.
 * \return the length written. */
size_t pml_escape(char *dst, size_t cap, const char *src);
/** Writes \p src to \p f as a JSON string: quoted, '"' and '\\' escaped, controls, C1 controls
 * and bidirectional overrides as \uNNNN, bytes that are not UTF-8 as U+FFFD. */
void pml_json_str(FILE *f, const char *src);

/* ---------------------------------------------------------------- reading JSON (ops/json.c) */

/** Nesting pml_json_object and pml_json_skip accept. */
#define PML_JSON_MAX_DEPTH 64

/** A strict JSON reader (RFC 8259 syntax) over text in memory, walked by the caller: members are
 * taken as they come (pml_json_object), so a large document needs no tree. Initialise as
 * {text, text, text + len, source, kind, 0}: source names the text in messages ("FILE" or
 * "FILE, line 3"), kind says what it is ("trace", "results line"). */
typedef struct pml_json {
    const char *s, *p, *end;
    const char *src;
    const char *kind;
    int depth;
} pml_json;

/** \return the value of hexadecimal digit \p c, or -1. */
int pml_hex_digit(char c);
/** Line and column (1-based) of \p p in the text. */
void pml_json_where(const pml_json *j, const char *p, int *line, int *col);
/** \return PML_EFORMAT with "SOURCE: malformed KIND at line L, column C: WHAT" (or "... ends
 * early" at the end of the text). */
pml_status pml_json_bad(const pml_json *j, const char *what);
/** Skips white space. */
void pml_json_ws(pml_json *j);
/** \return true, past it, when the next character after white space is \p c. */
bool pml_json_eat(pml_json *j, char c);
/** A string into buf (cap bytes with the NUL; buf may be NULL to skip it); *len (may be NULL):
 * its length in bytes, even when longer than buf holds. */
pml_status pml_json_string(pml_json *j, char *buf, size_t cap, size_t *len);
/** A string into buf, refusing one longer than it holds (naming \p what). */
pml_status pml_json_name(pml_json *j, char *buf, size_t cap, const char *what);
pml_status pml_json_number(pml_json *j, double *v);
/** An integer in [lo, hi] (naming \p what when it is not). */
pml_status pml_json_int(pml_json *j, long lo, long hi, const char *what, long *out);
/** The literal \p word (true, false, null). */
pml_status pml_json_literal(pml_json *j, const char *word);
/** Skips one value of any kind. */
pml_status pml_json_skip(pml_json *j);
/** Called for each member with the reader at its value, which it must consume (pml_json_skip
 * what it does not want); keys are at most 63 bytes (longer ones are cut). */
typedef pml_status (*pml_json_member_fn)(pml_json *j, void *ctx, const char *key, size_t keylen);
/** Walks an object, calling \p member for each member. */
pml_status pml_json_object(pml_json *j, pml_json_member_fn member, void *ctx);
/** Called for element \p i of an array with the reader at it, which it must consume. */
typedef pml_status (*pml_json_elem_fn)(pml_json *j, void *ctx, int i);
/** Walks an array, calling \p elem for each element. */
pml_status pml_json_array(pml_json *j, pml_json_elem_fn elem, void *ctx);

/* ---------------------------------------------------------------- shapes */

typedef struct pml_shape {
    int c, h, w;
} pml_shape;

static inline size_t pml_shape_size(pml_shape s) { return (size_t)s.c * s.h * s.w; }
static inline bool pml_shape_eq(pml_shape a, pml_shape b)
{
    return a.c == b.c && a.h == b.h && a.w == b.w;
}

/* ---------------------------------------------------------------- op types */

#define PML_OP_MAP(X)                                                                              \
    X(INPUT, "input")                                                                              \
    X(LINEAR, "linear")                                                                            \
    X(CONV2D, "conv2d")                                                                            \
    X(MAXPOOL2D, "maxpool2d")                                                                      \
    X(AVGPOOL2D, "avgpool2d")                                                                      \
    X(RELU, "relu")                                                                                \
    X(FLATTEN, "flatten")                                                                          \
    X(ADD, "add")                                                                                  \
    X(CONCAT, "concat")                                                                            \
    X(BATCHNORM, "batchnorm")                                                                      \
    X(DROPOUT, "dropout")                                                                          \
    X(SOFTMAX_XENT, "softmax_xent")                                                                \
    X(ACTIVATION, "activation")                                                                    \
    X(MUL, "mul")                                                                                  \
    X(MATMUL, "matmul")

typedef enum pml_op_type {
#define PML__X(name, str) PML_OP_##name,
    PML_OP_MAP(PML__X)
#undef PML__X
        PML_OP_COUNT
} pml_op_type;

/** \return the op's name ("conv2d"), or NULL when out of range. */
const char *pml_op_name(pml_op_type op);
/** \return the op type called \p name, or PML_OP_COUNT when there is none. */
pml_op_type pml_op_from_name(const char *name);

/* same: the output has ceil(in / stride) positions, the padding split evenly with the extra cell
 * at the end (TensorFlow, ONNX SAME_UPPER); same_lower: the extra cell at the start */
enum { PML_PAD_VALID = 0, PML_PAD_SAME = 1, PML_PAD_EXPLICIT = 2, PML_PAD_SAME_LOWER = 3 };
enum { PML_ACT_NONE = 0, PML_ACT_RELU = 1 };
/* activation's functions (alpha, beta: see pml_fn_defaults) */
typedef enum pml_fn {
    PML_FN_SIGMOID,          /* 1 / (1 + e^-x) */
    PML_FN_TANH,             /* tanh x */
    PML_FN_LEAKY_RELU,       /* x < 0 ? alpha x : x (alpha 0.01) */
    PML_FN_ELU,              /* x < 0 ? alpha (e^x - 1) : x (alpha 1) */
    PML_FN_SELU,             /* beta (x <= 0 ? alpha (e^x - 1) : x) (alpha 1.6733, beta 1.0507) */
    PML_FN_SOFTPLUS,         /* log(1 + e^x) */
    PML_FN_SOFTSIGN,         /* x / (1 + |x|) */
    PML_FN_HARD_SIGMOID,     /* max(0, min(1, alpha x + beta)) (alpha 0.2, beta 0.5) */
    PML_FN_THRESHOLDED_RELU, /* x > alpha ? x : 0 (alpha 1) */
    PML_FN_HARD_SWISH,       /* x max(0, min(1, x / 6 + 1 / 2)) */
    PML_FN_SILU,             /* x / (1 + e^-x) (swish) */
    PML_FN_CLIP,             /* min(max(x, alpha), beta) (alpha 0, beta 6: relu6) */
    PML_FN_COUNT
} pml_fn;
/** \return the function's name ("sigmoid", "leaky_relu"), or NULL when out of range. */
const char *pml_fn_name(int fn);
/** \return the function called \p name, or PML_FN_COUNT when there is none. */
int pml_fn_parse(const char *name);
/** The defaults of \p fn's alpha and beta (as ONNX's and Keras' defaults). */
void pml_fn_defaults(int fn, float *alpha, float *beta);

/* Splittable dimensions (FlexFlow SOAP): a bit set. */
enum {
    PML_SPLIT_SAMPLE = 1u << 0, /* batch dimension N */
    PML_SPLIT_PARAM = 1u << 1,  /* output channels / units */
    PML_SPLIT_ATTR = 1u << 2,   /* output rows (H) */
};

/* Operator attributes. One flat struct for every op; each op reads the fields it needs.
 * Fields the user gives are marked (in); fields shape inference fills are marked (out). */
typedef struct pml_attrs {
    pml_shape shape;      /* (in) input: per-sample shape */
    int out;              /* (in) linear units, conv filters */
    int kh, kw;           /* (in) kernel size: conv, pool */
    int sh, sw;           /* (in) strides */
    int pad_mode;         /* (in) PML_PAD_VALID / SAME / SAME_LOWER / EXPLICIT */
    int ph, pw;           /* (in) explicit symmetric padding (PML_PAD_EXPLICIT) */
    int act;              /* (in) fused activation: PML_ACT_NONE / RELU (linear, conv2d) */
    int bias;             /* (in) 1 when the op has a bias (linear, conv2d) */
    int global;           /* (in) pools: pool over the whole map */
    int count_pad;        /* (in) avgpool: divide by the full window, padding included */
    int ceil_mode;        /* (in) pools: ceil output size */
    int groups;           /* (in) conv2d: channel groups (1; the input's channels for depthwise) */
    int dh, dw;           /* (in) conv2d: dilation (1) */
    int axis;             /* (in) concat: the per-sample axis joined, 0 channels (default), 1
                           * rows (h), 2 columns (w); matmul: the matrices' rows, 0 channels
                           * (one matrix a sample, C x H) or 1 rows (C matrices of H x W) */
    int addend;           /* (in) add: 1 adds a learned tensor of a sample's shape too (0) */
    float rate;           /* (in) dropout rate */
    int always;           /* (in) dropout: 1 drops in inference too (an ONNX training-mode node) */
    int seed;             /* (in) dropout: -1 (default) draws pml's masks, new each step and
                           * sample; >= 0 the mask ONNX's reference draws with this seed, the
                           * same each step: MT19937 (pml_mt_seed), a uniform double an element
                           * of the batch in order (sample0 on), kept where >= rate */
    float eps, momentum;  /* (in) batchnorm; momentum as in Keras (running = m*running + (1-m)*batch) */
    int batch_stats;      /* (in) batchnorm: 1 normalises with the batch's statistics in inference
                           * too (an ONNX training-mode node); training always does */
    int fn;               /* (in) activation: its function (pml_fn) */
    float alpha, beta;    /* (in) activation: the function's parameters (pml_fn_defaults) */
    int pt, pb, pl, pr;   /* (out) resolved padding top, bottom, left, right */
    /* 3-D (volumetric) conv2d and pools: a sample (C, D, H, W) is held as (C, D*H, W), its h
     * the D planes of H rows one after another (the same memory as NCDHW); the window also
     * spans kd planes. depth 0: a 2-D op. */
    int depth;            /* (in) conv2d, pools, input: the input's planes D (0: 2-D) */
    int kd, sd, dd, pd;   /* (in) 3-D: kernel depth, stride, dilation (maxpool, conv2d), explicit
                           * symmetric padding (PML_PAD_EXPLICIT) along the depth */
    int pf, pk;           /* (out) 3-D: resolved padding front (before the first plane), back */
    int od;               /* (out) 3-D: the output's planes (its h is od times its rows) */
} pml_attrs;

/** \return attributes with every field at the op's default (stride 1, bias on, eps 1e-3, ...). */
pml_attrs pml_attrs_default(pml_op_type op);

/* ---------------------------------------------------------------- graph IR */

#define PML_MAX_INPUTS 64 /* DenseNet-201 concatenates 49 */
#define PML_MAX_PARAMS 4
#define PML_NAME_MAX 64

typedef struct pml_node {
    char name[PML_NAME_MAX];
    pml_op_type op;
    pml_attrs a;
    int nin;
    int in[PML_MAX_INPUTS]; /* producer node ids, in input order */
    /* Filled by pml_graph_finalize(): */
    pml_shape out;                       /* per-sample output shape */
    int nparam;                          /* trainable parameters (weights, bias, gamma, beta) */
    size_t param_size[PML_MAX_PARAMS];   /* floats */
    size_t param_off[PML_MAX_PARAMS];    /* offset in the graph's parameter block */
    int param_fan_in[PML_MAX_PARAMS];    /* for Glorot init; 0 = not a weight */
    int param_fan_out[PML_MAX_PARAMS];
    int param_init[PML_MAX_PARAMS];      /* PML_INIT_* */
    int nstate;                          /* non-trainable state (batchnorm running mean/var) */
    size_t state_size[PML_MAX_PARAMS];
    size_t state_off[PML_MAX_PARAMS];
    int state_init[PML_MAX_PARAMS];
    size_t aux_per_sample;               /* floats kept from forward to backward, per sample */
    size_t aux_fixed;                    /* ... and independent of the batch (e.g. batch statistics) */
} pml_node;

enum { PML_INIT_ZEROS = 0, PML_INIT_ONES = 1, PML_INIT_GLOROT = 2 };

typedef struct pml_graph {
    char name[PML_NAME_MAX];
    pml_node *nodes;
    int nnodes, cap;
    /* Filled by pml_graph_finalize(): */
    int *order;        /* topological order (node ids); order[0] is the input */
    int input;         /* id of the input node */
    int loss;          /* id of the softmax_xent node (the single sink) */
    int logits;        /* id of the node feeding the loss */
    int classes;       /* number of classes: the logits' c, or 2 for a single logit z (the logits
                        * (0, z): a binary classifier, as BCEWithLogitsLoss) */
    size_t nparams;    /* trainable floats */
    size_t nstate;     /* non-trainable floats */
    bool finalized;
} pml_graph;

/** Initialises an empty graph. */
void pml_graph_init(pml_graph *g, const char *name);
/** Releases everything the graph owns. */
void pml_graph_free(pml_graph *g);
/** Adds a node. \p in lists producer node ids. \return the new node id, or -1 (see pml_errmsg). */
int pml_graph_add(pml_graph *g, const char *name, pml_op_type op, const pml_attrs *a, int nin,
                  const int *in);
/** \return the node id called \p name, or -1. */
int pml_graph_find(const pml_graph *g, const char *name);
/** Checks the graph (one input, one softmax_xent sink, no cycle, no dangling edge), orders it
 * topologically, infers shapes and lays out parameters. Errors name the node at fault.
 * \return PML_OK or an error. */
pml_status pml_graph_finalize(pml_graph *g);
/** \return the number of trainable parameters (the block may hold alignment padding). */
size_t pml_graph_param_count(const pml_graph *g);
/** The class a sample's \p C logits \p z predict (the first of equal maxima), and its softmax
 * probability in *\p prob (not NULL). A single logit z is the logits (0, z): class 1 when
 * z > 0, as softmax_xent's loss reads it. */
int pml_logits_class(const float *z, int C, float *prob);
/** \return forward FLOPs per sample of the whole graph (multiply-add = 2). */
double pml_graph_flops(const pml_graph *g);
/** \return forward FLOPs per sample of one node. */
double pml_node_flops(const pml_graph *g, int id);
/** Copies \p src into \p dst (a deep copy; dst is initialised here). */
pml_status pml_graph_copy(pml_graph *dst, const pml_graph *src);

/* ---------------------------------------------------------------- kernels */

/* The part of a node's output one kernel call computes: samples [n0,n1), output channels
 * [c0,c1), output rows [h0,h1). The full part is {0,N, 0,C, 0,H}. */
typedef struct pml_region {
    int n0, n1, c0, c1, h0, h1;
} pml_region;

/* Everything a kernel sees. Tensors are the full N-sample tensors; a kernel reads what its
 * region needs and writes only its region of y. Backward ACCUMULATES (+=) into dx[] and dw[]:
 * the caller zeroes them, and gives a part private buffers for grads that the part's split
 * makes partial (see pml_op_def.dx_partial / dw_partial). */
typedef struct pml_kctx {
    const pml_node *node;
    int N;                            /* samples in the tensors */
    int batch_total;                  /* global batch (loss scaling) */
    pml_region r;
    int nin;
    const float *x[PML_MAX_INPUTS];
    pml_shape xs[PML_MAX_INPUTS];
    float *y;
    const float *dy;                  /* backward only */
    float *dx[PML_MAX_INPUTS];        /* backward; NULL when that input needs no gradient */
    const float *w[PML_MAX_PARAMS];
    float *dw[PML_MAX_PARAMS];        /* backward; accumulate */
    float *state[PML_MAX_PARAMS];     /* batchnorm running statistics */
    float *aux;                       /* aux_per_sample * N + aux_fixed floats, forward -> backward */
    float *ws;                        /* scratch, ws_floats() of this region */
    const int32_t *labels;            /* softmax_xent: N labels */
    bool training;
    uint64_t seed;                    /* dropout: mask = f(seed, step, node, sample, index) */
    uint64_t step;
    uint64_t sample0;                 /* dropout: the global index of sample 0 (a rank's part of
                                         a batch split across processes), 0 in one process */
    int node_id;
} pml_kctx;

typedef void (*pml_kernel_fn)(const pml_kctx *k);

typedef struct pml_op_def {
    const char *name;
    int min_in, max_in;
    unsigned splits;      /* PML_SPLIT_* the op supports exactly */
    unsigned approx_splits; /* splits a plan may use that change the numerics (batchnorm split
                             * by samples uses each part's statistics, as PyTorch DDP does) */
    unsigned dx_partial;  /* splits under which input gradients are partial sums */
    unsigned dw_partial;  /* splits under which parameter gradients are partial sums */
    /* Fills n->out, resolved padding, parameter/state/aux sizes from the input shapes.
     * Errors name the node and the attribute. */
    pml_status (*infer)(pml_node *n, const pml_shape *in, int nin);
    pml_kernel_fn fwd, bwd;          /* fast kernels (any region) */
    pml_kernel_fn fwd_ref, bwd_ref;  /* naive reference kernels (full region) */
    /* The region of input i that computing output region `out` reads (n0 == n1: none). */
    pml_region (*in_region)(const pml_node *n, const pml_shape *in, int nin, int i, pml_region out);
    /* forward FLOPs per sample */
    double (*flops)(const pml_node *n, const pml_shape *in, int nin);
    /* scratch floats a kernel call on region r needs (fwd or bwd, whichever is larger) */
    size_t (*ws_floats)(const pml_node *n, const pml_shape *in, int nin, pml_region r);
} pml_op_def;

extern const pml_op_def pml_ops[PML_OP_COUNT];

/** A maxpool2d node's argmax cells (ONNX's MaxPool Indices) for \p n samples of its input \p x
 * (of shape \p in): for each output cell, its first maximal input cell (row by row in its
 * window) as an index into the whole input (N, C, H, W) flattened, the samples counted from
 * \p first; with \p column_major (storage_order 1) a map's cells are counted column by column;
 * -1 where a dilated window misses the input. */
void pml_maxpool2d_indices(const pml_node *node, pml_shape in, const float *x, int n,
                           int64_t first, bool column_major, int64_t *idx);

/** \return the region of input \p i of node \p id that output region \p out reads. */
pml_region pml_node_in_region(const pml_graph *g, int id, int i, pml_region out);
/** \return true when the region holds no element. */
static inline bool pml_region_empty(pml_region r)
{
    return r.n0 >= r.n1 || r.c0 >= r.c1 || r.h0 >= r.h1;
}
/** \return the intersection of two regions (possibly empty). */
static inline pml_region pml_region_meet(pml_region a, pml_region b)
{
    pml_region r = {a.n0 > b.n0 ? a.n0 : b.n0, a.n1 < b.n1 ? a.n1 : b.n1,
                    a.c0 > b.c0 ? a.c0 : b.c0, a.c1 < b.c1 ? a.c1 : b.c1,
                    a.h0 > b.h0 ? a.h0 : b.h0, a.h1 < b.h1 ? a.h1 : b.h1};
    return r;
}

/** \return the full region of a node's output for N samples. */
static inline pml_region pml_region_full(const pml_node *n, int N)
{
    pml_region r = {0, N, 0, n->out.c, 0, n->out.h};
    return r;
}

/* ---------------------------------------------------------------- random numbers */

/* Counter-based: the same (seed, stream, counter) always gives the same value, on any thread. */
uint64_t pml_rand_u64(uint64_t seed, uint64_t stream, uint64_t counter);
/** \return a float uniform in [0, 1). */
float pml_rand_unif(uint64_t seed, uint64_t stream, uint64_t counter);

/* MT19937, as NumPy's legacy generator (np.random.seed(S); np.random.random_sample()): the
 * generator ONNX's reference implementation draws a seeded Dropout's mask with. */
#define PML_MT_N 624
typedef struct pml_mt19937 {
    uint32_t s[PML_MT_N];
    int i;
} pml_mt19937;
void pml_mt_seed(pml_mt19937 *m, uint32_t seed);
uint32_t pml_mt_u32(pml_mt19937 *m);
/** \return a double uniform in [0, 1), of 53 bits (two draws), as NumPy makes it. */
double pml_mt_double(pml_mt19937 *m);
/** Moves past the next `doubles` doubles. */
void pml_mt_skip(pml_mt19937 *m, uint64_t doubles);

/* ---------------------------------------------------------------- parameters and optimizers */

/** Initialises a graph's parameter block (nparams floats) and state block (nstate floats):
 * Glorot-uniform weights (Keras default), zero biases, batchnorm gamma 1, beta 0, running
 * mean 0, running variance 1. Deterministic for a given seed. */
void pml_params_init(const pml_graph *g, float *params, float *state, uint64_t seed);

/** Transposes every linear weight of a parameter block laid out as pml's files of format 1 had
 * it, (in, out) as Keras' kernel, to the layout of today, (out, in). \return PML_ENOMEM or
 * PML_OK. */
pml_status pml_params_from_in_out(const pml_graph *g, float *params);

typedef enum { PML_OPTIM_SGD = 0, PML_OPTIM_ADAM = 1 } pml_optim_kind;

typedef struct pml_optim {
    pml_optim_kind kind;
    float lr;        /* Keras defaults: SGD 0.01, Adam 0.001 */
    float momentum;  /* SGD */
    float beta1, beta2, eps; /* Adam: 0.9, 0.999, 1e-7 */
    int64_t t;       /* steps taken */
    float lr_t, eps_t; /* Adam's bias-corrected step size and epsilon for step t (begin_step) */
    size_t n;        /* floats */
    float *m, *v;    /* state: SGD velocity in m; Adam moments */
} pml_optim;

/** Sets \p o to the Keras defaults of \p kind (no state allocated yet). */
void pml_optim_defaults(pml_optim *o, pml_optim_kind kind);
/** Allocates state for \p n parameters (zeroed). */
pml_status pml_optim_alloc(pml_optim *o, size_t n);
void pml_optim_free(pml_optim *o);
/** Starts a step: increments t. Call once per step before pml_optim_apply(). */
void pml_optim_begin_step(pml_optim *o);
/** Applies the update to params[i0,i1) from grads[i0,i1). Safe to call from several threads on
 * disjoint ranges within one step. */
void pml_optim_apply(const pml_optim *o, float *params, const float *grads, size_t i0, size_t i1);

/* ---------------------------------------------------------------- files */

/* A file written safely: open, write to f, then commit (or abort). What happens depends on what
 * the name is when it is opened:
 * - a regular file, or no file yet: replaced atomically. The data goes to a temporary file in the
 *   target's folder, which commit flushes, fsyncs and renames over the target: a crash leaves the
 *   old file or the new one, never a part; abort (and a failed commit) leaves the old file. The
 *   temporary file is unnamed (O_TMPFILE) where the file system allows it, and is given a name
 *   (".NAME.tmp-PID-N") only for the moment between link and rename; elsewhere it has that name
 *   from the start. Opening sweeps the folder of the ".NAME.tmp-PID-N" that dead processes left
 *   (pml_tmp_sweep).
 * - a symbolic link, or a chain of them: followed; the final target is replaced atomically (the
 *   temporary file goes to the target's folder) and the links stay links. A dangling link gets
 *   its target created where it points, as a shell's `>` would (its folder must exist).
 * - a character or block device, a FIFO, a terminal or a pipe (e.g. through /proc/self/fd/N):
 *   written through, never renamed over. Opening a FIFO waits for a reader. An fsync that the
 *   device cannot do (EINVAL, EROFS) is not an error.
 * - "-": standard output (stdout), written through and flushed by commit, never closed.
 * - a folder: refused. Name a file called "-" as "./-".
 * Written-through data cannot be taken back: abort or a failed commit leaves what was written
 * so far in the device, FIFO or stdout. Errors name the file given. */
typedef enum pml_afile_how {
    PML_AFILE_CLOSED = 0,
    PML_AFILE_NAMED,   /* a named temporary file, renamed over the target by commit */
    PML_AFILE_UNNAMED, /* an O_TMPFILE file, linked to a temporary name and renamed by commit */
    PML_AFILE_THROUGH, /* the file itself, open for writing (it is not a regular file) */
    PML_AFILE_STDOUT,  /* "-": stdout */
} pml_afile_how;

typedef struct pml_afile {
    FILE *f;           /* write here */
    char *path;        /* the name given (messages name it) */
    char *target;      /* what commit replaces: path with its links followed (NULL: through) */
    char *tmp;         /* the named temporary file, or NULL */
    pml_afile_how how; /* how the data reaches the target */
} pml_afile;

/** Opens \p path for writing as described above. \return PML_OK, PML_EINVAL (no name, a name
 * ending in '/'), PML_EIO naming path and the reason (a folder, a missing folder, no
 * permission), PML_ENOMEM. */
pml_status pml_afile_open(pml_afile *af, const char *path);
/** Flushes and fsyncs; renames the temporary file over the target (never over a file that is no
 * longer regular) or, written through, just closes. On failure removes the temporary file.
 * \return PML_OK or PML_EIO. \p af is closed either way. */
pml_status pml_afile_commit(pml_afile *af);
/** Closes and removes the temporary file; the target is untouched (written-through data stays
 * written). Safe on a closed pml_afile. */
void pml_afile_abort(pml_afile *af);
/** Writes \p len bytes to \p path as pml_afile does (open, write, commit). \return PML_OK or an
 * error. */
pml_status pml_write_file_atomic(const char *path, const void *data, size_t len);
/** Removes from folder \p dir the temporary files that writers killed before commit left: regular
 * files named exactly ".NAME.tmp-PID-N" (PID and N decimal) whose process PID no longer exists
 * (kill(PID, 0) fails with ESRCH). \p name limits it to one NAME; NULL sweeps every NAME. Files
 * of live processes (or another user's: EPERM), links, folders and other names stay. A process
 * in another PID namespace writing to the same folder is not seen: do not share folders with
 * one. Best effort: a file that cannot be removed stays.
 * \return PML_OK, or PML_EIO naming the folder when it cannot be read. */
pml_status pml_tmp_sweep(const char *dir, const char *name);
/** Reads a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL). Files
 * larger than \p max bytes are refused: a regular file by its size before anything is read,
 * anything else (a FIFO, /dev/stdin) once more than max bytes have come. \return PML_OK,
 * PML_EIO (naming the file and the reason), PML_ENOMEM or PML_EFORMAT (too large, naming the
 * file and the limit). */
pml_status pml_read_file(const char *path, size_t max, char **data, size_t *len);

/* ---------------------------------------------------------------- caches
 *
 * The one cache folder of pml's caches (machine calibration, kernel costs, plans), a lock per
 * cache entry, and the sweep of temporary files killed processes left there (ops/cache.c). A
 * cache that cannot be used is no error: these functions report, they never fail a run. */

/** How long pml_cache_lock_take waits for another process by default: longer than any
 * measurement or search a cache entry's holder makes while holding it, short enough that a
 * stuck holder (a stopped process) delays a run, never hangs it. */
#define PML_CACHE_LOCK_WAIT 30.0

/** The cache folder: $XDG_CACHE_HOME/pml when XDG_CACHE_HOME is absolute, else $HOME/.cache/pml
 * when HOME is absolute; with \p sub (may be NULL) its subfolder \p sub ("plans"). Created, and
 * swept of stale temporary files when this process opens it first (pml_cache_open).
 * \return a malloc'd path, or NULL: no disk cache (no such variable, or it cannot be created). */
char *pml_cache_dir(const char *sub);
/** Prepares a cache folder given explicitly (pml_cost_opts.cache_dir) as pml_cache_dir does
 * its own: creates it with its parents and, the first time this process opens it, sweeps it
 * (pml_cache_sweep). \return true when the folder exists. */
bool pml_cache_open(const char *dir);
/** Removes temporary files of processes that are gone from \p dir and its subfolders (one
 * level): regular files named ".NAME.tmp-PID-N" (pml_afile_open's) whose PID is no process
 * (kill(PID, 0) fails with ESRCH). Other files, folders and links are left alone.
 * \return how many were removed. */
int pml_cache_sweep(const char *dir);

/** What tells one version of a cache file from another (every write renames a new file over
 * it): whether it exists, its device, inode, size and modification time. */
typedef struct pml_cache_stamp {
    bool exists;
    uint64_t dev, ino;
    int64_t size, mtime_ns;
} pml_cache_stamp;

/** \return the stamp of the file at \p path now. */
pml_cache_stamp pml_cache_stamp_of(const char *path);
/** \return true when two stamps are of the same version of a file (or both of no file). */
bool pml_cache_stamp_same(const pml_cache_stamp *a, const pml_cache_stamp *b);

/** An exclusive advisory lock on one cache entry, held until pml_cache_unlock. */
typedef struct pml_cache_lock {
    int fd;         /* the lock file, or -1 when not held */
    bool waited;    /* another process held it when asked */
    bool timed_out; /* ... and kept it past the wait */
} pml_cache_lock;

/** Takes the lock of cache entry \p name (a file name, no '/') in folder \p dir: flock on
 * DIR/NAME.lock (created). When another process holds it, polls for up to \p wait_s seconds
 * (PML_CACHE_LOCK_WAIT: the default). Re-read the entry after taking the lock: the holder may
 * have written it. \return true when the lock is held; false when there is no folder, the lock
 * file cannot be used or the wait ran out (l->timed_out): then go on without writing the entry. */
bool pml_cache_lock_take(pml_cache_lock *l, const char *dir, const char *name, double wait_s);
/** Releases a lock taken by pml_cache_lock_take (nothing when it is not held). */
void pml_cache_unlock(pml_cache_lock *l);

/* ---------------------------------------------------------------- BLAS */

/** Which implementation runs conv2d's fast kernels: AUTO (default) measures, per layer shape
 * and region, im2col + OpenBLAS sgemm against oneDNN the first time the shape runs in the process
 * and keeps the faster; BLAS and DNNL force one (DNNL where oneDNN can run the call: it is built
 * in, and the region covers whole output rows). Without oneDNN every mode runs sgemm. */
typedef enum pml_conv_backend_kind { PML_CONV_AUTO, PML_CONV_BLAS, PML_CONV_DNNL } pml_conv_backend_kind;
void pml_conv_backend(pml_conv_backend_kind b);
/** pml was built with oneDNN (meson option dnnl, Debian libdnnl-dev). */
bool pml_conv_dnnl_available(void);
/** Which compilation of pml's own hot loops (elementwise, pooling, im2col, norms, Adam) this CPU
 * runs, picked at load time: "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2+FMA) or "baseline". */
const char *pml_kernels_isa(void);

/** Makes every BLAS call single-threaded (pml runs its own workers). */
void pml_blas_single_thread(void);
/** Checks that the address space has room for BLAS on \p threads threads (OpenBLAS maps a work
 * buffer per thread and hangs when it cannot: a low `ulimit -v`). Call before the first BLAS
 * call of a set of threads. \return PML_OK, or PML_ENOMEM saying what the limit leaves. */
pml_status pml_blas_room(int threads);
/** pml_blas_room(1) for the calling thread, checked on its first call only (a thread's BLAS
 * buffer, once mapped, stays). */
pml_status pml_blas_room_here(void);

#ifdef __cplusplus
}
#endif
#endif
