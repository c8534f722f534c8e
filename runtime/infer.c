/* pml — inference: a model's forward pass on tensors (pml infer). */
#include "runtime/runtime.h"

#include "exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A training-mode batchnorm's running mean (or variance) after a batch: momentum * its state
 * + (1 - momentum) * the batch's mean (population variance) of its input x (n samples), a
 * value a channel into y. */
static void running_stats(const pml_node *v, const float *x, int n, const float *state, bool var,
                          float *y)
{
    const pml_shape s = v->out;
    const size_t plane = (size_t)s.h * s.w, M = plane * (size_t)n;
    const float *run = state + v->state_off[var ? 1 : 0];
    for (int c = 0; c < s.c; c++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * s.c + c) * plane;
            for (size_t j = 0; j < plane; j++) sum += p[j];
        }
        const double mean = M ? sum / (double)M : 0;
        if (var)
            for (int i = 0; i < n; i++) {
                const float *p = x + ((size_t)i * s.c + c) * plane;
                for (size_t j = 0; j < plane; j++) sq += (p[j] - mean) * (p[j] - mean);
            }
        const double batch = var ? (M ? sq / (double)M : 0) : mean;
        y[c] = (float)(v->a.momentum * (double)run[c] + (1.0 - v->a.momentum) * batch);
    }
}

/* The forward pass of n samples, batch at a time: samples [i, i + k) of xs[j] go into input node
 * nodes[j] (of nx); each of m's outputs is gathered into ys[o] (n samples' worth, allocated). */
/* A Dropout's mask output for samples [first, first + k) into m: 1 where its kernel keeps
 * the element (everywhere unless it drops in inference too: an ONNX training-mode node). */
static pml_status dropout_mask(const pml_exec *e, int node, int k, int first, float *m)
{
    const pml_node *v = &e->g.nodes[node];
    const size_t len = (size_t)k * pml_shape_size(v->out);
    for (size_t j = 0; j < len; j++) m[j] = 1.0f;
    if (v->op != PML_OP_DROPOUT || !v->a.always || v->a.rate <= 0.0f || !len) return PML_OK;
    float *y = malloc(len * sizeof *y);
    if (!y) return pml_fail(PML_ENOMEM, "out of memory");
    pml_kctx c;
    memset(&c, 0, sizeof c);
    c.node = v;
    c.N = c.batch_total = k;
    c.r = pml_region_full(v, k);
    c.nin = 1;
    c.x[0] = m; /* ones through the kernel: its mask, scaled */
    c.xs[0] = v->out;
    c.y = y;
    c.seed = e->o.seed;
    c.step = e->step;
    c.sample0 = (uint64_t)first;
    c.node_id = node;
    pml_ops[PML_OP_DROPOUT].fwd(&c);
    for (size_t j = 0; j < len; j++) m[j] = y[j] != 0.0f;
    free(y);
    return PML_OK;
}

static pml_status forward_outputs(pml_exec *e, const pml_onnx *m, int nx, const int *nodes,
                                  const float *const *xs, int n, int batch, pml_tensor *ys)
{
    const pml_graph *g = &e->g;
    pml_status st = PML_OK;
    for (int i = 0; i < n && st == PML_OK; i += batch) {
        int k = n - i < batch ? n - i : batch;
        for (int j = 0; j < nx; j++) {
            const size_t in = pml_shape_size(g->nodes[nodes[j]].out);
            memcpy(e->out[nodes[j]], xs[j] + (size_t)i * in, (size_t)k * in * sizeof(float));
        }
        memset(pml_exec_labels(e), 0, (size_t)k * sizeof(int32_t));
        e->sample0 = (uint64_t)i; /* (a dropout's mask follows each sample's place) */
        if ((st = pml_exec_forward(e, k, false, NULL)) != PML_OK) break;
        for (int o = 0; o < m->noutputs && st == PML_OK; o++) {
            const pml_onnx_output *out = &m->outputs[o];
            const pml_node *v = &g->nodes[out->node];
            const size_t per = pml_shape_size(v->out);
            if (out->kind == PML_ONNX_OUT_TENSOR)
                memcpy(ys[o].data + (size_t)i * per, pml_exec_output(e, out->node),
                       (size_t)k * per * sizeof(float));
            else if (out->kind == PML_ONNX_OUT_MASK)
                st = dropout_mask(e, out->node, k, i, ys[o].data + (size_t)i * per);
            else if (out->kind == PML_ONNX_OUT_INDICES)
                pml_maxpool2d_indices(v, g->nodes[v->in[0]].out, pml_exec_output(e, v->in[0]), k,
                                      i, out->column_major, ys[o].ints + (size_t)i * per);
            else if (out->kind == PML_ONNX_OUT_RUNNING_MEAN ||
                     out->kind == PML_ONNX_OUT_RUNNING_VAR) /* (one pass: the whole batch) */
                running_stats(v, pml_exec_output(e, v->in[0]), k, m->state,
                              out->kind == PML_ONNX_OUT_RUNNING_VAR, ys[o].data);
        }
    }
    return st;
}

pml_status pml_infer(pml_exec *e, int node, const float *x, int n, int batch, float *y)
{
    const pml_graph *g = &e->g;
    if (node < 0 || node >= g->nnodes) return pml_fail(PML_EINVAL, "no node %d", node);
    pml_onnx_output o = {.kind = PML_ONNX_OUT_TENSOR, .node = node};
    const pml_onnx m = {.noutputs = 1, .outputs = &o};
    pml_tensor y1 = {.data = y};
    return forward_outputs(e, &m, 1, &g->input, &x, n, batch, &y1);
}

pml_status pml_infer_load(const char *model, uint64_t seed, pml_onnx *m)
{
    return pml_infer_load_given(model, seed, NULL, 0, m);
}

pml_status pml_infer_load_given(const char *model, uint64_t seed, const pml_tensor *given,
                                int ngiven, pml_onnx *m)
{
    if (pml_model_is_onnx(model)) return pml_onnx_read_given(model, seed, given, ngiven, m);
    memset(m, 0, sizeof *m);
    pml_graph_init(&m->g, NULL);
    pml_status st;
    if (pml_model_is_saved(model)) {
        st = pml_saved_read(model, &m->g, &m->params, &m->state);
    } else if ((st = pml_model_load(model, &m->g)) == PML_OK) {
        m->params = malloc((m->g.nparams ? m->g.nparams : 1) * sizeof(float));
        m->state = malloc((m->g.nstate ? m->g.nstate : 1) * sizeof(float));
        if (!m->params || !m->state) st = pml_fail(PML_ENOMEM, "out of memory");
        else pml_params_init(&m->g, m->params, m->state, seed);
    }
    /* its input nodes in id order, each of its own shape */
    if (st == PML_OK && !(m->inputs = calloc((size_t)m->g.nnodes, sizeof *m->inputs)))
        st = pml_fail(PML_ENOMEM, "out of memory");
    for (int v = 0; st == PML_OK && v < m->g.nnodes; v++) {
        if (m->g.nodes[v].op != PML_OP_INPUT) continue;
        pml_onnx_input *in = &m->inputs[m->ninputs++];
        if (!(in->name = strdup(m->ninputs == 1 ? "input" : m->g.nodes[v].name))) {
            st = pml_fail(PML_ENOMEM, "out of memory");
            break;
        }
        const pml_shape s = m->g.nodes[v].out;
        in->data = true;
        in->node = v;
        const int depth = m->g.nodes[v].a.depth; /* 3-D: (N, C, D, H, W) */
        in->rank = depth > 0 ? 5 : s.h == 1 && s.w == 1 ? 2 : 4;
        const int64_t d[4] = {-1, s.c, s.h, s.w};
        memcpy(in->dims, d, sizeof d);
        if (depth > 0) in->dims[2] = depth, in->dims[3] = s.h / depth, in->dims[4] = s.w;
    }
    if (st != PML_OK) {
        pml_onnx_free(m);
        return st;
    }
    pml_onnx_output *o = m->outputs = calloc(1, sizeof *m->outputs);
    if (!o) {
        pml_onnx_free(m);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    m->noutputs = 1;
    o->node = m->g.logits;
    o->rank = 2;
    o->dims[0] = 1;
    o->dims[1] = (int64_t)pml_shape_size(m->g.nodes[m->g.logits].out);
    return PML_OK;
}

static void free_all(float **p, int n)
{
    for (int i = 0; p && i < n; i++) free(p[i]);
    free(p);
}

/* Checks data input di's tensor x against its node's shape: *n receives its samples. */
static pml_status check_data_input(const pml_onnx *m, int k, const pml_tensor *x, int *n)
{
    const pml_onnx_input *di = &m->inputs[k];
    const pml_shape s = m->g.nodes[di->node].out;
    const size_t per = pml_shape_size(s);
    /* rank 1, or a model imported whole: one sample */
    const bool one = di->rank == 1 || m->whole;
    if (di->transposed) { /* (features, samples) */
        if (x->rank != 2 || x->dims[0] != (int64_t)per || x->dims[1] < 1 || x->dims[1] > 1 << 24)
            return pml_fail(PML_ESHAPE,
                            "input '%s' (input_%d): a tensor of %zu values (rank %d) is not %zu "
                            "rows of samples (the model's Gemm takes it transposed)",
                            pml_dot_brief(di->name), k, x->n, x->rank, per);
        *n = (int)x->dims[1];
        return PML_OK;
    }
    bool same = x->rank >= 1 && x->dims[0] >= 0 && x->dims[0] <= 1 << 24 &&
                x->n == (one ? 1 : (size_t)x->dims[0]) * per;
    /* an ONNX input: the declared shape; others: any (N, ...) of the right size per sample */
    for (int d = one ? 0 : 1; same && m->opset > 0 && d < di->rank; d++)
        same = x->rank == di->rank && x->dims[d] == di->dims[d];
    if (!same)
        return pml_fail(PML_ESHAPE,
                        "input '%s' (input_%d): a tensor of %zu values (rank %d) is not %s of "
                        "the model's %dx%dx%d",
                        pml_dot_brief(di->name), k, x->n, x->rank,
                        one ? "one sample" : "N samples", s.c, s.h, s.w);
    *n = one ? 1 : (int)x->dims[0];
    return PML_OK;
}

pml_status pml_infer_run(pml_onnx *m, const pml_tensor *in, int threads, int batch, pml_tensor *y)
{
    memset(y, 0, (size_t)m->noutputs * sizeof *y);
    /* the data inputs (each an input node), in the graph's order; the batch is shared */
    int nx = 0, n = 0, first = -1;
    /* transposed inputs (a Gemm's A with transA), transposed back */
    float **flip = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *flip);
    int *nodes = malloc((size_t)(m->ninputs ? m->ninputs : 1) * sizeof *nodes);
    const float **xs = malloc((size_t)(m->ninputs ? m->ninputs : 1) * sizeof *xs);
    pml_status st = nodes && xs && flip ? PML_OK : pml_fail(PML_ENOMEM, "out of memory");
    for (int k = 0; k < m->ninputs && st == PML_OK; k++) {
        const pml_onnx_input *di = &m->inputs[k];
        if (!di->data) continue;
        int nk = 0;
        if ((st = check_data_input(m, k, &in[k], &nk)) != PML_OK) break;
        if (first >= 0 && nk != n)
            st = pml_fail(PML_ESHAPE,
                          "input '%s' (input_%d): %d samples, input '%s' (input_%d) %d: a "
                          "model's inputs share the batch",
                          pml_dot_brief(di->name), k, nk, pml_dot_brief(m->inputs[first].name),
                          first, n);
        if (first < 0) first = k, n = nk;
        nodes[nx] = di->node;
        xs[nx++] = in[k].data;
        if (di->transposed && st == PML_OK) { /* samples in rows, as the input node takes them */
            const size_t K = (size_t)in[k].dims[0], N = (size_t)nk;
            float *t = flip[k] = malloc((K * N > 0 ? K * N : 1) * sizeof *t);
            if (!t) {
                st = pml_fail(PML_ENOMEM, "out of memory");
                break;
            }
            for (size_t s = 0; s < N; s++)
                for (size_t f = 0; f < K; f++) t[s * K + f] = in[k].data[f * N + s];
            xs[nx - 1] = t;
        }
    }
    if (st == PML_OK && first < 0) st = pml_fail(PML_EINVAL, "the model has no data input");
    for (int o = 0; o < m->noutputs && st == PML_OK; o++)
        if (m->outputs[o].batch < 0 && m->outputs[o].samples >= 0 &&
            n != m->outputs[o].samples)
            st = pml_fail(PML_ESHAPE,
                          "input '%s': %d samples; the model's output '%s' has a fixed shape, "
                          "for %d",
                          pml_dot_brief(m->inputs[first].name), n,
                          pml_dot_brief(m->outputs[o].name ? m->outputs[o].name : ""),
                          m->outputs[o].samples);
    if (st != PML_OK) {
        free(nodes);
        free(xs);
        free_all(flip, m->ninputs);
        return st;
    }
    if (batch <= 0 || batch > n) batch = n;
    /* a batchnorm of the batch's statistics (an ONNX training-mode node): the batch is all */
    for (int v = 0; v < m->g.nnodes; v++)
        if (m->g.nodes[v].op == PML_OP_BATCHNORM && m->g.nodes[v].a.batch_stats) batch = n;
    for (int k = 0; k < m->ninputs && st == PML_OK; k++)
        if (!m->inputs[k].data) st = pml_onnx_bind(m, k, &in[k], m->params, m->state);
    for (int o = 0; o < m->noutputs && st == PML_OK && n == 0; o++)
        if (m->outputs[o].kind == PML_ONNX_OUT_RUNNING_MEAN ||
            m->outputs[o].kind == PML_ONNX_OUT_RUNNING_VAR)
            st = pml_fail(PML_ESHAPE, "input '%s': no samples, so output '%s' (a statistic of "
                          "the batch) has none to compute from",
                          pml_dot_brief(m->inputs[first].name),
                          pml_dot_brief(m->outputs[o].name ? m->outputs[o].name : ""));
    pml_exec *e = NULL;
    /* no samples: nothing runs, the outputs are empty */
    pml_exec_opts eo = {.batch = batch > 0 ? batch : 1, .threads = threads};
    if (st == PML_OK) st = pml_exec_create(&m->g, &eo, &e);
    if (st != PML_OK) {
        free(nodes);
        free(xs);
        free_all(flip, m->ninputs);
        return st;
    }
    memcpy(pml_exec_params(e), m->params, m->g.nparams * sizeof(float));
    if (m->g.nstate) memcpy(pml_exec_state(e), m->state, m->g.nstate * sizeof(float));
    /* each output: its node's output seen with the ONNX output's dims */
    for (int o = 0; o < m->noutputs && st == PML_OK; o++) {
        const pml_onnx_output *out = &m->outputs[o];
        pml_tensor *t = &y[o];
        t->rank = out->rank;
        for (int d = 0; d < t->rank; d++) t->dims[d] = out->dims[d] * (d == out->batch ? n : 1);
        const bool running =
            out->kind == PML_ONNX_OUT_RUNNING_MEAN || out->kind == PML_ONNX_OUT_RUNNING_VAR;
        t->n = running ? (size_t)m->g.nodes[out->node].out.c
                       : (size_t)n * pml_shape_size(m->g.nodes[out->node].out);
        t->type = out->type;
        if (!(t->data = malloc((t->n ? t->n : 1) * sizeof(float))) ||
            (out->kind == PML_ONNX_OUT_INDICES &&
             !(t->ints = malloc((t->n ? t->n : 1) * sizeof(int64_t)))) ||
            (out->name && !(t->name = strdup(out->name))))
            st = pml_fail(PML_ENOMEM, "out of memory");
    }
    if (st == PML_OK) st = forward_outputs(e, m, nx, nodes, xs, n, batch, y);
    for (int o = 0; o < m->noutputs && st == PML_OK; o++) {
        const pml_onnx_output *out = &m->outputs[o];
        pml_tensor *t = &y[o];
        if (out->kind == PML_ONNX_OUT_INDICES)
            for (size_t i = 0; i < t->n; i++) t->data[i] = (float)t->ints[i];
        if (out->softmax) pml_tensor_softmax(t, out->axis, out->coerced, out->log);
        st = pml_onnx_check_output(m, o, t);
    }
    pml_exec_destroy(e);
    free(nodes);
    free(xs);
    free_all(flip, m->ninputs);
    if (st != PML_OK)
        for (int o = 0; o < m->noutputs; o++) pml_tensor_free(&y[o]);
    return st;
}
