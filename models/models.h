/* pml — models: the model zoo (parameterised builders). */
#ifndef PML_MODELS_H
#define PML_MODELS_H

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Builds a model from a zoo spec such as "mlp", "mlp:units=512,layers=8" or "flowers-cnn:size=64"
 * into \p g (initialised here, finalised on success). Errors name the model and parameter.
 * \return PML_OK or an error; on error \p g is empty. */
pml_status pml_model_build(const char *spec, pml_graph *g);

typedef struct pml_zoo_entry {
    const char *name;
    const char *summary;   /* one line */
    const char *params;    /* "units=128 layers=1 classes=10" (defaults) */
} pml_zoo_entry;

/** \return the zoo table; *count receives its length. */
const pml_zoo_entry *pml_zoo_list(int *count);

/* ---------------------------------------------------------------- model files (DOT)
 *
 * A model file is a DOT digraph read and written with Graphviz's cgraph. Example:
 *
 *     digraph tiny {
 *         graph [kind=model, input_shape="1x28x28", classes=10];
 *         input [op=input];
 *         conv1 [op=conv2d, out=32, kernel=3, stride=1, padding=same, act=relu];
 *         pool1 [op=maxpool2d, kernel=2];
 *         flatten [op=flatten];
 *         logits [op=linear, out=10];
 *         loss [op=softmax_xent];
 *         input -> conv1 -> pool1 -> flatten -> logits -> loss;
 *     }
 *
 * - The digraph's ID is the model's name (an anonymous digraph takes the file's base name).
 * - Graph attributes: input_shape="CxHxW" (per sample; required; "CxDxHxW" for D planes of a
 *   3-D sample, held as C x (D*H) x W: its planes' rows one after another), classes=N (optional; checked
 *   against the logits), kind=model (optional; plans and machines say kind=plan / kind=machine).
 * - One node per operator; op= names it (input, linear, conv2d, maxpool2d, avgpool2d, relu,
 *   flatten, add, concat, batchnorm, dropout, activation, mul, matmul, softmax_xent). There is
 *   one input and one softmax_xent node. Attributes, with the defaults a reader uses when one is left out:
 *     linear, conv2d: out=N (units / filters; required), act=none|relu (none), bias=0|1 (1)
 *     conv2d:         groups=G (1: G groups of input and output channels; the input's channels:
 *                     depthwise), dilation=D or "DHxDW" (1)
 *     conv2d, pools:  kernel=K or "KHxKW" (conv2d: required; pools: 2), stride=S or "SHxSW"
 *                     (conv2d: 1; pools: the kernel), padding=valid|same|same_lower|P|"PHxPW"
 *                     (valid; same puts an odd cell of padding at the end, same_lower at the
 *                     start; a number is explicit symmetric padding). kh/kw, sh/sw, ph/pw (with
 *                     padding=explicit or none) may be given instead of kernel, stride, padding.
 *     conv2d, pools:  3-D windows (Conv3d, MaxPool3d, AvgPool3d): depth=D (the input's planes;
 *                     its rows are D planes of rows), kd (1), sd (1), pd (0, with
 *                     padding=explicit), dd (1; conv2d and maxpool2d): the window's planes,
 *                     stride, padding and dilation along the depth; the output has od planes of
 *                     its rows, as the graph's 3-D tensors; a window op with no depth is 2-D
 *     pools:          global=0|1 (0: pool the whole map; kernel and stride then default to 1),
 *                     ceil_mode=0|1 (0); avgpool2d: count_pad=0|1 (0: divide by the window
 *                     with its padding, as PyTorch's count_include_pad)
 *     batchnorm:      eps (0.001), momentum (0.99, Keras' convention)
 *     dropout:        rate (0.5), always=0|1 (0; 1 drops in inference too: an ONNX
 *                     training-mode node), seed (-1: pml's masks, new each step; a seed >= 0:
 *                     ONNX's reference mask for it, MT19937 as NumPy draws it, the same each step)
 *     activation:     fn=sigmoid|tanh|leaky_relu|elu|selu|softplus|softsign|hard_sigmoid|
 *                     thresholded_relu|hard_swish|silu|clip (required), alpha, beta (the
 *                     function's; their defaults are ONNX's: leaky_relu 0.01; elu 1; selu
 *                     1.6733, beta 1.0507; hard_sigmoid 0.2, beta 0.5; thresholded_relu 1; clip's
 *                     min and max 0 and 6)
 *     mul:            (two inputs: the product; the second of the first's shape or CxHxW 1x1)
 *     matmul:         axis=0|1 (0; two inputs' matrices multiplied sample by sample: 0, one
 *                     matrix a sample, its rows the channels, MxKx1 by KxPx1; 1, the matrices
 *                     along the channels, CxMxK by CxKxP)
 *     concat:         axis=0|1|2 (0: channels; 1 rows, 2 columns of each sample)
 *     add:            addend=0|1 (0; 1: a learned tensor of a sample's shape is added too, to
 *                     every sample; one input then will do)
 *   Booleans are 0/1 (or false/true). Attributes Graphviz itself uses (label, color, shape, ...)
 *   are ignored, so a file can carry its own looks; any other unknown attribute is an error.
 *   `node [...]` defaults apply to the ops that take them.
 * - One edge per tensor, producer -> consumer. A consumer with several inputs (add, concat)
 *   takes them in the order of its edges in the file, or, when its edges carry input=K
 *   (0-based), in that order; then every edge into it needs one, with no index twice.
 * - Node ids (and with them the parameter layout) follow the order in which nodes first appear.
 * - The writer emits every attribute an op reads (global pools: global=1 alone; concat's axis
 *   when it is not 0; add's addend when it is 1), nodes in id order, then edges with input=K
 *   on every consumer with several inputs, so reading a written model gives back the same
 *   graph, attribute for attribute.
 *
 * Errors name the file and the node, edge or attribute at fault: one message, no output. */

/** Largest DOT file pml reads. */
#define PML_DOT_MAX_BYTES (16u << 20)

typedef struct pml_dot pml_dot;

/** The first line of a saved model (pml train --save): the model's DOT text and its weights. */
#define PML_SAVED_MAGIC "pml model 2"
#define PML_SAVED_MAGIC_V1 "pml model 1" /* linear weights (in, out): read, transposed */

/** \return true when \p model names a file (ends in .dot, .gv, .pml or .onnx, or holds a '/'),
 * false when it is a zoo spec. A file is a model DOT file, a saved model (its model is read) or
 * an ONNX model (its graph is read: pml_onnx_read). */
bool pml_model_is_file(const char *model);
/** Loads MODEL: a model DOT file when pml_model_is_file(), else a zoo spec (pml_model_build).
 * \p g is initialised here and finalised on success; on error it is empty.
 * \return PML_OK or an error naming the file (or model) and the thing at fault. */
pml_status pml_model_load(const char *model, pml_graph *g);
/** Reads a model DOT file into \p g (finalised; empty on error). \return PML_OK or an error. */
pml_status pml_model_read_dot(const char *path, pml_graph *g);
/** As pml_model_read_dot() on \p len bytes of text; \p source names it in messages. */
pml_status pml_model_parse_dot(const char *text, size_t len, const char *source, pml_graph *g);
/** Builds a model from a parsed DOT file (see pml_dot_parse). \return PML_OK or an error. */
pml_status pml_model_from_dot(const pml_dot *d, pml_graph *g);
/** Writes a finalised model as DOT text into a malloc'd, NUL-terminated buffer (*len bytes,
 * without the NUL). \return PML_OK, PML_EINVAL (not finalised) or PML_ENOMEM. */
pml_status pml_model_format_dot(const pml_graph *g, char **text, size_t *len);
/** Writes a finalised model to a DOT file, atomically (pml_write_file_atomic). */
pml_status pml_model_write_dot(const pml_graph *g, const char *path);

/* Files that hold a model and more, such as plans (the model plus a parallel config per
 * operator): the reader lets the caller's attributes through, the writer adds them. */
typedef struct pml_model_dot_ext {
    const char *kind;               /* the file's kind= ("plan"); NULL: "model". Reading, a kind
                                     * other than "model" must be given */
    const char *const *node_attrs;  /* reading: node attributes the caller reads (NULL-terminated) */
    const char *const *graph_attrs; /* reading: graph attributes the caller reads */
    const char *graph_text;         /* writing: more graph attributes as DOT, e.g.
                                     * "machine=\"cpu-2socket\", fingerprint=\"3f2a\"", or NULL */
    /* writing: more attributes of node id as DOT, starting with ", " (e.g. ", config=\"n=2\"");
     * called while the text is written */
    void (*node_text)(void *ud, int id, char *buf, size_t cap);
    void *ud;
} pml_model_dot_ext;

/** pml_model_from_dot() for files that hold a model and more (\p ext may be NULL). */
pml_status pml_model_from_dot_ext(const pml_dot *d, const pml_model_dot_ext *ext, pml_graph *g);
/** pml_model_format_dot() for files that hold a model and more (\p ext may be NULL). */
pml_status pml_model_format_dot_ext(const pml_graph *g, const pml_model_dot_ext *ext, char **text,
                                    size_t *len);

/* ---------------------------------------------------------------- DOT files
 *
 * The one reader and writer of every DOT file pml keeps (models; the planner's machines and
 * plans). pml_dot_parse reads the text with Graphviz's cgraph (one lock, its messages caught)
 * into a plain snapshot that readers walk without cgraph: the graph's name and attributes, and
 * its nodes and edges in file order, each with the attributes that have a value. Writers quote
 * IDs with pml_dot_id and write files atomically (pml_write_file_atomic). */

#define PML_DOT_MAX_ATTRS 256      /* distinct attribute names, per graph, node and edge */
#define PML_DOT_MAX_NODES (1 << 20) /* nodes, and edges */

typedef struct pml_dot_attr {
    const char *name, *value; /* value: never empty */
    bool inherited;           /* a default from `node [...]` / `edge [...]` */
} pml_dot_attr;

typedef struct pml_dot_node {
    const char *name;
    int nattr;
    const pml_dot_attr *attr; /* in the order the file declared their names */
} pml_dot_node;

typedef struct pml_dot_edge {
    int tail, head; /* node indices */
    int nattr;
    const pml_dot_attr *attr;
} pml_dot_edge;

struct pml_dot {
    const char *source;        /* names the text in messages */
    const char *name;          /* the digraph's ID; NULL for an anonymous digraph */
    int nattr;
    const pml_dot_attr *attr;  /* graph attributes with a value */
    int nnodes;
    const pml_dot_node *nodes; /* in the order the file first names them */
    int nedges;
    const pml_dot_edge *edges; /* in file order */
    int nsyms[3];              /* distinct attribute names: graph, node, edge */
    void *blocks_;             /* storage (private) */
};

/** Parses DOT text into \p d. Refuses what is not UTF-8 text, cgraph's syntax errors and
 * warnings (caught: nothing is printed), an empty input, more than one graph, undirected graphs
 * and more than PML_DOT_MAX_ATTRS attribute names; \p source names the text in messages. Free
 * \p d with pml_dot_free(). \return PML_OK, PML_EFORMAT or PML_ENOMEM (then \p d is empty). */
pml_status pml_dot_parse(const char *text, size_t len, const char *source, pml_dot *d);
/** pml_dot_parse() on a file. \return PML_OK, PML_EIO or PML_EFORMAT. */
pml_status pml_dot_read(const char *path, pml_dot *d);
void pml_dot_free(pml_dot *d);
/** \return the value of attribute \p name among attr[0..nattr), or NULL. */
const char *pml_dot_get(int nattr, const pml_dot_attr *attr, const char *name);
/** \return the graph attribute kind ("model", "plan", "machine"); "model" when absent. */
const char *pml_dot_kind(const pml_dot *d);
/** \return true for Graphviz's own attributes (label, color, shape, ...): files may carry them
 * for looks and readers ignore them. */
bool pml_dot_is_graphviz_attr(const char *name);
/** \return true when DOT carries \p s both ways as a name: no control character, no backslash. */
bool pml_dot_name_ok(const char *s);
/** Parses a decimal integer in [lo, hi] and nothing else. \return true on success. */
bool pml_dot_int(const char *s, long lo, long hi, int *v);
/** \return \p s as a DOT ID: itself when DOT reads it back unquoted (as cgraph's agcanon
 * decides), else quoted with '"' escaped into \p buf (cap bytes; "" when too small). */
const char *pml_dot_id(const char *s, char *buf, size_t cap);
/** The name of an anonymous graph: \p source's base name up to its first '.', or \p fallback
 * when that is empty or not a name DOT carries. */
void pml_dot_source_name(const char *source, const char *fallback, char *name, size_t cap);
/** Writes \p s to \p f as a quoted DOT string, '"' escaped (names pml_dot_name_ok accepts). */
void pml_dot_put_quoted(FILE *f, const char *s);
/** \return a short printable copy of \p s for messages (controls as '?', at most 60 characters,
 * then "..."), in one of four rotating buffers of this thread. */
const char *pml_dot_brief(const char *s);

/* ---------------------------------------------------------------- tensors (models/tensor.c)
 *
 * Tensors as other frameworks store them: ONNX TensorProto files (.pb, as in ONNX's test data
 * sets: input_0.pb, output_0.pb, ...) and NumPy .npy files. pml reads float32 tensors (and
 * float64, integer and bool ones, converted to float) and writes float32, or the integer type a
 * tensor says (a MaxPool's indices, a Dropout's mask). */

#define PML_TENSOR_MAX_RANK 8
/** Largest tensor file pml reads. */
#define PML_TENSOR_MAX_BYTES ((size_t)1 << 31)

typedef struct pml_tensor {
    int rank;
    int64_t dims[PML_TENSOR_MAX_RANK];
    size_t n;    /* elements: the product of dims */
    float *data; /* n floats (malloc'd) */
    char *name;  /* the tensor's name in the file (TensorProto.name), or NULL */
    int type;    /* the ONNX element type it is written as: 0 or 1 float, 7 int64, 9 bool... */
    int64_t *ints; /* NULL, or n exact values of an integer type (written instead of data) */
} pml_tensor;

/** \return true when \p path names a tensor pml reads by its extension (.pb or .npy). */
bool pml_tensor_is_file(const char *path);
/** Reads a tensor file (.npy, else a TensorProto). \return PML_OK or an error naming the file. */
pml_status pml_tensor_read(const char *path, pml_tensor *t);
/** Writes \p t as float32: .npy when \p path ends in .npy, else a TensorProto (.pb), atomically.
 * \return PML_OK or an error naming the file. */
pml_status pml_tensor_write(const char *path, const pml_tensor *t);
void pml_tensor_free(pml_tensor *t);

typedef struct pml_tensor_diff {
    size_t bad;            /* elements with |y - e| > atol + rtol |e| (NaN against NaN agrees) */
    size_t worst;          /* the element with the largest such difference */
    double max_abs, max_rel;
} pml_tensor_diff;

/** Compares \p y with the expected \p e as ONNX's backend tests do (numpy's isclose).
 * \return false when their shapes differ (d is then unset), else true and the differences in d. */
bool pml_tensor_compare(const pml_tensor *y, const pml_tensor *e, double rtol, double atol,
                        pml_tensor_diff *d);

/** ONNX's Softmax of \p t in place (its LogSoftmax when \p take_log): over axis \p axis
 * (0 <= axis < rank), or, when \p coerced (opsets before 13), over all the axes from \p axis on
 * taken as one. */
void pml_tensor_softmax(pml_tensor *t, int axis, bool coerced, bool take_log);

/* ---------------------------------------------------------------- ONNX models (models/onnx.c)
 *
 * An ONNX file (a ModelProto, opset 1 to 17 of the default domain) becomes a pml model graph: Conv
 * (2-D and 1-D, groups, dilation, symmetric pads, auto_pad NOTSET/VALID/SAME_UPPER/LOWER; + Add of
 * one value per channel, its bias), Gemm and MatMul (+ Add of a vector; Gemm's C of a row per
 * sample, given at run time or computed, as data; transA of a graph input, its samples its columns)
 * as linear, MatMul of two tensors of rank 3 or 4 as matmul, Relu, MaxPool (dilated too),
 * AveragePool, GlobalAveragePool, GlobalMaxPool, BatchNormalization (inference form), Flatten (axis
 * 1; any axis as the output), Reshape to (batch, -1), Add of equal shapes (or of a constant or
 * weight the same for every sample, broadcast over the batch and its other axes: add's learned
 * addend, tiled to a sample's shape), Concat of channels, rows or columns (of the batch only in a
 * model of Concat, Identity and pointwise activations: imported whole, each tensor of rank 1 to 3
 * one sample), Dropout, Softmax and LogSoftmax of the output (any axis), Identity; Constant, Shape,
 * Gather, Unsqueeze, Squeeze, Concat, Cast and Slice of shape values, and Transpose of constants (a
 * weight), are folded at import. A tensor of rank 2, 3 or 4 (N, C[, H[, W]]) is a pml tensor of N
 * samples of (C, H, W) (H = W = 1 where the rank has none); an input of rank 1 (C) is one sample.
 * The graph's first input that no initializer gives is the model's input; the others are weights
 * given at run time (the form of ONNX's node tests). The model's first output gets pml's loss head
 * (a softmax cross-entropy, after a flatten when the output is not a vector; on a Softmax output,
 * on the Softmax's input); any others are tensors computed on the way, a Dropout's mask or a
 * MaxPool's Indices. Initializers are the starting weights. Anything else: one message naming the
 * file, the node, its op type and what pml supports; nothing half-imported. */

/** Largest ONNX file pml reads (protobuf's own limit). */
#define PML_ONNX_MAX_OUTPUTS 16
#define PML_ONNX_MAX_BYTES ((size_t)2 << 30)

/** An ONNX graph input that no initializer gives: a data input, or a weight. */
typedef struct pml_onnx_input {
    char *name;
    int rank;
    int64_t dims[PML_TENSOR_MAX_RANK]; /* declared dims; -1 where symbolic (the batch) */
    bool data;                         /* a data input: input node `node` (the batch shared) */
    int node;
    int type;                          /* ONNX element type (float; uint8, int8, int16 read as
                                          float: exact) */
    bool given;                        /* an integer input given at import: folded */
    bool transposed;                   /* a data input of rank 2 laid out (features, samples):
                                          a Gemm's A with transA, read transposed */
    int nbind;                         /* a weight: where its values go (see pml_onnx_bind) */
    struct pml_onnx_bind *bind;
} pml_onnx_input;

/** What an ONNX graph output is. */
typedef enum pml_onnx_out_kind {
    PML_ONNX_OUT_TENSOR,  /* node's output */
    PML_ONNX_OUT_MASK,    /* a Dropout's mask, node's output's shape: true where node keeps
                             the element (everywhere in inference, unless it drops then too) */
    PML_ONNX_OUT_INDICES, /* a MaxPool's Indices: node (the pool)'s argmax cells, flattened over
                             its whole input (N, C, H, W) (row-major, or column-major within a
                             map when column_major: ONNX's storage_order 1) */
    PML_ONNX_OUT_RUNNING_MEAN, /* a training-mode BatchNormalization's running mean after the
                                  batch: momentum * the node's state + (1 - momentum) * the
                                  batch's mean, one value a channel */
    PML_ONNX_OUT_RUNNING_VAR,  /* ... its running variance (the batch's population variance) */
} pml_onnx_out_kind;

typedef struct pml_onnx_output {
    char *name;
    pml_onnx_out_kind kind;
    int type;                   /* ONNX element type (0: not declared); an integer one is
                                   checked (pml_onnx_check_output) */
    int node;                   /* the pml node (see kind) */
    int rank;                   /* the ONNX output: node's output seen with these dims, */
    int64_t dims[PML_TENSOR_MAX_RANK]; /* dims[batch] times the number of samples */
    int batch;                  /* (-1: the whole shape, for `samples` samples only: an input
                                   of rank 1, a Reshape of a fixed batch; or for any number of
                                   samples when `samples` is -1: a running statistic) */
    int samples;
    bool softmax;               /* then its softmax (pml_tensor_softmax) over axis, */
    int axis;
    bool coerced;
    bool log;                   /* or its log-softmax (a LogSoftmax) */
    bool column_major;
} pml_onnx_output;

typedef struct pml_onnx {
    pml_graph g;                /* finalised */
    float *params, *state;      /* starting weights: the initializers; elsewhere pml's own
                                   initialisation (pml_params_init with the seed given) */
    int ninputs;
    pml_onnx_input *inputs;     /* in the graph's order */
    int noutputs;
    pml_onnx_output *outputs;   /* the graph's, in order; outputs[0] gets the loss head */
    int opset;
    int onnx_nodes;             /* nodes in the ONNX graph */
    bool whole;                 /* imported whole: each data input is one sample of its whole
                                   shape (a model that joins tensors along their first axis) */
} pml_onnx;

/** \return true when \p path ends in .onnx. */
bool pml_model_is_onnx(const char *path);
/** \return true when \p path ends in .pml (a saved model: pml train --save). */
bool pml_model_is_saved(const char *path);
/** Imports the ONNX model at \p path into \p m (free it with pml_onnx_free, whatever the status).
 * \return PML_OK, PML_EIO, PML_EFORMAT (a malformed file, inconsistent shapes, missing data),
 * PML_EUNSUPPORTED (an operator or attribute pml lacks, naming the node and what is
 * supported) or PML_ENOMEM; each names the file. */
pml_status pml_onnx_read(const char *path, uint64_t seed, pml_onnx *m);
/** pml_onnx_read() of \p len bytes in memory; \p path names them in messages (and its folder
 * holds any external data). */
pml_status pml_onnx_parse(const void *data, size_t len, const char *path, uint64_t seed,
                          pml_onnx *m);
/** pml_onnx_read() with the values of some graph inputs known now: \p given[k] (k < \p ngiven;
 * data NULL: not given) is the k-th graph input that no initializer gives, in the graph's
 * order. An integer input given so (a Reshape's shape, as in ONNX's node tests) or a float
 * scalar (a Dropout's ratio) is folded as a constant; the others are taken at run time as
 * always. */
pml_status pml_onnx_read_given(const char *path, uint64_t seed, const pml_tensor *given,
                               int ngiven, pml_onnx *m);
void pml_onnx_free(pml_onnx *m);
/** Writes a finalised model and its weights (\p params, \p state as laid out in g) as an ONNX
 * model (opset 13), atomically: one node per op (a fused relu as a Relu after it), weights as
 * initializers in ONNX's layouts (conv OIHW, Gemm's B (out, in) with transB=1), the input
 * (N, C, H, W) or (N, C) with N symbolic, the logits as the output (N, classes) (or (N, classes, 1, 1) when a pool
 * made them): the loss head is pml's. Reading it
 * back gives the same model and outputs. \return PML_OK or an error naming the file. */
pml_status pml_onnx_write(const pml_graph *g, const float *params, const float *state,
                          const char *path);
/** PML_EUNSUPPORTED naming the output when \p m's output \p k is of an integer type and a value
 * of \p y is not an integer of that type (pml computes in float: no wrap-around, no
 * truncation); else PML_OK. */
pml_status pml_onnx_check_output(const pml_onnx *m, int k, const pml_tensor *y);
/** Puts the values of run-time weight \p input (an input with data == false) from \p t into
 * \p params and \p state (the import's blocks, or an executor's). \return PML_OK or
 * PML_ESHAPE naming the input when t's shape is not the declared one. */
pml_status pml_onnx_bind(const pml_onnx *m, int input, const pml_tensor *t, float *params,
                         float *state);

/* ---------------------------------------------------------------- drawings (gvc)
 *
 * A view is a cgraph digraph in pml's drawing style (boxes, top to bottom). A view builder turns
 * a pml object into one: pml_viz_model here; the planner adds plans and machines with the same
 * helpers (pml_viz_new, pml_viz_node, pml_viz_edge, pml_viz_set). pml_viz_render lays any view
 * out with Graphviz's dot engine and renders it; Graphviz's warnings are caught, not printed.
 * cgraph and gvc are not thread-safe: these functions serialise on one lock. A view's nodes,
 * edges and clusters are pml_viz_obj handles that belong to the view. */

typedef struct pml_viz pml_viz;         /* a view */
typedef struct pml_viz_obj pml_viz_obj; /* a view, cluster, node or edge of one */

typedef enum pml_viz_format {
    PML_VIZ_SVG,
    PML_VIZ_PNG,
    PML_VIZ_PDF,
    PML_VIZ_DOT, /* DOT with the layout's positions (pos=) */
    PML_VIZ_FORMAT_COUNT
} pml_viz_format;

typedef struct pml_viz_opts {
    bool collapse; /* fold repeated blocks into one node each (see pml_model_blocks) */
} pml_viz_opts;

/** Picks the format from \p path's extension (.svg, .png, .pdf, .dot or .gv; any case).
 * \return PML_OK or PML_EINVAL naming the extension. */
pml_status pml_viz_format_of(const char *path, pml_viz_format *f);

/** A new, empty view called \p name with \p title on top (may hold '\n'). \return the view, or
 * NULL when out of memory. Free with pml_viz_free(). */
pml_viz *pml_viz_new(const char *name, const char *title);
/** \return the view itself as an object (for pml_viz_set, pml_viz_get, pml_viz_node). */
pml_viz_obj *pml_viz_root(pml_viz *v);
/** Adds (or finds) cluster \p id of \p v, drawn as a dashed box labelled \p label, to hold
 * nodes. \return the cluster, or NULL when out of memory. */
pml_viz_obj *pml_viz_cluster(pml_viz *v, const char *id, const char *label);
/** Adds (or finds) node \p id in \p in (the view's root or a cluster) with a label (lines
 * separated by '\n'; NULL: the id) and a fill colour (NULL: white). \return the node, or NULL
 * when out of memory. */
pml_viz_obj *pml_viz_node(pml_viz_obj *in, const char *id, const char *label, const char *fill);
/** \return node \p id of \p v, or NULL when there is none. */
pml_viz_obj *pml_viz_find_node(pml_viz *v, const char *id);
/** Adds an edge a -> b labelled \p label (NULL: none); a second edge between the same two nodes
 * is not added. \return the edge, or NULL when out of memory. */
pml_viz_obj *pml_viz_edge(pml_viz *v, pml_viz_obj *a, pml_viz_obj *b, const char *label);
/** \return the edge a -> b of \p v, or NULL when there is none. */
pml_viz_obj *pml_viz_find_edge(pml_viz *v, pml_viz_obj *a, pml_viz_obj *b);
/** Sets any Graphviz attribute of a view, cluster, node or edge (e.g. "color", "style"). */
void pml_viz_set(pml_viz_obj *obj, const char *attr, const char *value);
/** Sets attribute \p attr of \p obj to an HTML-like label (Graphviz's <...> labels). */
void pml_viz_set_html(pml_viz_obj *obj, const char *attr, const char *html);
/** \return an attribute of a view, node or edge ("" when unset, NULL when never declared); the
 * string belongs to the view. A plan view, say, takes pml_viz_model's view and adds a line to
 * each operator's "label" and a "fillcolor" per device. */
const char *pml_viz_get(pml_viz_obj *obj, const char *attr);
void pml_viz_free(pml_viz *v);
/** Lays out \p v (dot, top to bottom) and renders it into a malloc'd buffer (NUL-terminated;
 * *len bytes without the NUL). \return PML_OK, or PML_EUNSUPPORTED when Graphviz cannot lay out
 * or render (its message included). */
pml_status pml_viz_render(pml_viz *v, pml_viz_format f, char **data, size_t *len);
/** Renders \p v in the format \p path's extension names and writes it atomically: on any error
 * nothing is left at \p path. \return PML_OK or an error naming the file. */
pml_status pml_viz_write(pml_viz *v, const char *path);

/** A view of a finalised model: one node per operator showing its name, op and key attributes,
 * output shape and parameter count; edges labelled with tensor shapes; a title with the model's
 * name, parameters and forward FLOPs per sample. With o->collapse, each block found by
 * pml_model_blocks is one node showing its op counts, output, parameters and FLOPs.
 * \return PML_OK or an error; *view is freed with pml_viz_free(). */
pml_status pml_viz_model(const pml_graph *g, const pml_viz_opts *o, pml_viz **view);

/** Finds the blocks --collapse folds. A block is a name prefix P (the nodes called P or P.*,
 * torchvision-style names: "layer1.0", "Mixed_5b") whose nodes form a single-entry,
 * single-exit subgraph: at least two nodes, neither the input nor the loss, one producer outside
 * feeding them, one of them feeding the rest of the graph, and at least one merge (add or concat
 * with several inputs) inside; and that is not a chain of such blocks (a stage like "layer1":
 * some node every path through it crosses has a merge at or before it and another after it).
 * Each node goes to the shortest prefix of its name that is a block, so nested blocks
 * (Mixed_7b.branch3x3) fold into their outer block; chains without merges (alexnet's
 * features.N) stay as they are. Fills block[i] (-1: not in a block) and names[b] for each block
 * b. \return the number of blocks, or -1 when out of memory. */
int pml_model_blocks(const pml_graph *g, int *block, char (*names)[PML_NAME_MAX]);


#ifdef __cplusplus
}
#endif
#endif
