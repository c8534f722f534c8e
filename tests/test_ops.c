/* pml — the op-table harness (in the spirit of ggml's test-backend-ops).
 *
 * One test per op of PML_OP_MAP (generated, so a new op gets a test that fails until it has
 * cases) runs every case of that op through:
 *   infer   shape inference on a standalone node (status, output shape, FLOPs);
 *   fwd     fast forward vs reference forward on the full region; the forward writes exactly
 *           its region (sentinel check) and leaves the running state like the reference does;
 *   split   the fast forward computed in parts, for each split kind the op declares
 *           (pml_ops[op].splits: sample, param, attribute) and for all of them combined,
 *           composes to the full output, and a part gives the same outputs with every input
 *           element outside its declared input regions (in_region) poisoned;
 *   bwd     fast backward vs reference backward (dy = r), accumulating (+=) onto non-zero
 *           gradient buffers; NULL dx or NULL dw leave the other gradients unchanged;
 *   bwd-split  the backward of the same parts, with private zeroed buffers for the gradients a
 *           split makes partial (dx_partial / dw_partial) that are summed, and one shared
 *           buffer otherwise, equals the full backward; an audit with private buffers for every
 *           gradient checks that parts never overlap on a gradient declared not partial;
 *   fd      reference backward vs central finite differences of L = sum(y * r) accumulated in
 *           double, for inputs and parameters (training-mode batchnorm goes through the batch
 *           statistics; coordinates whose perturbation flips a relu are skipped).
 * Plus: every op has cases; conv/pool shape inference, error messages and hand-computed
 * values. Set PML_TEST_VERBOSE=1 to print per-case error figures. */
#include "ops/ops.h"
#include "test.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* ---------------------------------------------------------------- random numbers */

static uint64_t rng_s = 0x853c49e6748fea9bull;

static uint64_t rng_u64(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uni(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * (1.0 / 16777216.0));
}

static bool verbose(void)
{
    const char *v = getenv("PML_TEST_VERBOSE");
    return v && *v && *v != '0';
}

/* ---------------------------------------------------------------- cases */

enum {
    FILL_RAND,     /* uniform in [-1, 1] */
    FILL_AWAY0,    /* |v| in [0.2, 1], random sign: no relu kink within eps */
    FILL_DISTINCT, /* a permutation of values spaced 0.05 apart: no max-pool tie within eps */
    FILL_TIES,     /* every input value equal: max-pool ties (no finite differences) */
    FILL_LARGE,    /* uniform in [-60, 60]: exp() overflows unless the kernel is stable */
    FILL_OFFSET,   /* 20 + uniform in [-1, 1]: a mean far from zero (cancellation in sums) */
    FILL_FAR,      /* 200 + uniform in [-1, 1]: farther still, on larger planes */
};

typedef struct tcase {
    pml_op_type op;
    char desc[112];
    int N;
    int nin;
    pml_shape in[PML_MAX_INPUTS];
    pml_attrs a;
    int fill;
    bool training;
    bool kink;       /* piecewise linear through relu: skip FD coordinates that flip y > 0 */
    bool no_fd;      /* too big for finite differences (fast paths only) */
    bool dy_ignored; /* softmax_xent: backward is d(sum loss)/batch_total whatever dy holds */
    int batch_total;
} tcase;

#define MAX_CASES 256
static tcase cases[MAX_CASES];
static int ncases;

static tcase *add_case(pml_op_type op, int N, int nin, const pml_shape *in, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static tcase *add_case(pml_op_type op, int N, int nin, const pml_shape *in, const char *fmt, ...)
{
    if (ncases == MAX_CASES) {
        fprintf(stderr, "too many cases\n");
        abort();
    }
    tcase *t = &cases[ncases++];
    memset(t, 0, sizeof *t);
    t->op = op;
    t->N = N;
    t->nin = nin;
    for (int i = 0; i < nin; i++) t->in[i] = in[i];
    t->a = pml_attrs_default(op);
    t->training = true;
    t->batch_total = N;
    t->fill = FILL_RAND;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->desc, sizeof t->desc, fmt, ap);
    va_end(ap);
    return t;
}

static const char *pad_name(int m)
{
    return m == PML_PAD_SAME         ? "same"
           : m == PML_PAD_SAME_LOWER ? "same_lower"
           : m == PML_PAD_EXPLICIT   ? "explicit"
                                     : "valid";
}

static tcase *conv(int N, pml_shape x, int out, int kh, int kw, int sh, int sw, int pad, int ph,
                   int pw, int relu, int bias)
{
    tcase *t =
        add_case(PML_OP_CONV2D, N, 1, &x,
                 "conv2d N=%d x=%dx%dx%d out=%d k=%dx%d s=%dx%d pad=%s(%d,%d) relu=%d bias=%d", N,
                 x.c, x.h, x.w, out, kh, kw, sh, sw, pad_name(pad), ph, pw, relu, bias);
    t->a.out = out;
    t->a.kh = kh;
    t->a.kw = kw;
    t->a.sh = sh;
    t->a.sw = sw;
    t->a.pad_mode = pad;
    t->a.ph = ph;
    t->a.pw = pw;
    t->a.act = relu ? PML_ACT_RELU : PML_ACT_NONE;
    t->a.bias = bias;
    t->kink = relu;
    return t;
}

static tcase *groups_dilation(tcase *t, int groups, int dh, int dw)
{
    t->a.groups = groups;
    t->a.dh = dh;
    t->a.dw = dw;
    size_t n = strlen(t->desc);
    snprintf(t->desc + n, sizeof t->desc - n, " groups=%d d=%dx%d", groups, dh, dw);
    return t;
}

/* a 3-D window: x's h holds D planes of its rows; the window spans kd planes */
static tcase *depth3(tcase *t, int D, int kd, int sd, int dd, int pd)
{
    t->a.depth = D;
    t->a.kd = kd;
    t->a.sd = sd;
    t->a.dd = dd;
    t->a.pd = pd;
    size_t n = strlen(t->desc);
    snprintf(t->desc + n, sizeof t->desc - n, " 3-D D=%d kd=%d sd=%d dd=%d pd=%d", D, kd, sd, dd,
             pd);
    return t;
}

static tcase *pool(pml_op_type op, int N, pml_shape x, int kh, int kw, int sh, int sw, int pad,
                   int ph, int pw, int ceil_mode, int count_pad, int global)
{
    tcase *t = add_case(op, N, 1, &x,
                        "%s N=%d x=%dx%dx%d k=%dx%d s=%dx%d pad=%s(%d,%d) ceil=%d count_pad=%d "
                        "global=%d",
                        pml_op_name(op), N, x.c, x.h, x.w, kh, kw, sh, sw, pad_name(pad), ph, pw,
                        ceil_mode, count_pad, global);
    t->a.kh = kh;
    t->a.kw = kw;
    t->a.sh = sh;
    t->a.sw = sw;
    t->a.pad_mode = pad;
    t->a.ph = ph;
    t->a.pw = pw;
    t->a.ceil_mode = ceil_mode;
    t->a.count_pad = count_pad;
    t->a.global = global;
    if (op == PML_OP_MAXPOOL2D) t->fill = FILL_DISTINCT;
    return t;
}

static tcase *linear(int N, pml_shape x, int out, int relu, int bias)
{
    tcase *t = add_case(PML_OP_LINEAR, N, 1, &x, "linear N=%d x=%dx%dx%d out=%d relu=%d bias=%d", N,
                        x.c, x.h, x.w, out, relu, bias);
    t->a.out = out;
    t->a.act = relu ? PML_ACT_RELU : PML_ACT_NONE;
    t->a.bias = bias;
    t->kink = relu;
    return t;
}

static tcase *simple(pml_op_type op, int N, int nin, const pml_shape *in)
{
    char shapes[80] = "";
    size_t len = 0;
    for (int i = 0; i < nin && len < sizeof shapes; i++)
        len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%dx%dx%d", i ? "," : "",
                                in[i].c, in[i].h, in[i].w);
    return add_case(op, N, nin, in, "%s N=%d x=%s", pml_op_name(op), N, shapes);
}

static void build_cases(void)
{
    if (ncases) return;
    tcase *t;
    pml_shape s;

    /* input: shape inference only (the executor fills its buffer) */
    t = add_case(PML_OP_INPUT, 2, 0, NULL, "input 3x5x7");
    t->a.shape = (pml_shape){3, 5, 7};

    /* linear */
    linear(3, (pml_shape){13, 1, 1}, 7, 1, 1);
    linear(4, (pml_shape){10, 1, 1}, 5, 0, 0);
    linear(1, (pml_shape){1, 1, 1}, 3, 0, 1);
    linear(5, (pml_shape){17, 1, 1}, 1, 1, 0);

    /* conv2d */
    conv(2, (pml_shape){3, 7, 7}, 4, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, 1, 1);
    conv(3, (pml_shape){2, 6, 5}, 5, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 0, 1);
    conv(2, (pml_shape){3, 8, 7}, 3, 3, 3, 2, 2, PML_PAD_SAME, 0, 0, 1, 1); /* asymmetric */
    conv(2, (pml_shape){2, 9, 8}, 4, 3, 2, 2, 1, PML_PAD_EXPLICIT, 1, 2, 1, 0);
    conv(3, (pml_shape){4, 5, 5}, 6, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 1, 1); /* direct 1x1 */
    conv(2, (pml_shape){4, 6, 7}, 3, 1, 1, 2, 2, PML_PAD_VALID, 0, 0, 0, 0); /* strided 1x1 */
    conv(2, (pml_shape){1, 9, 9}, 4, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, 1, 1); /* C = 1 */
    /* rows of 64 and more, few taps: the weight gradient without columns (k_conv.c dw_direct),
     * its vectors and edges, output channels in threes and not */
    conv(2, (pml_shape){3, 5, 77}, 5, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 0, 1);
    conv(2, (pml_shape){1, 6, 69}, 6, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, 1, 1);
    conv(1, (pml_shape){2, 4, 70}, 4, 2, 3, 1, 1, PML_PAD_EXPLICIT, 1, 2, 1, 0);
    conv(2, (pml_shape){2, 8, 7}, 3, 2, 3, 2, 2, PML_PAD_SAME_LOWER, 0, 0, 1, 1);
    /* the same rows, the forward without columns too (k_conv.c fwd_direct): channels in fours
     * and not, blocks of 24 columns and a partial one, strides and dilation across rows,
     * dilation along them, a wide kernel, groups */
    conv(2, (pml_shape){2, 9, 70}, 5, 3, 3, 2, 1, PML_PAD_SAME, 0, 0, 1, 1);
    groups_dilation(conv(1, (pml_shape){3, 8, 66}, 6, 3, 5, 1, 1, PML_PAD_SAME, 0, 0, 1, 0), 1, 2, 2);
    groups_dilation(conv(2, (pml_shape){4, 5, 64}, 6, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 0, 1), 2, 1, 1);
    conv(1, (pml_shape){1, 4, 96}, 8, 1, 7, 1, 1, PML_PAD_VALID, 0, 0, 1, 1);
    /* a relu's mask before oneDNN's backward, channels in whole blocks of 8 or 16 and not */
    conv(2, (pml_shape){3, 6, 13}, 16, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1);
    conv(2, (pml_shape){2, 5, 17}, 12, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 0);
    /* groups and dilation (ONNX models: depthwise, grouped, dilated) */
    groups_dilation(conv(2, (pml_shape){4, 7, 6}, 6, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, 1, 1), 2, 1, 1);
    groups_dilation(conv(3, (pml_shape){3, 8, 8}, 6, 3, 3, 2, 1, PML_PAD_SAME, 0, 0, 0, 1), 3, 1, 1);
    groups_dilation(conv(2, (pml_shape){2, 9, 9}, 3, 3, 2, 1, 1, PML_PAD_EXPLICIT, 2, 1, 1, 0), 1, 2, 3);
    groups_dilation(conv(2, (pml_shape){4, 10, 9}, 4, 3, 3, 1, 2, PML_PAD_SAME, 0, 0, 1, 1), 4, 2, 2);
    groups_dilation(conv(2, (pml_shape){6, 5, 5}, 6, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 0, 1), 3, 1, 1);
    /* depthwise (one channel a group: the direct kernel), stride 1 and 2, and rows too wide
     * to keep padded (the general loops, in pieces of 1024 columns) */
    groups_dilation(conv(2, (pml_shape){5, 7, 9}, 5, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1), 5, 1, 1);
    groups_dilation(conv(2, (pml_shape){3, 9, 8}, 3, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 0, 0), 3, 1, 1);
    groups_dilation(conv(3, (pml_shape){4, 6, 6}, 4, 5, 5, 2, 1, PML_PAD_SAME_LOWER, 0, 0, 1, 0), 4, 1, 1);
    /* rows kept padded (k_conv.c depthwise_fwd_pad, depthwise_bwd_pad), stride 1 and 2: vectors
     * of 8 columns and a partial one, dilated, wide padding, up to 7x7; wider: the general loops */
    groups_dilation(conv(2, (pml_shape){4, 6, 21}, 4, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1), 4, 1, 1);
    groups_dilation(conv(2, (pml_shape){3, 9, 26}, 3, 5, 5, 1, 1, PML_PAD_EXPLICIT, 2, 4, 0, 1), 3, 2, 1);
    groups_dilation(conv(1, (pml_shape){2, 10, 17}, 2, 7, 7, 1, 1, PML_PAD_SAME, 0, 0, 1, 0), 2, 1, 2);
    groups_dilation(conv(2, (pml_shape){2, 4, 20}, 2, 1, 9, 1, 1, PML_PAD_SAME, 0, 0, 1, 1), 2, 1, 1);
    groups_dilation(conv(2, (pml_shape){3, 9, 37}, 3, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 1, 1), 3, 1, 1);
    groups_dilation(conv(2, (pml_shape){3, 8, 24}, 3, 3, 3, 2, 2, PML_PAD_SAME, 0, 0, 0, 1), 3, 1, 1);
    groups_dilation(conv(2, (pml_shape){2, 11, 30}, 2, 5, 5, 2, 2, PML_PAD_SAME, 0, 0, 0, 1), 2, 1, 2);
    groups_dilation(conv(2, (pml_shape){2, 5, 40}, 2, 1, 9, 1, 2, PML_PAD_SAME, 0, 0, 1, 0), 2, 1, 1);
    t = groups_dilation(conv(1, (pml_shape){2, 3, 1600}, 2, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1), 2, 1, 1);
    t->no_fd = true;
    conv(2, (pml_shape){2, 7, 7}, 3, 5, 5, 1, 1, PML_PAD_SAME, 0, 0, 1, 1);
    conv(2, (pml_shape){3, 11, 10}, 2, 7, 7, 2, 2, PML_PAD_EXPLICIT, 3, 3, 0, 1);
    conv(1, (pml_shape){2, 1, 6}, 3, 1, 3, 1, 1, PML_PAD_SAME, 0, 0, 0, 1);  /* one row */
    conv(3, (pml_shape){2, 4, 4}, 3, 4, 4, 1, 1, PML_PAD_VALID, 0, 0, 0, 1); /* 1x1 output */
    /* channels in 16s: oneDNN's blocked layouts (k_conv_dnnl.c) */
    conv(3, (pml_shape){16, 9, 9}, 32, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1);
    conv(2, (pml_shape){32, 8, 7}, 16, 3, 3, 2, 2, PML_PAD_VALID, 0, 0, 0, 1);
    /* several row chunks per call (K * Wo * rows > the column budget) */
    t = conv(2, (pml_shape){16, 30, 30}, 8, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 1, 1);
    t->no_fd = true;
    t = conv(1, (pml_shape){64, 9, 64}, 5, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, 1, 0);
    t->no_fd = true;
    /* 3-D (Conv3d): D planes of H rows as the rows */
    depth3(conv(2, (pml_shape){2, 4 * 5, 6}, 3, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, 1, 1), 4, 3, 1,
           1, 1);
    depth3(conv(3, (pml_shape){3, 3 * 6, 5}, 4, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 1), 3, 2, 2, 1,
           0);
    depth3(groups_dilation(conv(2, (pml_shape){3, 5 * 4, 4}, 6, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 0,
                                0), 3, 1, 1), 5, 2, 1, 2, 0);
    depth3(conv(2, (pml_shape){2, 5 * 5, 5}, 3, 3, 1, 2, 1, PML_PAD_SAME, 0, 0, 1, 1), 5, 3, 2, 1,
           0);
    depth3(conv(2, (pml_shape){2, 3 * 4, 4}, 2, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 0, 1), 3, 1, 1, 1,
           0); /* 1x1x1 */

    /* maxpool2d */
    s = (pml_shape){3, 8, 8};
    pool(PML_OP_MAXPOOL2D, 2, s, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    s = (pml_shape){2, 7, 9};
    pool(PML_OP_MAXPOOL2D, 2, s, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, s, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 1, 0, 0);
    /* rows of 2x2 windows as long as fashion-cnn's (13), past one vector of 16 (35), exactly one
     * (16, from an odd width) and a long one with ceil mode (its last window half outside) */
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 4, 26}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 5, 70}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 1, (pml_shape){3, 4, 33}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 1, (pml_shape){2, 5, 41}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 1, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 9, 9}, 3, 3, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 7, 8}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 7, 8}, 2, 3, 2, 2, PML_PAD_SAME_LOWER, 0, 0, 0, 0, 0);
    /* padding over half the window (ONNX's test_maxpool_2d_pads) */
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 5, 6}, 3, 3, 1, 1, PML_PAD_EXPLICIT, 2, 2, 0, 0, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 5, 6}, 3, 3, 1, 2, PML_PAD_EXPLICIT, 2, 1, 0, 0, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 5, 6}, 3, 3, 2, 1, PML_PAD_EXPLICIT, 2, 2, 1, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 8, 7}, 3, 2, 2, 2, PML_PAD_SAME_LOWER, 0, 0, 0, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 8, 7}, 2, 2, 1, 1, PML_PAD_SAME_LOWER, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 7, 7}, 3, 3, 1, 1, PML_PAD_SAME, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 6, 7}, 2, 2, 2, 2, PML_PAD_SAME, 0, 0, 0, 0, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 5, 7}, 3, 2, 2, 1, PML_PAD_EXPLICIT, 1, 1, 1, 0, 0);
    pool(PML_OP_MAXPOOL2D, 3, (pml_shape){3, 5, 6}, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 0, 0, 1);
    /* dilated (ONNX's MaxPool dilations) */
    groups_dilation(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 9, 8}, 2, 3, 1, 2, PML_PAD_EXPLICIT,
                         1, 1, 0, 0, 0), 1, 2, 2);
    groups_dilation(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){3, 10, 11}, 3, 3, 2, 2, PML_PAD_SAME,
                         0, 0, 0, 0, 0), 1, 2, 3);
    groups_dilation(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 9, 9}, 2, 2, 2, 3, PML_PAD_VALID,
                         0, 0, 1, 0, 0), 1, 3, 1);
    t = pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 6, 7}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 1, 0, 0);
    t->fill = FILL_TIES;
    t->no_fd = true;
    t = pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 7, 7}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 0, 0,
             0);
    t->fill = FILL_TIES;
    t->no_fd = true;

    /* avgpool2d */
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){3, 8, 8}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0, 0, 0);
    s = (pml_shape){2, 7, 9};
    pool(PML_OP_AVGPOOL2D, 2, s, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 0, 0, 0);
    pool(PML_OP_AVGPOOL2D, 2, s, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 0, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, s, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 1, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, s, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 1, 0, 0);
    /* ceil_mode windows that hang over the padding (rows and columns 9 of the 8x8 input) */
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 8, 8}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 1, 1, 0);
    pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 8, 8}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1, 1, 0, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 7, 7}, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, 0, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 8, 7}, 3, 3, 2, 2, PML_PAD_SAME, 0, 0, 0, 0, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 8, 7}, 3, 3, 2, 2, PML_PAD_SAME, 0, 0, 0, 1, 0);
    pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 6, 5}, 2, 3, 1, 2, PML_PAD_VALID, 0, 0, 1, 0, 0);
    pool(PML_OP_AVGPOOL2D, 3, (pml_shape){4, 5, 3}, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 0, 0, 1);

    /* 3-D pools (MaxPool3d, AvgPool3d): D planes of H rows as the rows */
    depth3(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 4 * 6, 6}, 2, 2, 2, 2, PML_PAD_VALID, 0, 0, 0,
                0, 0), 4, 2, 2, 1, 0);
    depth3(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 5 * 5, 6}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1,
                1, 0, 0), 5, 3, 2, 1, 1);
    depth3(groups_dilation(pool(PML_OP_MAXPOOL2D, 2, (pml_shape){2, 5 * 5, 5}, 2, 2, 1, 1,
                                PML_PAD_VALID, 0, 0, 0, 0, 0), 1, 2, 1), 5, 2, 1, 2, 0);
    depth3(pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 4 * 5, 5}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1,
                0, 0, 0), 4, 3, 2, 1, 1);
    depth3(pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 4 * 5, 5}, 3, 3, 2, 2, PML_PAD_EXPLICIT, 1, 1,
                1, 1, 0), 4, 3, 2, 1, 1);
    depth3(pool(PML_OP_AVGPOOL2D, 2, (pml_shape){2, 5 * 4, 4}, 2, 2, 1, 1, PML_PAD_SAME, 0, 0, 0,
                1, 0), 5, 2, 1, 1, 0);
    depth3(pool(PML_OP_AVGPOOL2D, 2, (pml_shape){3, 3 * 4, 5}, 1, 1, 1, 1, PML_PAD_VALID, 0, 0, 0,
                0, 1), 3, 1, 1, 1, 0); /* global */

    /* relu */
    s = (pml_shape){3, 5, 7};
    t = simple(PML_OP_RELU, 3, 1, &s);
    t->fill = FILL_AWAY0;
    t->kink = true;
    s = (pml_shape){9, 1, 1};
    t = simple(PML_OP_RELU, 2, 1, &s);
    t->kink = true;

    /* activation: every function, on random values and far from 0 (sigmoid, tanh, softplus and
     * the exponentials saturate without overflowing) */
    for (int fn = 0; fn < PML_FN_COUNT; fn++) {
        s = (pml_shape){3, 4, 5};
        for (int large = 0; large < 2; large++) {
            t = simple(PML_OP_ACTIVATION, 2, 1, &s);
            t->a.fn = fn;
            pml_fn_defaults(fn, &t->a.alpha, &t->a.beta);
            if (fn == PML_FN_LEAKY_RELU) t->a.alpha = 0.2f;
            if (fn == PML_FN_THRESHOLDED_RELU) t->a.alpha = 0.5f;
            if (fn == PML_FN_CLIP) t->a.alpha = -0.5f, t->a.beta = 0.6f;
            t->kink = fn == PML_FN_LEAKY_RELU || fn == PML_FN_SELU || fn == PML_FN_HARD_SIGMOID ||
                      fn == PML_FN_THRESHOLDED_RELU || fn == PML_FN_SOFTSIGN ||
                      fn == PML_FN_CLIP;
            if (large) {
                t->fill = FILL_LARGE;
                t->no_fd = true; /* saturated: the differences round away */
            }
            size_t n = strlen(t->desc);
            snprintf(t->desc + n, sizeof t->desc - n, " fn=%s alpha=%g%s", pml_fn_name(fn),
                     (double)t->a.alpha, large ? " x in [-60,60]" : "");
        }
    }

    /* mul: equal shapes, a value per channel (squeeze-and-excitation), vectors */
    {
        const pml_shape m[3][2] = {{{3, 4, 5}, {3, 4, 5}}, {{3, 4, 5}, {3, 1, 1}},
                                   {{6, 1, 1}, {6, 1, 1}}};
        for (int i = 0; i < 3; i++) simple(PML_OP_MUL, 2, 2, m[i]);
    }

    /* matmul: one matrix a sample (rows the channels), and matrices along the channels;
     * a column or a row of one */
    {
        const pml_shape m0[3][2] = {{{3, 4, 1}, {4, 5, 1}}, {{5, 1, 1}, {1, 3, 1}},
                                    {{1, 6, 1}, {6, 1, 1}}};
        for (int i = 0; i < 3; i++) simple(PML_OP_MATMUL, 2, 2, m0[i]);
        const pml_shape m1[2][2] = {{{3, 4, 5}, {3, 5, 2}}, {{2, 1, 3}, {2, 3, 4}}};
        for (int i = 0; i < 2; i++) {
            t = simple(PML_OP_MATMUL, 3, 2, m1[i]);
            t->a.axis = 1;
            size_t n = strlen(t->desc);
            snprintf(t->desc + n, sizeof t->desc - n, " axis=1");
        }
    }

    /* flatten */
    s = (pml_shape){3, 4, 5};
    simple(PML_OP_FLATTEN, 3, 1, &s);
    s = (pml_shape){7, 1, 1};
    simple(PML_OP_FLATTEN, 2, 1, &s);

    /* add */
    pml_shape two[2] = {{3, 5, 4}, {3, 5, 4}};
    simple(PML_OP_ADD, 3, 2, two);
    pml_shape three[3] = {{2, 3, 3}, {2, 3, 3}, {2, 3, 3}};
    simple(PML_OP_ADD, 2, 3, three);
    /* with a learned addend of a sample's shape: alone, and with another input */
    t = simple(PML_OP_ADD, 3, 1, &two[0]);
    t->a.addend = 1;
    strcat(t->desc, " addend");
    t = simple(PML_OP_ADD, 2, 2, two);
    t->a.addend = 1;
    strcat(t->desc, " addend");
    s = (pml_shape){5, 1, 1};
    t = simple(PML_OP_ADD, 4, 1, &s);
    t->a.addend = 1;
    strcat(t->desc, " addend");

    /* concat (channels) */
    pml_shape cat[3] = {{2, 5, 4}, {3, 5, 4}, {1, 5, 4}};
    simple(PML_OP_CONCAT, 2, 3, cat);
    pml_shape cat2[2] = {{4, 1, 1}, {3, 1, 1}};
    simple(PML_OP_CONCAT, 3, 2, cat2);
    s = (pml_shape){2, 3, 3};
    simple(PML_OP_CONCAT, 2, 1, &s);
    /* ... of rows and of columns (ONNX's Concat on a spatial axis) */
    pml_shape rows[3] = {{3, 2, 4}, {3, 5, 4}, {3, 1, 4}};
    t = simple(PML_OP_CONCAT, 2, 3, rows);
    t->a.axis = 1;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " rows");
    pml_shape cols[2] = {{2, 3, 4}, {2, 3, 1}};
    t = simple(PML_OP_CONCAT, 3, 2, cols);
    t->a.axis = 2;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " columns");
    pml_shape rows1[2] = {{4, 1, 1}, {4, 3, 1}};
    t = simple(PML_OP_CONCAT, 2, 2, rows1);
    t->a.axis = 1;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " rows");

    /* batchnorm: training (through the batch statistics) and inference (running statistics, or
     * the batch's) */
    s = (pml_shape){3, 4, 5};
    t = simple(PML_OP_BATCHNORM, 4, 1, &s);
    s = (pml_shape){5, 1, 1};
    t = simple(PML_OP_BATCHNORM, 6, 1, &s);
    s = (pml_shape){2, 16, 16};
    t = simple(PML_OP_BATCHNORM, 4, 1, &s);
    t->fill = FILL_OFFSET;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " mean 20");
    s = (pml_shape){2, 48, 48};
    t = simple(PML_OP_BATCHNORM, 2, 1, &s);
    t->fill = FILL_FAR;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " mean 200");
    s = (pml_shape){3, 4, 5};
    t = simple(PML_OP_BATCHNORM, 3, 1, &s);
    t->training = false;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " inference");
    t = simple(PML_OP_BATCHNORM, 4, 1, &s); /* an ONNX training-mode node, in inference */
    t->training = false;
    t->a.batch_stats = 1;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " batch_stats");

    /* dropout: the same seed and step in every pass */
    s = (pml_shape){3, 5, 7};
    t = simple(PML_OP_DROPOUT, 3, 1, &s);
    t->a.rate = 0.3f;
    s = (pml_shape){11, 1, 1};
    t = simple(PML_OP_DROPOUT, 4, 1, &s);
    t->a.rate = 0.5f;
    s = (pml_shape){2, 3, 4};
    t = simple(PML_OP_DROPOUT, 2, 1, &s);
    t->a.rate = 0.0f;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " rate=0");
    s = (pml_shape){2, 3, 4};
    t = simple(PML_OP_DROPOUT, 2, 1, &s);
    t->training = false;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " inference");
    s = (pml_shape){3, 5, 7}; /* ONNX's seeded mask, split by samples, channels and rows */
    t = simple(PML_OP_DROPOUT, 3, 1, &s);
    t->a.rate = 0.4f;
    t->a.seed = 7;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " seed=7");
    s = (pml_shape){4, 3, 2}; /* an ONNX training-mode node in inference */
    t = simple(PML_OP_DROPOUT, 3, 1, &s);
    t->training = false;
    t->a.always = 1;
    t->a.seed = 0;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " inference always");

    /* softmax_xent: y is the per-sample loss; backward ignores dy */
    s = (pml_shape){7, 1, 1};
    t = simple(PML_OP_SOFTMAX_XENT, 5, 1, &s);
    t->dy_ignored = true;
    s = (pml_shape){3, 1, 1};
    t = simple(PML_OP_SOFTMAX_XENT, 4, 1, &s);
    t->dy_ignored = true;
    t->batch_total = 8; /* a part of a larger batch */
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " batch_total=8");
    s = (pml_shape){6, 1, 1};
    t = simple(PML_OP_SOFTMAX_XENT, 3, 1, &s);
    t->dy_ignored = true;
    t->fill = FILL_LARGE;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " logits in [-60,60]");
    s = (pml_shape){1, 1, 1}; /* one logit: the logits (0, z), labels 0 and 1 */
    t = simple(PML_OP_SOFTMAX_XENT, 6, 1, &s);
    t->dy_ignored = true;
    s = (pml_shape){1, 1, 1};
    t = simple(PML_OP_SOFTMAX_XENT, 5, 1, &s);
    t->dy_ignored = true;
    t->fill = FILL_LARGE;
    snprintf(t->desc + strlen(t->desc), sizeof t->desc - strlen(t->desc), " logits in [-60,60]");
}

/* ---------------------------------------------------------------- the environment of a case */

#define SENTINEL (-7.25e30f)

typedef struct env {
    const tcase *t;
    const pml_op_def *d;
    pml_node node;
    int N;
    size_t xsz[PML_MAX_INPUTS], ysz, psz[PML_MAX_PARAMS], ssz[PML_MAX_PARAMS], auxsz;
    float *x[PML_MAX_INPUTS];
    float *w[PML_MAX_PARAMS];
    float *state0[PML_MAX_PARAMS];
    int32_t *labels;
    float *r; /* dy and the projection of the FD loss */
} env;

/* A forward pass's results: output, running state, aux. */
typedef struct fres {
    float *y;
    float *state[PML_MAX_PARAMS];
    float *aux;
} fres;

/* Gradients: one buffer per input and per parameter. */
typedef struct grads {
    float *dx[PML_MAX_INPUTS];
    float *dw[PML_MAX_PARAMS];
} grads;

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

static float *fzeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}

static float *fcopy(const float *src, size_t n)
{
    float *p = falloc(n);
    if (n) memcpy(p, src, n * sizeof *p);
    return p;
}

static void fres_init(const env *e, fres *f)
{
    memset(f, 0, sizeof *f);
    f->y = falloc(e->ysz);
    for (size_t i = 0; i < e->ysz; i++) f->y[i] = SENTINEL;
    for (int j = 0; j < e->node.nstate; j++) f->state[j] = fcopy(e->state0[j], e->ssz[j]);
    if (e->auxsz) {
        f->aux = falloc(e->auxsz);
        for (size_t i = 0; i < e->auxsz; i++) f->aux[i] = NAN;
    }
}

static void fres_free(const env *e, fres *f)
{
    free(f->y);
    for (int j = 0; j < e->node.nstate; j++) free(f->state[j]);
    free(f->aux);
    memset(f, 0, sizeof *f);
}

static void grads_init(const env *e, grads *g)
{
    memset(g, 0, sizeof *g);
    for (int i = 0; i < e->t->nin; i++) g->dx[i] = fzeros(e->xsz[i]);
    for (int j = 0; j < e->node.nparam; j++) g->dw[j] = fzeros(e->psz[j]);
}

static void grads_free(const env *e, grads *g)
{
    for (int i = 0; i < e->t->nin; i++) free(g->dx[i]);
    for (int j = 0; j < e->node.nparam; j++) free(g->dw[j]);
    memset(g, 0, sizeof *g);
}

static void kctx_init(const env *e, pml_kctx *k, pml_region r)
{
    memset(k, 0, sizeof *k);
    k->node = &e->node;
    k->N = e->N;
    k->batch_total = e->t->batch_total;
    k->r = r;
    k->nin = e->t->nin;
    for (int i = 0; i < e->t->nin; i++) {
        k->x[i] = e->x[i];
        k->xs[i] = e->t->in[i];
    }
    for (int j = 0; j < e->node.nparam; j++) k->w[j] = e->w[j];
    k->labels = e->labels;
    k->training = e->t->training;
    k->seed = 1234;
    k->step = 7;
    k->node_id = 3;
}

/* Workspace of exactly the size the op asks for, filled with NaN (ASan catches overruns). */
static float *ws_alloc(const env *e, pml_region r)
{
    size_t n = e->d->ws_floats(&e->node, e->t->in, e->t->nin, r);
    float *ws = falloc(n);
    for (size_t i = 0; i < n; i++) ws[i] = NAN;
    return n ? ws : (free(ws), (float *)NULL);
}

static void run_fwd(const env *e, pml_kernel_fn fn, pml_region r, fres *f)
{
    pml_kctx k;
    kctx_init(e, &k, r);
    k.y = f->y;
    for (int j = 0; j < e->node.nstate; j++) k.state[j] = f->state[j];
    k.aux = f->aux;
    k.ws = ws_alloc(e, r);
    fn(&k);
    free(k.ws);
}

/* dy = e->r; gradients go to g (NULL pointers allowed). */
static void run_bwd(const env *e, pml_kernel_fn fn, pml_region r, const fres *f, const grads *g)
{
    pml_kctx k;
    kctx_init(e, &k, r);
    k.y = f->y;
    for (int j = 0; j < e->node.nstate; j++) k.state[j] = f->state[j];
    k.aux = f->aux;
    k.dy = e->r;
    for (int i = 0; i < e->t->nin; i++) k.dx[i] = g->dx[i];
    for (int j = 0; j < e->node.nparam; j++) k.dw[j] = g->dw[j];
    k.ws = ws_alloc(e, r);
    fn(&k);
    free(k.ws);
}

static void fill(float *p, size_t n, int how)
{
    switch (how) {
    case FILL_AWAY0:
        for (size_t i = 0; i < n; i++) {
            float v = uni(0.2f, 1.0f);
            p[i] = rng_u64() & 1 ? v : -v;
        }
        break;
    case FILL_DISTINCT:
        for (size_t i = 0; i < n; i++) p[i] = 0.05f * ((float)i - (float)n / 2);
        for (size_t i = n; i > 1; i--) {
            size_t j = rng_u64() % i;
            float tmp = p[i - 1];
            p[i - 1] = p[j];
            p[j] = tmp;
        }
        break;
    case FILL_TIES:
        for (size_t i = 0; i < n; i++) p[i] = 0.5f;
        break;
    case FILL_LARGE:
        for (size_t i = 0; i < n; i++) p[i] = uni(-60, 60);
        break;
    case FILL_OFFSET:
        for (size_t i = 0; i < n; i++) p[i] = 20.0f + uni(-1, 1);
        break;
    case FILL_FAR:
        for (size_t i = 0; i < n; i++) p[i] = 200.0f + uni(-1, 1);
        break;
    default:
        for (size_t i = 0; i < n; i++) p[i] = uni(-1, 1);
    }
}

/* Infers the node and allocates and fills every tensor. \return false when infer failed. */
static bool env_init(env *e, const tcase *t)
{
    memset(e, 0, sizeof *e);
    e->t = t;
    e->d = &pml_ops[t->op];
    e->N = t->N;
    pml_node *n = &e->node;
    snprintf(n->name, sizeof n->name, "t_%s", pml_op_name(t->op));
    n->op = t->op;
    n->a = t->a;
    n->nin = t->nin;
    for (int i = 0; i < t->nin; i++) n->in[i] = i;
    CHECK_MSG(t->nin >= e->d->min_in && t->nin <= e->d->max_in,
              "%s: %d inputs, the op takes %d..%d", t->desc, t->nin, e->d->min_in, e->d->max_in);
    pml_status st = e->d->infer(n, t->in, t->nin);
    CHECK_MSG(st == PML_OK, "%s: infer failed: %s (%s)", t->desc, pml_status_str(st), pml_errmsg());
    if (st != PML_OK) return false;
    CHECK_MSG(n->out.c > 0 && n->out.h > 0 && n->out.w > 0, "%s: output shape %dx%dx%d", t->desc,
              n->out.c, n->out.h, n->out.w);
    if (n->out.c <= 0 || n->out.h <= 0 || n->out.w <= 0) return false;
    double fl = e->d->flops(n, t->in, t->nin);
    CHECK_MSG(isfinite(fl) && fl >= 0, "%s: flops %g", t->desc, fl);

    for (int i = 0; i < t->nin; i++) {
        e->xsz[i] = (size_t)t->N * pml_shape_size(t->in[i]);
        e->x[i] = falloc(e->xsz[i]);
        fill(e->x[i], e->xsz[i], t->fill);
    }
    e->ysz = (size_t)t->N * pml_shape_size(n->out);
    for (int j = 0; j < n->nparam; j++) {
        e->psz[j] = n->param_size[j];
        e->w[j] = falloc(e->psz[j]);
        for (size_t i = 0; i < e->psz[j]; i++)
            e->w[j][i] = n->param_init[j] == PML_INIT_ONES ? uni(0.5f, 1.5f) : uni(-0.5f, 0.5f);
    }
    for (int j = 0; j < n->nstate; j++) {
        e->ssz[j] = n->state_size[j];
        e->state0[j] = falloc(e->ssz[j]);
        for (size_t i = 0; i < e->ssz[j]; i++)
            e->state0[j][i] =
                n->state_init[j] == PML_INIT_ONES ? uni(0.5f, 1.5f) : uni(-0.5f, 0.5f);
    }
    e->auxsz = n->aux_per_sample * (size_t)t->N + n->aux_fixed;
    e->labels = malloc((size_t)t->N * sizeof *e->labels);
    if (!e->labels) abort();
    for (int i = 0; i < t->N; i++)
        e->labels[i] = t->nin ? (int32_t)(rng_u64() % (uint64_t)(t->in[0].c > 1 ? t->in[0].c : 2)) : 0;
    e->r = falloc(e->ysz);
    for (size_t i = 0; i < e->ysz; i++)
        e->r[i] = t->dy_ignored ? 1.0f / (float)t->batch_total : uni(-1, 1);
    return true;
}

static void env_free(env *e)
{
    for (int i = 0; i < e->t->nin; i++) free(e->x[i]);
    for (int j = 0; j < e->node.nparam; j++) free(e->w[j]);
    for (int j = 0; j < e->node.nstate; j++) free(e->state0[j]);
    free(e->labels);
    free(e->r);
}

/* ---------------------------------------------------------------- comparisons */

/* |a - b| <= tol * (|b| + max|b|) elementwise, both finite. Reports the worst element. */
static double compare(const tcase *t, const char *what, const float *a, const float *b, size_t n,
                      double tol)
{
    double scale = 0, worst = 0;
    size_t wi = 0, bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - b[i]);
        double allow = tol * (fabs(b[i]) + scale);
        double ratio = !isfinite(a[i]) || !isfinite(b[i]) ? INFINITY
                       : err == 0                         ? 0
                       : allow > 0                        ? err / allow
                                                          : INFINITY;
        if (ratio > 1) bad++;
        if (ratio > worst || (i == 0 && ratio == worst)) {
            worst = ratio;
            wi = i;
        }
    }
    if (bad) {
        fprintf(stderr, "  %s: %s: %zu of %zu differ; worst [%zu] = %.8g, expected %.8g (tol %g)\n",
                t->desc, what, bad, n, wi, (double)a[wi], (double)b[wi], tol);
        pml__test_failed = 1;
    }
    return worst;
}

static bool shape_has(pml_shape sh, pml_region r, size_t idx)
{
    size_t hw = (size_t)sh.h * sh.w;
    size_t chw = (size_t)sh.c * hw;
    int s = (int)(idx / chw), c = (int)(idx % chw / hw), h = (int)(idx % hw / sh.w);
    return s >= r.n0 && s < r.n1 && c >= r.c0 && c < r.c1 && h >= r.h0 && h < r.h1;
}

static bool region_has(const pml_node *n, pml_region r, size_t idx)
{
    return shape_has(n->out, r, idx);
}

/* ---------------------------------------------------------------- splits */

#define MAX_PARTS 64

typedef struct partition {
    unsigned kinds; /* PML_SPLIT_* bits */
    int n;
    pml_region r[MAX_PARTS];
} partition;

/* Uneven cuts of [0, len): {0,1,m,len} for len >= 3, {0,1,2} for 2, {0,1} for 1. */
static int cuts(int len, int *b)
{
    int k = 0;
    b[k++] = 0;
    if (len >= 2) b[k++] = 1;
    if (len >= 3) b[k++] = 1 + (len - 1) * 2 / 3;
    b[k++] = len;
    return k - 1;
}

static void make_partition(const env *e, unsigned kinds, partition *p)
{
    int bn[5], bc[5], bh[5];
    int nn = 1, nc = 1, nh = 1;
    const pml_node *n = &e->node;
    bn[0] = 0, bn[1] = e->N;
    bc[0] = 0, bc[1] = n->out.c;
    bh[0] = 0, bh[1] = n->out.h;
    if (kinds & PML_SPLIT_SAMPLE) nn = cuts(e->N, bn);
    if (kinds & PML_SPLIT_PARAM) nc = cuts(n->out.c, bc);
    if (kinds & PML_SPLIT_ATTR) nh = cuts(n->out.h, bh);
    p->kinds = kinds;
    p->n = 0;
    for (int a = 0; a < nn; a++)
        for (int b = 0; b < nc; b++)
            for (int c = 0; c < nh; c++)
                p->r[p->n++] = (pml_region){bn[a], bn[a + 1], bc[b], bc[b + 1], bh[c], bh[c + 1]};
}

static const char *kinds_name(unsigned k)
{
    static const char *names[] = {"none", "sample",      "param",      "sample+param",
                                  "attr", "sample+attr", "param+attr", "sample+param+attr"};
    return names[k & 7];
}

/* Forward in parts: every part writes exactly its region (checked against a sentinel on a fresh
 * output); the parts' regions are gathered into f->y; state and aux are shared by the parts. */
static void fwd_parts(const env *e, const partition *p, fres *f)
{
    float *ytmp = falloc(e->ysz);
    for (int i = 0; i < p->n; i++) {
        for (size_t j = 0; j < e->ysz; j++) ytmp[j] = SENTINEL;
        fres part = *f;
        part.y = ytmp;
        run_fwd(e, e->d->fwd, p->r[i], &part);
        size_t outside = 0, unwritten = 0;
        for (size_t j = 0; j < e->ysz; j++) {
            bool in = region_has(&e->node, p->r[i], j);
            if (in && ytmp[j] == SENTINEL) unwritten++;
            if (!in && ytmp[j] != SENTINEL) outside++;
            if (in) f->y[j] = ytmp[j];
        }
        const pml_region *r = &p->r[i];
        CHECK_MSG(outside == 0 && unwritten == 0,
                  "%s: %s split, part n[%d,%d) c[%d,%d) h[%d,%d): %zu outputs written outside "
                  "the region, %zu inside left unwritten",
                  e->t->desc, kinds_name(p->kinds), r->n0, r->n1, r->c0, r->c1, r->h0, r->h1,
                  outside, unwritten);
        /* the part reads only the input regions in_region declares (what a plan transfers):
         * with every other input element poisoned, its outputs are the same */
        env pe = *e;
        for (int k = 0; k < e->t->nin; k++) {
            pml_region ir = e->d->in_region(&e->node, e->t->in, e->t->nin, k, *r);
            pe.x[k] = falloc(e->xsz[k]);
            for (size_t j = 0; j < e->xsz[k]; j++)
                pe.x[k][j] =
                    !pml_region_empty(ir) && shape_has(e->t->in[k], ir, j) ? e->x[k][j] : 3e30f;
        }
        fres pf;
        fres_init(e, &pf);
        run_fwd(&pe, e->d->fwd, *r, &pf);
        size_t differ = 0;
        for (size_t j = 0; j < e->ysz; j++)
            differ += region_has(&e->node, *r, j) && memcmp(&pf.y[j], &ytmp[j], sizeof(float)) != 0;
        CHECK_MSG(differ == 0,
                  "%s: %s split, part n[%d,%d) c[%d,%d) h[%d,%d): %zu outputs change when input "
                  "outside the declared input regions is poisoned",
                  e->t->desc, kinds_name(p->kinds), r->n0, r->n1, r->c0, r->c1, r->h0, r->h1,
                  differ);
        fres_free(e, &pf);
        for (int k = 0; k < e->t->nin; k++) free(pe.x[k]);
    }
    free(ytmp);
}

/* Backward in parts. A gradient is given private zeroed buffers per part when \p priv says so
 * (then summed into out), else out's buffer is shared. When every buffer is private,
 * \p overlap_* report whether two parts wrote non-zero values to the same element. */
static void bwd_parts(const env *e, const partition *p, const fres *f, bool priv_dx, bool priv_dw,
                      const grads *out, bool *overlap_dx, bool *overlap_dw)
{
    int nin = e->t->nin, np = e->node.nparam;
    unsigned char *tdx[PML_MAX_INPUTS] = {0}, *tdw[PML_MAX_PARAMS] = {0};
    if (overlap_dx) *overlap_dx = false;
    if (overlap_dw) *overlap_dw = false;
    for (int i = 0; i < nin; i++) tdx[i] = calloc(e->xsz[i] + 1, 1);
    for (int j = 0; j < np; j++) tdw[j] = calloc(e->psz[j] + 1, 1);
    for (int k = 0; k < p->n; k++) {
        grads g = *out;
        if (priv_dx)
            for (int i = 0; i < nin; i++) g.dx[i] = fzeros(e->xsz[i]);
        if (priv_dw)
            for (int j = 0; j < np; j++) g.dw[j] = fzeros(e->psz[j]);
        run_bwd(e, e->d->bwd, p->r[k], f, &g);
        if (priv_dx)
            for (int i = 0; i < nin; i++) {
                for (size_t q = 0; q < e->xsz[i]; q++) {
                    if (g.dx[i][q] != 0) {
                        if (tdx[i][q] && overlap_dx) *overlap_dx = true;
                        tdx[i][q] = 1;
                    }
                    out->dx[i][q] += g.dx[i][q];
                }
                free(g.dx[i]);
            }
        if (priv_dw)
            for (int j = 0; j < np; j++) {
                for (size_t q = 0; q < e->psz[j]; q++) {
                    if (g.dw[j][q] != 0) {
                        if (tdw[j][q] && overlap_dw) *overlap_dw = true;
                        tdw[j][q] = 1;
                    }
                    out->dw[j][q] += g.dw[j][q];
                }
                free(g.dw[j]);
            }
    }
    for (int i = 0; i < nin; i++) free(tdx[i]);
    for (int j = 0; j < np; j++) free(tdw[j]);
}

static void compare_grads(const env *e, const char *what, const grads *a, const grads *b,
                          double tol, double *worst)
{
    char buf[160];
    for (int i = 0; i < e->t->nin; i++) {
        snprintf(buf, sizeof buf, "%s dx[%d]", what, i);
        double w = compare(e->t, buf, a->dx[i], b->dx[i], e->xsz[i], tol);
        if (w > *worst) *worst = w;
    }
    for (int j = 0; j < e->node.nparam; j++) {
        snprintf(buf, sizeof buf, "%s dw[%d]", what, j);
        double w = compare(e->t, buf, a->dw[j], b->dw[j], e->psz[j], tol);
        if (w > *worst) *worst = w;
    }
}

static void compare_state(const env *e, const char *what, const fres *a, const fres *b, double tol)
{
    char buf[160];
    for (int j = 0; j < e->node.nstate; j++) {
        snprintf(buf, sizeof buf, "%s state[%d]", what, j);
        compare(e->t, buf, a->state[j], b->state[j], e->ssz[j], tol);
    }
}

/* ---------------------------------------------------------------- finite differences */

/* L = sum(y * r) in double from a reference forward on the full region; y kept in *yout. */
static double fd_loss(const env *e, float *yout)
{
    fres f;
    fres_init(e, &f);
    run_fwd(e, e->d->fwd_ref, pml_region_full(&e->node, e->N), &f);
    double L = 0;
    for (size_t i = 0; i < e->ysz; i++) L += (double)f.y[i] * e->r[i];
    memcpy(yout, f.y, e->ysz * sizeof *yout);
    fres_free(e, &f);
    return L;
}

/* eps: 1e-2 for smooth ops (float noise of L stays small against 2 eps); 1e-3 through relu,
 * where a larger step flips too many units */
#define FD_EPS 1e-2f
#define FD_EPS_KINK 1e-3f
#define FD_TOL 1e-2
#define FD_MAX_COORDS 48

/* Checks d L / d v[j] for sampled coordinates j of tensor v against the analytic gradient g. */
static double fd_tensor(const env *e, const char *what, float *v, size_t n, const float *g,
                        int *skipped, int *tried)
{
    float *yp = falloc(e->ysz), *ym = falloc(e->ysz);
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(g[i]) > scale) scale = fabs(g[i]);
    const float eps = e->t->kink ? FD_EPS_KINK : FD_EPS;
    int m = n <= FD_MAX_COORDS ? (int)n : FD_MAX_COORDS;
    for (int c = 0; c < m; c++) {
        size_t j = n <= FD_MAX_COORDS ? (size_t)c : (size_t)(rng_u64() % n);
        float v0 = v[j];
        v[j] = v0 + eps;
        double lp = fd_loss(e, yp);
        v[j] = v0 - eps;
        double lm = fd_loss(e, ym);
        v[j] = v0;
        (*tried)++;
        if (e->t->kink) {
            bool flip = false;
            for (size_t i = 0; i < e->ysz && !flip; i++) flip = (yp[i] > 0) != (ym[i] > 0);
            if (flip) {
                (*skipped)++;
                continue;
            }
        }
        double num = (lp - lm) / (2.0 * (double)eps);
        double ana = g[j];
        double allow = FD_TOL * (fabs(ana) + 0.1 * scale) + 1e-4;
        double ratio = fabs(num - ana) / allow;
        if (ratio > worst) worst = ratio;
        if (ratio > 1) {
            fprintf(stderr, "  %s: fd %s[%zu]: numeric %.6g, analytic %.6g\n", e->t->desc, what, j,
                    num, ana);
            pml__test_failed = 1;
        }
    }
    free(yp);
    free(ym);
    return worst;
}

/* ---------------------------------------------------------------- one case */

static void run_case(const tcase *t)
{
    env e;
    if (!env_init(&e, t)) return;
    if (t->nin == 0) {
        /* the input op: its buffer is filled by the executor */
        CHECK_MSG(pml_shape_eq(e.node.out, t->a.shape), "%s: output shape", t->desc);
        env_free(&e);
        return;
    }
    const pml_op_def *d = e.d;
    const pml_region full = pml_region_full(&e.node, e.N);
    double w_fwd, w_split = 0, w_bwd = 0, w_bsplit = 0, w_fd = 0;
    int fd_skipped = 0, fd_tried = 0;

    /* fwd: fast vs reference, full region */
    fres ff, fr;
    fres_init(&e, &ff);
    fres_init(&e, &fr);
    run_fwd(&e, d->fwd, full, &ff);
    run_fwd(&e, d->fwd_ref, full, &fr);
    w_fwd = compare(t, "fwd vs ref", ff.y, fr.y, e.ysz, 1e-4);
    compare_state(&e, "fwd vs ref", &ff, &fr, 1e-4);

    /* bwd: fast (onto non-zero buffers: must accumulate) vs reference (onto zeros) */
    grads gf, gr, base;
    grads_init(&e, &gf);
    grads_init(&e, &gr);
    grads_init(&e, &base);
    for (int i = 0; i < t->nin; i++)
        for (size_t q = 0; q < e.xsz[i]; q++) base.dx[i][q] = gf.dx[i][q] = 0.25f * (float)(q % 5);
    for (int j = 0; j < e.node.nparam; j++)
        for (size_t q = 0; q < e.psz[j]; q++) base.dw[j][q] = gf.dw[j][q] = 0.25f * (float)(q % 3);
    run_bwd(&e, d->bwd, full, &ff, &gf);
    run_bwd(&e, d->bwd_ref, full, &fr, &gr);
    for (int i = 0; i < t->nin; i++)
        for (size_t q = 0; q < e.xsz[i]; q++) gf.dx[i][q] -= base.dx[i][q];
    for (int j = 0; j < e.node.nparam; j++)
        for (size_t q = 0; q < e.psz[j]; q++) gf.dw[j][q] -= base.dw[j][q];
    compare_grads(&e, "bwd vs ref", &gf, &gr, 1e-4, &w_bwd);

    /* bwd with NULL input gradients (first layer) or NULL parameter gradients (frozen) */
    {
        grads g;
        grads_init(&e, &g);
        grads h = g;
        for (int i = 0; i < t->nin; i++) h.dx[i] = NULL;
        run_bwd(&e, d->bwd, full, &ff, &h);
        h = g;
        for (int j = 0; j < e.node.nparam; j++) h.dw[j] = NULL;
        run_bwd(&e, d->bwd, full, &ff, &h);
        double w = 0;
        compare_grads(&e, "bwd with NULL dx / NULL dw", &g, &gf, 1e-4, &w);
        grads_free(&e, &g);
    }

    /* split: forward and backward in parts, for each split kind and for all combined */
    unsigned kinds[4];
    int nk = 0;
    for (unsigned b = PML_SPLIT_SAMPLE; b <= PML_SPLIT_ATTR; b <<= 1)
        if (d->splits & b) kinds[nk++] = b;
    if (nk > 1) kinds[nk++] = d->splits & (PML_SPLIT_SAMPLE | PML_SPLIT_PARAM | PML_SPLIT_ATTR);
    for (int ki = 0; ki < nk; ki++) {
        partition p;
        make_partition(&e, kinds[ki], &p);
        char what[96];
        snprintf(what, sizeof what, "%s split (%d parts)", kinds_name(kinds[ki]), p.n);
        fres fp;
        fres_init(&e, &fp);
        fwd_parts(&e, &p, &fp);
        double w = compare(t, what, fp.y, ff.y, e.ysz, 1e-4);
        if (w > w_split) w_split = w;
        compare_state(&e, what, &fp, &ff, 1e-4);

        bool pdx = (kinds[ki] & d->dx_partial) != 0, pdw = (kinds[ki] & d->dw_partial) != 0;
        grads gp;
        grads_init(&e, &gp);
        bwd_parts(&e, &p, &fp, pdx, pdw, &gp, NULL, NULL);
        compare_grads(&e, what, &gp, &gf, 1e-4, &w_bsplit);
        grads_free(&e, &gp);

        /* audit: grads declared not partial under this split must not overlap between parts */
        if (!pdx || !pdw) {
            bool odx, odw;
            grads_init(&e, &gp);
            bwd_parts(&e, &p, &fp, true, true, &gp, &odx, &odw);
            CHECK_MSG(pdx || !odx,
                      "%s: %s: parts overlap on dx, but the op table does not declare dx partial "
                      "under this split",
                      t->desc, what);
            CHECK_MSG(pdw || !odw,
                      "%s: %s: parts overlap on dw, but the op table does not declare dw partial "
                      "under this split",
                      t->desc, what);
            grads_free(&e, &gp);
        }
        fres_free(&e, &fp);
    }

    /* fd: reference backward vs central differences */
    if (!t->no_fd) {
        char what[32];
        for (int i = 0; i < t->nin; i++) {
            snprintf(what, sizeof what, "x[%d]", i);
            double w = fd_tensor(&e, what, e.x[i], e.xsz[i], gr.dx[i], &fd_skipped, &fd_tried);
            if (w > w_fd) w_fd = w;
        }
        for (int j = 0; j < e.node.nparam; j++) {
            snprintf(what, sizeof what, "w[%d]", j);
            double w = fd_tensor(&e, what, e.w[j], e.psz[j], gr.dw[j], &fd_skipped, &fd_tried);
            if (w > w_fd) w_fd = w;
        }
        CHECK_MSG(fd_skipped * 4 <= fd_tried, "%s: %d of %d FD coordinates skipped at relu kinks",
                  t->desc, fd_skipped, fd_tried);
    }
    if (verbose())
        fprintf(stderr,
                "  %-72s fwd %.2g split %.2g bwd %.2g bsplit %.2g fd %.2g (skipped %d/%d)\n",
                t->desc, w_fwd, w_split, w_bwd, w_bsplit, w_fd, fd_skipped, fd_tried);

    grads_free(&e, &gf);
    grads_free(&e, &gr);
    grads_free(&e, &base);
    fres_free(&e, &ff);
    fres_free(&e, &fr);
    env_free(&e);
}

static void run_op(pml_op_type op)
{
    build_cases();
    int n = 0;
    for (int i = 0; i < ncases; i++)
        if (cases[i].op == op) {
            /* each case draws the same numbers whatever the other cases drew: seeded by its
             * description (FNV-1a) */
            uint64_t h = 0xcbf29ce484222325ull;
            for (const char *c = cases[i].desc; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
            rng_s = 0x853c49e6748fea9bull ^ h;
            run_case(&cases[i]);
            n++;
        }
    CHECK_MSG(n > 0, "op '%s' has no test case", pml_op_name(op));
}

/* One test per op, generated from PML_OP_MAP. */
#define PML__X(name, str)                                                                          \
    static void t_op_##name(void)                                                                  \
    {                                                                                              \
        run_op(PML_OP_##name);                                                                     \
    }
PML_OP_MAP(PML__X)
#undef PML__X

/* Every op of the table has a complete entry and at least one case. */
static void t_every_op_has_cases(void)
{
    build_cases();
    for (int op = 0; op < PML_OP_COUNT; op++) {
        const pml_op_def *d = &pml_ops[op];
        int n = 0;
        for (int i = 0; i < ncases; i++) n += cases[i].op == (pml_op_type)op;
        CHECK_MSG(n > 0, "op '%s' has no case in tests/test_ops.c", pml_op_name((pml_op_type)op));
        CHECK_MSG(d->name && strcmp(d->name, pml_op_name((pml_op_type)op)) == 0,
                  "op table entry %d is named '%s', not '%s'", op, d->name ? d->name : "(null)",
                  pml_op_name((pml_op_type)op));
        CHECK_MSG(d->infer && d->fwd && d->bwd && d->fwd_ref && d->bwd_ref && d->flops &&
                      d->ws_floats && d->in_region,
                  "op '%s' has a missing function in the op table", d->name);
        const unsigned all = d->splits | d->approx_splits;
        CHECK_MSG((d->dx_partial & ~all) == 0 && (d->dw_partial & ~all) == 0,
                  "op '%s': partial-gradient flags name splits the op does not declare", d->name);
        CHECK_MSG((d->splits & d->approx_splits) == 0,
                  "op '%s': a split cannot be both exact and approximate", d->name);
    }
}

/* ---------------------------------------------------------------- conv and pool specifics */

static pml_status infer1(pml_node *n, pml_op_type op, const pml_attrs *a, pml_shape x)
{
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "layer7");
    n->op = op;
    n->a = *a;
    n->nin = 1;
    return pml_ops[op].infer(n, &x, 1);
}

static pml_attrs conv_attrs(int out, int k, int s, int pad, int p)
{
    pml_attrs a = pml_attrs_default(PML_OP_CONV2D);
    a.out = out;
    a.kh = a.kw = k;
    a.sh = a.sw = s;
    a.pad_mode = pad;
    a.ph = a.pw = p;
    return a;
}

static void t_conv2d_shapes(void)
{
    pml_node n;
    pml_attrs a = conv_attrs(32, 3, 1, PML_PAD_VALID, 0);
    a.act = PML_ACT_RELU;
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){1, 28, 28})); /* Keras fashion conv1 */
    CHECK(pml_shape_eq(n.out, (pml_shape){32, 26, 26}));
    CHECK(n.nparam == 2 && n.param_size[0] == 32 * 9 && n.param_size[1] == 32);
    CHECK(n.param_init[0] == PML_INIT_GLOROT && n.param_fan_in[0] == 9 &&
          n.param_fan_out[0] == 32 * 9);
    CHECK(n.param_init[1] == PML_INIT_ZEROS);
    CHECK_NEAR(pml_ops[PML_OP_CONV2D].flops(&n, &(pml_shape){1, 28, 28}, 1),
               2.0 * 32 * 26 * 26 * 9 + 2.0 * 32 * 26 * 26, 1e-12);
    a = conv_attrs(16, 3, 1, PML_PAD_SAME, 0); /* flowers conv1 */
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){3, 180, 180}));
    CHECK(pml_shape_eq(n.out, (pml_shape){16, 180, 180}));
    CHECK(n.a.pt == 1 && n.a.pb == 1 && n.a.pl == 1 && n.a.pr == 1);
    a = conv_attrs(8, 3, 2, PML_PAD_SAME, 0); /* TF same, stride 2, even input: pad 0 / 1 */
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){3, 8, 8}));
    CHECK(pml_shape_eq(n.out, (pml_shape){8, 4, 4}));
    CHECK(n.a.pt == 0 && n.a.pb == 1 && n.a.pl == 0 && n.a.pr == 1);
    a = conv_attrs(64, 7, 2, PML_PAD_EXPLICIT, 3); /* torchvision resnet stem */
    a.bias = 0;
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){3, 224, 224}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 112, 112}));
    CHECK(n.nparam == 1 && n.param_size[0] == 64 * 3 * 49);
    a = conv_attrs(64, 11, 4, PML_PAD_EXPLICIT, 2); /* torchvision alexnet conv1 */
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){3, 224, 224}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 55, 55}));
    a = conv_attrs(4, 1, 1, PML_PAD_VALID, 0);
    a.kh = 1;
    a.kw = 7;
    a.pad_mode = PML_PAD_SAME; /* inception 1x7 */
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){5, 17, 17}));
    CHECK(pml_shape_eq(n.out, (pml_shape){4, 17, 17}));
    CHECK(n.a.pt == 0 && n.a.pb == 0 && n.a.pl == 3 && n.a.pr == 3);
}

/* The call fails with \p st and a message naming the node and containing \p word. */
static void expect_fail(pml_op_type op, const pml_attrs *a, pml_shape x, pml_status st,
                        const char *word)
{
    pml_node n;
    pml_status got = infer1(&n, op, a, x);
    CHECK_MSG(got == st, "%s on %dx%dx%d: status '%s', expected '%s'", pml_op_name(op), x.c, x.h,
              x.w, pml_status_str(got), pml_status_str(st));
    CHECK_MSG(strstr(pml_errmsg(), "'layer7'") && strstr(pml_errmsg(), pml_op_name(op)) &&
                  strstr(pml_errmsg(), word),
              "message '%s' should name the node, the op and '%s'", pml_errmsg(), word);
}

static void t_conv2d_errors(void)
{
    pml_shape x = {3, 5, 5};
    pml_attrs a = conv_attrs(0, 3, 1, PML_PAD_VALID, 0);
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "out=0");
    a = conv_attrs(4, 0, 1, PML_PAD_VALID, 0);
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "kernel");
    a = conv_attrs(4, 3, 0, PML_PAD_VALID, 0);
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "stride");
    a = conv_attrs(4, 3, 1, 7, 0);
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "padding");
    a = conv_attrs(4, 3, 1, PML_PAD_EXPLICIT, -1);
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "padding");
    a = conv_attrs(4, 7, 1, PML_PAD_VALID, 0);
    expect_fail(PML_OP_CONV2D, &a, x, PML_ESHAPE, "kernel 7x7 is larger than the padded input 5x5");
    a = conv_attrs(4, 9, 1, PML_PAD_EXPLICIT, 1);
    expect_fail(PML_OP_CONV2D, &a, x, PML_ESHAPE, "padded input 7x7");
    a = conv_attrs(4, 7, 1, PML_PAD_EXPLICIT, 1); /* fits exactly: 5 + 2 = 7 */
    pml_node n;
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, x));
    CHECK(pml_shape_eq(n.out, (pml_shape){4, 1, 1}));
    a = conv_attrs(4, 3, 1, PML_PAD_VALID, 0);
    a.act = 5;
    expect_fail(PML_OP_CONV2D, &a, x, PML_EFORMAT, "activation");
}

static pml_attrs pool_attrs(pml_op_type op, int k, int s, int pad, int p, int ceil_mode)
{
    pml_attrs a = pml_attrs_default(op);
    a.kh = a.kw = k;
    a.sh = a.sw = s;
    a.pad_mode = pad;
    a.ph = a.pw = p;
    a.ceil_mode = ceil_mode;
    return a;
}

static void t_pool_shapes(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_MAXPOOL2D); /* Keras MaxPooling2D(2) */
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){32, 26, 26}));
    CHECK(pml_shape_eq(n.out, (pml_shape){32, 13, 13}));
    CHECK(n.nparam == 0);
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 11, 11}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 5, 5}));
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 45, 45})); /* flowers pool3 */
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 22, 22}));
    a = pool_attrs(PML_OP_MAXPOOL2D, 2, 2, PML_PAD_VALID, 0, 1);
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 11, 11}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 6, 6}));
    a = pool_attrs(PML_OP_MAXPOOL2D, 3, 2, PML_PAD_EXPLICIT, 1, 0); /* resnet */
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 112, 112}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 56, 56}));
    a = pool_attrs(PML_OP_MAXPOOL2D, 3, 2, PML_PAD_VALID, 0, 0); /* inception-v3 */
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 147, 147}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 73, 73}));
    a = pool_attrs(PML_OP_MAXPOOL2D, 3, 2, PML_PAD_VALID, 0, 1); /* googlenet, ceil */
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 112, 112}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 56, 56}));
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){64, 14, 14}));
    CHECK(pml_shape_eq(n.out, (pml_shape){64, 7, 7})); /* floor would give 6 */
    a = pool_attrs(PML_OP_AVGPOOL2D, 1, 1, PML_PAD_VALID, 0, 0);
    a.global = 1;
    CHECK_OK(infer1(&n, PML_OP_AVGPOOL2D, &a, (pml_shape){2048, 7, 7}));
    CHECK(pml_shape_eq(n.out, (pml_shape){2048, 1, 1}));
    a.kh = 0; /* global ignores the kernel */
    CHECK_OK(infer1(&n, PML_OP_AVGPOOL2D, &a, (pml_shape){5, 3, 4}));
    CHECK(pml_shape_eq(n.out, (pml_shape){5, 1, 1}));
    CHECK_NEAR(pml_ops[PML_OP_AVGPOOL2D].flops(&n, &(pml_shape){5, 3, 4}, 1), 65, 1e-12);
}

static void t_pool_errors(void)
{
    pml_shape x = {3, 5, 5};
    for (pml_op_type op = PML_OP_MAXPOOL2D; op <= PML_OP_AVGPOOL2D; op++) {
        pml_attrs a = pool_attrs(op, 0, 1, PML_PAD_VALID, 0, 0);
        expect_fail(op, &a, x, PML_EFORMAT, "kernel");
        a = pool_attrs(op, 2, 0, PML_PAD_VALID, 0, 0);
        expect_fail(op, &a, x, PML_EFORMAT, "stride");
        a = pool_attrs(op, 3, 1, PML_PAD_EXPLICIT, 3, 0);
        expect_fail(op, &a, x, PML_EFORMAT, "smaller than the kernel");
        a = pool_attrs(op, 6, 1, PML_PAD_VALID, 0, 0);
        expect_fail(op, &a, x, PML_ESHAPE, "kernel 6x6 is larger than the padded input 5x5");
        a = pool_attrs(op, 2, 2, -1, 0, 0);
        expect_fail(op, &a, x, PML_EFORMAT, "padding");
    }
}

/* Runs the fast and the reference forward and backward of a one-input op on hand-made data. */
static void run_small(pml_op_type op, const pml_attrs *a, pml_shape xs, const float *x,
                      const float *dy, float *y_fast, float *y_ref, float *dx_fast, float *dx_ref)
{
    pml_node n;
    CHECK_OK(infer1(&n, op, a, xs));
    for (int ref = 0; ref < 2; ref++) {
        pml_kctx k;
        memset(&k, 0, sizeof k);
        k.node = &n;
        k.N = 1;
        k.batch_total = 1;
        k.r = pml_region_full(&n, 1);
        k.nin = 1;
        k.x[0] = x;
        k.xs[0] = xs;
        k.y = ref ? y_ref : y_fast;
        (ref ? pml_ops[op].fwd_ref : pml_ops[op].fwd)(&k);
        k.dy = dy;
        k.dx[0] = ref ? dx_ref : dx_fast;
        (ref ? pml_ops[op].bwd_ref : pml_ops[op].bwd)(&k);
    }
}

/* PyTorch avg_pool2d(ones(1,1,3,3), 3, 1, 1, count_include_pad=True / False). */
static void t_avgpool_count_pad(void)
{
    float x[9], dy[9], yf[9], yr[9], dxf[9] = {0}, dxr[9] = {0};
    for (int i = 0; i < 9; i++) x[i] = 1, dy[i] = 1;
    pml_attrs a = pool_attrs(PML_OP_AVGPOOL2D, 3, 1, PML_PAD_EXPLICIT, 1, 0);
    a.count_pad = 1;
    run_small(PML_OP_AVGPOOL2D, &a, (pml_shape){1, 3, 3}, x, dy, yf, yr, dxf, dxr);
    const float want[9] = {4 / 9.f, 6 / 9.f, 4 / 9.f, 6 / 9.f, 1,
                           6 / 9.f, 4 / 9.f, 6 / 9.f, 4 / 9.f};
    for (int i = 0; i < 9; i++) {
        CHECK_NEAR(yf[i], want[i], 1e-6);
        CHECK_NEAR(yr[i], want[i], 1e-6);
        /* every input cell is in 4 (corner), 6 (edge) or 9 windows, each giving 1/9 */
        CHECK_NEAR(dxf[i], want[i], 1e-6);
        CHECK_NEAR(dxr[i], want[i], 1e-6);
    }
    a.count_pad = 0;
    memset(dxf, 0, sizeof dxf);
    memset(dxr, 0, sizeof dxr);
    run_small(PML_OP_AVGPOOL2D, &a, (pml_shape){1, 3, 3}, x, dy, yf, yr, dxf, dxr);
    for (int i = 0; i < 9; i++) {
        CHECK_NEAR(yf[i], 1, 1e-6);
        CHECK_NEAR(yr[i], 1, 1e-6);
        CHECK_NEAR(dxf[i], dxr[i], 1e-6);
    }
    /* corner: windows (0,0),(0,1),(1,0),(1,1) with 4, 6, 6, 9 real cells */
    CHECK_NEAR(dxf[0], 1 / 4.f + 2 / 6.f + 1 / 9.f, 1e-6);
    /* ceil_mode: PyTorch avg_pool2d(ones(1,1,4,4), 3, 2, 1, ceil_mode=True,
     * count_include_pad=True) is 3x3; windows that hang over the padding count only the part
     * inside the padded input (hend = min(hstart + k, H + pad)) */
    float x16[16], y9f[9], y9r[9], d9[9], dxf16[16] = {0}, dxr16[16] = {0};
    for (int i = 0; i < 16; i++) x16[i] = 1;
    for (int i = 0; i < 9; i++) d9[i] = 1;
    a = pool_attrs(PML_OP_AVGPOOL2D, 3, 2, PML_PAD_EXPLICIT, 1, 1);
    a.count_pad = 1;
    pml_node n;
    CHECK_OK(infer1(&n, PML_OP_AVGPOOL2D, &a, (pml_shape){1, 4, 4}));
    CHECK(pml_shape_eq(n.out, (pml_shape){1, 3, 3}));
    run_small(PML_OP_AVGPOOL2D, &a, (pml_shape){1, 4, 4}, x16, d9, y9f, y9r, dxf16, dxr16);
    const float want9[9] = {4 / 9.f, 6 / 9.f, 2 / 6.f, 6 / 9.f, 1,
                            3 / 6.f, 2 / 6.f, 3 / 6.f, 1 / 4.f};
    for (int i = 0; i < 9; i++) {
        CHECK_NEAR(y9f[i], want9[i], 1e-6);
        CHECK_NEAR(y9r[i], want9[i], 1e-6);
    }
    for (int i = 0; i < 16; i++) CHECK_NEAR(dxf16[i], dxr16[i], 1e-6);
}

/* Ties go to the first maximum of the window in row-major order; padding never wins. */
static void t_maxpool_ties(void)
{
    float x[16], dy[4] = {1, 2, 3, 4}, yf[4], yr[4], dxf[16] = {0}, dxr[16] = {0};
    for (int i = 0; i < 16; i++) x[i] = 0;
    pml_attrs a = pml_attrs_default(PML_OP_MAXPOOL2D);
    run_small(PML_OP_MAXPOOL2D, &a, (pml_shape){1, 4, 4}, x, dy, yf, yr, dxf, dxr);
    const float want[16] = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) {
        CHECK_NEAR(dxf[i], want[i], 0);
        CHECK_NEAR(dxr[i], want[i], 0);
    }
    /* all-negative input with padding: -inf padding never wins */
    for (int i = 0; i < 16; i++) x[i] = -1.0f - (float)i;
    a = pool_attrs(PML_OP_MAXPOOL2D, 3, 2, PML_PAD_EXPLICIT, 1, 0);
    memset(dxf, 0, sizeof dxf);
    memset(dxr, 0, sizeof dxr);
    run_small(PML_OP_MAXPOOL2D, &a, (pml_shape){1, 4, 4}, x, dy, yf, yr, dxf, dxr);
    const float wy[4] = {-1, -2, -5, -6}; /* windows start at -1: (0,0), (0,1), (1,0), (1,1) */
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(yf[i], wy[i], 0);
        CHECK_NEAR(yr[i], wy[i], 0);
    }
    CHECK_NEAR(dxf[0], 1, 0);
    CHECK_NEAR(dxf[1], 2, 0);
    CHECK_NEAR(dxf[4], 3, 0);
    CHECK_NEAR(dxf[5], 4, 0);
}

/* conv2d against a hand computation: 1 channel 3x3 input, 2x2 kernel, bias, relu. */
static void t_conv2d_values(void)
{
    pml_node n;
    pml_attrs a = conv_attrs(1, 2, 1, PML_PAD_VALID, 0);
    a.act = PML_ACT_RELU;
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){1, 3, 3}));
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 0, 0, -1}, b[1] = {3.5f};
    /* y = x[i][j] - x[i+1][j+1] + 3.5 = -4 + 3.5 = -0.5 everywhere -> relu 0; with b = 5: 1 */
    float y[4], dy[4] = {1, 1, 1, 1}, dx[9] = {0}, dw[4] = {0}, db[1] = {0};
    for (int ref = 0; ref < 2; ref++) {
        for (int pass = 0; pass < 2; pass++) {
            float bb[1] = {pass ? 5.0f : b[0]};
            pml_kctx k;
            memset(&k, 0, sizeof k);
            k.node = &n;
            k.N = 1;
            k.r = pml_region_full(&n, 1);
            k.nin = 1;
            k.x[0] = x;
            k.xs[0] = (pml_shape){1, 3, 3};
            k.w[0] = w;
            k.w[1] = bb;
            k.y = y;
            const size_t nws = pml_ops[PML_OP_CONV2D].ws_floats(&n, k.xs, 1, k.r);
            float *ws = malloc((nws ? nws : 1) * sizeof *ws);
            CHECK(ws != NULL);
            if (!ws) return;
            k.ws = ws;
            (ref ? pml_ops[PML_OP_CONV2D].fwd_ref : pml_ops[PML_OP_CONV2D].fwd)(&k);
            for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], pass ? 1.0f : 0.0f, 1e-6);
            memset(dx, 0, sizeof dx);
            memset(dw, 0, sizeof dw);
            db[0] = 0;
            k.dy = dy;
            k.dx[0] = dx;
            k.dw[0] = dw;
            k.dw[1] = db;
            (ref ? pml_ops[PML_OP_CONV2D].bwd_ref : pml_ops[PML_OP_CONV2D].bwd)(&k);
            if (!pass) {
                for (int i = 0; i < 9; i++) CHECK_NEAR(dx[i], 0, 0); /* relu closed */
                CHECK_NEAR(db[0], 0, 0);
            } else {
                /* dw[p][q] = sum of the 2x2 block of x at (p,q) */
                CHECK_NEAR(dw[0], 12, 1e-6);
                CHECK_NEAR(dw[1], 16, 1e-6);
                CHECK_NEAR(dw[2], 24, 1e-6);
                CHECK_NEAR(dw[3], 28, 1e-6);
                CHECK_NEAR(db[0], 4, 1e-6);
                CHECK_NEAR(dx[0], 1, 1e-6);  /* w[0] once */
                CHECK_NEAR(dx[4], 0, 1e-6);  /* w[0] + w[3] ... = 1 - 1 */
                CHECK_NEAR(dx[8], -1, 1e-6); /* w[3] once */
            }
            free(ws);
        }
    }
}

/* ---------------------------------------------------------------- other ops: values */

/* Dropout drops about `rate` of the units, scales the rest by 1/(1-rate), and draws a new mask
 * each step (the same one for the same step). */
static void t_dropout_mask(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_DROPOUT);
    a.rate = 0.3f;
    pml_shape xs = {10, 10, 10};
    CHECK_OK(infer1(&n, PML_OP_DROPOUT, &a, xs));
    const int N = 4;
    const size_t len = (size_t)N * pml_shape_size(xs);
    float *x = falloc(len), *y1 = falloc(len), *y2 = falloc(len), *y3 = falloc(len);
    for (size_t i = 0; i < len; i++) x[i] = 1.0f + (float)(i % 7);
    float *ys[3] = {y1, y2, y3};
    const uint64_t steps[3] = {5, 5, 6};
    for (int t = 0; t < 3; t++) {
        pml_kctx k;
        memset(&k, 0, sizeof k);
        k.node = &n;
        k.N = N;
        k.batch_total = N;
        k.r = pml_region_full(&n, N);
        k.nin = 1;
        k.x[0] = x;
        k.xs[0] = xs;
        k.y = ys[t];
        k.training = true;
        k.seed = 99;
        k.step = steps[t];
        k.node_id = 2;
        k.ws = NULL;
        pml_ops[PML_OP_DROPOUT].fwd(&k);
    }
    size_t dropped = 0, same = 0, bad = 0;
    for (size_t i = 0; i < len; i++) {
        dropped += y1[i] == 0;
        same += (y1[i] == 0) == (y3[i] == 0);
        bad += y1[i] != y2[i] || (y1[i] != 0 && fabsf(y1[i] - x[i] / 0.7f) > 1e-5f * x[i]);
    }
    double frac = (double)dropped / (double)len; /* 4000 draws: sd 0.007 */
    CHECK_MSG(frac > 0.27 && frac < 0.33, "dropped %.3f of the units at rate 0.3", frac);
    CHECK_MSG(bad == 0, "%zu units differ between equal steps or are not scaled by 1/0.7", bad);
    CHECK_MSG(same < len * 0.7, "steps 5 and 6 drew the same mask (%zu of %zu agree)", same, len);
    /* a rank holding samples 1..3 of the batch (sample0 = 1) draws their masks, in the fast
     * and the reference kernel */
    for (int ref = 0; ref < 2; ref++) {
        pml_kctx k;
        memset(&k, 0, sizeof k);
        k.node = &n;
        k.N = N - 1;
        k.batch_total = N;
        k.r = pml_region_full(&n, N - 1);
        k.nin = 1;
        k.x[0] = x + pml_shape_size(xs);
        k.xs[0] = xs;
        k.y = y3;
        k.training = true;
        k.seed = 99;
        k.step = 5;
        k.sample0 = 1;
        k.node_id = 2;
        (ref ? pml_ops[PML_OP_DROPOUT].fwd_ref : pml_ops[PML_OP_DROPOUT].fwd)(&k);
        size_t differ = 0;
        for (size_t i = 0; i < len - pml_shape_size(xs); i++) differ += y3[i] != y1[i + pml_shape_size(xs)];
        CHECK_MSG(differ == 0, "%s kernel, samples 1..3 on their own: %zu units differ",
                  ref ? "reference" : "fast", differ);
    }
    free(x), free(y1), free(y2), free(y3);
}

/* MT19937 as NumPy's legacy generator: np.random.seed(S); np.random.random_sample() */
static void t_mt19937_numpy(void)
{
    pml_mt19937 m;
    pml_mt_seed(&m, 5489); /* the generator's reference output */
    CHECK_MSG(pml_mt_u32(&m) == 3499211612u, "seed 5489: first word differs");
    pml_mt_seed(&m, 0);
    const double first[3] = {0.5488135039273248, 0.7151893663724195, 0.6027633760716439};
    for (int i = 0; i < 3; i++) {
        double d = pml_mt_double(&m);
        CHECK_MSG(d == first[i], "seed 0, draw %d: %.17g, NumPy %.17g", i, d, first[i]);
    }
    /* past two twists of the state, by draws and by skipping */
    pml_mt_seed(&m, 7);
    for (int i = 0; i < 998; i++) pml_mt_double(&m);
    double a = pml_mt_double(&m), b = pml_mt_double(&m);
    CHECK_MSG(a == 0.6308213101319432 && b == 0.016448753231374513,
              "seed 7, draws 998 and 999: %.17g %.17g", a, b);
    pml_mt_seed(&m, 7);
    pml_mt_skip(&m, 311);
    pml_mt_skip(&m, 0);
    pml_mt_skip(&m, 687);
    CHECK_MSG(pml_mt_double(&m) == a, "seed 7: skipping 998 draws lands elsewhere");
    pml_mt_seed(&m, 4294967295u);
    a = pml_mt_double(&m);
    CHECK_MSG(fabs(a - 0.09763203) < 5e-9, "seed 2^32-1: %.9f", a);
}

/* A seeded dropout draws the same mask each step, and a rank's part (sample0) its part of it */
static void t_dropout_seeded(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_DROPOUT);
    a.rate = 0.75f;
    a.seed = 0;
    pml_shape xs = {5, 4, 1};
    CHECK_OK(infer1(&n, PML_OP_DROPOUT, &a, xs));
    const int N = 3;
    const size_t per = pml_shape_size(xs), len = (size_t)N * per;
    float *x = falloc(len), *y[3] = {falloc(len), falloc(len), falloc(len)};
    for (size_t i = 0; i < len; i++) x[i] = 1.0f;
    for (int t = 0; t < 3; t++) {
        pml_kctx k;
        memset(&k, 0, sizeof k);
        k.node = &n;
        k.N = t == 2 ? N - 1 : N;
        k.batch_total = N;
        k.r = pml_region_full(&n, k.N);
        k.nin = 1;
        k.x[0] = t == 2 ? x + per : x;
        k.xs[0] = xs;
        k.y = y[t];
        k.training = true;
        k.seed = 99;
        k.step = 5 + (uint64_t)t;
        k.sample0 = t == 2 ? 1 : 0;
        pml_ops[PML_OP_DROPOUT].fwd(&k);
    }
    /* NumPy: np.random.seed(0); np.random.random_sample(60) >= 0.75 */
    pml_mt19937 m;
    pml_mt_seed(&m, 0);
    size_t bad = 0, kept = 0;
    for (size_t i = 0; i < len; i++) {
        const float want = pml_mt_double(&m) >= 0.75 ? 4.0f : 0.0f;
        kept += want != 0;
        bad += y[0][i] != want || y[1][i] != want || (i >= per && y[2][i - per] != want);
    }
    CHECK_MSG(bad == 0, "%zu of %zu units differ from the generator's mask, between steps or "
              "for samples 1..2 on their own", bad, len);
    CHECK_MSG(kept == 14, "kept %zu of 60 (NumPy's mask keeps 14)", kept);
    for (int t = 0; t < 3; t++) free(y[t]);
    free(x);
}

/* softmax_xent's forward and backward of N samples (part of batch_total), fast or reference;
 * dy is ignored (filled with junk), dx zeroed first */
static void xent_pass(const pml_node *n, pml_shape xs, float *z, int32_t *lab, int N,
                      int batch_total, float *y, float *dx, size_t dxn, bool ref)
{
    pml_kctx k;
    memset(&k, 0, sizeof k);
    k.node = n;
    k.N = N;
    k.batch_total = batch_total;
    k.r = pml_region_full(n, N);
    k.nin = 1;
    k.x[0] = z;
    k.xs[0] = xs;
    k.y = y;
    k.labels = lab;
    float dy[8] = {123, -7, 5, 1e9f, -1, 2, 3, 4}; /* ignored */
    k.dy = dy;
    k.dx[0] = dx;
    memset(dx, 0, dxn * sizeof *dx);
    (ref ? pml_ops[PML_OP_SOFTMAX_XENT].fwd_ref : pml_ops[PML_OP_SOFTMAX_XENT].fwd)(&k);
    (ref ? pml_ops[PML_OP_SOFTMAX_XENT].bwd_ref : pml_ops[PML_OP_SOFTMAX_XENT].bwd)(&k);
}

/* Softmax cross-entropy: equal logits give log(C); the gradient is (softmax - onehot)/batch. */
static void t_softmax_xent_values(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_SOFTMAX_XENT);
    pml_shape xs = {4, 1, 1};
    CHECK_OK(infer1(&n, PML_OP_SOFTMAX_XENT, &a, xs));
    CHECK(pml_shape_eq(n.out, (pml_shape){1, 1, 1}));
    float z[8] = {0, 0, 0, 0, 0, 0, 0, 80}, y[2], dx[8];
    int32_t lab[2] = {2, 3};
    for (int ref = 0; ref < 2; ref++) {
        xent_pass(&n, xs, z, lab, 2, 4, y, dx, 8, ref);
        CHECK_NEAR(y[0], log(4.0), 1e-6);
        CHECK_NEAR(y[1], 0, 1e-6);
        for (int j = 0; j < 4; j++) CHECK_NEAR(dx[j], (0.25 - (j == 2)) / 4, 1e-7);
        for (int j = 4; j < 8; j++) CHECK_NEAR(dx[j], 0, 1e-7);
    }
}

/* One logit z is the logits (0, z): the loss is softplus(z) - [label = 1] z and its gradient
 * (sigmoid(z) - [label = 1]) / batch; the class is 1 when z > 0. */
static void t_softmax_xent_one_logit(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_SOFTMAX_XENT);
    pml_shape xs = {1, 1, 1};
    CHECK_OK(infer1(&n, PML_OP_SOFTMAX_XENT, &a, xs));
    float z[4] = {0, 80, -80, 2}, y[4], dx[4];
    int32_t lab[4] = {1, 0, 0, 1};
    const double want_y[4] = {log(2.0), 80, 0, log(1 + exp(2.0)) - 2};
    const double want_d[4] = {-0.5, 1, 0, 1 / (1 + exp(-2.0)) - 1};
    for (int ref = 0; ref < 2; ref++) {
        xent_pass(&n, xs, z, lab, 4, 8, y, dx, 4, ref);
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(y[i], want_y[i], 1e-5);
            CHECK_NEAR(dx[i], want_d[i] / 8, 1e-7);
        }
    }
    float p;
    CHECK(pml_logits_class(&z[0], 1, &p) == 0 && fabs(p - 0.5) < 1e-7);
    CHECK(pml_logits_class(&z[3], 1, &p) == 1 && fabs(p - 1 / (1 + exp(-2.0))) < 1e-6);
    CHECK(pml_logits_class(&z[2], 1, &p) == 0 && fabs(p - 1) < 1e-7);
    float three[3] = {1, 3, 3};
    CHECK(pml_logits_class(three, 3, &p) == 1 && fabs(p - 1 / (1 + 1 + exp(-2.0))) < 1e-6);
}

/* conv2d's cases on each implementation forced (the op's own test runs the measured choice) */
static void t_conv2d_blas(void)
{
    pml_conv_backend(PML_CONV_BLAS);
    run_op(PML_OP_CONV2D);
    pml_conv_backend(PML_CONV_AUTO);
}

static void t_conv2d_dnnl(void)
{
    if (!pml_conv_dnnl_available()) {
        SKIP("built without oneDNN (Debian libdnnl-dev)");
        return;
    }
    pml_conv_backend(PML_CONV_DNNL);
    run_op(PML_OP_CONV2D);
    pml_conv_backend(PML_CONV_AUTO);
}

/* groups and dilation: shapes, FLOPs, the input region a part reads, refusals */
static void t_conv2d_groups(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_CONV2D);
    a.out = 6, a.kh = a.kw = 3, a.groups = 2, a.dh = 2, a.dw = 3;
    CHECK_OK(infer1(&n, PML_OP_CONV2D, &a, (pml_shape){4, 11, 13}));
    /* extents 5x7: 11 - 5 + 1 = 7 rows, 13 - 7 + 1 = 7 columns */
    CHECK(n.out.c == 6 && n.out.h == 7 && n.out.w == 7);
    CHECK(n.param_size[0] == 6 * 2 * 9); /* (O, C/G, kh, kw) */
    pml_shape in = {4, 11, 13};
    CHECK_NEAR(pml_ops[PML_OP_CONV2D].flops(&n, &in, 1), 2.0 * 6 * 49 * 2 * 9 + 6 * 49, 1e-12);
    pml_region r = pml_ops[PML_OP_CONV2D].in_region(&n, &in, 1, 0, (pml_region){0, 2, 3, 6, 0, 1});
    CHECK(r.c0 == 2 && r.c1 == 4 && r.h0 == 0 && r.h1 == 5); /* group 1; rows 0, 2, 4 */
    r = pml_ops[PML_OP_CONV2D].in_region(&n, &in, 1, 0, (pml_region){0, 2, 2, 4, 3, 5});
    CHECK(r.c0 == 0 && r.c1 == 4 && r.h0 == 3 && r.h1 == 9);
    a.groups = 3; /* does not divide 4 channels */
    CHECK(infer1(&n, PML_OP_CONV2D, &a, in) == PML_ESHAPE && strstr(pml_errmsg(), "groups=3"));
    a.groups = 1, a.dh = 6; /* extent 13 > 11 rows */
    CHECK(infer1(&n, PML_OP_CONV2D, &a, in) == PML_ESHAPE);
}

/* a dilated maxpool: shape, region; a window that misses the input gives -inf and no gradient;
 * an avgpool does not dilate */
static void t_maxpool_dilated(void)
{
    pml_node n;
    pml_attrs a = pml_attrs_default(PML_OP_MAXPOOL2D);
    a.kh = a.kw = 2, a.sh = a.sw = 1, a.dh = 2, a.dw = 2; /* ONNX's test_maxpool_2d_dilations */
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, (pml_shape){1, 4, 4}));
    CHECK(n.out.h == 2 && n.out.w == 2);
    pml_shape in = {1, 4, 4};
    pml_region r = pml_ops[PML_OP_MAXPOOL2D].in_region(&n, &in, 1, 0, (pml_region){0, 1, 0, 1, 1, 2});
    CHECK(r.h0 == 1 && r.h1 == 4); /* row 1 reads rows 1 and 3 */
    float x[16], y[4] = {0};
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    pml_kctx k = {.node = &n, .N = 1, .r = {0, 1, 0, 1, 0, 2}, .y = y};
    k.x[0] = x;
    k.xs[0] = in;
    pml_ops[PML_OP_MAXPOOL2D].fwd(&k);
    CHECK(y[0] == 10 && y[1] == 11 && y[2] == 14 && y[3] == 15);
    /* kernel 2, dilation 4, padding 1 on 3x3: the one window's cells are rows and columns -1
     * and 3, all padding */
    a.dh = a.dw = 4, a.pad_mode = PML_PAD_EXPLICIT, a.ph = a.pw = 1;
    in = (pml_shape){1, 3, 3};
    CHECK_OK(infer1(&n, PML_OP_MAXPOOL2D, &a, in));
    CHECK(n.out.h == 1 && n.out.w == 1);
    float dy = 1, dx[9] = {0};
    k.xs[0] = in;
    k.r = (pml_region){0, 1, 0, 1, 0, 1};
    k.dy = &dy;
    k.dx[0] = dx;
    pml_ops[PML_OP_MAXPOOL2D].fwd(&k);
    CHECK(isinf(y[0]) && y[0] < 0);
    pml_ops[PML_OP_MAXPOOL2D].bwd(&k);
    for (int i = 0; i < 9; i++) CHECK(dx[i] == 0);
    y[0] = 0;
    pml_ops[PML_OP_MAXPOOL2D].fwd_ref(&k);
    pml_ops[PML_OP_MAXPOOL2D].bwd_ref(&k);
    CHECK(isinf(y[0]) && y[0] < 0);
    for (int i = 0; i < 9; i++) CHECK(dx[i] == 0);
    a = pml_attrs_default(PML_OP_AVGPOOL2D);
    a.kh = a.kw = 2, a.sh = a.sw = 1, a.dh = 2;
    CHECK(infer1(&n, PML_OP_AVGPOOL2D, &a, (pml_shape){1, 4, 4}) == PML_EFORMAT &&
          strstr(pml_errmsg(), "only maxpool2d dilates"));
}

/* concat's axis: out of range, and inputs that differ along another axis */
static void t_concat_axis(void)
{
    pml_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "layer7");
    n.op = PML_OP_CONCAT;
    n.a = pml_attrs_default(PML_OP_CONCAT);
    n.nin = 2;
    pml_shape in[2] = {{3, 2, 4}, {3, 5, 4}};
    n.a.axis = 3;
    CHECK(pml_ops[PML_OP_CONCAT].infer(&n, in, 2) == PML_EFORMAT &&
          strstr(pml_errmsg(), "'layer7' (concat): axis=3"));
    n.a.axis = 1;
    CHECK_OK(pml_ops[PML_OP_CONCAT].infer(&n, in, 2));
    CHECK(n.out.c == 3 && n.out.h == 7 && n.out.w == 4);
    n.a.axis = 0;
    CHECK(
        pml_ops[PML_OP_CONCAT].infer(&n, in, 2) == PML_ESHAPE &&
        strstr(pml_errmsg(), "'layer7' (concat of channels): input 1 is 3x5x4, input 0 is 3x2x4"));
    n.a.axis = 2;
    CHECK(pml_ops[PML_OP_CONCAT].infer(&n, in, 2) == PML_ESHAPE &&
          strstr(pml_errmsg(), "(concat of columns)"));
}

static const pml_test tests[] = {
#define PML__X(name, str) {str, t_op_##name},
    PML_OP_MAP(PML__X)
#undef PML__X
        {"every_op_has_cases", t_every_op_has_cases},
    {"conv2d_shapes", t_conv2d_shapes},
    {"conv2d_groups", t_conv2d_groups},
    {"maxpool_dilated", t_maxpool_dilated},
    {"conv2d_errors", t_conv2d_errors},
    {"conv2d_values", t_conv2d_values},
    {"conv2d_blas", t_conv2d_blas},
    {"conv2d_dnnl", t_conv2d_dnnl},
    {"pool_shapes", t_pool_shapes},
    {"pool_errors", t_pool_errors},
    {"avgpool_count_pad", t_avgpool_count_pad},
    {"maxpool_ties", t_maxpool_ties},
    {"dropout_mask", t_dropout_mask},
    {"mt19937_numpy", t_mt19937_numpy},
    {"dropout_seeded", t_dropout_seeded},
    {"softmax_xent_values", t_softmax_xent_values},
    {"softmax_xent_one_logit", t_softmax_xent_one_logit},
    {"concat_axis", t_concat_axis},
    {0},
};

PML_TEST_MAIN(tests)
