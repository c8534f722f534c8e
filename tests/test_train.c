/* Training-loop tests on small subsets: learning happens, validation split, step limits,
 * threads agree, stop requests end training cleanly. */
#include "models.h"
#include "runtime.h"
#include "test.h"

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
    pml_graph_free(&g);
    pml_graph_free(&h);
    pml_data_free(&train);
}

static const pml_test tests[] = {
    {"mlp_learns_fashion_subset", t_mlp_learns_fashion_subset},
    {"threads_agree", t_threads_agree},
    {"max_steps_and_partial_batches", t_max_steps_and_partial_batches},
    {"stop_request", t_stop_request},
    {"synthetic_is_learnable", t_synthetic_is_learnable},
    {"bad_options", t_bad_options},
    {0, 0},
};

PML_TEST_MAIN(tests)
