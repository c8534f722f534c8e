/* pml evaluate, pml predict — a saved model (pml train --save) on a test set. */
#include "cli.h"

#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char evaluate_intro[] =
    "usage: pml evaluate MODEL.pml [--data DIR|synthetic] [options]\n"
    "\n"
    "Loads a saved model (pml train --save: the model and its trained weights) and prints its\n"
    "loss and accuracy on the test set, as pml train does after training.\n"
    "\n";

static const cli_opt evaluate_opts[] = {
    {"data", 0, "DIR|synthetic",
     "an MNIST-style folder of IDX files (default for 28x28x1 models:\n"
     PML_FASHION_MNIST_DIR "), a folder of JPEG/PNG images with one\n"
     "subfolder per class (its test/ subfolder when it has train/ and\n"
     "test/, else all of it), or synthetic images (seed --seed)"},
    {"skip-bad", 0, NULL, "image folders: skip images that cannot be decoded"},
    {"test-samples", 0, "N", "the first N test samples only"},
    {"batch", 0, "N", "samples per inference pass (default 32, as Keras)"},
    {"threads", 0, "N", "cores to run on (default: all)"},
    {"seed", 0, "N", "the synthetic data's seed (default 1)"},
    {"json", 0, NULL, "one JSON object: test_loss, test_accuracy, samples"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char predict_intro[] =
    "usage: pml predict MODEL.pml [--data DIR|synthetic] [options]\n"
    "\n"
    "Loads a saved model (pml train --save) and prints, for each test sample in order, the\n"
    "class it predicts and that class's probability (softmax of the logits), and the label:\n"
    "  INDEX CLASS PROBABILITY LABEL\n"
    "or with --json one JSON object per line: {\"index\":..,\"class\":..,\"probability\":..,\n"
    "\"label\":..}.\n"
    "\n";

static const cli_opt predict_opts[] = {
    {"data", 0, "DIR|synthetic", "as for pml evaluate (default for 28x28x1 models: Fashion-MNIST)"},
    {"skip-bad", 0, NULL, "image folders: skip images that cannot be decoded"},
    {"test-samples", 0, "N", "the first N test samples only"},
    {"batch", 0, "N", "samples per inference pass (default 32, as Keras)"},
    {"threads", 0, "N", "cores to run on (default: all)"},
    {"seed", 0, "N", "the synthetic data's seed (default 1)"},
    {"json", 0, NULL, "JSON lines"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static int run(const char *cmd, int argc, char **argv, bool predict)
{
    cli c;
    const cli_opt *opts = predict ? predict_opts : evaluate_opts;
    cli_start(&c, cmd, argc, argv, opts);
    const char *model = NULL, *data = NULL, *a;
    long test_samples = 0;
    int batch = 32, threads = pml_machine_cores(); /* Keras's evaluate and predict: 32 */
    uint64_t seed = 1;
    bool json = false, skip_bad = false;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, predict ? predict_intro : evaluate_intro, opts, NULL);
            return 0;
        } else if (cli_is(&c, "--data")) {
            data = cli_str(&c);
        } else if (cli_is(&c, "--skip-bad")) {
            skip_bad = true;
        } else if (cli_is(&c, "--test-samples")) {
            test_samples = cli_long(&c, 1, 0x7fffffffL);
        } else if (cli_is(&c, "--batch")) {
            batch = (int)cli_long(&c, 1, 1 << 16);
        } else if (cli_is(&c, "--threads")) {
            threads = (int)cli_long(&c, 1, 64);
        } else if (cli_is(&c, "--seed")) {
            seed = cli_u64(&c);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!model) {
        fprintf(stderr, "pml %s: missing MODEL.pml (see pml %s --help)\n", cmd, cmd);
        return EXIT_USAGE;
    }
    pml_graph g;
    float *params = NULL, *state = NULL;
    pml_status st = pml_saved_read(model, &g, &params, &state);
    if (st != PML_OK) {
        fprintf(stderr, "pml %s: %s\n", cmd, pml_errmsg());
        return 1;
    }
    pml_dataset test;
    memset(&test, 0, sizeof test);
    pml_exec *e = NULL;
    int32_t *cls = NULL, *label = NULL;
    float *prob = NULL;
    int rc = 1;
    int skipped = 0;
    if ((st = pml_data_for_model(&g, data, 0, test_samples, seed, skip_bad, &skipped, NULL,
                                 &test)) != PML_OK)
        goto out;
    if (skipped)
        fprintf(stderr, "pml %s: skipped %d bad image%s (without --skip-bad the first is an error "
                "naming it)\n", cmd, skipped, skipped == 1 ? "" : "s");
    pml_exec_opts eo = {.batch = batch, .threads = threads, .seed = seed};
    if ((st = pml_exec_create(&g, &eo, &e)) != PML_OK) goto out;
    memcpy(pml_exec_params(e), params, g.nparams * sizeof(float));
    if (g.nstate) memcpy(pml_exec_state(e), state, g.nstate * sizeof(float));
    if (!predict) {
        double loss, acc;
        if ((st = pml_evaluate(e, &test, batch, &loss, &acc)) != PML_OK) goto out;
        if (json) {
            cli_json_begin(stdout);
            fputs(",\"model\":", stdout);
            cli_json_str(stdout, g.name);
            printf(",\"samples\":%d,\"test_loss\":%.17g,\"test_accuracy\":%.6g}\n", test.n, loss,
                   acc);
        } else {
            printf("Model %s, data %s: %d test samples\nTest loss: %.4f - test accuracy: %.4f\n",
                   cli_safe(g.name), cli_safe(test.name), test.n, loss, acc);
        }
        rc = 0;
        goto out;
    }
    cls = malloc((size_t)test.n * sizeof *cls);
    prob = malloc((size_t)test.n * sizeof *prob);
    label = malloc((size_t)test.n * sizeof *label);
    if (!cls || !prob || !label) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto out;
    }
    if ((st = pml_predict(e, &test, batch, cls, prob, label)) != PML_OK) goto out;
    for (int i = 0; i < test.n; i++) {
        if (json) {
            cli_json_begin(stdout);
            printf(",\"index\":%d,\"class\":%d,\"probability\":%.6g,\"label\":%d}\n", i, cls[i],
                   (double)prob[i], label[i]);
        } else {
            printf("%d %d %.4f %d\n", i, cls[i], (double)prob[i], label[i]);
        }
    }
    rc = 0;
out:
    if (st != PML_OK) fprintf(stderr, "pml %s: %s\n", cmd, pml_errmsg());
    free(cls);
    free(prob);
    free(label);
    pml_exec_destroy(e);
    pml_data_free(&test);
    free(params);
    free(state);
    pml_graph_free(&g);
    return rc;
}

int cmd_evaluate(int argc, char **argv) { return run("evaluate", argc, argv, false); }
int cmd_predict(int argc, char **argv) { return run("predict", argc, argv, true); }
