/* pml — tests of the ONNX importer, tensor files and inference: ONNX's own backend test data
 * (Debian libonnx-testdata), models built here with protobuf-c and checked against values
 * computed here, and bad files (cut, mutated, inconsistent, lying about their sizes). */
#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef PML_HAVE_ONNX
#include <onnx.pb-c.h>

#define DATA "/usr/include/onnx/backend/test/data"

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---------------------------------------------------------------- ONNX's backend test data */

typedef struct counts {
    int passed, failed, skipped;
} counts;

/* one test data set of a case: as pml infer --check does */
static void run_set(const char *model, const char *set, counts *c)
{
    /* the inputs first: an integer one (a shape) is folded at import, as pml infer does */
    pml_tensor in[16], ys[PML_ONNX_MAX_OUTPUTS] = {{0}}, e = {0};
    const pml_tensor *const y = &ys[0];
    int n = 0;
    char unread[1200] = ""; /* an input pml cannot read (a string tensor): the model decides */
    for (; n < 16; n++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/input_%d.pb", set, n);
        if (access(p, F_OK) != 0) break;
        if (pml_tensor_read(p, &in[n]) != PML_OK) {
            snprintf(unread, sizeof unread, "%s", pml_errmsg());
            break;
        }
    }
    pml_onnx m;
    pml_status st = pml_onnx_read_given(model, 1, in, n, &m);
    if (st == PML_EUNSUPPORTED) {
        /* the message names the file */
        CHECK_MSG(strncmp(pml_errmsg(), model, strlen(model)) == 0, "%s", pml_errmsg());
        c->skipped++;
        for (int k = 0; k < n; k++) pml_tensor_free(&in[k]);
        pml_onnx_free(&m);
        return;
    }
    if (st == PML_OK && m.ninputs > n)
        pml_fail(PML_EIO, "%s", unread[0] ? unread : "an input file is missing");
    bool ok = st == PML_OK && m.ninputs <= n;
    const bool ran = ok && pml_infer_run(&m, in, 1, 0, ys) == PML_OK;
    ok = ran;
    pml_tensor_diff d = {0};
    /* every output against its file */
    for (int k = 0; ok && k < m.noutputs; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/output_%d.pb", set, k);
        if (pml_tensor_read(p, &e) != PML_OK) {
            ok = false;
        } else if (!pml_tensor_compare(&ys[k], &e, 1e-3, 1e-7, &d) || d.bad) {
            ok = false;
            pml_fail(PML_EINVAL, "output_%d: %zu values (rank %d) against %zu (rank %d), %zu "
                     "differ", k, ys[k].n, ys[k].rank, e.n, e.rank, d.bad);
        }
        pml_tensor_free(&e);
    }
    if (ok) {
        c->passed++;
        /* exported and read back: the same graph and outputs (run-time weights bound first) */
        char path[] = "/tmp/pml-onnx-XXXXXX.onnx";
        int fd = mkstemps(path, 5);
        pml_onnx b;
        pml_tensor yb = {0};
        bool back = fd >= 0 && pml_onnx_write(&m.g, m.params, m.state, path) == PML_OK &&
                    pml_onnx_read(path, 1, &b) == PML_OK;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        CHECK_MSG(back, "%s: exported, not read back: %s", set, pml_errmsg());
        if (back) {
            CHECK_MSG(b.g.nnodes == m.g.nnodes && b.g.nparams == m.g.nparams, "%s: %d nodes back, "
                      "%d before", set, b.g.nnodes, m.g.nnodes);
            /* the data inputs, in order, are the export's inputs. 1-D models come back 2-D:
             * (N, C, L) is written (N, C, L, 1); one sample of rank 1 a batch of one (N, C) */
            pml_tensor x[16];
            float *flip = NULL; /* a transposed input (a Gemm's A with transA) comes back in rows */
            int nx = 0;
            for (int k = 0; k < m.ninputs && nx < b.ninputs; k++) {
                if (!m.inputs[k].data) continue;
                x[nx] = in[k];
                if (m.inputs[k].transposed && in[k].rank == 2 &&
                    (flip = malloc(in[k].n * sizeof *flip))) {
                    const size_t K = (size_t)in[k].dims[0], N = (size_t)in[k].dims[1];
                    for (size_t s = 0; s < N; s++)
                        for (size_t f = 0; f < K; f++) flip[s * K + f] = in[k].data[f * N + s];
                    x[nx].data = flip;
                }
                x[nx].rank = b.inputs[nx].rank;
                size_t per = 1;
                for (int r = 1; r < x[nx].rank; r++)
                    per *= (size_t)(x[nx].dims[r] = b.inputs[nx].dims[r]);
                x[nx].dims[0] = (int64_t)(x[nx].n / per);
                CHECK_MSG(m.inputs[k].node == b.inputs[nx].node, "%s: input %d is node %d back, "
                          "%d before", set, nx, b.inputs[nx].node, m.inputs[k].node);
                nx++;
            }
            int ndata = 0;
            for (int k = 0; k < m.ninputs; k++) ndata += m.inputs[k].data;
            CHECK_MSG(b.ninputs == ndata, "%s: %d inputs back, %d data inputs before", set,
                      b.ninputs, ndata);
            CHECK(b.ninputs == nx && pml_infer_run(&b, x, 1, 0, &yb) == PML_OK && yb.n == y->n);
            /* the export's output is the logits, seen as the output's dims, then its softmax */
            yb.rank = y->rank;
            memcpy(yb.dims, y->dims, sizeof y->dims);
            if (m.outputs[0].softmax)
                pml_tensor_softmax(&yb, m.outputs[0].axis, m.outputs[0].coerced, m.outputs[0].log);
            CHECK_MSG(pml_tensor_compare(&yb, y, m.outputs[0].softmax ? 1e-6 : 0, 0, &d) && d.bad == 0,
                      "%s: read back, %zu outputs differ", set, d.bad);
            pml_tensor_free(&yb);
            pml_onnx_free(&b);
            free(flip);
        }
    } else {
        c->failed++;
        fprintf(stderr, "  %s: %s\n", set, pml_errmsg());
    }
    for (int k = 0; k < n; k++) pml_tensor_free(&in[k]);
    for (int k = 0; ran && k < m.noutputs; k++) pml_tensor_free(&ys[k]);
    pml_onnx_free(&m);
}

static void run_dir(const char *sub, int want, counts *all)
{
    char root[512];
    snprintf(root, sizeof root, "%s/%s", DATA, sub);
    DIR *dir = opendir(root);
    if (!dir) return;
    counts c = {0};
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.') continue;
        char model[1024];
        snprintf(model, sizeof model, "%s/%s/model.onnx", root, de->d_name);
        for (int s = 0;; s++) {
            char set[1100];
            snprintf(set, sizeof set, "%s/%s/test_data_set_%d", root, de->d_name, s);
            if (!is_dir(set)) break;
            run_set(model, set, &c);
        }
    }
    closedir(dir);
    fprintf(stderr, "  %s: %d cases ran, %d passed, %d failed, %d skipped (unsupported)\n", sub,
            c.passed + c.failed, c.passed, c.failed, c.skipped);
    /* the supported set only grows: as many as pass today must pass */
    CHECK_MSG(c.passed >= want, "%s: %d passed, %d did before", sub, c.passed, want);
    all->passed += c.passed;
    all->failed += c.failed;
}

static void t_backend_data(void)
{
    if (!is_dir(DATA "/node")) {
        SKIP("no ONNX backend test data (Debian libonnx-testdata)");
        return;
    }
    counts all = {0};
    run_dir("node", 175, &all);
    run_dir("pytorch-converted", 62, &all);
    run_dir("pytorch-operator", 9, &all);
    run_dir("simple", 1, &all);
    CHECK(all.failed == 0);
}

/* ---------------------------------------------------------------- models built here */

typedef struct mb {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto op;
    Onnx__OperatorSetIdProto *ops[1];
    Onnx__NodeProto nodes[32], *np[32];
    Onnx__AttributeProto attrs[64], *ap[64];
    int nattr;
    Onnx__TensorProto inits[16], *ip[16];
    Onnx__ValueInfoProto io[6], *iop[6]; /* inputs 0 and 1, outputs 2 to 5 */
    Onnx__TypeProto tp[6];
    Onnx__TypeProto__Tensor tt[6];
    Onnx__TensorShapeProto sh[6];
    Onnx__TensorShapeProto__Dimension dims[6][5], *dp[6][5];
    char *strs[32][4];
    int64_t idims[16][5];
} mb;

static void mb_init(mb *b, int opset)
{
    memset(b, 0, sizeof *b);
    b->m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    b->g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    b->op = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    b->op.has_version = 1;
    b->op.version = opset;
    b->ops[0] = &b->op;
    b->m.n_opset_import = 1;
    b->m.opset_import = b->ops;
    b->m.has_ir_version = 1;
    b->m.ir_version = 8;
    b->m.graph = &b->g;
    b->g.name = "built";
    b->g.node = b->np;
    b->g.initializer = b->ip;
    b->g.input = b->iop;
    b->g.output = b->iop + 2;
}

/* a graph input (out = false) or output of rank r (dims[0] < 0: symbolic "N") */
static void mb_io(mb *b, bool out, const char *name, int r, const int64_t *d)
{
    int k = out ? 2 + (int)b->g.n_output : (int)b->g.n_input;
    b->io[k] = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    b->tp[k] = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    b->tt[k] = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    b->sh[k] = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int i = 0; i < r; i++) {
        b->dims[k][i] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (d[i] >= 0) {
            b->dims[k][i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            b->dims[k][i].dim_value = d[i];
        } else {
            b->dims[k][i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            b->dims[k][i].dim_param = "N";
        }
        b->dp[k][i] = &b->dims[k][i];
    }
    b->sh[k].n_dim = (size_t)r;
    b->sh[k].dim = b->dp[k];
    b->tt[k].has_elem_type = 1;
    b->tt[k].elem_type = 1;
    b->tt[k].shape = &b->sh[k];
    b->tp[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    b->tp[k].tensor_type = &b->tt[k];
    b->io[k].name = (char *)name;
    b->io[k].type = &b->tp[k];
    b->iop[k] = &b->io[k];
    if (out) b->g.n_output++;
    else b->g.n_input++;
}

/* a float initializer (data not copied) */
static Onnx__TensorProto *mb_init_f(mb *b, const char *name, int r, const int64_t *d,
                                    float *data, size_t n)
{
    int k = (int)b->g.n_initializer++;
    Onnx__TensorProto *t = &b->inits[k];
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    memcpy(b->idims[k], d, (size_t)r * sizeof *d);
    t->n_dims = (size_t)r;
    t->dims = b->idims[k];
    t->has_data_type = 1;
    t->data_type = 1;
    t->name = (char *)name;
    t->n_float_data = n;
    t->float_data = data;
    b->ip[k] = t;
    return t;
}

static Onnx__TensorProto *mb_init_i(mb *b, const char *name, int64_t n, int64_t *data)
{
    int k = (int)b->g.n_initializer++;
    Onnx__TensorProto *t = &b->inits[k];
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    b->idims[k][0] = n;
    t->n_dims = 1;
    t->dims = b->idims[k];
    t->has_data_type = 1;
    t->data_type = 7;
    t->name = (char *)name;
    t->n_int64_data = (size_t)n;
    t->int64_data = data;
    b->ip[k] = t;
    return t;
}

/* a node: op, inputs and one output (NULL-terminated inputs, in[0..]) */
static Onnx__NodeProto *mb_node(mb *b, const char *op, const char *out, const char *i0,
                                const char *i1, const char *i2)
{
    int k = (int)b->g.n_node++;
    Onnx__NodeProto *n = &b->nodes[k];
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    n->op_type = (char *)op;
    const char *ins[3] = {i0, i1, i2};
    int ni = 0;
    for (int i = 0; i < 3 && ins[i]; i++) b->strs[k][ni++] = (char *)ins[i];
    n->n_input = (size_t)ni;
    n->input = b->strs[k];
    b->strs[k][3] = (char *)out;
    n->n_output = 1;
    n->output = &b->strs[k][3];
    b->np[k] = n;
    return n;
}

static Onnx__AttributeProto *mb_attr(mb *b, Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = &b->attrs[b->nattr];
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = (char *)name;
    b->ap[b->nattr] = a;
    if (!n->attribute) n->attribute = &b->ap[b->nattr];
    n->n_attribute++;
    b->nattr++;
    return a;
}

static void attr_i(mb *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

static void attr_f(mb *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
}

static void attr_ints(mb *b, Onnx__NodeProto *n, const char *name, int64_t *v, size_t k)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = k;
    a->ints = v;
}

static uint8_t *mb_pack(mb *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->m);
    uint8_t *buf = malloc(*len);
    onnx__model_proto__pack(&b->m, buf);
    return buf;
}

/* b packed and imported as a file called `name` */
static pml_status parse(mb *b, const char *name, pml_onnx *m)
{
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    pml_status st = pml_onnx_parse(buf, len, name, 1, m);
    free(buf);
    return st;
}

/* x (N,4) -> Gemm(W (3,4) transposed, alpha 2, C (3), beta 0.5) -> Relu -> MatMul(V (3,2)) ->
 * Add(c (2)) -> Softmax */
static float W[12], C3[3], V[6], C2[2];
static void mlp_model(mb *b)
{
    for (int i = 0; i < 12; i++) W[i] = (float)((i * 7 % 11) - 5) / 8.0f;
    for (int i = 0; i < 3; i++) C3[i] = 0.25f * (float)(i - 1);
    for (int i = 0; i < 6; i++) V[i] = (float)((i * 5 % 7) - 3) / 4.0f;
    C2[0] = 0.5f, C2[1] = -0.5f;
    mb_init(b, 13);
    int64_t xd[2] = {-1, 4}, yd[2] = {-1, 2}, wd[2] = {3, 4}, cd[1] = {3}, vd[2] = {3, 2},
            c2d[1] = {2};
    mb_io(b, false, "x", 2, xd);
    mb_io(b, true, "probs", 2, yd);
    mb_init_f(b, "W", 2, wd, W, 12);
    mb_init_f(b, "C", 1, cd, C3, 3);
    mb_init_f(b, "V", 2, vd, V, 6);
    mb_init_f(b, "c", 1, c2d, C2, 2);
    Onnx__NodeProto *g = mb_node(b, "Gemm", "h", "x", "W", "C");
    g->name = "/fc1/Gemm";
    attr_i(b, g, "transB", 1);
    attr_f(b, g, "alpha", 2.0f);
    attr_f(b, g, "beta", 0.5f);
    mb_node(b, "Relu", "r", "h", NULL, NULL);
    mb_node(b, "MatMul", "z0", "r", "V", NULL);
    mb_node(b, "Add", "z", "z0", "c", NULL);
    mb_node(b, "Softmax", "probs", "z", NULL, NULL);
}

/* the model above, and again ending in a LogSoftmax */
static void t_import_mlp(void)
{
    for (int lg = 0; lg < 2 && !pml__test_failed; lg++) {
        mb b;
        mlp_model(&b);
        if (lg) b.nodes[4].op_type = "LogSoftmax";
        pml_onnx m;
        CHECK_OK(parse(&b, "mlp.onnx", &m));
        if (pml__test_failed) return;
        /* input, linear (relu fused), linear (bias folded), loss */
        CHECK(m.g.nnodes == 4);
        CHECK(m.g.nodes[1].op == PML_OP_LINEAR && m.g.nodes[1].a.act == PML_ACT_RELU);
        CHECK(strcmp(m.g.nodes[1].name, "fc1") == 0);
        CHECK(m.g.nodes[2].op == PML_OP_LINEAR && m.g.nodes[2].a.bias == 1);
        CHECK(pml_graph_param_count(&m.g) == 12 + 3 + 6 + 2);
        CHECK(m.outputs[0].softmax && m.outputs[0].log == (lg == 1) && m.outputs[0].node == 2 &&
              m.ninputs == 1);
        float x[8] = {1, -2, 0.5f, 3, -1, 0.25f, 2, -0.5f};
        pml_tensor in = {.rank = 2, .dims = {2, 4}, .n = 8, .data = x}, y;
        CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
        CHECK(y.rank == 2 && y.dims[0] == 2 && y.dims[1] == 2);
        for (int s = 0; s < 2 && !pml__test_failed; s++) {
            double h[3], z[2];
            for (int j = 0; j < 3; j++) {
                h[j] = 0.5 * C3[j];
                for (int k = 0; k < 4; k++) h[j] += 2.0 * x[s * 4 + k] * W[j * 4 + k];
                h[j] = h[j] > 0 ? h[j] : 0;
            }
            for (int j = 0; j < 2; j++) {
                z[j] = C2[j];
                for (int k = 0; k < 3; k++) z[j] += h[k] * V[k * 2 + j];
            }
            double p0 = 1.0 / (1.0 + exp(z[1] - z[0]));
            CHECK_NEAR(y.data[s * 2], lg ? log(p0) : p0, 1e-6);
            CHECK_NEAR(y.data[s * 2 + 1], lg ? log(1.0 - p0) : 1.0 - p0, 1e-6);
        }
        pml_tensor_free(&y);
        pml_onnx_free(&m);
    }
}

/* x (N,2,6,6) -> Conv(3x3, pads 1) -> Pad(1) -> AveragePool(3, stride 2) -> Shape/Gather/
 * Unsqueeze/Concat/Reshape to (N, -1) -> Gemm; checked against pml's own graph of the same */
static void t_import_folding(void)
{
    mb b;
    mb_init(&b, 13);
    static float k[3 * 2 * 9], kb[3], w[3 * 9 * 4];
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) k[i] = (float)((int)(i * 5 % 9) - 4) / 9.0f;
    for (int i = 0; i < 3; i++) kb[i] = 0.1f * (float)i;
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) w[i] = (float)((int)(i * 3 % 7) - 3) / 7.0f;
    static int64_t pads4[4] = {1, 1, 1, 1}, pads8[8] = {0, 0, 1, 1, 0, 0, 1, 1}, k3[2] = {3, 3},
                   s2[2] = {2, 2}, zero[1] = {0}, minus1[1] = {-1}, ax0[1] = {0};
    int64_t xd[4] = {-1, 2, 6, 6}, yd[2] = {-1, 4}, kd[4] = {3, 2, 3, 3}, kbd[1] = {3},
            wd[2] = {27, 4};
    mb_io(&b, false, "x", 4, xd);
    mb_io(&b, true, "y", 2, yd);
    mb_init_f(&b, "K", 4, kd, k, sizeof k / sizeof *k);
    mb_init_f(&b, "KB", 1, kbd, kb, 3);
    mb_init_f(&b, "Wf", 2, wd, w, sizeof w / sizeof *w);
    mb_init_i(&b, "pads", 8, pads8);
    mb_init_i(&b, "zero", 1, zero);
    mb_init_i(&b, "zero_s", 1, zero)->n_dims = 0; /* a scalar index, as PyTorch writes */
    mb_init_i(&b, "minus1", 1, minus1);
    Onnx__NodeProto *n = mb_node(&b, "Conv", "c", "x", "K", "KB");
    attr_ints(&b, n, "pads", pads4, 4);
    mb_node(&b, "Pad", "p", "c", "pads", NULL);
    n = mb_node(&b, "AveragePool", "a", "p", NULL, NULL);
    attr_ints(&b, n, "kernel_shape", k3, 2);
    attr_ints(&b, n, "strides", s2, 2);
    mb_node(&b, "Shape", "s", "a", NULL, NULL);
    mb_node(&b, "Gather", "n0", "s", "zero_s", NULL);
    n = mb_node(&b, "Unsqueeze", "n1", "n0", NULL, NULL);
    attr_ints(&b, n, "axes", ax0, 1); /* opset 13 takes axes as an input: here an attribute */
    n->n_attribute = 0;
    n->attribute = NULL;
    b.strs[b.g.n_node - 1][1] = "zero";
    n->n_input = 2;
    mb_node(&b, "Concat", "shape", "n1", "minus1", NULL);
    attr_i(&b, b.np[b.g.n_node - 1], "axis", 0);
    mb_node(&b, "Reshape", "f", "a", "shape", NULL);
    mb_node(&b, "MatMul", "y", "f", "Wf", NULL);
    pml_onnx m;
    CHECK_OK(parse(&b, "fold.onnx", &m));
    if (pml__test_failed) return;
    /* input, conv, avgpool (the Pad's zeros: padding 1, counted), flatten, linear, loss */
    CHECK(m.g.nnodes == 6);
    const pml_node *ap = &m.g.nodes[2];
    CHECK(ap->op == PML_OP_AVGPOOL2D && ap->a.ph == 1 && ap->a.pw == 1 && ap->a.count_pad == 1);
    CHECK(m.g.nodes[3].op == PML_OP_FLATTEN && m.g.nodes[4].op == PML_OP_LINEAR);
    /* the same model built directly, with the same weights */
    pml_graph g;
    pml_graph_init(&g, "direct");
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){2, 6, 6};
    int id = pml_graph_add(&g, "x", PML_OP_INPUT, &a, 0, NULL);
    a = pml_attrs_default(PML_OP_CONV2D);
    a.out = 3, a.kh = a.kw = 3, a.pad_mode = PML_PAD_EXPLICIT, a.ph = a.pw = 1;
    id = pml_graph_add(&g, "c", PML_OP_CONV2D, &a, 1, &id);
    a = pml_attrs_default(PML_OP_AVGPOOL2D);
    a.kh = a.kw = 3, a.sh = a.sw = 2, a.pad_mode = PML_PAD_EXPLICIT, a.ph = a.pw = 1,
    a.count_pad = 1;
    id = pml_graph_add(&g, "a", PML_OP_AVGPOOL2D, &a, 1, &id);
    id = pml_graph_add(&g, "f", PML_OP_FLATTEN, NULL, 1, &id);
    a = pml_attrs_default(PML_OP_LINEAR);
    a.out = 4, a.bias = 0;
    id = pml_graph_add(&g, "y", PML_OP_LINEAR, &a, 1, &id);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &id);
    CHECK_OK(pml_graph_finalize(&g));
    CHECK(g.nparams == m.g.nparams);
    float x[2 * 72];
    for (int i = 0; i < 144; i++) x[i] = (float)((i * 13 % 17) - 8) / 8.0f;
    pml_tensor in = {.rank = 4, .dims = {2, 2, 6, 6}, .n = 144, .data = x}, y;
    CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
    pml_exec *e;
    pml_exec_opts eo = {.batch = 2, .threads = 1, .reference = true};
    CHECK_OK(pml_exec_create(&g, &eo, &e));
    if (!pml__test_failed) {
        float *p = pml_exec_params(e);
        memcpy(p + g.nodes[1].param_off[0], k, sizeof k);
        memcpy(p + g.nodes[1].param_off[1], kb, sizeof kb);
        for (int o = 0; o < 4; o++) /* MatMul's B is (in, out); pml's W (out, in) */
            for (int i = 0; i < 27; i++) p[g.nodes[4].param_off[0] + (size_t)o * 27 + i] = w[i * 4 + o];
        float out[8];
        CHECK_OK(pml_infer(e, 4, x, 2, 2, out));
        for (int i = 0; i < 8; i++) CHECK_NEAR(y.data[i], out[i], 1e-5);
        pml_exec_destroy(e);
    }
    pml_tensor_free(&y);
    pml_graph_free(&g);
    pml_onnx_free(&m);
}

/* ---------------------------------------------------------------- bad files */

static bool msg_has(const char *a, const char *b)
{
    if (strstr(pml_errmsg(), a) && (!b || strstr(pml_errmsg(), b))) return true;
    fprintf(stderr, "  message: %s\n", pml_errmsg());
    return false;
}

/* A training-mode Dropout: seeded, pml draws ONNX's reference mask (kept where NumPy's
 * np.random.seed(3); np.random.random_sample(8) >= 0.5); a seed NumPy would refuse is refused;
 * without a seed, pml's own mask, which the mask output gives, the same a sample at a time */
static void t_dropout_training(void)
{
    for (int c = 0; c < 3; c++) { /* seeded, a bad seed, no seed (with the mask as an output) */
        const bool bad = c == 1, seeded = c < 2;
        mb b;
        mb_init(&b, 13);
        static float half[1] = {0.5f};
        static int64_t one[1] = {1};
        int64_t xd[2] = {-1, seeded ? 4 : 64};
        mb_io(&b, false, "x", 2, xd);
        mb_io(&b, true, "y", 2, xd);
        if (!seeded) mb_io(&b, true, "z", 2, xd);
        mb_init_f(&b, "ratio", 0, xd, half, 1); /* a scalar (no dims) */
        mb_init_i(&b, "train", 1, one)->n_dims = 0;
        Onnx__NodeProto *n = mb_node(&b, "Dropout", "y", "x", "ratio", "train");
        static char *yz[2] = {"y", "z"};
        if (seeded) {
            attr_i(&b, n, "seed", bad ? -3 : 3);
        } else {
            n->output = yz;
            n->n_output = 2;
        }
        pml_onnx m;
        pml_status st = parse(&b, "drop.onnx", &m);
        if (bad) {
            CHECK(st == PML_EUNSUPPORTED && msg_has("drop.onnx: node", "seed -3"));
            pml_onnx_free(&m);
            continue;
        }
        CHECK_OK(st);
        if (pml__test_failed) return;
        CHECK(m.g.nodes[1].op == PML_OP_DROPOUT && m.g.nodes[1].a.always == 1 &&
              m.g.nodes[1].a.seed == (seeded ? 3 : -1));
        float x[128];
        for (int i = 0; i < 128; i++) x[i] = (float)(i + 1);
        pml_tensor in = {.rank = 2, .dims = {2, xd[1]}, .n = 2 * (size_t)xd[1], .data = x}, y[2],
                   y1[2];
        if (seeded) {
            const bool keep[8] = {true, true, false, true, true, true, false, false};
            CHECK_OK(pml_infer_run(&m, &in, 1, 0, y));
            for (int i = 0; i < 8 && !pml__test_failed; i++)
                CHECK_MSG(y[0].data[i] == (keep[i] ? 2.0f * x[i] : 0.0f), "element %d: %g", i,
                          (double)y[0].data[i]);
            pml_tensor_free(&y[0]);
            pml_onnx_free(&m);
            continue;
        }
        CHECK_OK(pml_infer_run(&m, &in, 1, 0, y));
        CHECK_OK(pml_infer_run(&m, &in, 1, 1, y1)); /* a sample a pass */
        int kept = 0, bad_mask = 0;
        for (int i = 0; i < 128 && !pml__test_failed; i++) {
            const bool k = y[1].data[i] != 0.0f;
            kept += k;
            bad_mask += y[0].data[i] != (k ? 2.0f * x[i] : 0.0f) ||
                        y1[0].data[i] != y[0].data[i] || y1[1].data[i] != y[1].data[i];
        }
        CHECK_MSG(bad_mask == 0 && kept > 32 && kept < 96,
                  "%d of 128 kept; %d differ from the mask or between the runs", kept, bad_mask);
        for (int o = 0; o < 2; o++) pml_tensor_free(&y[o]), pml_tensor_free(&y1[o]);
        pml_onnx_free(&m);
    }
}

static void t_bad_models(void)
{
    mb b;
    pml_onnx m;
    /* an operator pml lacks: named with its node and what pml imports */
    mlp_model(&b);
    b.nodes[1].op_type = "Cos";
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED);
    CHECK(msg_has("bad.onnx: node '#1, output r' (Cos)", "it imports: Conv"));
    pml_onnx_free(&m);
    /* a ReduceMax that does not begin an expanded Softmax */
    mlp_model(&b);
    b.nodes[1].op_type = "ReduceMax";
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED);
    CHECK(msg_has("bad.onnx: node '#1, output r' (ReduceMax)", "an expanded Softmax"));
    pml_onnx_free(&m);
    /* an unknown opset */
    mlp_model(&b);
    b.op.version = 99;
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED && msg_has("opset 99", NULL));
    pml_onnx_free(&m);
    /* a missing initializer */
    mlp_model(&b);
    b.g.n_initializer = 2; /* V and c gone */
    CHECK(parse(&b, "bad.onnx", &m) == PML_EFORMAT && msg_has("MatMul", "'V' is not defined"));
    pml_onnx_free(&m);
    /* inconsistent shapes: a weight for 5 features on 4 */
    mlp_model(&b);
    b.dims[0][1].dim_value = 5;
    CHECK(parse(&b, "bad.onnx", &m) == PML_ESHAPE && msg_has("bad.onnx: node '/fc1/Gemm'", "5 features"));
    pml_onnx_free(&m);
    /* a tensor declaring 2^28 floats (1 GiB) in a few bytes: refused before any allocation */
    mlp_model(&b);
    b.idims[1][0] = (int64_t)1 << 28;
    CHECK(parse(&b, "bad.onnx", &m) == PML_EFORMAT && msg_has("declares 268435456 elements", NULL));
    pml_onnx_free(&m);
    /* external data in a file that does not exist, or outside the model's folder */
    mlp_model(&b);
    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *locp = &loc;
    loc.key = "location";
    loc.value = "weights.bin";
    b.inits[0].n_float_data = 0;
    b.inits[0].has_data_location = 1;
    b.inits[0].data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    b.inits[0].n_external_data = 1;
    b.inits[0].external_data = &locp;
    CHECK(parse(&b, "/nonexistent-dir/m.onnx", &m) == PML_EIO &&
          msg_has("external data '/nonexistent-dir/weights.bin'", "No such file"));
    pml_onnx_free(&m);
    loc.value = "../weights.bin";
    CHECK(parse(&b, "m.onnx", &m) == PML_EFORMAT && msg_has("must be a file beside the model", NULL));
    pml_onnx_free(&m);
    /* two outputs, no input */
    mlp_model(&b);
    b.g.n_input = 0;
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED && msg_has("no input", NULL));
    pml_onnx_free(&m);
    /* not a model at all */
    CHECK(pml_onnx_parse("digraph x {}", 12, "x.onnx", 1, &m) == PML_EFORMAT &&
          msg_has("x.onnx: not an ONNX model", NULL));
    pml_onnx_free(&m);
}

/* a (N,3), b (N,3) -> s = Add(a, b) -> c = Concat(s, a) (N,6) -> Gemm(W (4,6) transposed):
 * two data inputs */
static float W46[24];
static void two_input_model(mb *b, int64_t batch_a, int64_t batch_b)
{
    for (int i = 0; i < 24; i++) W46[i] = (float)((i * 5 % 13) - 6) / 8.0f;
    mb_init(b, 13);
    int64_t ad[2] = {batch_a, 3}, bd[2] = {batch_b, 3}, yd[2] = {-1, 4}, wd[2] = {4, 6};
    mb_io(b, false, "a", 2, ad);
    mb_io(b, false, "b", 2, bd);
    mb_io(b, true, "y", 2, yd);
    mb_init_f(b, "W", 2, wd, W46, 24);
    mb_node(b, "Add", "s", "a", "b", NULL);
    attr_i(b, mb_node(b, "Concat", "c", "s", "a", NULL), "axis", 1);
    attr_i(b, mb_node(b, "Gemm", "y", "c", "W", NULL), "transB", 1);
}

static void two_input_check(pml_onnx *m, const float *a, const float *bv, int n, int batch)
{
    pml_tensor in[2] = {{.rank = 2, .dims = {n, 3}, .n = (size_t)n * 3, .data = (float *)a},
                        {.rank = 2, .dims = {n, 3}, .n = (size_t)n * 3, .data = (float *)bv}},
               y;
    CHECK_OK(pml_infer_run(m, in, 1, batch, &y));
    if (pml__test_failed) return;
    CHECK(y.rank == 2 && y.dims[0] == n && y.dims[1] == 4);
    for (int s = 0; s < n; s++)
        for (int o = 0; o < 4; o++) {
            double c[6], z = 0;
            for (int j = 0; j < 3; j++) c[j] = a[s * 3 + j] + bv[s * 3 + j], c[3 + j] = a[s * 3 + j];
            for (int j = 0; j < 6; j++) z += c[j] * W46[o * 6 + j];
            CHECK_NEAR(y.data[s * 4 + o], z, 1e-5);
        }
    pml_tensor_free(&y);
}

static void t_several_inputs(void)
{
    mb b;
    pml_onnx m, r;
    two_input_model(&b, -1, -1);
    CHECK_OK(parse(&b, "two.onnx", &m));
    if (pml__test_failed) return;
    /* two input nodes, first, in the graph's order; the first is the dataset's */
    CHECK(m.ninputs == 2 && m.inputs[0].data && m.inputs[1].data);
    CHECK(m.inputs[0].node == 0 && m.inputs[1].node == 1 && m.g.input == 0);
    CHECK(m.g.nodes[1].op == PML_OP_INPUT && strcmp(m.g.nodes[1].name, "b") == 0);
    const float a[9] = {1, -2, 0.5f, 3, -1, 0.25f, 2, -0.5f, 4};
    const float bv[9] = {0.5f, 1, -1, 2, 0, -3, 1.5f, 2.5f, -0.25f};
    two_input_check(&m, a, bv, 3, 0);
    two_input_check(&m, a, bv, 3, 2); /* in batches of 2: each input split alike */
    /* the batch is shared: another count of samples for b, or another shape */
    pml_tensor in[2] = {{.rank = 2, .dims = {3, 3}, .n = 9, .data = (float *)a},
                        {.rank = 2, .dims = {2, 3}, .n = 6, .data = (float *)bv}},
               y;
    CHECK(pml_infer_run(&m, in, 1, 0, &y) == PML_ESHAPE &&
          msg_has("input 'b' (input_1): 2 samples", "share the batch"));
    in[1] = (pml_tensor){.rank = 2, .dims = {1, 9}, .n = 9, .data = (float *)bv};
    CHECK(pml_infer_run(&m, in, 1, 0, &y) == PML_ESHAPE && msg_has("input 'b' (input_1)", "rank 2"));
    /* the model's DOT file holds one input: refused, not written wrong */
    char *text = NULL;
    size_t len;
    CHECK(pml_model_format_dot(&m.g, &text, &len) == PML_EUNSUPPORTED &&
          msg_has("several inputs ('a', 'b')", NULL) && !text);
    /* a dataset feeds one input: training refuses */
    pml_dataset d;
    CHECK_OK(pml_data_synthetic(m.g.nodes[0].out, 4, 8, 1, &d));
    pml_train_opts to = {.epochs = 1, .batch = 4};
    pml_train_result tr;
    memset(&tr, 0, sizeof tr);
    pml_status ts = pml_train(&m.g, &d, NULL, &to, &tr);
    CHECK_MSG(ts == PML_EUNSUPPORTED, "%s: %s", pml_status_str(ts), pml_errmsg());
    CHECK(ts == PML_EUNSUPPORTED &&
          msg_has("several inputs", "a dataset feeds one"));
    pml_train_result_free(&tr);
    pml_data_free(&d);
    /* planned: every strategy simulates (each input node its own tasks); on this machine, when
     * it has two cores, a plan runs the forward pass as the per-operator executor does */
    pml_machine mc, here;
    CHECK_OK(pml_machine_load("cpu-1socket", &mc));
    CHECK_OK(pml_machine_load(NULL, &here));
    pml_cost_opts co = pml_cost_opts_default();
    co.measure = false;
    co.cache_dir = "";
    pml_costmodel *cm = NULL;
    CHECK_OK(pml_cost_create(&m.g, &mc, &co, &cm));
    static const char *const strategies[] = {"data", "model", "owt"};
    for (int k = 0; k < 3 && cm; k++) {
        pml_plan p;
        pml_sim *sim = NULL;
        CHECK_OK(pml_plan_strategy(strategies[k], &m.g, &mc, 8, NULL, &p));
        if (p.cfg) {
            CHECK_OK(pml_sim_create(&m.g, &mc, &p, cm, &sim));
            CHECK(!sim || pml_sim_step_seconds(sim) > 0);
            pml_sim_destroy(sim);
            pml_plan_free(&p);
        }
        if (here.ncompute < 2 || pml__test_failed) continue;
        CHECK_OK(pml_plan_strategy(strategies[k], &m.g, &here, 3, NULL, &p));
        pml_exec_opts po = {.batch = 3, .seed = 5, .machine = &here, .plan = &p}, oo = {.batch = 3,
                                                                                      .threads = 1};
        pml_exec *e[2] = {NULL, NULL};
        if (p.cfg && pml_exec_create(&m.g, &po, &e[0]) == PML_OK &&
            pml_exec_create(&m.g, &oo, &e[1]) == PML_OK) {
            for (int j = 0; j < 2; j++) {
                memcpy(pml_exec_params(e[j]), m.params, m.g.nparams * sizeof(float));
                memcpy(pml_exec_input(e[j]), a, sizeof a);
                /* the second input node's buffer (pml_exec_input is the first's) */
                memcpy((float *)pml_exec_output(e[j], 1), bv, sizeof bv);
                CHECK_OK(pml_exec_forward(e[j], 3, false, NULL));
            }
            const float *y0 = pml_exec_output(e[0], m.outputs[0].node),
                        *y1 = pml_exec_output(e[1], m.outputs[0].node);
            for (int i = 0; i < 12 && !pml__test_failed; i++) CHECK_NEAR(y0[i], y1[i], 1e-5);
        } else {
            CHECK_MSG(false, "%s plan: %s", strategies[k], pml_errmsg());
        }
        pml_exec_destroy(e[0]);
        pml_exec_destroy(e[1]);
        pml_plan_free(&p);
    }
    pml_cost_destroy(cm);
    pml_machine_free(&mc);
    pml_machine_free(&here);
    /* exported and read back: the inputs in order, the same outputs */
    char path[] = "/tmp/pml-onnx-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_OK(pml_onnx_write(&m.g, m.params, m.state, path));
    CHECK_OK(pml_onnx_read(path, 1, &r));
    unlink(path);
    if (!pml__test_failed) {
        CHECK(r.ninputs == 2 && r.inputs[1].data && strcmp(r.inputs[1].name, "b") == 0);
        two_input_check(&r, a, bv, 3, 0);
    }
    pml_onnx_free(&r);
    pml_onnx_free(&m);
    /* b (N,2,1,1) added to a convolution's output: exported (N,2,1,1) as read, not (N,2) (ONNX
     * would broadcast that against the rank-4 sum), so it reads back as it was */
    static float Wc[96];
    for (int i = 0; i < 96; i++) Wc[i] = (float)((i * 7 % 17) - 8) / 16.0f;
    mb_init(&b, 13);
    int64_t ad[4] = {-1, 3, 4, 4}, bd[4] = {-1, 2, 1, 1}, yd[2] = {-1, 2}, wd[4] = {2, 3, 4, 4};
    mb_io(&b, false, "a", 4, ad);
    mb_io(&b, false, "b", 4, bd);
    mb_io(&b, true, "y", 2, yd);
    mb_init_f(&b, "W", 4, wd, Wc, 96);
    mb_node(&b, "Conv", "c", "a", "W", NULL);
    mb_node(&b, "Relu", "rb", "b", NULL, NULL);
    mb_node(&b, "Add", "d", "c", "rb", NULL);
    mb_node(&b, "Flatten", "y", "d", NULL, NULL);
    CHECK_OK(parse(&b, "mix.onnx", &m));
    char path2[] = "/tmp/pml-onnx-XXXXXX.onnx";
    fd = mkstemps(path2, 5);
    if (fd >= 0) close(fd);
    CHECK(fd >= 0 && pml_onnx_write(&m.g, m.params, m.state, path2) == PML_OK);
    CHECK_OK(pml_onnx_read(path2, 1, &r));
    unlink(path2);
    CHECK_MSG(r.ninputs == 2 && r.inputs[1].rank == 4 && r.g.nnodes == m.g.nnodes, "%d inputs, rank %d, %d nodes, %d before", r.ninputs, r.ninputs > 1 ? r.inputs[1].rank : 0, r.g.nnodes, m.g.nnodes);
    pml_onnx_free(&r);
    pml_onnx_free(&m);
    /* uint8 inputs read as float (exact); a uint8 output that does not fit is refused, not
     * wrapped around as ONNX would */
    mb_init(&b, 13);
    int64_t ud[2] = {-1, 3};
    mb_io(&b, false, "a", 2, ud);
    mb_io(&b, false, "b", 2, ud);
    mb_io(&b, true, "s", 2, ud);
    for (int k = 0; k < 3; k++) b.tt[k].elem_type = 2; /* uint8 */
    mb_node(&b, "Add", "s", "a", "b", NULL);
    CHECK_OK(parse(&b, "u8.onnx", &m));
    if (!pml__test_failed) {
        float ua[6] = {1, 2, 3, 200, 5, 6}, ub[6] = {10, 20, 30, 40, 50, 60};
        pml_tensor ui[2] = {{.rank = 2, .dims = {2, 3}, .n = 6, .data = ua},
                            {.rank = 2, .dims = {2, 3}, .n = 6, .data = ub}};
        CHECK(m.outputs[0].type == 2 && m.inputs[1].type == 2);
        CHECK_OK(pml_infer_run(&m, ui, 1, 0, &y));
        if (!pml__test_failed) CHECK(y.data[3] == 240 && y.data[5] == 66);
        pml_tensor_free(&y);
        ub[3] = 100; /* 300 */
        CHECK(pml_infer_run(&m, ui, 1, 0, &y) == PML_EUNSUPPORTED &&
              msg_has("output 's' (uint8): value 3 is 300", "no wrap-around"));
    }
    pml_onnx_free(&m);
    /* declared batches that differ */
    two_input_model(&b, 3, 2);
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("bad.onnx: node '#0, output s' (Add): graph input 'b'", "share the batch"));
    pml_onnx_free(&m);
    /* one sample (rank 1) with a batch */
    two_input_model(&b, -1, -1);
    int64_t one[1] = {3};
    b.sh[1].n_dim = 1;
    b.dims[1][0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    b.dims[1][0].dim_value = one[0];
    b.nodes[0].op_type = "Sum";
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED && msg_has("graph input 'b'", "rank 1"));
    pml_onnx_free(&m);
    /* b a weight of the MatMul first, then data of the Add: one or the other */
    two_input_model(&b, 3, 3);
    b.nodes[0].op_type = "MatMul";
    b.nodes[1].input[1] = "b";
    CHECK(parse(&b, "bad.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("graph input 'b' is a weight of another node", NULL));
    pml_onnx_free(&m);
}

/* every cut of a model, and bytes flipped at random: refused with a message naming the file
 * (or read), never a crash, a leak or undefined behaviour */
/* every cut of model bytes good and 3000 mutations of them: read or refused with a message
 * naming the file, never a crash */
static void cut_and_mutate(const uint8_t *good, size_t len)
{
    uint8_t *buf = malloc(len);
    pml_onnx m;
    int read = 0;
    for (size_t cut = 0; cut < len; cut++) {
        pml_status st = pml_onnx_parse(good, cut, "cut.onnx", 1, &m);
        if (st == PML_OK) read++;
        else CHECK_MSG(strncmp(pml_errmsg(), "cut.onnx: ", 10) == 0, "%s", pml_errmsg());
        pml_onnx_free(&m);
    }
    CHECK(read < 3); /* a cut model is almost never a model */
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 3000; i++) {
        memcpy(buf, good, len);
        for (int k = 0; k < 1 + i % 4; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            buf[(r >> 33) % len] ^= (uint8_t)(1u << ((r >> 20) & 7));
        }
        pml_status st = pml_onnx_parse(buf, len, "mut.onnx", 1, &m);
        if (st != PML_OK)
            CHECK_MSG(strncmp(pml_errmsg(), "mut.onnx: ", 10) == 0, "%s", pml_errmsg());
        pml_onnx_free(&m);
    }
    free(buf);
}

static void t_cut_and_mutated(void)
{
    mb b;
    mlp_model(&b);
    size_t len;
    uint8_t *good = mb_pack(&b, &len);
    cut_and_mutate(good, len);
    free(good);
    /* pml's own export of a 3-D model with activations and a mul (its weights: 5 KiB) */
    pml_onnx a;
    CHECK_OK(pml_infer_load("fixtures/models/good_volumetric.dot", 3, &a));
    char path[] = "/tmp/pml-fuzz-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    close(fd);
    char *text = NULL;
    if (!pml__test_failed && pml_onnx_write(&a.g, a.params, a.state, path) == PML_OK &&
        pml_read_file(path, 1 << 24, &text, &len) == PML_OK)
        cut_and_mutate((const uint8_t *)text, len);
    else
        CHECK_MSG(false, "%s", pml_errmsg());
    unlink(path);
    free(text);
    pml_onnx_free(&a);
}

/* ---------------------------------------------------------------- export */

/* a zoo model written as ONNX and read back: the same graph, weights and outputs */
static void t_export_roundtrip(void)
{
    /* grouped, depthwise and dilated convolutions, and concat of rows and columns, from DOT */
    const char *dot = "fixtures/models/good_grouped.dot";
    const char *cat = "fixtures/models/good_concat_axes.dot";
    const char *vol = "fixtures/models/good_volumetric.dot"; /* 3-D, activations, mul */
    const char *specs[] = {dot, cat, vol, "mlp:dropout=0.2", "fashion-cnn",
                           "resnet50:size=64,classes=10", "inception-v3:size=75,classes=10"};
    char path[] = "/tmp/pml-onnx-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    close(fd);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        pml_onnx a, b;
        CHECK_OK(pml_infer_load(specs[k], 7, &a));
        CHECK_OK(pml_onnx_write(&a.g, a.params, a.state, path));
        CHECK_OK(pml_onnx_read(path, 1, &b));
        if (pml__test_failed) return;
        CHECK_MSG(a.g.nnodes == b.g.nnodes, "%s: %d nodes, %d back", specs[k], a.g.nnodes,
                  b.g.nnodes);
        for (int i = 0; i < a.g.nnodes && i < b.g.nnodes; i++) {
            const pml_node *x = &a.g.nodes[i], *y = &b.g.nodes[i];
            if (x->op == PML_OP_INPUT || x->op == PML_OP_SOFTMAX_XENT) continue;
            CHECK_MSG(x->op == y->op && strcmp(x->name, y->name) == 0 && x->a.out == y->a.out &&
                          x->a.act == y->a.act && x->a.pt == y->a.pt && x->a.pb == y->a.pb &&
                          x->a.kh == y->a.kh && x->a.sh == y->a.sh &&
                          x->a.count_pad == y->a.count_pad && x->a.bias == y->a.bias &&
                          x->a.global == y->a.global && x->a.eps == y->a.eps &&
                          x->a.groups == y->a.groups && x->a.dh == y->a.dh && x->a.dw == y->a.dw &&
                          x->a.axis == y->a.axis && x->a.depth == y->a.depth &&
                          x->a.kd == y->a.kd && x->a.sd == y->a.sd && x->a.pf == y->a.pf &&
                          x->a.fn == y->a.fn && x->a.alpha == y->a.alpha && x->a.beta == y->a.beta,
                      "%s: node %d '%s' (%s) reads back as '%s' (%s)", specs[k], i, x->name,
                      pml_op_name(x->op), y->name, pml_op_name(y->op));
        }
        CHECK(a.g.nparams == b.g.nparams && a.g.nstate == b.g.nstate);
        if (pml__test_failed) break;
        CHECK(memcmp(a.params, b.params, a.g.nparams * sizeof(float)) == 0);
        CHECK(memcmp(a.state, b.state, a.g.nstate * sizeof(float)) == 0);
        const pml_shape s = a.g.nodes[a.g.input].out;
        pml_tensor in = {.rank = 4, .dims = {2, s.c, s.h, s.w}, .n = 2 * pml_shape_size(s)}, ya, yb;
        in.data = malloc(in.n * sizeof(float));
        for (size_t i = 0; i < in.n; i++) in.data[i] = (float)((i * 7919 % 1000) / 500.0 - 1.0);
        if (s.h == 1 && s.w == 1) in.rank = 2, in.dims[1] = s.c;
        const int depth = a.g.nodes[a.g.input].a.depth; /* 3-D: (N, C, D, H, W) */
        if (depth > 0) in.rank = 5, in.dims[2] = depth, in.dims[3] = s.h / depth, in.dims[4] = s.w;
        CHECK_OK(pml_infer_run(&a, &in, 1, 0, &ya));
        CHECK_OK(pml_infer_run(&b, &in, 1, 0, &yb));
        pml_tensor_diff d;
        CHECK(!pml__test_failed && pml_tensor_compare(&ya, &yb, 0, 0, &d) && d.bad == 0);
        free(in.data);
        pml_tensor_free(&ya);
        pml_tensor_free(&yb);
        pml_onnx_free(&a);
        pml_onnx_free(&b);
    }
    unlink(path);
}

/* a concat of rows of vectors (N, C): ONNX would join another axis, so export refuses it */
static void t_export_concat_rows_of_vectors(void)
{
    pml_graph g;
    pml_graph_init(&g, "rows");
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){6, 1, 1};
    int x = pml_graph_add(&g, "x", PML_OP_INPUT, &a, 0, NULL);
    pml_attrs l = pml_attrs_default(PML_OP_LINEAR);
    l.out = 3;
    int f1 = pml_graph_add(&g, "fc1", PML_OP_LINEAR, &l, 1, &x);
    int f2 = pml_graph_add(&g, "fc2", PML_OP_LINEAR, &l, 1, &x);
    pml_attrs c = pml_attrs_default(PML_OP_CONCAT);
    c.axis = 1;
    int cat = pml_graph_add(&g, "cat", PML_OP_CONCAT, &c, 2, (int[]){f1, f2});
    int fl = pml_graph_add(&g, "flat", PML_OP_FLATTEN, NULL, 1, &cat);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &fl);
    CHECK_OK(pml_graph_finalize(&g));
    float *params = calloc(g.nparams + 1, sizeof(float));
    char path[] = "/tmp/pml-onnx-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    CHECK(pml_onnx_write(&g, params, NULL, path) == PML_EUNSUPPORTED &&
          strstr(pml_errmsg(), "node 'cat' (concat of rows) joins a vector"));
    CHECK(access(path, F_OK) != 0); /* nothing written */
    free(params);
    pml_graph_free(&g);
}

/* matmul: of one matrix a sample written as ONNX's MatMul of (N, M, K) tensors and read back
 * the same; reading tensors pml writes with other ranks (a convolution's maps), refused */
/* A dropout that drops in inference too (ONNX's training mode), seeded: written as a Dropout
 * with training_mode and seed and read back so; it drops in pml infer, the same mask whether the
 * batch runs at once or a sample at a time */
static void t_export_dropout(void)
{
    char path[] = "/tmp/pml-onnx-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    close(fd);
    pml_onnx a, b;
    CHECK_OK(pml_infer_load("fixtures/models/good_dropout_seeded.dot", 5, &a));
    CHECK_OK(pml_onnx_write(&a.g, a.params, a.state, path));
    CHECK_OK(pml_onnx_read(path, 1, &b));
    if (!pml__test_failed) {
        const pml_node *d = &b.g.nodes[1];
        CHECK_MSG(d->op == PML_OP_DROPOUT && d->a.always == 1 && d->a.seed == 3 &&
                      d->a.rate == 0.5f,
                  "read back as %s, always %d, seed %d", pml_op_name(d->op), d->a.always,
                  d->a.seed);
        float v[120];
        for (int i = 0; i < 120; i++) v[i] = 1.0f + (float)(i % 7);
        pml_tensor in = {.rank = 4, .dims = {3, 2, 4, 5}, .n = 120, .data = v}, ya, yb, y1, yk;
        CHECK_OK(pml_infer_run(&a, &in, 1, 0, &ya));
        CHECK_OK(pml_infer_run(&b, &in, 1, 0, &yb));
        CHECK_OK(pml_infer_run(&b, &in, 1, 1, &y1)); /* a sample a pass */
        b.g.nodes[1].a.always = 0;                   /* the inference form */
        CHECK_OK(pml_infer_run(&b, &in, 1, 0, &yk));
        pml_tensor_diff dd;
        CHECK(!pml__test_failed && pml_tensor_compare(&ya, &yb, 0, 0, &dd) && dd.bad == 0);
        CHECK(!pml__test_failed && pml_tensor_compare(&ya, &y1, 0, 0, &dd) && dd.bad == 0);
        CHECK_MSG(!pml__test_failed && pml_tensor_compare(&ya, &yk, 1e-3, 1e-6, &dd) &&
                      dd.bad > 0,
                  "the outputs are the same with and without dropping");
        pml_tensor_free(&ya);
        pml_tensor_free(&yb);
        pml_tensor_free(&y1);
        pml_tensor_free(&yk);
    }
    pml_onnx_free(&a);
    pml_onnx_free(&b);
    unlink(path);
}

static void t_export_matmul(void)
{
    char dot[] = "/tmp/pml-onnx-XXXXXX.dot", path[] = "/tmp/pml-onnx-XXXXXX.onnx";
    int fd = mkstemps(dot, 4);
    CHECK(fd >= 0);
    static const char text[] =
        "digraph mm { graph [input_shape=\"3x3x1\", classes=2]; x [op=input];"
        " m [op=matmul]; r [op=relu]; m2 [op=matmul]; f [op=flatten]; l [op=linear, out=2];"
        " s [op=softmax_xent]; x -> m [input=0]; x -> m [input=1]; m -> r; r -> m2 [input=0];"
        " m -> m2 [input=1]; m2 -> f -> l -> s }";
    CHECK(fd >= 0 && write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    fd = mkstemps(path, 5);
    CHECK(fd >= 0);
    close(fd);
    pml_onnx a, b;
    CHECK_OK(pml_infer_load(dot, 5, &a));
    CHECK_OK(pml_onnx_write(&a.g, a.params, a.state, path));
    CHECK_OK(pml_onnx_read(path, 1, &b));
    if (!pml__test_failed) {
        CHECK(b.inputs[0].rank == 3 && b.g.nnodes == a.g.nnodes);
        CHECK(b.g.nodes[1].op == PML_OP_MATMUL && b.g.nodes[1].a.axis == 0);
        float v[18];
        for (int i = 0; i < 18; i++) v[i] = (float)((i * 37 % 11) - 5) / 4;
        pml_tensor in = {.rank = 3, .dims = {2, 3, 3}, .n = 18, .data = v}, ya, yb;
        CHECK_OK(pml_infer_run(&a, &in, 1, 0, &ya));
        CHECK_OK(pml_infer_run(&b, &in, 1, 0, &yb));
        pml_tensor_diff d;
        CHECK(!pml__test_failed && pml_tensor_compare(&ya, &yb, 0, 0, &d) && d.bad == 0);
        pml_tensor_free(&ya);
        pml_tensor_free(&yb);
    }
    pml_onnx_free(&a);
    pml_onnx_free(&b);
    unlink(path);
    /* a window on the matrices */
    static const char conv[] =
        "digraph mm { graph [input_shape=\"3x3x1\", classes=2]; x [op=input];"
        " m [op=matmul]; c [op=conv2d, out=2, kernel=1]; f [op=flatten]; l [op=linear, out=2];"
        " s [op=softmax_xent]; x -> m [input=0]; x -> m [input=1]; m -> c -> f -> l -> s }";
    fd = open(dot, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, conv, sizeof conv - 1) == (ssize_t)(sizeof conv - 1));
    close(fd);
    CHECK_OK(pml_infer_load(dot, 5, &a));
    CHECK(pml_onnx_write(&a.g, a.params, a.state, path) == PML_EUNSUPPORTED &&
          strstr(pml_errmsg(), "node 'c' (conv2d) reads a matmul's matrices, (N, M, K) in ONNX: "));
    pml_onnx_free(&a);
    CHECK_OK(pml_infer_load("fixtures/models/good_matmul.dot", 5, &a));
    CHECK(pml_onnx_write(&a.g, a.params, a.state, path) == PML_EUNSUPPORTED &&
          strstr(pml_errmsg(), "node 'm0' (matmul) multiplies one matrix a sample of a tensor, "
                               "which pml writes to ONNX as rank 4"));
    CHECK(access(path, F_OK) != 0); /* nothing written */
    pml_onnx_free(&a);
    unlink(dot);
}

/* no samples: nothing runs and the outputs are empty, of the model's shape; a Reshape of a
 * declared empty batch to a fixed shape (ONNX's allowzero) keeps its zero */
static void t_empty_batch(void)
{
    mb b;
    pml_onnx m;
    two_input_model(&b, -1, -1);
    CHECK_OK(parse(&b, "two.onnx", &m));
    if (pml__test_failed) return;
    float none[1] = {0};
    pml_tensor in[2] = {{.rank = 2, .dims = {0, 3}, .n = 0, .data = none},
                        {.rank = 2, .dims = {0, 3}, .n = 0, .data = none}},
               y;
    CHECK_OK(pml_infer_run(&m, in, 1, 0, &y));
    if (!pml__test_failed) {
        CHECK(y.rank == 2 && y.dims[0] == 0 && y.dims[1] == 4 && y.n == 0);
        pml_tensor_free(&y);
    }
    pml_onnx_free(&m);
    mb_init(&b, 14);
    int64_t xd[3] = {0, 3, 4}, yd[3] = {3, 4, 0};
    static int64_t shape[3] = {3, 4, 0};
    mb_io(&b, false, "x", 3, xd);
    mb_io(&b, true, "y", 3, yd);
    mb_init_i(&b, "shape", 3, shape);
    attr_i(&b, mb_node(&b, "Reshape", "y", "x", "shape", NULL), "allowzero", 1);
    CHECK_OK(parse(&b, "empty.onnx", &m));
    if (pml__test_failed) return;
    pml_tensor x = {.rank = 3, .dims = {0, 3, 4}, .n = 0, .data = none};
    CHECK_OK(pml_infer_run(&m, &x, 1, 0, &y));
    if (!pml__test_failed) {
        CHECK(y.rank == 3 && y.dims[0] == 3 && y.dims[1] == 4 && y.dims[2] == 0 && y.n == 0);
        pml_tensor_free(&y);
    }
    /* the model's shape is for no samples */
    float one[12] = {0};
    x.dims[0] = 1, x.n = 12, x.data = one;
    CHECK(pml_infer_run(&m, &x, 1, 0, &y) == PML_ESHAPE && msg_has("fixed shape", "for 0"));
    pml_onnx_free(&m);
}

/* ---------------------------------------------------------------- tensor files */

static void t_tensor_files(void)
{
    char dir[] = "/tmp/pml-onnx-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    float v[6] = {1.5f, -2, 0, 3.25f, 1e-8f, -7};
    pml_tensor t = {.rank = 3, .dims = {1, 2, 3}, .n = 6, .data = v, .name = "t"};
    const char *ext[2] = {"pb", "npy"};
    for (int i = 0; i < 2; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/t.%s", dir, ext[i]);
        CHECK_OK(pml_tensor_write(p, &t));
        pml_tensor u;
        CHECK_OK(pml_tensor_read(p, &u));
        CHECK(u.rank == 3 && u.dims[2] == 3 && u.n == 6 && memcmp(u.data, v, sizeof v) == 0);
        pml_tensor_diff d;
        CHECK(pml_tensor_compare(&u, &t, 0, 0, &d) && d.bad == 0);
        u.data[4] = 2e-8f; /* within atol 1e-7 */
        CHECK(pml_tensor_compare(&u, &t, 1e-3, 1e-7, &d) && d.bad == 0);
        u.data[1] = -2.01f;
        CHECK(pml_tensor_compare(&u, &t, 1e-3, 1e-7, &d) && d.bad == 1 && d.worst == 1);
        pml_tensor_free(&u);
        /* cut files are refused, naming the file */
        FILE *f = fopen(p, "r+");
        if (f) {
            CHECK(ftruncate(fileno(f), i ? 60 : 10) == 0);
            fclose(f);
        }
        CHECK(pml_tensor_read(p, &u) == PML_EFORMAT && msg_has(p, NULL));
        unlink(p);
    }
    rmdir(dir);
}

/* A Reshape to another shape as the output of a fixed batch: a view of the same values, for
 * that batch only; a shape that asks for more than the tensor holds is refused, whatever its
 * product (the fuzzer found a product overflowing). */
static void t_reshape_view(void)
{
    static int64_t to[3] = {4, 2, 3}, huge[3] = {(int64_t)1 << 40, (int64_t)1 << 40, -1};
    for (int k = 0; k < 2; k++) {
        mb b;
        mb_init(&b, 13);
        int64_t xd[3] = {2, 3, 4}, yd[3] = {4, 2, 3};
        mb_io(&b, false, "x", 3, xd);
        mb_io(&b, true, "y", 3, yd);
        mb_init_i(&b, "shape", 3, k ? huge : to);
        mb_node(&b, "Reshape", "y", "x", "shape", NULL);
        pml_onnx m;
        pml_status st = parse(&b, "reshape.onnx", &m);
        if (k) {
            CHECK(st == PML_EUNSUPPORTED && strstr(pml_errmsg(), "reshape.onnx"));
            pml_onnx_free(&m);
            continue;
        }
        CHECK_OK(st);
        pml_tensor x = {.rank = 3, .dims = {2, 3, 4}, .n = 24}, y;
        float v[36];
        for (int i = 0; i < 36; i++) v[i] = (float)i;
        x.data = v;
        if (st == PML_OK && pml_infer_run(&m, &x, 1, 0, &y) == PML_OK) {
            CHECK(y.rank == 3 && y.dims[0] == 4 && y.dims[1] == 2 && y.dims[2] == 3 && y.n == 24);
            for (size_t i = 0; i < y.n && i < 24; i++) CHECK(y.data[i] == v[i]);
            pml_tensor_free(&y);
        } else {
            CHECK_MSG(false, "%s", pml_errmsg());
        }
        /* another batch: the shape is the declared batch's */
        x.dims[0] = 3, x.n = 36;
        CHECK(st != PML_OK || pml_infer_run(&m, &x, 1, 0, &y) == PML_ESHAPE);
        pml_onnx_free(&m);
    }
}

/* x (N,2,3) -> Add(x, x) -> Add(c (2,1)) -> Add(d (3)) -> Add(e (1,2,3)): constants the same for
 * every sample, broadcast along the others' axes, as learned addends (c folded into the add
 * before it, which nothing else reads; d and e each an add of their own) */
static void t_import_addend(void)
{
    static float c[2] = {0.5f, -1.0f}, d[3] = {1, 2, 3},
                 e[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    for (int k = 0; k < 2 && !pml__test_failed; k++) {
        mb b;
        mb_init(&b, 13);
        int64_t xd[3] = {-1, 2, 3}, cd[2] = {2, 1}, dd[1] = {3}, ed[3] = {1, 2, 3};
        mb_io(&b, false, "x", 3, xd);
        mb_io(&b, true, "z", 3, xd);
        mb_init_f(&b, "c", 2, cd, c, 2);
        mb_init_f(&b, "d", 1, dd, d, 3);
        mb_init_f(&b, "e", 3, ed, e, 6);
        mb_node(&b, "Add", "y0", "x", "x", NULL);
        mb_node(&b, "Add", "y", "y0", "c", NULL);
        mb_node(&b, "Add", "z0", "y", "d", NULL);
        mb_node(&b, "Add", "z", "z0", "e", NULL);
        if (k == 1) { /* a constant that spans the batch: refused, naming the node */
            b.idims[2][0] = 2;
            static float e12[12];
            b.inits[2].float_data = e12;
            b.inits[2].n_float_data = 12;
        }
        pml_onnx m;
        pml_status st = parse(&b, "addend.onnx", &m);
        if (k == 1) {
            CHECK_MSG(st == PML_EUNSUPPORTED &&
                          strstr(pml_errmsg(), "addend.onnx: node '#3, output z' (Add)") &&
                          strstr(pml_errmsg(), "constant 'e'"),
                      "%s", pml_errmsg());
            pml_onnx_free(&m);
            break;
        }
        CHECK_OK(st);
        if (st != PML_OK) break;
        /* input, add (x + x + c), add (+ d), add (+ e), flatten, loss */
        CHECK(m.g.nnodes == 6 && m.g.nodes[1].op == PML_OP_ADD && m.g.nodes[1].a.addend &&
              m.g.nodes[1].nin == 2 && m.g.nodes[2].a.addend && m.g.nodes[2].nin == 1 &&
              m.g.nodes[3].a.addend && m.g.nodes[3].nin == 1);
        CHECK(pml_graph_param_count(&m.g) == 18);
        float x[12];
        for (int i = 0; i < 12; i++) x[i] = (float)i * 0.25f - 1.0f;
        pml_tensor in = {.rank = 3, .dims = {2, 2, 3}, .n = 12, .data = x}, y;
        CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
        CHECK(y.rank == 3 && y.n == 12);
        for (int s = 0; s < 2 && y.n == 12; s++)
            for (int ch = 0; ch < 2; ch++)
                for (int l = 0; l < 3; l++) {
                    const int i = (s * 2 + ch) * 3 + l;
                    CHECK_NEAR(y.data[i], 2 * x[i] + c[ch] + d[l] + e[ch * 3 + l], 1e-6);
                }
        /* exported (the addend an Add after the Add of x and x) and read back: the same */
        char path[] = "/tmp/pml-addend-XXXXXX.onnx";
        int fd = mkstemps(path, 5);
        CHECK(fd >= 0);
        pml_onnx back;
        memset(&back, 0, sizeof back);
        pml_tensor yb = {0}, in4 = in; /* (N, C, L) comes back (N, C, L, 1) */
        in4.rank = 4;
        in4.dims[3] = 1;
        bool ok = fd >= 0 && pml_onnx_write(&m.g, m.params, m.state, path) == PML_OK &&
                  pml_onnx_read(path, 1, &back) == PML_OK;
        CHECK_MSG(ok, "%s", pml_errmsg());
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        if (ok) {
            CHECK(back.g.nnodes == m.g.nnodes && back.g.nodes[1].a.addend &&
                  back.g.nodes[1].nin == 2);
            CHECK_OK(pml_infer_run(&back, &in4, 1, 0, &yb));
            for (size_t i = 0; i < yb.n && yb.n == y.n; i++)
                CHECK_NEAR(yb.data[i], y.data[i], 1e-7);
            pml_tensor_free(&yb);
        }
        pml_onnx_free(&back);
        pml_tensor_free(&y);
        pml_onnx_free(&m);
    }
}

/* x (N,1,3,3) -> Conv(W (2,1,1,1)) -> Add(b (1,2,1,1)): one value per channel, the conv's bias
 * (as TensorFlow's exports add it) */
static void t_import_conv_bias(void)
{
    static float w[2] = {2.0f, -1.0f}, bv[2] = {0.5f, 3.0f};
    mb b;
    mb_init(&b, 13);
    int64_t xd[4] = {-1, 1, 3, 3}, yd[4] = {-1, 2, 3, 3}, wd[4] = {2, 1, 1, 1},
            bd[4] = {1, 2, 1, 1};
    mb_io(&b, false, "x", 4, xd);
    mb_io(&b, true, "y", 4, yd);
    mb_init_f(&b, "w", 4, wd, w, 2);
    mb_init_f(&b, "b", 4, bd, bv, 2);
    mb_node(&b, "Conv", "c", "x", "w", NULL);
    mb_node(&b, "Add", "y", "c", "b", NULL);
    pml_onnx m;
    pml_status st = parse(&b, "convbias.onnx", &m);
    CHECK_OK(st);
    if (st == PML_OK) {
        /* input, conv (with bias), flatten, loss */
        CHECK(m.g.nnodes == 4 && m.g.nodes[1].op == PML_OP_CONV2D && m.g.nodes[1].a.bias);
        CHECK(pml_graph_param_count(&m.g) == 4);
        float x[9];
        for (int i = 0; i < 9; i++) x[i] = (float)i - 4.0f;
        pml_tensor in = {.rank = 4, .dims = {1, 1, 3, 3}, .n = 9, .data = x}, y;
        CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
        for (int ch = 0; ch < 2 && y.n == 18; ch++)
            for (int i = 0; i < 9; i++) CHECK_NEAR(y.data[ch * 9 + i], w[ch] * x[i] + bv[ch], 1e-6);
        pml_tensor_free(&y);
    }
    pml_onnx_free(&m);
}

/* node k (of at most one input) gets a second output */
static void mb_out2(mb *b, int k, const char *second)
{
    b->strs[k][1] = b->strs[k][3];
    b->strs[k][2] = (char *)second;
    b->nodes[k].output = &b->strs[k][1];
    b->nodes[k].n_output = 2;
}

/* x (N,2,5,5) -> Dropout (d, its mask) -> MaxPool 3x3, stride 2, pads 1 (y, its Indices z);
 * d -> Relu -> r when r is an output, and with `use_mask` mask -> Relu -> rm. Outputs:
 * outs[0..nout). */
static void several_outputs_model(mb *b, const char *const *outs, int nout, int storage_order,
                                  bool use_mask)
{
    static const int64_t xd[4] = {-1, 2, 5, 5}, yd[4] = {-1, 2, 3, 3};
    static int64_t k3[2] = {3, 3}, s2[2] = {2, 2}, p1[4] = {1, 1, 1, 1};
    mb_init(b, 13);
    mb_io(b, false, "x", 4, xd);
    attr_f(b, mb_node(b, "Dropout", "d", "x", NULL, NULL), "ratio", 0.25f);
    mb_out2(b, 0, "mask");
    Onnx__NodeProto *n = mb_node(b, "MaxPool", "y", "d", NULL, NULL);
    attr_ints(b, n, "kernel_shape", k3, 2);
    attr_ints(b, n, "strides", s2, 2);
    attr_ints(b, n, "pads", p1, 4);
    if (storage_order) attr_i(b, n, "storage_order", storage_order);
    mb_out2(b, 1, "z");
    for (int k = 0; k < nout; k++)
        if (strcmp(outs[k], "r") == 0) mb_node(b, "Relu", "r", "d", NULL, NULL);
    if (use_mask) mb_node(b, "Relu", "rm", "mask", NULL, NULL);
    for (int k = 0; k < nout; k++)
        mb_io(b, true, outs[k], 4, strcmp(outs[k], "y") && strcmp(outs[k], "z") ? xd : yd);
}

/* Graph outputs besides the first: a MaxPool's Indices (exact int64, over the whole batch,
 * row- or column-major), a Dropout's mask (bool, all true in inference), a tensor on the way;
 * computed in batches as at once; written and read back in their types; refused where pml
 * cannot. */
static void t_several_outputs(void)
{
    enum { N = 3, PER = 2 * 5 * 5, OUT = 2 * 3 * 3 };
    float x[N * PER];
    for (int i = 0; i < N * PER; i++) x[i] = (float)((i * 37 + 11) % 101) - 50.0f;
    static const char *const outs[] = {"y", "z", "mask", "d"};
    for (int order = 0; order < 2; order++) {
        mb b;
        pml_onnx m;
        several_outputs_model(&b, outs, 4, order, false);
        CHECK_OK(parse(&b, "outs.onnx", &m));
        if (pml__test_failed) return;
        CHECK(m.noutputs == 4 && m.outputs[1].kind == PML_ONNX_OUT_INDICES &&
              m.outputs[1].type == 7 && m.outputs[2].kind == PML_ONNX_OUT_MASK &&
              m.outputs[2].type == 9 && m.outputs[3].kind == PML_ONNX_OUT_TENSOR);
        for (int batch = 0; batch <= 2; batch += 2) { /* at once; in batches of 2 */
            pml_tensor in = {.rank = 4, .dims = {N, 2, 5, 5}, .n = N * PER, .data = x};
            pml_tensor y[4];
            CHECK_OK(pml_infer_run(&m, &in, 1, batch, y));
            if (pml__test_failed) break;
            CHECK(y[1].n == N * OUT && y[1].ints && y[1].dims[0] == N && y[1].type == 7);
            CHECK(y[2].n == N * PER && y[2].type == 9 && y[3].n == N * PER);
            for (size_t i = 0; i < y[2].n; i++) CHECK(y[2].data[i] == 1.0f && y[3].data[i] == x[i]);
            /* the indices, by brute force: the first maximum of each window */
            for (int s = 0; s < N; s++)
                for (int c = 0; c < 2; c++)
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int64_t best = -1;
                            for (int p = 0; p < 3; p++)
                                for (int q = 0; q < 3; q++) {
                                    int h = 2 * i - 1 + p, w = 2 * j - 1 + q;
                                    if (h < 0 || h >= 5 || w < 0 || w >= 5) continue;
                                    int64_t at = ((int64_t)(s * 2 + c) * 5 + h) * 5 + w;
                                    if (best < 0 || x[at] > x[best]) best = at;
                                }
                            const size_t o = (size_t)((s * 2 + c) * 3 + i) * 3 + j;
                            CHECK(y[0].data[o] == x[best]);
                            int64_t want = best;
                            if (order) { /* column-major within the map */
                                const int64_t base = (int64_t)(s * 2 + c) * 25, cell = best - base;
                                want = base + cell % 5 * 5 + cell / 5;
                            }
                            CHECK_MSG(y[1].ints[o] == want && y[1].data[o] == (float)want,
                                      "sample %d cell %zu: %lld, want %lld", s, o,
                                      (long long)y[1].ints[o], (long long)want);
                        }
            /* written in their types, read back the same */
            static const char *const ext[] = {".pb", ".npy"};
            for (int f = 0; f < 2; f++)
                for (int k = 1; k < 3; k++) {
                    char path[64];
                    snprintf(path, sizeof path, "/tmp/pml-outs-XXXXXX%s", ext[f]);
                    int fd = mkstemps(path, (int)strlen(ext[f]));
                    pml_tensor back;
                    CHECK(fd >= 0 && pml_tensor_write(path, &y[k]) == PML_OK &&
                          pml_tensor_read(path, &back) == PML_OK);
                    if (fd >= 0) {
                        close(fd);
                        unlink(path);
                    }
                    pml_tensor_diff d;
                    CHECK(back.type == y[k].type && pml_tensor_compare(&back, &y[k], 0, 0, &d) &&
                          d.bad == 0);
                    pml_tensor_free(&back);
                }
            for (int k = 0; k < 4; k++) pml_tensor_free(&y[k]);
        }
        pml_onnx_free(&m);
    }
    /* refused: the mask as a node's input, an Indices first, an output off the way */
    mb b;
    pml_onnx m;
    several_outputs_model(&b, outs, 1, 0, true);
    CHECK(parse(&b, "outs.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("'mask' is a Dropout's mask", "only as a graph output"));
    pml_onnx_free(&m);
    static const char *const zfirst[] = {"z", "y"}, *const off[] = {"y", "r"};
    several_outputs_model(&b, zfirst, 2, 0, false);
    CHECK(parse(&b, "outs.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("output 'z' is a MaxPool's Indices", "first output"));
    pml_onnx_free(&m);
    several_outputs_model(&b, off, 2, 0, false);
    CHECK(parse(&b, "outs.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("output 'r' is not on the way to output 'y'", "one head"));
    pml_onnx_free(&m);
}

/* x (N, 2, 3, 4, 4) -> MaxPool(kernel 2x2x2, strides 1x2x2) -> y (N, 2, 2, 2, 2): a 3-D window */
static void volumetric_model(mb *b, const char *op)
{
    static int64_t k[3] = {2, 2, 2}, st[3] = {1, 2, 2};
    static int64_t pads[10] = {0, 0, 1, 0, 0, 0, 0, 1, 0, 0};
    mb_init(b, 13);
    int64_t xd[5] = {-1, 2, 3, 4, 4}, yd[5] = {-1, 2, 2, 2, 2};
    mb_io(b, false, "x", 5, xd);
    mb_io(b, true, "y", 5, yd);
    Onnx__NodeProto *n = mb_node(b, op, "y", "x", strcmp(op, "Concat") ? NULL : "x", NULL);
    if (strcmp(op, "MaxPool") == 0) {
        attr_ints(b, n, "kernel_shape", k, 3);
        attr_ints(b, n, "strides", st, 3);
    } else if (strcmp(op, "Concat") == 0) {
        attr_i(b, n, "axis", 2);
    } else {
        attr_ints(b, n, "pads", pads, 10);
    }
}

/* A 3-D MaxPool's values against a direct computation; what pml does not do with rank 5 is
 * refused with one message. */
static void t_volumetric(void)
{
    mb b;
    pml_onnx m;
    volumetric_model(&b, "MaxPool");
    CHECK_OK(parse(&b, "v.onnx", &m));
    if (pml__test_failed) return;
    CHECK(m.g.nodes[m.inputs[0].node].a.depth == 3 &&
          pml_shape_eq(m.g.nodes[m.inputs[0].node].out, (pml_shape){2, 12, 4}));
    float x[2 * 2 * 3 * 4 * 4];
    for (int i = 0; i < 192; i++) x[i] = (float)((i * 37) % 101) - 50.0f;
    pml_tensor in = {.rank = 5, .dims = {2, 2, 3, 4, 4}, .n = 192, .data = x}, y;
    CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
    if (pml__test_failed) return;
    CHECK(y.rank == 5 && y.dims[0] == 2 && y.dims[1] == 2 && y.dims[2] == 2 && y.dims[3] == 2 &&
          y.dims[4] == 2 && y.n == 32);
    for (int sc = 0; sc < 4; sc++) /* sample and channel */
        for (int od = 0; od < 2; od++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    float want = -INFINITY;
                    for (int e = 0; e < 2; e++)
                        for (int p = 0; p < 2; p++)
                            for (int q = 0; q < 2; q++) {
                                float v = x[((sc * 3 + od + e) * 4 + 2 * i + p) * 4 + 2 * j + q];
                                want = v > want ? v : want;
                            }
                    CHECK(y.data[((sc * 2 + od) * 2 + i) * 2 + j] == want);
                }
    pml_tensor_free(&y);
    pml_onnx_free(&m);
    /* a kernel of two dims on a rank-5 input */
    volumetric_model(&b, "MaxPool");
    b.attrs[0].n_ints = 2;
    CHECK(parse(&b, "v.onnx", &m) == PML_EFORMAT && msg_has("v.onnx: node", "need 3 values"));
    pml_onnx_free(&m);
    /* a 3-D tensor joined along its depth, and padded */
    volumetric_model(&b, "Concat");
    CHECK(parse(&b, "v.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("v.onnx: node", "(Concat): axis=2 of a rank-5 tensor"));
    pml_onnx_free(&m);
    volumetric_model(&b, "Pad");
    CHECK(parse(&b, "v.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("v.onnx: node", "(Pad): pml pads tensors of rank 3 and 4"));
    pml_onnx_free(&m);
    /* a model file's 2-D window on a 3-D tensor runs in pml (the planes' rows are rows), but
     * ONNX has no such operator: export refuses it, writing nothing */
    static const char dot[] =
        "digraph v { graph [input_shape=\"2x3x4x4\"]; x [op=input]; g [op=avgpool2d, global=1];"
        " f [op=flatten]; l [op=linear, out=2]; s [op=softmax_xent]; x -> g -> f -> l -> s }";
    pml_graph g;
    CHECK_OK(pml_model_parse_dot(dot, sizeof dot - 1, "v.dot", &g));
    float w[3 * 2 + 2] = {0};
    char path[] = "/tmp/pml-vol-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    close(fd);
    unlink(path);
    CHECK(pml_onnx_write(&g, w, NULL, path) == PML_EUNSUPPORTED &&
          msg_has("node 'g' (avgpool2d) is a 2-D window on a 3-D tensor (3 planes)", NULL) &&
          access(path, F_OK) != 0);
    pml_graph_free(&g);
}

/* Concat along the first axis: no batch pml could split, so the model is imported whole (each
 * tensor one sample of its whole shape) when its other nodes do not tell a batch from a
 * sample's axes; with any other node, the batch's message stands. */
static void joined_model(mb *b, int r, const char *then)
{
    mb_init(b, 13);
    int64_t d[4] = {2, 3, 2, 2}, yd[4] = {4, 3, 2, 2};
    mb_io(b, false, "a", r, d);
    mb_io(b, false, "b", r, d);
    mb_io(b, true, "y", r, yd);
    attr_i(b, mb_node(b, "Concat", then ? "c" : "y", "a", "b", NULL), "axis", 0);
    if (then) mb_node(b, then, "y", "c", NULL, NULL);
}

static void t_joined_batch(void)
{
    mb b;
    pml_onnx m;
    /* (2, 3, 2) and (2, 3, 2) -> (4, 3, 2), a Relu after */
    joined_model(&b, 3, "Relu");
    CHECK_OK(parse(&b, "joined.onnx", &m));
    if (pml__test_failed) return;
    CHECK(m.whole && m.ninputs == 2 && m.inputs[0].data && m.inputs[1].data);
    const pml_shape s = m.g.nodes[m.inputs[0].node].out;
    CHECK(s.c == 2 && s.h == 3 && s.w == 2);
    float a[12], bv[12];
    for (int i = 0; i < 12; i++) a[i] = (float)(i - 5), bv[i] = (float)(7 - 2 * i) / 4;
    pml_tensor in[2] = {{.rank = 3, .dims = {2, 3, 2}, .n = 12, .data = a},
                        {.rank = 3, .dims = {2, 3, 2}, .n = 12, .data = bv}},
               y;
    CHECK_OK(pml_infer_run(&m, in, 1, 0, &y));
    if (!pml__test_failed) {
        CHECK(y.rank == 3 && y.dims[0] == 4 && y.dims[1] == 3 && y.dims[2] == 2 && y.n == 24);
        for (int i = 0; i < 24; i++) {
            const float want = i < 12 ? a[i] : bv[i - 12];
            CHECK_NEAR(y.data[i], want > 0 ? want : 0, 0);
        }
        pml_tensor_free(&y);
    }
    /* a batch of two is not what the model is: one sample of (2, 3, 2) each */
    in[0].dims[0] = in[1].dims[0] = 1, in[0].n = in[1].n = 6;
    CHECK(pml_infer_run(&m, in, 1, 0, &y) == PML_ESHAPE && msg_has("input 'a'", "one sample"));
    pml_onnx_free(&m);
    /* a node that reads a batch (Flatten: a sample's axes from axis 1): refused */
    joined_model(&b, 3, "Flatten");
    CHECK(parse(&b, "joined.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("joined.onnx: node '#0, output c' (Concat): axis=0 is the batch", "axes 1 to 2"));
    CHECK(!m.whole && m.g.nnodes == 0);
    pml_onnx_free(&m);
    /* rank 4: more axes than a sample has */
    joined_model(&b, 4, NULL);
    CHECK(parse(&b, "joined.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("joined.onnx: node '#0, output y' (Concat): axis=0 is the batch", "axes 1 to 3"));
    pml_onnx_free(&m);
}

/* Gemm with transA of the graph's input: its samples are the columns; pml infer reads it
 * transposed. A computed A, or one another node reads too, is refused by name. */
static void gemm_ta_model(mb *b, const char *via, int64_t samples)
{
    for (int i = 0; i < 24; i++) W46[i] = (float)((i * 5 % 13) - 6) / 8.0f;
    mb_init(b, 13);
    int64_t ad[2] = {6, samples}, yd[2] = {samples, 4}, wd[2] = {6, 4};
    mb_io(b, false, "a", 2, ad);
    mb_io(b, true, "y", 2, yd);
    mb_init_f(b, "W", 2, wd, W46, 24);
    if (via) mb_node(b, via, "r", "a", NULL, NULL);
    attr_i(b, mb_node(b, "Gemm", "y", via ? "r" : "a", "W", NULL), "transA", 1);
}

static void t_gemm_transposed_input(void)
{
    mb b;
    pml_onnx m;
    gemm_ta_model(&b, NULL, 3);
    CHECK_OK(parse(&b, "ta.onnx", &m));
    if (pml__test_failed) return;
    CHECK(m.inputs[0].data && m.inputs[0].transposed);
    const pml_shape s = m.g.nodes[m.inputs[0].node].out;
    CHECK(s.c == 6 && s.h == 1 && s.w == 1);
    float a[18];
    for (int i = 0; i < 18; i++) a[i] = (float)(i % 7) - 2.5f;
    pml_tensor in = {.rank = 2, .dims = {6, 3}, .n = 18, .data = a}, y;
    CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
    if (!pml__test_failed) {
        CHECK(y.rank == 2 && y.dims[0] == 3 && y.dims[1] == 4);
        for (int r = 0; r < 3; r++) /* y = A^T W */
            for (int o = 0; o < 4; o++) {
                double z = 0;
                for (int k = 0; k < 6; k++) z += (double)a[k * 3 + r] * W46[k * 4 + o];
                CHECK_NEAR(y.data[r * 4 + o], z, 1e-5);
            }
        pml_tensor_free(&y);
    }
    /* the samples as rows is not the model's layout */
    in.dims[0] = 3, in.dims[1] = 6;
    CHECK(pml_infer_run(&m, &in, 1, 0, &y) == PML_ESHAPE && msg_has("input 'a'", "transposed"));
    pml_onnx_free(&m);
    /* a symbolic batch: A's columns, any number of them */
    gemm_ta_model(&b, NULL, -1);
    CHECK_OK(parse(&b, "ta.onnx", &m));
    in.dims[0] = 6, in.dims[1] = 2, in.n = 12;
    CHECK_OK(pml_infer_run(&m, &in, 1, 0, &y));
    if (!pml__test_failed) {
        CHECK(y.rank == 2 && y.dims[0] == 2 && y.dims[1] == 4);
        for (int r = 0; r < 2; r++)
            for (int o = 0; o < 4; o++) {
                double z = 0;
                for (int k = 0; k < 6; k++) z += (double)a[k * 2 + r] * W46[k * 4 + o];
                CHECK_NEAR(y.data[r * 4 + o], z, 1e-5);
            }
        pml_tensor_free(&y);
    }
    pml_onnx_free(&m);
    /* A computed by the graph */
    gemm_ta_model(&b, "Relu", 3);
    CHECK(parse(&b, "ta.onnx", &m) == PML_EUNSUPPORTED &&
          msg_has("ta.onnx: node '#1, output y' (Gemm): transA=1", "this node alone reads"));
    pml_onnx_free(&m);
    /* A read by another node too */
    gemm_ta_model(&b, NULL, 3);
    mb_io(&b, true, "z", 2, (int64_t[2]){6, 3});
    mb_node(&b, "Relu", "z", "a", NULL, NULL);
    CHECK(parse(&b, "ta.onnx", &m) == PML_EUNSUPPORTED && msg_has("transA=1", "alone"));
    pml_onnx_free(&m);
}

static const pml_test tests[] = {
    {"backend_data", t_backend_data},
    {"import_addend", t_import_addend},
    {"import_conv_bias", t_import_conv_bias},
    {"import_mlp", t_import_mlp},
    {"import_folding", t_import_folding},
    {"reshape_view", t_reshape_view},
    {"bad_models", t_bad_models},
    {"cut_and_mutated", t_cut_and_mutated},
    {"tensor_files", t_tensor_files},
    {"export_roundtrip", t_export_roundtrip},
    {"export_concat_rows_of_vectors", t_export_concat_rows_of_vectors},
    {"several_inputs", t_several_inputs},
    {"several_outputs", t_several_outputs},
    {"volumetric", t_volumetric},
    {"joined_batch", t_joined_batch},
    {"gemm_transposed_input", t_gemm_transposed_input},
    {"export_matmul", t_export_matmul},
    {"export_dropout", t_export_dropout},
    {"dropout_training", t_dropout_training},
    {"empty_batch", t_empty_batch},
    {0},
};

#else

static void t_no_onnx(void) { SKIP("built without ONNX"); }
static const pml_test tests[] = {{"onnx", t_no_onnx}, {0}};

#endif

PML_TEST_MAIN(tests)
