/* Training-loop tests on small subsets: learning happens, validation split, step limits,
 * threads agree, stop requests and signals end training cleanly, prefetched batches give what
 * gathering each batch before its step gives, plans that do not fit the run are refused. */
#include "models/models.h"
#include "planner/planner.h"
#include "runtime/exec.h"
#include "runtime/runtime.h"
#include "test.h"

#include <signal.h>

static bool load_fashion(pml_dataset *train, pml_dataset *test, int ntrain, int ntest)
{
    pml_status st = pml_data_load_mnist_dir(PML_FASHION_MNIST_DIR, train, test);
    CHECK_MSG(st == PML_OK, "Fashion-MNIST (Debian package dataset-fashion-mnist): %s",
              pml_errmsg());
    if (st != PML_OK) return false;
    train->n = ntrain;
    test->n = ntest;
    return true;
}

static pml_train_opts opts(int epochs, int batch, int threads)
{
    pml_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = epochs;
    o.batch = batch;
    o.threads = threads;
    o.seed = 1;
    pml_optim_defaults(&o.optim, PML_OPTIM_ADAM);
    return o;
}

static void t_mlp_learns_fashion_subset(void)
{
    pml_dataset train, test;
    if (!load_fashion(&train, &test, 3000, 1000)) return;
    pml_graph g;
    CHECK_OK(pml_model_build("mlp", &g));
    pml_train_opts o = opts(3, 32, 1);
    o.validation_split = 0.2;
    pml_train_result r;
    CHECK_OK(pml_train(&g, &train, &test, &o, &r));
    CHECK(r.epochs_run == 3);
    for (int e = 0; e < r.epochs_run; e++) {
        CHECK(r.epochs[e].samples == 2400); /* the last 20% held out */
        CHECK(r.epochs[e].steps == 75);
        CHECK(r.epochs[e].has_val);
        CHECK(r.epochs[e].val_accuracy > 0.5 && r.epochs[e].val_accuracy <= 1.0);
    }
    CHECK(r.epochs[2].loss < r.epochs[0].loss);
    CHECK(r.has_test);
    CHECK_MSG(r.test_accuracy > 0.72, "test accuracy %g", r.test_accuracy);
    CHECK(r.test_loss > 0 && r.test_loss < 1.0);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
}

static void t_threads_agree(void)
{
    pml_dataset train, test;
    if (!load_fashion(&train, &test, 640, 200)) return;
    pml_graph g;
    CHECK_OK(pml_model_build("fashion-cnn:filters=8,units=32", &g));
    pml_train_result r1, r2;
    pml_train_opts o = opts(2, 32, 1);
    CHECK_OK(pml_train(&g, &train, &test, &o, &r1));
    o.threads = 2;
    CHECK_OK(pml_train(&g, &train, &test, &o, &r2));
    for (int e = 0; e < 2; e++) CHECK_NEAR(r2.epochs[e].loss, r1.epochs[e].loss, 1e-4);
    CHECK_NEAR(r2.test_loss, r1.test_loss, 1e-4);
    CHECK(r1.epochs[1].loss < 2.1); /* it learned something from 2.30 */
    pml_train_result_free(&r1);
    pml_train_result_free(&r2);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
}

static void t_max_steps_and_partial_batches(void)
{
    pml_dataset train, test;
    if (!load_fashion(&train, &test, 100, 50)) return;
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=16", &g));
    pml_train_opts o = opts(10, 32, 1);
    o.max_steps = 6; /* 4 steps per epoch (32+32+32+4) */
    pml_train_result r;
    CHECK_OK(pml_train(&g, &train, &test, &o, &r));
    CHECK(r.epochs_run == 2);
    CHECK(r.epochs[0].steps == 4 && r.epochs[0].samples == 100);
    CHECK(r.epochs[1].steps == 2 && r.epochs[1].samples == 64);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
}

static int stop_after(void *ud)
{
    int *calls = ud;
    return ++*calls > 3;
}

static void t_stop_request(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){3, 16, 16}, 5, 200, 9, &train));
    pml_graph g;
    CHECK_OK(pml_model_build("flowers-cnn:size=16", &g));
    pml_train_opts o = opts(2, 16, 2);
    int calls = 0;
    o.cb.ud = &calls;
    o.cb.should_stop = stop_after;
    pml_train_result r;
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINTR);
    CHECK(strstr(pml_errmsg(), "interrupted"));
    CHECK(r.epochs_run == 1 && r.epochs[0].steps == 3);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
}

static void t_synthetic_is_learnable(void)
{
    pml_dataset train, test;
    CHECK_OK(pml_data_synthetic((pml_shape){3, 24, 24}, 5, 600, 5, &train));
    CHECK_OK(pml_data_synthetic((pml_shape){3, 24, 24}, 5, 200, 6, &test));
    pml_graph g;
    CHECK_OK(pml_model_build("flowers-cnn:size=24", &g));
    pml_train_opts o = opts(5, 16, 2);
    pml_train_result r;
    CHECK_OK(pml_train(&g, &train, &test, &o, &r));
    CHECK_MSG(r.test_accuracy > 0.3, "test accuracy %g (chance 0.2)", r.test_accuracy);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
}

/* A model ending in one logit is a binary classifier (the logits (0, z)): it learns two classes,
 * its accuracy counts z > 0 as class 1, and data of three classes is refused. */
static void t_one_logit_learns(void)
{
    static const char dot[] =
        "digraph m { graph [kind=model, input_shape=\"3x12x12\", classes=2];\n"
        "x [op=input]; f [op=flatten]; h [op=linear, out=16, act=relu]; z [op=linear, out=1];\n"
        "loss [op=softmax_xent]; x -> f -> h -> z -> loss }";
    pml_graph g;
    CHECK_OK(pml_model_parse_dot(dot, sizeof dot - 1, "one-logit.dot", &g));
    CHECK(g.classes == 2 && g.nodes[g.logits].out.c == 1);
    pml_dataset train, test, three;
    CHECK_OK(pml_data_synthetic((pml_shape){3, 12, 12}, 2, 512, 5, &train));
    CHECK_OK(pml_data_synthetic((pml_shape){3, 12, 12}, 2, 256, 6, &test));
    pml_train_opts o = opts(4, 16, 2);
    pml_train_result r;
    CHECK_OK(pml_train(&g, &train, &test, &o, &r));
    CHECK_MSG(r.test_accuracy > 0.65, "test accuracy %g (chance 0.5)", r.test_accuracy);
    CHECK_MSG(r.epochs_run == 4 && r.epochs[3].loss < r.epochs[0].loss &&
                  r.epochs[3].loss < 0.9 * log(2.0),
              "loss %g then %g", r.epochs[0].loss, r.epochs[r.epochs_run - 1].loss);
    pml_train_result_free(&r);
    CHECK_OK(pml_data_synthetic((pml_shape){3, 12, 12}, 3, 64, 7, &three));
    CHECK(pml_train(&g, &three, NULL, &o, &r) == PML_ESHAPE);
    CHECK(strstr(pml_errmsg(), "3 classes") != NULL);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
    pml_data_free(&three);
}

static void t_bad_options(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 28, 28}, 10, 50, 1, &train));
    pml_graph g, h;
    CHECK_OK(pml_model_build("mlp:units=8", &g));
    CHECK_OK(pml_model_build("flowers-cnn:size=16", &h));
    pml_train_result r;
    pml_train_opts o = opts(0, 8, 1);
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL && strstr(pml_errmsg(), "epochs"));
    o = opts(1, 0, 1);
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL && strstr(pml_errmsg(), "batch"));
    o = opts(1, 8, 1);
    o.validation_split = 1.0;
    CHECK(pml_train(&g, &train, NULL, &o, &r) != PML_OK);
    o.validation_split = 0;
    CHECK(pml_train(&h, &train, NULL, &o, &r) == PML_ESHAPE && strstr(pml_errmsg(), "3x16x16"));
    o.shares = (const int[]){8};
    o.nshares = 1;
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL &&
          strstr(pml_errmsg(), "for data-parallel ranks"));
    pml_graph_free(&g);
    pml_graph_free(&h);
    pml_data_free(&train);
}

/* ---------------------------------------------------------------- the control plane */

/* What pml_train computes, the plain way: each batch gathered just before its step, validation
 * and test through pml_evaluate. */
static bool train_plain(const pml_graph *g, const pml_dataset *train, const pml_dataset *test,
                        const pml_train_opts *o, pml_train_result *r)
{
    memset(r, 0, sizeof *r);
    pml_dataset tr = *train, val;
    tr.owner = NULL;
    if (o->validation_split > 0) CHECK_OK(pml_data_split(&tr, o->validation_split, &val));
    pml_exec_opts eo = {.batch = o->batch,
                        .threads = o->threads,
                        .seed = o->seed,
                        .machine = o->machine,
                        .plan = o->plan};
    pml_exec *e;
    pml_status st = pml_exec_create(g, &eo, &e);
    CHECK_OK(st);
    if (st != PML_OK) return false;
    pml_optim opt = o->optim;
    CHECK_OK(pml_optim_alloc(&opt, g->nparams));
    int32_t *perm = malloc((size_t)tr.n * sizeof *perm);
    r->epochs = calloc((size_t)o->epochs, sizeof *r->epochs);
    long total = 0, spe = (tr.n + o->batch - 1) / o->batch;
    for (int ep = 1; ep <= o->epochs; ep++) {
        pml_epoch_stats *s = &r->epochs[ep - 1];
        s->epoch = ep;
        pml_data_shuffle(perm, tr.n, o->seed, ep);
        double loss = 0;
        long correct = 0;
        for (long step = 0; step < spe && !(o->max_steps && total >= o->max_steps); step++) {
            int i0 = (int)(step * o->batch), n = tr.n - i0 < o->batch ? tr.n - i0 : o->batch;
            pml_data_gather(&tr, perm + i0, n, pml_exec_input(e), pml_exec_labels(e));
            pml_step_result res;
            CHECK_OK(pml_exec_train_step(e, n, &opt, &res));
            loss += res.loss_sum;
            correct += res.correct;
            s->samples += n;
            s->steps++;
            total++;
        }
        if (!s->samples) break;
        s->loss = loss / s->samples;
        s->accuracy = (double)correct / s->samples;
        r->epochs_run = ep;
        if (o->validation_split > 0) {
            s->has_val = true;
            CHECK_OK(pml_evaluate(e, &val, o->batch, &s->val_loss, &s->val_accuracy));
        }
        if (o->max_steps && total >= o->max_steps) break;
    }
    if (test) {
        CHECK_OK(pml_evaluate(e, test, o->batch, &r->test_loss, &r->test_accuracy));
        r->has_test = true;
    }
    free(perm);
    pml_optim_free(&opt);
    pml_exec_destroy(e);
    return true;
}

/* pml_train (batches prefetched in libuv's pool) gives the plain loop's numbers exactly */
static void same_as_plain(const char *model, pml_dataset *train, const pml_dataset *test,
                          const pml_train_opts *o)
{
    pml_graph g;
    CHECK_OK(pml_model_build(model, &g));
    pml_train_result got, want;
    CHECK_OK(pml_train(&g, train, test, o, &got));
    if (train_plain(&g, train, test, o, &want)) {
        CHECK_MSG(got.epochs_run == want.epochs_run, "%s: %d epochs, plain %d", model,
                  got.epochs_run, want.epochs_run);
        for (int i = 0; i < got.epochs_run && i < want.epochs_run; i++) {
            const pml_epoch_stats *a = &got.epochs[i], *b = &want.epochs[i];
            CHECK(a->steps == b->steps && a->samples == b->samples);
            CHECK_MSG(a->loss == b->loss && a->accuracy == b->accuracy,
                      "%s, epoch %d: loss %.17g accuracy %.17g, plain %.17g %.17g", model, i + 1,
                      a->loss, a->accuracy, b->loss, b->accuracy);
            CHECK(a->has_val == b->has_val && a->val_loss == b->val_loss &&
                  a->val_accuracy == b->val_accuracy);
        }
        CHECK(got.has_test == want.has_test && got.test_loss == want.test_loss &&
              got.test_accuracy == want.test_accuracy);
        CHECK(got.epochs[0].loss > 0 && got.epochs[0].loss < 10);
    }
    pml_train_result_free(&got);
    pml_train_result_free(&want);
    pml_graph_free(&g);
}

static void t_prefetch_same_as_plain(void)
{
    /* small samples: several batches per prefetch chunk; epochs of 29 steps (the last short),
     * validation, a step limit in the third epoch */
    pml_dataset train, test;
    if (!load_fashion(&train, &test, 1000, 300)) return;
    pml_train_opts o = opts(3, 32, 1);
    o.validation_split = 0.1;
    o.max_steps = 70;
    same_as_plain("mlp:units=16", &train, &test, &o);
    o = opts(2, 32, 2); /* split across two threads */
    same_as_plain("mlp:units=16", &train, &test, &o);
    pml_data_free(&train);
    pml_data_free(&test);

    /* large samples (1 MiB a batch): one batch per chunk; a tiny epoch */
    CHECK_OK(pml_data_synthetic((pml_shape){1, 256, 256}, 10, 50, 3, &train));
    CHECK_OK(pml_data_synthetic((pml_shape){1, 256, 256}, 10, 9, 4, &test));
    o = opts(3, 4, 1);
    o.validation_split = 0.2;
    same_as_plain("mlp:units=8,size=256", &train, &test, &o);
    pml_data_free(&train);
    pml_data_free(&test);
}

/* a plan's workers run the steps while libuv's pool gathers (ThreadSanitizer watches) */
static void t_prefetch_with_plan(void)
{
    pml_dataset train, test;
    if (!load_fashion(&train, &test, 400, 100)) return;
    pml_graph g;
    pml_machine here;
    pml_plan p;
    CHECK_OK(pml_model_build("mlp:units=16", &g));
    CHECK_OK(pml_machine_load(NULL, &here));
    CHECK_OK(pml_plan_data_parallel(&p, &g, &here, 32));
    pml_train_opts o = opts(2, 32, here.ncompute);
    o.machine = &here;
    o.plan = &p;
    o.validation_split = 0.25;
    same_as_plain("mlp:units=16", &train, &test, &o);
    pml_plan_free(&p);
    pml_machine_free(&here);
    pml_graph_free(&g);
    pml_data_free(&train);
    pml_data_free(&test);
}

typedef struct progress_log {
    int calls, epochs, bad;
    int epoch;
    long step, steps;
    double loss;
} progress_log;

static void log_step(void *ud, int epoch, long step, long steps, double loss, double acc,
                     double elapsed)
{
    progress_log *l = ud;
    l->calls++;
    if (epoch < l->epoch || (epoch == l->epoch && step <= l->step && l->step != l->steps) ||
        step < 1 || step > steps || !(loss > 0) || acc < 0 || acc > 1 || elapsed < 0)
        l->bad++;
    l->epoch = epoch;
    l->step = step;
    l->steps = steps;
    l->loss = loss;
}

static void log_epoch(void *ud, const pml_epoch_stats *s)
{
    progress_log *l = ud;
    l->epochs++;
    /* the whole epoch was reported before its line */
    if (l->epoch != s->epoch || l->step != s->steps || l->steps != s->steps || l->loss != s->loss ||
        !s->complete)
        l->bad++;
}

static void t_progress_reports(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 28, 28}, 10, 300, 2, &train));
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=8", &g));
    pml_train_opts o = opts(3, 32, 1);
    progress_log l = {0};
    o.cb = (pml_train_cb){.ud = &l, .step = log_step, .epoch = log_epoch};
    pml_train_result r;
    CHECK_OK(pml_train(&g, &train, NULL, &o, &r));
    CHECK(l.epochs == 3 && l.calls >= 3 && l.bad == 0);
    CHECK(r.epochs_run == 3 && r.epochs[2].complete);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
}

/* raises signal k[1] on call k[2] of should_stop */
static int raise_on_call(void *ud)
{
    int *k = ud;
    if (++k[0] == k[2]) raise(k[1]);
    return 0;
}

static void t_signals_stop(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){3, 16, 16}, 5, 200, 9, &train));
    pml_graph g;
    CHECK_OK(pml_model_build("flowers-cnn:size=16", &g));
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    static const char *const names[3] = {"SIGINT", "SIGTERM", "SIGHUP"};
    for (int i = 0; i < 3; i++) {
        /* during training: the step running finishes, then it stops */
        pml_train_opts o = opts(2, 16, 2);
        o.handle_signals = true;
        int k[3] = {0, sigs[i], 3};
        o.cb.ud = k;
        o.cb.should_stop = raise_on_call;
        pml_train_result r;
        CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINTR);
        /* the message and the epoch's steps tell the same: the steps done */
        char name[96];
        snprintf(name, sizeof name, "interrupted by %s at epoch 1, after step %ld/13", names[i],
                 r.epochs_run ? r.epochs[0].steps : -1L);
        CHECK_MSG(strstr(pml_errmsg(), name), "%s (want %s)", pml_errmsg(), name);
        CHECK(r.signal == sigs[i]);
        /* raised before the 3rd step's check: 2 steps done */
        CHECK_MSG(r.epochs_run == 1 && r.epochs[0].steps == 2 && !r.epochs[0].complete,
                  "%d epochs, %ld steps", r.epochs_run, r.epochs_run ? r.epochs[0].steps : -1L);
        /* the caller's actions (here the default) are back, and the three signals are blocked */
        sigset_t mask;
        pthread_sigmask(SIG_BLOCK, NULL, &mask);
        for (int j = 0; j < 3; j++) {
            struct sigaction sa;
            sigaction(sigs[j], NULL, &sa);
            CHECK(sa.sa_handler == SIG_DFL);
            CHECK(sigismember(&mask, sigs[j]));
        }
        pml_train_result_free(&r);
    }
    /* a signal after the last step (here: raised once pml_train returned) stays pending while
     * the caller prints; the next pml_train with handle_signals takes it at its first step */
    {
        pml_train_opts o = opts(1, 16, 1);
        o.handle_signals = true;
        pml_train_result r;
        CHECK_OK(pml_train(&g, &train, NULL, &o, &r));
        pml_train_result_free(&r);
        raise(SIGTERM);
        sigset_t pend;
        sigpending(&pend);
        CHECK(sigismember(&pend, SIGTERM));
        CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINTR);
        CHECK_MSG(strstr(pml_errmsg(), "interrupted by SIGTERM at epoch 1, before its first step"),
                  "%s", pml_errmsg());
        CHECK(r.signal == SIGTERM && r.epochs_run == 0);
        pml_train_result_free(&r);
        sigpending(&pend);
        CHECK(!sigismember(&pend, SIGTERM));
    }
    /* during validation: 10 steps (160 samples), then 3 validation batches */
    pml_train_opts o = opts(2, 16, 1);
    o.validation_split = 0.2;
    o.handle_signals = true;
    int k[3] = {0, SIGTERM, 12};
    o.cb.ud = k;
    o.cb.should_stop = raise_on_call;
    pml_train_result r;
    CHECK(pml_train(&g, &train, &train, &o, &r) == PML_EINTR);
    CHECK_MSG(strstr(pml_errmsg(), "interrupted by SIGTERM during validation after epoch 1"), "%s",
              pml_errmsg());
    CHECK(r.signal == SIGTERM && r.epochs_run == 1 && r.epochs[0].steps == 10);
    CHECK(!r.epochs[0].has_val && !r.epochs[0].complete && !r.has_test);
    pml_train_result_free(&r);
    /* without handle_signals nothing is installed */
    o = opts(1, 16, 1);
    o.max_steps = 2;
    CHECK_OK(pml_train(&g, &train, NULL, &o, &r));
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    CHECK(sa.sa_handler == SIG_DFL);
    pml_train_result_free(&r);
    pml_graph_free(&g);
    pml_data_free(&train);
}

/* plans that do not fit the run: one message, no crash, nothing leaked */
static void t_bad_plans(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 28, 28}, 10, 64, 1, &train));
    pml_graph g, other;
    pml_machine here, four;
    CHECK_OK(pml_model_build("mlp:units=16", &g));
    CHECK_OK(pml_model_build("mlp:units=16,layers=2", &other));
    CHECK_OK(pml_machine_load(NULL, &here));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:4 pu:1", &four));
    pml_plan p, q, f;
    CHECK_OK(pml_plan_data_parallel(&p, &g, &here, 32));
    CHECK_OK(pml_plan_data_parallel(&q, &other, &here, 32));
    CHECK_OK(pml_plan_data_parallel(&f, &g, &four, 32));
    pml_train_result r;
    pml_train_opts o = opts(1, 32, 1);
    o.machine = &here;
    o.plan = &p;
    CHECK_OK(pml_train(&g, &train, NULL, &o, &r)); /* the plan itself is fine */
    pml_train_result_free(&r);

    o.batch = 64; /* another batch */
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL);
    CHECK_MSG(strstr(pml_errmsg(), "batch 32, not 64"), "%s", pml_errmsg());
    o.batch = 32;
    o.plan = &q; /* another model */
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL);
    CHECK_MSG(strstr(pml_errmsg(), "operators, model 'mlp' has"), "%s", pml_errmsg());
    o.plan = &f; /* another machine, named as the plan's */
    o.machine = &four;
    CHECK(pml_train(&g, &train, NULL, &o, &r) != PML_OK);
    CHECK_MSG(strstr(pml_errmsg(), "not a core of this machine"), "%s", pml_errmsg());
    o.machine = &here; /* another machine, run here: a device the machine lacks */
    CHECK(pml_train(&g, &train, NULL, &o, &r) != PML_OK);
    CHECK_MSG(strstr(pml_errmsg(), "operator '") || strstr(pml_errmsg(), "node '"), "%s",
              pml_errmsg());
    /* edited into inconsistency */
    int dense = pml_graph_find(&g, "dense1");
    CHECK(dense >= 0);
    if (dense >= 0) {
        pml_opcfg keep = p.cfg[dense];
        o.plan = &p;
        p.cfg[dense].dev[0] = 7; /* a device index out of range */
        CHECK(pml_train(&g, &train, NULL, &o, &r) != PML_OK);
        CHECK_MSG(strstr(pml_errmsg(), "dense1"), "%s", pml_errmsg());
        p.cfg[dense] = keep;
        p.cfg[dense].deg[0] = 3; /* a degree that does not divide the batch */
        p.cfg[dense].dev[1] = 0;
        p.cfg[dense].dev[2] = here.ncompute - 1;
        CHECK(pml_train(&g, &train, NULL, &o, &r) != PML_OK);
        CHECK_MSG(strstr(pml_errmsg(), "dense1"), "%s", pml_errmsg());
        p.cfg[dense] = keep;
    }
    o.machine = NULL; /* a plan without its machine */
    CHECK(pml_train(&g, &train, NULL, &o, &r) == PML_EINVAL);
    pml_plan_free(&p);
    pml_plan_free(&q);
    pml_plan_free(&f);
    pml_machine_free(&here);
    pml_machine_free(&four);
    pml_graph_free(&g);
    pml_graph_free(&other);
    pml_data_free(&train);
}

/* ---------------------------------------------------------------- choosing by measuring */

/* a fake trial: each candidate's step time by its name */
static pml_status fake_measure(void *ud, const pml_graph *g, const pml_candidate *c,
                               const pml_dataset *d, int batch, const pml_choose_opts *o,
                               double *seconds)
{
    int *calls = ud;
    (*calls)++;
    *seconds = strcmp(c->name, "one core") == 0        ? 1e-4
               : strcmp(c->name, "per-operator") == 0 ? 2e-4
                                                       : 3e-4 + 1e-5 * *calls; /* drifts */
    return PML_OK;
}

/* one core 1e-4 s a step, the others the time *ud points to */
static pml_status fake_close(void *ud, const pml_graph *g, const pml_candidate *c,
                             const pml_dataset *d, int batch, const pml_choose_opts *o,
                             double *seconds)
{
    *seconds = c->threads == 1 ? 1e-4 : *(const double *)ud;
    return PML_OK;
}

static void t_choose_picks_fastest(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 8, 8}, 4, 64, 1, &train));
    pml_graph g;
    pml_machine m;
    pml_plan p;
    CHECK_OK(pml_model_build("mlp:units=8,size=8,classes=4", &g));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:2 pu:1", &m));
    CHECK_OK(pml_plan_data_parallel(&p, &g, &m, 16));
    pml_candidate c[3] = {{.name = "data-parallel plan", .machine = &m, .plan = &p, .threads = 2},
                          {.name = "per-operator", .threads = 2},
                          {.name = "one core", .threads = 1}};
    int calls = 0, best = -1;
    pml_choose_opts o = pml_choose_opts_default();
    o.measure = fake_measure;
    o.ud = &calls;
    o.round_seconds = 0; /* every round */
    CHECK_OK(pml_choose(&g, &train, 16, c, 3, &o, &best));
    for (int i = 0; i < 3; i++) /* what others used meanwhile, for pml_choice_save */
        CHECK(c[i].others >= 0 && c[i].others <= 1 && c[i].others == c[0].others);
    CHECK(best == 2 && calls == 6); /* two rounds of three */
    o.others = 0; /* a quiet machine: a candidate's best round counts */
    calls = 0;
    CHECK_OK(pml_choose(&g, &train, 16, c, 3, &o, &best));
    CHECK(best == 2 && calls == 6 && c[0].others == 0);
    CHECK(c[2].measured == 1e-4 && c[1].measured == 2e-4);
    CHECK(fabs(c[0].measured - (3e-4 + 1e-5)) < 1e-12); /* its best round */
    o.others = 0.3; /* a busy one: every round, their mean */
    o.round_seconds = 1e-9;
    calls = 0;
    CHECK_OK(pml_choose(&g, &train, 16, c, 3, &o, &best));
    CHECK(best == 2 && calls == 6 && c[0].others == 0.3);
    CHECK(fabs(c[0].measured - (3e-4 + 2.5e-5)) < 1e-12 && c[2].measured == 1e-4);
    o.others = 0; /* quiet, a long round: one */
    calls = 0;
    CHECK_OK(pml_choose(&g, &train, 16, c, 3, &o, &best));
    CHECK(best == 2 && calls == 3);
    o.others = -1;
    o.round_seconds = 0;
    /* one candidate measured for real: a step time, and the choice is it */
    pml_candidate one = {.name = "per-operator", .threads = 1};
    CHECK_OK(pml_choose(&g, &train, 16, &one, 1, NULL, &best));
    CHECK(best == 0 && one.measured > 0 && isfinite(one.measured));
    CHECK(pml_choose(&g, &train, 16, c, 0, &o, &best) == PML_EINVAL);
    /* other processes busy: two cores are kept over one only when their trial beat it by the
     * margin; a quiet machine keeps the fastest */
    pml_candidate two[2] = {{.name = "data-parallel plan", .machine = &m, .plan = &p, .threads = 2},
                            {.name = "one core", .threads = 1}};
    o.measure = fake_close;
    o.rounds = 1;
    const double close[] = {0.9e-4, 0.7e-4};
    const int busy_pick[] = {1, 0};
    for (int k = 0; k < 2; k++) {
        o.ud = (void *)&close[k];
        o.others = 0.3;
        CHECK_OK(pml_choose(&g, &train, 16, two, 2, &o, &best));
        CHECK_MSG(best == busy_pick[k] && two[0].others == 0.3, "two cores at %g: %d", close[k],
                  best);
        o.others = 0;
        CHECK_OK(pml_choose(&g, &train, 16, two, 2, &o, &best));
        CHECK(best == 0 && two[1].measured == 1e-4);
    }
    pml_plan_free(&p);
    pml_machine_free(&m);
    /* when a candidate's trial stops: enough steps and time; a slow model's few steps; one
     * step of seconds; clearly slower than the best so far */
    pml_choose_opts d = pml_choose_opts_default();
    CHECK(!pml_trial_done(&d, 9, 0.3, 0.033) && pml_trial_done(&d, 10, 0.1, 0.01));
    CHECK(!pml_trial_done(&d, 10, 0.05, 0.005)); /* small steps: 0.1 s of them */
    CHECK(!pml_trial_done(&d, 2, 0.6, 0.3) && pml_trial_done(&d, 3, 0.9, 0.3));
    CHECK(!pml_trial_done(&d, 1, 1.5, 1.5) && pml_trial_done(&d, 1, 21.0, 21.0));
    d.cutoff = 0.2;
    CHECK(!pml_trial_done(&d, 2, 0.02, 0.01) && pml_trial_done(&d, 3, 0.0009, 0.31)); /* 1.55x */
    CHECK(!pml_trial_done(&d, 3, 0.0009, 0.29));
    CHECK(!pml_trial_done(&d, 1, 0.39, 0.39) && pml_trial_done(&d, 1, 0.41, 0.41)); /* 2.05x */
    CHECK(!pml_trial_done(&d, 1, 0.5, 0.35)); /* one step under 2x: not yet */
    /* a trial is skipped only when it is long and a large part of a short run */
    CHECK(pml_trial_worth(4, 0.0003, 20) && pml_trial_worth(4, 1.2, 100));
    CHECK(pml_trial_worth(4, 21.0, 1000) && !pml_trial_worth(4, 21.0, 6));
    CHECK(!pml_trial_worth(4, 1.2, 20) && pml_trial_worth(4, 0, 6) && pml_trial_worth(4, 5.0, 0));
    pml_graph_free(&g);
    pml_data_free(&train);
}

/* the choice is cached by model, batch and machine; anything else is measured again */
static void t_choice_cache(void)
{
    char dir[] = "/tmp/pml-test-choice-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *old = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", dir, 1);
    pml_graph g;
    pml_machine m2, m4;
    CHECK_OK(pml_model_build("mlp:units=8", &g));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:2 pu:1", &m2));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:4 pu:1", &m4));
    pml_candidate c[3] = {{.name = "search plan", .measured = 3e-4},
                          {.name = "per-operator", .measured = 2e-4},
                          {.name = "one core", .measured = 1e-4}};
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == -1); /* missing */
    pml_choice_save(&g, &m2, 32, c, 3, 2);
    c[0].measured = c[1].measured = c[2].measured = INFINITY;
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == 2);
    CHECK(c[0].measured == 3e-4 && c[1].measured == 2e-4 && c[2].measured == 1e-4);
    CHECK(pml_choice_load(&g, &m2, 64, c, 3) == -1); /* another batch */
    CHECK(pml_choice_load(&g, &m4, 32, c, 3) == -1); /* another machine */
    pml_graph h;
    CHECK_OK(pml_model_build("mlp:units=9", &h));
    CHECK(pml_choice_load(&h, &m2, 32, c, 3) == -1); /* another model */
    CHECK(pml_choice_load(&g, &m2, 32, c, 2) == -1); /* a winner that is not a candidate now */
    /* a corrupted entry is not believed */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "for f in '%s'/pml/choices/*.txt; do printf 'garbage' > \"$f\"; done",
             dir);
    CHECK(system(cmd) == 0);
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == -1);
    pml_choice_save(&g, &m2, 32, c, 3, 1);
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == 1);
    /* measured while others used the machine: provisional, measured again */
    c[2].others = PML_CHOICE_QUIET;
    pml_choice_save(&g, &m2, 32, c, 3, 2);
    c[0].measured = INFINITY;
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == -1);
    CHECK(c[0].measured == INFINITY); /* nothing believed */
    c[0].measured = 3e-4;
    c[2].others = 0.02; /* a quiet machine */
    pml_choice_save(&g, &m2, 32, c, 3, 2);
    CHECK(pml_choice_load(&g, &m2, 32, c, 3) == 2);
    pml_graph_free(&h);
    pml_graph_free(&g);
    pml_machine_free(&m2);
    pml_machine_free(&m4);
    if (old) {
        setenv("XDG_CACHE_HOME", old, 1);
        free(old);
    } else {
        unsetenv("XDG_CACHE_HOME");
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* An executor's state given to another (as a re-check that switches does): the run goes on as
 * if it had not switched. */
static void t_copy_state(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("fashion-cnn:filters=4,units=8", &g));
    pml_dataset d;
    CHECK_OK(pml_data_synthetic(g.nodes[g.input].out, g.classes, 64, 3, &d));
    pml_exec_opts eo = {.batch = 16, .threads = 1, .seed = 5};
    pml_exec *a, *b, *c;
    CHECK_OK(pml_exec_create(&g, &eo, &a));
    CHECK_OK(pml_exec_create(&g, &eo, &b));
    eo.threads = 2; /* another way to run it */
    CHECK_OK(pml_exec_create(&g, &eo, &c));
    pml_optim oa, ob;
    pml_optim_defaults(&oa, PML_OPTIM_ADAM);
    pml_optim_defaults(&ob, PML_OPTIM_ADAM);
    CHECK_OK(pml_optim_alloc(&oa, g.nparams));
    CHECK_OK(pml_optim_alloc(&ob, g.nparams));
    int32_t idx[16];
    double la = 0, lb = 0;
    for (int s = 0; s < 8; s++) {
        for (int i = 0; i < 16; i++) idx[i] = (s * 16 + i) % 64;
        pml_exec *run = s < 4 ? b : c;
        if (s == 4) pml__exec_copy_state(c, b); /* b's run switches to c */
        pml_step_result r1, r2;
        pml_data_gather(&d, idx, 16, pml_exec_input(a), pml_exec_labels(a));
        pml_data_gather(&d, idx, 16, pml_exec_input(run), pml_exec_labels(run));
        CHECK_OK(pml_exec_train_step(a, 16, &oa, &r1));
        CHECK_OK(pml_exec_train_step(run, 16, &ob, &r2));
        la = r1.loss_sum, lb = r2.loss_sum;
        CHECK_NEAR(lb, la, 1e-4);
    }
    CHECK(la > 0 && lb > 0);
    pml_optim_free(&oa);
    pml_optim_free(&ob);
    pml_exec_destroy(a);
    pml_exec_destroy(b);
    pml_exec_destroy(c);
    pml_data_free(&d);
    pml_graph_free(&g);
}

/* A step in two halves (gradients, then updates) is a step: same losses, with a plan or not; a
 * caller may change the gradients in between (here: doubled, then halved back). */
static void t_grad_then_apply(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("fashion-cnn:filters=4,units=8", &g));
    pml_dataset d;
    CHECK_OK(pml_data_synthetic(g.nodes[g.input].out, g.classes, 64, 3, &d));
    pml_machine here;
    CHECK_OK(pml_machine_load(NULL, &here));
    pml_plan p;
    CHECK_OK(pml_plan_data_parallel(&p, &g, &here, 16));
    for (int mode = 0; mode < 2; mode++) {
        pml_exec_opts eo = {.batch = 16, .threads = 2, .seed = 5};
        if (mode == 1) eo.machine = &here, eo.plan = &p;
        pml_exec *a, *b;
        CHECK_OK(pml_exec_create(&g, &eo, &a));
        CHECK_OK(pml_exec_create(&g, &eo, &b));
        pml_optim oa, ob;
        pml_optim_defaults(&oa, PML_OPTIM_ADAM);
        pml_optim_defaults(&ob, PML_OPTIM_ADAM);
        CHECK_OK(pml_optim_alloc(&oa, g.nparams));
        CHECK_OK(pml_optim_alloc(&ob, g.nparams));
        int32_t idx[16];
        for (int s = 0; s < 6; s++) {
            for (int i = 0; i < 16; i++) idx[i] = (s * 16 + i) % 64;
            pml_data_gather(&d, idx, 16, pml_exec_input(a), pml_exec_labels(a));
            pml_data_gather(&d, idx, 16, pml_exec_input(b), pml_exec_labels(b));
            pml_step_result r1, r2;
            CHECK_OK(pml_exec_train_step(a, 16, &oa, &r1));
            CHECK_OK(pml_exec_grad_step(b, 16, &r2));
            float *gr = pml_exec_grads(b);
            for (size_t k = 0; k < g.nparams; k++) gr[k] *= 2.0f;
            for (size_t k = 0; k < g.nparams; k++) gr[k] *= 0.5f;
            CHECK_OK(pml_exec_apply(b, &ob));
            CHECK_MSG(r1.loss_sum == r2.loss_sum, "%s, step %d: %.9g vs %.9g",
                      mode ? "plan" : "per-operator", s, r1.loss_sum, r2.loss_sum);
        }
        pml_optim_free(&oa);
        pml_optim_free(&ob);
        pml_exec_destroy(a);
        pml_exec_destroy(b);
    }
    pml_plan_free(&p);
    pml_machine_free(&here);
    pml_data_free(&d);
    pml_graph_free(&g);
}

typedef struct recheck_log {
    int calls;
    char from[48], to[48];
} recheck_log;

static void log_recheck(void *ud, const pml_candidate *from, const pml_candidate *to)
{
    recheck_log *l = ud;
    l->calls++;
    snprintf(l->from, sizeof l->from, "%s", from->name);
    snprintf(l->to, sizeof l->to, "%s", to->name);
}

/* Steps far slower than the running choice measured: each alternative runs a window of steps in
 * the run itself, and the run goes on with the fastest there, parameters and all: the losses are
 * those of a run that never switched, and the alternatives' `measured` are this run's. */
static void t_recheck_switches(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 8, 8}, 4, 3200, 1, &train));
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=8,size=8,classes=4", &g));
    pml_train_opts o = opts(3, 16, 1); /* 600 steps: a re-check's windows take 400 */
    pml_train_result plain, r;
    CHECK_OK(pml_train(&g, &train, NULL, &o, &plain));
    /* two ways on one thread, each claiming 1 ns a step: the one it starts with looks slow at
     * once, then both run windows in turn, and the faster in the run wins */
    pml_candidate alt[2] = {{.name = "per-operator", .threads = 1, .measured = 1e-9},
                            {.name = "per-operator too", .threads = 1, .measured = 1e-9}};
    recheck_log l = {0};
    o.alternatives = alt;
    o.nalternatives = 2;
    o.current = 0;
    o.cb = (pml_train_cb){.ud = &l, .rechecked = log_recheck};
    CHECK_OK(pml_train(&g, &train, NULL, &o, &r));
    CHECK_MSG(l.calls >= 1 && l.calls <= 3, "%d re-checks", l.calls); /* at most 3 */
    CHECK(strcmp(l.from, "per-operator") == 0 || strcmp(l.from, "per-operator too") == 0);
    CHECK(isfinite(alt[0].measured) && alt[0].measured > 1e-9);
    CHECK(isfinite(alt[1].measured) && alt[1].measured > 1e-9); /* tried in the run */
    CHECK(r.epochs_run == 3 && plain.epochs_run == 3);
    for (int ep = 0; ep < 3 && r.epochs_run == 3 && plain.epochs_run == 3; ep++)
        CHECK_NEAR(r.epochs[ep].loss, plain.epochs[ep].loss, 1e-6);
    pml_train_result_free(&r);
    pml_train_result_free(&plain);
    pml_graph_free(&g);
    pml_data_free(&train);
}

/* A fake clock for the run's watch: the running alternative's step takes `base[running]`,
 * except during a slow spell (the first `spell` steps) that slows every choice `slow` times. */
typedef struct fake_clock {
    double base[2], slow;
    long spell, steps;
    int runs[2]; /* steps each alternative ran */
} fake_clock;

static double fake_seconds(void *ud, int running, double measured)
{
    fake_clock *f = ud;
    (void)measured;
    if (running < 0 || running > 1) return 1.0; /* not expected: fails the checks below */
    f->runs[running]++;
    return f->base[running] * (f->steps++ < f->spell ? f->slow : 1.0);
}

typedef struct recheck_and_clock {
    recheck_log log;
    fake_clock clock;
} recheck_and_clock;

static void log_recheck2(void *ud, const pml_candidate *from, const pml_candidate *to)
{
    log_recheck(&((recheck_and_clock *)ud)->log, from, to);
}
static double fake_seconds2(void *ud, int running, double measured)
{
    return fake_seconds(&((recheck_and_clock *)ud)->clock, running, measured);
}

/* What a re-check decides, on a fake clock (no timing): a slow spell of the machine that slows
 * every choice alike sets a re-check off, and the choice running is measured again beside the
 * others, so it stays (the window that set it off counted against it once, and an alternative
 * 20% slower won); a choice that really is slower (a busy core) loses to the faster. */
static void t_recheck_fair(void)
{
    pml_dataset train;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 8, 8}, 4, 3200, 1, &train));
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=8,size=8,classes=4", &g));
    for (int c = 0; c < 3; c++) {
        pml_train_opts o = opts(2, 16, 1); /* 400 steps */
        pml_candidate alt[2] = {{.name = "running", .threads = 1, .measured = 1e-3},
                                {.name = "other", .threads = 1, .measured = 1.1e-3}};
        recheck_and_clock rc;
        memset(&rc, 0, sizeof rc);
        if (c == 0) /* a slow spell of 100 steps: 3x for all; then the other is 20% slower */
            rc.clock = (fake_clock){.base = {1e-3, 1.2e-3}, .slow = 3, .spell = 100};
        else if (c == 1) /* the running choice is 3x slower than its trial said; the other not */
            rc.clock = (fake_clock){.base = {3e-3, 1.2e-3}, .slow = 1, .spell = 0};
        else /* the other takes 0.1 s a step (a core another process keeps busy): its windows
              * end after 3 steps (WINDOW_SECONDS), not after the 50 the first's speed gives */
            rc.clock = (fake_clock){.base = {3e-3, 0.1}, .slow = 1, .spell = 0};
        o.alternatives = alt;
        o.nalternatives = 2;
        o.current = 0;
        o.cb = (pml_train_cb){.ud = &rc, .rechecked = log_recheck2, .step_seconds = fake_seconds2};
        pml_train_result r;
        CHECK_OK(pml_train(&g, &train, NULL, &o, &r));
        CHECK_MSG(rc.log.calls == 1, "case %d: %d re-checks", c, rc.log.calls);
        CHECK_MSG(strcmp(rc.log.from, "running") == 0, "case %d: from %s", c, rc.log.from);
        CHECK_MSG(strcmp(rc.log.to, c == 1 ? "other" : "running") == 0, "case %d: to %s", c,
                  rc.log.to);
        /* the windows: each ran twice (after the 100 steps that set it off) */
        if (c < 2)
            CHECK_MSG(rc.clock.runs[1] >= 20, "case %d: the other ran %d steps", c, rc.clock.runs[1]);
        else
            CHECK_MSG(rc.clock.runs[1] == 6, "case %d: the other ran %d steps", c, rc.clock.runs[1]);
        CHECK_NEAR(alt[0].measured, c == 0 ? 1e-3 : 3e-3, 1e-9);
        CHECK_NEAR(alt[1].measured, c == 2 ? 0.1 : 1.2e-3, 1e-9);
        pml_train_result_free(&r);
    }
    pml_graph_free(&g);
    pml_data_free(&train);
}

/* Data-parallel ranks' shares of a batch by their speeds: the shortest slowest rank, within
 * the executor's capacity, at least a sample each, ties to the lower rank. */
static void t_shares_balance(void)
{
    struct {
        double rate[3];
        int parts, m, cap, want[3];
    } c[] = {
        {{1000, 1000}, 2, 32, 24, {16, 16}},
        {{1000, 1000 / 1.5}, 2, 32, 24, {19, 13}}, /* 19/1000 vs 13/666.7: 19.5 ms */
        {{1000, 100}, 2, 32, 24, {24, 8}},         /* the capacity holds: 3x the samples, not 10x */
        {{1, 1e-6}, 2, 32, 32, {31, 1}},           /* a rank all but stopped keeps one sample */
        {{3, 2, 1}, 3, 30, 30, {15, 10, 5}},
        {{1, 1}, 2, 3, 3, {2, 1}},                 /* a tie: the lower rank */
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        int got[3] = {0, 0, 0};
        const double t = pml__shares_balance(c[k].rate, c[k].parts, c[k].m, c[k].cap, got);
        double want_t = 0;
        for (int r = 0; r < c[k].parts; r++) {
            CHECK_MSG(got[r] == c[k].want[r], "case %zu rank %d: %d samples, want %d", k, r,
                      got[r], c[k].want[r]);
            if (c[k].want[r] / c[k].rate[r] > want_t) want_t = c[k].want[r] / c[k].rate[r];
        }
        CHECK_NEAR(t, want_t, 1e-12 * want_t);
        CHECK_NEAR(pml__shares_time(c[k].rate, c[k].parts, got), t, 1e-12 * t);
    }
    /* more samples than the ranks may hold: refused */
    int got[2];
    CHECK(pml__shares_balance((double[]){1, 1}, 2, 32, 15, got) < 0);
}

static const pml_test tests[] = {
    {"shares_balance", t_shares_balance},
    {"mlp_learns_fashion_subset", t_mlp_learns_fashion_subset},
    {"threads_agree", t_threads_agree},
    {"max_steps_and_partial_batches", t_max_steps_and_partial_batches},
    {"stop_request", t_stop_request},
    {"synthetic_is_learnable", t_synthetic_is_learnable},
    {"one_logit_learns", t_one_logit_learns},
    {"bad_options", t_bad_options},
    {"prefetch_same_as_plain", t_prefetch_same_as_plain},
    {"prefetch_with_plan", t_prefetch_with_plan},
    {"progress_reports", t_progress_reports},
    {"signals_stop", t_signals_stop},
    {"bad_plans", t_bad_plans},
    {"choose_picks_fastest", t_choose_picks_fastest},
    {"choice_cache", t_choice_cache},
    {"recheck_switches", t_recheck_switches},
    {"recheck_fair", t_recheck_fair},
    {"copy_state", t_copy_state},
    {"grad_then_apply", t_grad_then_apply},
    {0, 0},
};

PML_TEST_MAIN(tests)
