/* Executor tests: the fast and multi-threaded paths against the reference executor, whole-graph
 * gradients against finite differences, optimizers against hand-computed Keras updates. */
#include "models/models.h"
#include "runtime/runtime.h"
#include "test.h"

#include <stdlib.h>

/* Fills the executor's input and labels with a deterministic batch. */
static void fill_batch(pml_exec *e, const pml_graph *g, int n, uint64_t seed)
{
    size_t sz = pml_shape_size(g->nodes[g->input].out);
    float *x = pml_exec_input(e);
    int32_t *y = pml_exec_labels(e);
    for (size_t i = 0; i < (size_t)n * sz; i++) x[i] = pml_rand_unif(seed, 1, i);
    for (int i = 0; i < n; i++) y[i] = (int32_t)(pml_rand_u64(seed, 2, (uint64_t)i) % (uint64_t)g->classes);
}

/* Runs `steps` Adam steps with the given options; records the mean loss of each step. */
static void run_steps(const pml_graph *g, pml_exec_opts o, int steps, int n, double *losses)
{
    pml_exec *e = NULL;
    pml_optim opt;
    CHECK_OK(pml_exec_create(g, &o, &e));
    if (!e) return;
    pml_optim_defaults(&opt, PML_OPTIM_ADAM);
    CHECK_OK(pml_optim_alloc(&opt, g->nparams));
    for (int s = 0; s < steps; s++) {
        fill_batch(e, g, n, 100); /* one batch: the loss must fall */
        pml_step_result r = {0, 0};
        CHECK_OK(pml_exec_train_step(e, n, &opt, &r));
        losses[s] = r.loss_sum / n;
    }
    pml_optim_free(&opt);
    pml_exec_destroy(e);
}

/* Every forced split on 2 and 3 threads, and the cost-chosen split, against the reference. */
static void compare_threaded(const pml_graph *g, pml_exec_opts o, int steps, int n,
                             const double *ref, double tol)
{
    static const unsigned splits[4] = {0, PML_SPLIT_SAMPLE, PML_SPLIT_PARAM, PML_SPLIT_ATTR};
    double par[64];
    for (int threads = 2; threads <= 3; threads++)
        for (int i = 0; i < 4; i++) {
            o.threads = threads;
            o.force_split = splits[i];
            run_steps(g, o, steps, n, par);
            for (int s = 0; s < steps; s++)
                CHECK_MSG(fabs(par[s] - ref[s]) <= tol * fmax(1.0, fabs(ref[s])),
                          "%s, %d threads, split %u, step %d: loss %.8g, reference %.8g", g->name,
                          threads, splits[i], s, par[s], ref[s]);
        }
}

/* The same model trained by the reference kernels, the fast kernels on one thread and on
 * `threads` threads gives the same losses. */
static void same_losses(const char *spec, int batch, int n, int steps, double tol)
{
    pml_graph g;
    CHECK_OK(pml_model_build(spec, &g));
    if (!g.finalized) return;
    double ref[64], fast[64];
    pml_exec_opts o = {.batch = batch, .threads = 1, .seed = 7, .reference = true};
    run_steps(&g, o, steps, n, ref);
    o.reference = false;
    run_steps(&g, o, steps, n, fast);
    for (int s = 0; s < steps; s++) CHECK_NEAR(fast[s], ref[s], tol);
    compare_threaded(&g, o, steps, n, ref, tol);
    CHECK_MSG(ref[steps - 1] < ref[0], "%s: loss went from %g to %g", spec, ref[0], ref[steps - 1]);
    pml_graph_free(&g);
}

static void t_mlp_matches_reference(void) { same_losses("mlp:units=32,layers=2,size=8", 16, 16, 20, 1e-4); }
static void t_mlp_dropout_matches_reference(void)
{
    same_losses("mlp:units=24,layers=2,size=6,dropout=0.3", 12, 12, 15, 1e-4);
}
static void t_mlp_partial_batch(void) { same_losses("mlp:units=40,layers=1,size=7", 32, 19, 10, 1e-4); }
static void t_cnn_matches_reference(void) { same_losses("fashion-cnn:size=12,filters=4,units=16", 8, 8, 10, 1e-4); }
static void t_flowers_matches_reference(void) { same_losses("flowers-cnn:size=16", 6, 6, 8, 1e-4); }

/* A hand-built model with batchnorm (channel split), concat, add and global pooling. */
static pml_status build_branchy(pml_graph *g)
{
    pml_graph_init(g, "branchy");
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){3, 9, 9};
    int x = pml_graph_add(g, "input", PML_OP_INPUT, &a, 0, NULL);
    pml_attrs c = pml_attrs_default(PML_OP_CONV2D);
    c.out = 6;
    c.kh = c.kw = 3;
    c.pad_mode = PML_PAD_SAME;
    c.bias = 0;
    int c1 = pml_graph_add(g, "conv1", PML_OP_CONV2D, &c, 1, &x);
    int b1 = pml_graph_add(g, "bn1", PML_OP_BATCHNORM, NULL, 1, &c1);
    int r1 = pml_graph_add(g, "relu1", PML_OP_RELU, NULL, 1, &b1);
    c.out = 6;
    c.kh = c.kw = 1;
    c.bias = 1;
    int c2 = pml_graph_add(g, "conv2", PML_OP_CONV2D, &c, 1, &r1);
    int s2[2] = {c2, r1};
    int add = pml_graph_add(g, "add", PML_OP_ADD, NULL, 2, s2);
    int cat_in[2] = {add, c1};
    int cat = pml_graph_add(g, "cat", PML_OP_CONCAT, NULL, 2, cat_in);
    pml_attrs p = pml_attrs_default(PML_OP_AVGPOOL2D);
    p.global = 1;
    int gp = pml_graph_add(g, "gap", PML_OP_AVGPOOL2D, &p, 1, &cat);
    int fl = pml_graph_add(g, "flat", PML_OP_FLATTEN, NULL, 1, &gp);
    pml_attrs l = pml_attrs_default(PML_OP_LINEAR);
    l.out = 4;
    int fc = pml_graph_add(g, "fc", PML_OP_LINEAR, &l, 1, &fl);
    pml_graph_add(g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &fc);
    return pml_graph_finalize(g);
}

/* The model of a fixture file trained 10 steps by the reference kernels, the fast kernels on
 * one thread and every forced split on 2 and 3 threads: the same losses, and it learns. */
static void fixture_matches_reference(const char *path)
{
    pml_graph g;
    CHECK_OK(pml_model_read_dot(path, &g));
    if (!g.finalized) return;
    double ref[10], fast[10];
    pml_exec_opts o = {.batch = 6, .threads = 1, .seed = 5, .reference = true};
    run_steps(&g, o, 10, 6, ref);
    o.reference = false;
    run_steps(&g, o, 10, 6, fast);
    for (int s = 0; s < 10; s++) CHECK_NEAR(fast[s], ref[s], 1e-4);
    compare_threaded(&g, o, 10, 6, ref, 1e-4);
    CHECK_MSG(ref[9] < ref[0], "%s: loss went from %g to %g", path, ref[0], ref[9]);
    pml_graph_free(&g);
}

/* Grouped, depthwise and dilated convolutions (ONNX models) split every way, against the
 * reference: a part of a grouped conv reads only its groups' input channels. */
static void t_grouped_matches_reference(void)
{
    fixture_matches_reference("fixtures/models/good_grouped.dot");
}

/* Concatenation of rows and of columns split every way, against the reference. */
static void t_concat_axes_matches_reference(void)
{
    fixture_matches_reference("fixtures/models/good_concat_axes.dot");
}

/* Adds with a learned addend, split every way, against the reference: a parameter split owns
 * its channels' addend, a sample split sums the addend's gradient. */
static void t_addend_matches_reference(void)
{
    fixture_matches_reference("fixtures/models/good_addend.dot");
}

/* 3-D windows, pointwise activations and a mul by a value per channel, split every way,
 * against the reference: a part of a 3-D window reads the planes its own planes' windows span. */
static void t_volumetric_matches_reference(void)
{
    fixture_matches_reference("fixtures/models/good_volumetric.dot");
}

/* matmul of a sample's matrices along the channels and of one matrix a sample, split every
 * way, against the reference: a row part of one matrix a sample sums its share of the second
 * input's gradient. */
static void t_matmul_matches_reference(void)
{
    fixture_matches_reference("fixtures/models/good_matmul.dot");
}

static void t_branchy_matches_reference(void)
{
    pml_graph g;
    CHECK_OK(build_branchy(&g));
    if (!g.finalized) return;
    double ref[12], fast[12];
    pml_exec_opts o = {.batch = 8, .threads = 1, .seed = 3, .reference = true};
    run_steps(&g, o, 12, 8, ref);
    o.reference = false;
    run_steps(&g, o, 12, 8, fast);
    for (int s = 0; s < 12; s++) CHECK_NEAR(fast[s], ref[s], 1e-4);
    compare_threaded(&g, o, 12, 8, ref, 1e-4);
    pml_graph_free(&g);
}

/* Whole-graph gradient of the mean loss against central finite differences. */
static void grad_check(pml_graph *g, int n)
{
    pml_exec_opts o = {.batch = n, .threads = 1, .seed = 11, .reference = true};
    pml_exec *e = NULL;
    CHECK_OK(pml_exec_create(g, &o, &e));
    if (!e) return;
    fill_batch(e, g, n, 5);
    pml_step_result r;
    CHECK_OK(pml_exec_forward(e, n, true, &r));
    CHECK_OK(pml_exec_backward(e, n));
    float *p = pml_exec_params(e);
    const float *gr = pml_exec_grads(e);
    float *grad = malloc(g->nparams * sizeof *grad);
    for (size_t i = 0; i < g->nparams; i++) grad[i] = gr[i];
    int checked = 0, bad = 0;
    for (int v = 0; v < g->nnodes; v++) {
        const pml_node *nd = &g->nodes[v];
        for (int j = 0; j < nd->nparam; j++)
            for (int t = 0; t < 3; t++) {
                size_t i = nd->param_off[j] + pml_rand_u64(9, (uint64_t)v, (uint64_t)(j * 3 + t)) % nd->param_size[j];
                float keep = p[i];
                const float h = 1e-3f;
                pml_step_result a, b;
                p[i] = keep + h;
                CHECK_OK(pml_exec_forward(e, n, true, &a));
                p[i] = keep - h;
                CHECK_OK(pml_exec_forward(e, n, true, &b));
                p[i] = keep;
                double fd = (a.loss_sum - b.loss_sum) / n / (2.0 * h);
                double tol = 2e-2 * (fabs(fd) > 1e-2 ? fabs(fd) : 1e-2);
                checked++;
                if (fabs(fd - grad[i]) > tol) {
                    bad++;
                    fprintf(stderr, "  node %s param %d[%zu]: analytic %g, numeric %g\n", nd->name,
                            j, i - nd->param_off[j], grad[i], fd);
                }
            }
    }
    CHECK(checked > 0);
    CHECK_MSG(bad == 0, "%d of %d gradient entries differ", bad, checked);
    free(grad);
    pml_exec_destroy(e);
}

static void t_grad_mlp(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=8,layers=2,size=4", &g));
    if (g.finalized) grad_check(&g, 5);
    pml_graph_free(&g);
}

static void t_grad_branchy(void)
{
    pml_graph g;
    CHECK_OK(build_branchy(&g));
    if (g.finalized) grad_check(&g, 4);
    pml_graph_free(&g);
}

/* Adam and SGD against the Keras formulas, computed here step by step in double. */
static void t_adam_matches_keras(void)
{
    pml_optim o;
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    CHECK_NEAR(o.lr, 1e-3, 1e-9);
    CHECK_NEAR(o.beta1, 0.9, 1e-7);
    CHECK_NEAR(o.beta2, 0.999, 1e-7);
    CHECK_NEAR(o.eps, 1e-7, 1e-12);
    CHECK_OK(pml_optim_alloc(&o, 3));
    float w[3] = {0.5f, -1.0f, 2.0f};
    double wd[3] = {0.5, -1.0, 2.0}, m[3] = {0}, v[3] = {0};
    for (int t = 1; t <= 5; t++) {
        float g[3] = {0.1f * t, -0.2f, 0.0f};
        pml_optim_begin_step(&o);
        pml_optim_apply(&o, w, g, 0, 3);
        double lr_t = 1e-3 * sqrt(1 - pow(0.999, t)) / (1 - pow(0.9, t));
        for (int i = 0; i < 3; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            wd[i] -= lr_t * m[i] / (sqrt(v[i]) + 1e-7 * sqrt(1 - pow(0.999, t)));
        }
    }
    for (int i = 0; i < 3; i++) CHECK_NEAR(w[i], wd[i], 1e-6);
    /* the first Adam step moves each weight by about lr against its gradient's sign */
    CHECK(w[1] > -1.0f + 4e-3f);
    pml_optim_free(&o);
}

static void t_sgd_momentum(void)
{
    pml_optim o;
    pml_optim_defaults(&o, PML_OPTIM_SGD);
    CHECK_NEAR(o.lr, 0.01, 1e-9);
    o.momentum = 0.9f;
    CHECK_OK(pml_optim_alloc(&o, 1));
    float w = 1.0f;
    double wd = 1.0, vel = 0;
    for (int t = 0; t < 4; t++) {
        float g = 0.5f;
        pml_optim_begin_step(&o);
        pml_optim_apply(&o, &w, &g, 0, 1);
        vel = 0.9 * vel - 0.01 * g;
        wd += vel;
    }
    CHECK_NEAR(w, wd, 1e-6);
    pml_optim_free(&o);
}

static void t_glorot_init(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=50,layers=1,size=10", &g));
    if (!g.finalized) return;
    float *a = malloc(g.nparams * sizeof *a), *b = malloc(g.nparams * sizeof *b);
    pml_params_init(&g, a, NULL, 42);
    pml_params_init(&g, b, NULL, 42);
    const pml_node *d = &g.nodes[pml_graph_find(&g, "dense1")];
    double lim = sqrt(6.0 / (100 + 50)), mx = 0, mean = 0;
    for (size_t i = 0; i < d->param_size[0]; i++) {
        float w = a[d->param_off[0] + i];
        CHECK(fabs(w) <= lim);
        mx = fabs(w) > mx ? fabs(w) : mx;
        mean += w;
        CHECK(w == b[d->param_off[0] + i]);
    }
    mean /= (double)d->param_size[0];
    CHECK(mx > 0.95 * lim);   /* it fills the range */
    CHECK(fabs(mean) < 0.02); /* centred */
    for (size_t i = 0; i < d->param_size[1]; i++) CHECK(a[d->param_off[1] + i] == 0.0f);
    pml_params_init(&g, b, NULL, 43);
    CHECK(a[d->param_off[0]] != b[d->param_off[0]]);
    free(a);
    free(b);
    pml_graph_free(&g);
}

static void t_bad_calls(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=4,size=4", &g));
    pml_exec *e = NULL;
    pml_exec_opts o = {.batch = 0, .threads = 1};
    CHECK(pml_exec_create(&g, &o, &e) == PML_EINVAL && strstr(pml_errmsg(), "batch"));
    o.batch = 4;
    o.threads = 0;
    CHECK(pml_exec_create(&g, &o, &e) == PML_EINVAL && strstr(pml_errmsg(), "threads"));
    o.threads = 1;
    CHECK_OK(pml_exec_create(&g, &o, &e));
    if (e) {
        pml_step_result r;
        CHECK(pml_exec_forward(e, 5, true, &r) == PML_EINVAL);
        fill_batch(e, &g, 4, 1);
        pml_exec_labels(e)[2] = 10;
        CHECK(pml_exec_forward(e, 4, true, &r) == PML_EINVAL && strstr(pml_errmsg(), "label 10"));
        pml_exec_labels(e)[2] = 1;
        CHECK_OK(pml_exec_forward(e, 4, false, &r));
        CHECK(pml_exec_backward(e, 4) == PML_EINVAL);
        /* a non-finite input is caught, with the node named, under check_numerics */
        pml_exec_destroy(e);
        o.check_numerics = true;
        CHECK_OK(pml_exec_create(&g, &o, &e));
        fill_batch(e, &g, 4, 1);
        pml_exec_input(e)[3] = INFINITY;
        CHECK(pml_exec_forward(e, 4, true, &r) == PML_ENUMERIC && strstr(pml_errmsg(), "'flatten'"));
        pml_exec_destroy(e);
    }
    pml_graph_free(&g);
}

static const pml_test tests[] = {
    {"mlp_matches_reference", t_mlp_matches_reference},
    {"mlp_dropout_matches_reference", t_mlp_dropout_matches_reference},
    {"mlp_partial_batch", t_mlp_partial_batch},
    {"cnn_matches_reference", t_cnn_matches_reference},
    {"flowers_matches_reference", t_flowers_matches_reference},
    {"branchy_matches_reference", t_branchy_matches_reference},
    {"grouped_matches_reference", t_grouped_matches_reference},
    {"concat_axes_matches_reference", t_concat_axes_matches_reference},
    {"addend_matches_reference", t_addend_matches_reference},
    {"volumetric_matches_reference", t_volumetric_matches_reference},
    {"matmul_matches_reference", t_matmul_matches_reference},
    {"grad_mlp", t_grad_mlp},
    {"grad_branchy", t_grad_branchy},
    {"adam_matches_keras", t_adam_matches_keras},
    {"sgd_momentum", t_sgd_momentum},
    {"glorot_init", t_glorot_init},
    {"bad_calls", t_bad_calls},
    {0, 0},
};

PML_TEST_MAIN(tests)
