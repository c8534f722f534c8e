/* pml — inference: a model's forward pass on tensors (pml infer). */
#include "runtime/runtime.h"

#include "exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pml_status pml_infer(pml_exec *e, int node, const float *x, int n, int batch, float *y)
{
    const pml_graph *g = &e->g;
    if (node < 0 || node >= g->nnodes) return pml_fail(PML_EINVAL, "no node %d", node);
    const size_t in = pml_shape_size(g->nodes[g->input].out);
    const size_t out = pml_shape_size(g->nodes[node].out);
    pml_status st = PML_OK;
    for (int i = 0; i < n && st == PML_OK; i += batch) {
        int k = n - i < batch ? n - i : batch;
        memcpy(pml_exec_input(e), x + (size_t)i * in, (size_t)k * in * sizeof *x);
        memset(pml_exec_labels(e), 0, (size_t)k * sizeof(int32_t));
        if ((st = pml_exec_forward(e, k, false, NULL)) != PML_OK) break;
        memcpy(y + (size_t)i * out, pml_exec_output(e, node), (size_t)k * out * sizeof *y);
    }
    return st;
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
    if (st == PML_OK && (!(m->inputs = calloc(1, sizeof *m->inputs)) ||
                         !(m->inputs[0].name = strdup("input"))))
        st = pml_fail(PML_ENOMEM, "out of memory");
    if (st != PML_OK) {
        pml_onnx_free(m);
        return st;
    }
    const pml_shape s = m->g.nodes[m->g.input].out;
    m->ninputs = 1;
    m->inputs[0].data = true;
    m->inputs[0].rank = s.h == 1 && s.w == 1 ? 2 : 4;
    const int64_t d[4] = {-1, s.c, s.h, s.w};
    memcpy(m->inputs[0].dims, d, sizeof d);
    m->output_node = m->g.logits;
    m->output_rank = 2;
    m->output_dims[0] = 1;
    m->output_dims[1] = (int64_t)pml_shape_size(m->g.nodes[m->g.logits].out);
    return PML_OK;
}

pml_status pml_infer_run(pml_onnx *m, const pml_tensor *in, int threads, int batch, pml_tensor *y)
{
    memset(y, 0, sizeof *y);
    const pml_onnx_input *di = &m->inputs[0];
    const pml_shape s = m->g.nodes[m->g.input].out;
    const size_t per = pml_shape_size(s);
    const pml_tensor *x = &in[0];
    /* rank 1: one sample */
    const bool one = di->rank == 1;
    bool same = x->rank >= 1 && x->dims[0] >= 1 && x->dims[0] <= 1 << 24 &&
                x->n == (one ? 1 : (size_t)x->dims[0]) * per;
    /* an ONNX input: the declared shape; others: any (N, ...) of the right size per sample */
    for (int d = one ? 0 : 1; same && m->opset > 0 && d < di->rank; d++)
        same = x->rank == di->rank && x->dims[d] == di->dims[d];
    if (!same)
        return pml_fail(PML_ESHAPE,
                        "input '%s': a tensor of %zu values (rank %d) is not %s of the "
                        "model's %dx%dx%d",
                        di->name, x->n, x->rank, one ? "one sample" : "N samples", s.c, s.h, s.w);
    const int n = one ? 1 : (int)x->dims[0];
    if (m->output_batch < 0 && n != m->output_samples)
        return pml_fail(PML_ESHAPE, "input '%s': %d samples; the model's output has a fixed shape, "
                                    "for %d",
                        di->name, n, m->output_samples);
    if (batch <= 0 || batch > n) batch = n;
    pml_status st;
    for (int k = 1; k < m->ninputs; k++)
        if ((st = pml_onnx_bind(m, k, &in[k], m->params, m->state)) != PML_OK) return st;
    pml_exec *e = NULL;
    pml_exec_opts eo = {.batch = batch, .threads = threads};
    if ((st = pml_exec_create(&m->g, &eo, &e)) != PML_OK) return st;
    memcpy(pml_exec_params(e), m->params, m->g.nparams * sizeof(float));
    if (m->g.nstate) memcpy(pml_exec_state(e), m->state, m->g.nstate * sizeof(float));
    /* the output: output_node's output seen with the ONNX output's dims */
    y->rank = m->output_rank;
    for (int d = 0; d < y->rank; d++) y->dims[d] = m->output_dims[d] * (d == m->output_batch ? n : 1);
    y->n = (size_t)n * pml_shape_size(m->g.nodes[m->output_node].out);
    if (!(y->data = malloc((y->n ? y->n : 1) * sizeof(float))))
        st = pml_fail(PML_ENOMEM, "out of memory");
    else if ((st = pml_infer(e, m->output_node, x->data, n, batch, y->data)) == PML_OK &&
             m->output_softmax)
        pml_tensor_softmax(y, m->output_axis, m->output_coerced);
    pml_exec_destroy(e);
    if (st != PML_OK) {
        pml_tensor_free(y);
        return st;
    }
    if (m->output_name && !(y->name = strdup(m->output_name))) {
        pml_tensor_free(y);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    return PML_OK;
}
