/* pml infer — a model's forward pass on tensor files (ONNX TensorProto .pb or NumPy .npy). */
#include "cli.h"

#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char infer_intro[] =
    "usage: pml infer MODEL --input DIR|FILE [--input FILE ...] [-o DIR] [options]\n"
    "\n"
    "Runs MODEL's forward pass (inference mode: dropout off, batchnorm's running statistics)\n"
    "on input tensors and writes its outputs. MODEL is an ONNX model (.onnx: its initializers\n"
    "are its weights), a saved model (.pml, pml train --save), or a zoo name or model .dot file\n"
    "(weights initialised from --seed); the output of a .pml, zoo or .dot model is its logits.\n"
    "\n"
    "Inputs are the ONNX graph's inputs that no initializer gives, in order: the first is the\n"
    "model's input (N samples: (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W)), any others\n"
    "are weights (as in ONNX's node tests). --input DIR reads DIR/input_0.pb, input_1.pb, ...\n"
    "(an ONNX test data set) or input_0.npy, ...; --input FILE, repeated, names the files in\n"
    "order. An integer input (a Reshape's shape) or a scalar is folded when the model is read.\n"
    "\n";

static const cli_opt infer_opts[] = {
    {"input", 0, "DIR|FILE", "input tensors (required)"},
    {"output", 'o', "DIR", "write output_0.pb, output_1.pb ... there (the folder is made if\n"
                           "missing)"},
    {"format", 0, "pb|npy", "the output's format (default pb)"},
    {"check", 0, "[=DIR]",
     "compare the outputs with DIR/output_0.pb ... (or .npy; default: the --input\n"
     "folder): |pml - expected| <= atol + rtol * |expected| for every\n"
     "element; prints the largest errors; exit 1 when any differs"},
    {"rtol", 0, "X", "the relative tolerance of --check (default 1e-3, as ONNX's backend tests)"},
    {"atol", 0, "X", "the absolute tolerance of --check (default 1e-7)"},
    {"batch", 0, "N", "samples per pass (default: all at once)"},
    {"threads", 0, "N", "cores to run on (default: all)"},
    {"seed", 0, "N",
     "the weights of a zoo or .dot model, and of ONNX weights no\n"
     "initializer gives (default 1)"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char infer_examples[] =
    "exit status: 0 done (and --check agreed), 1 an error or a difference, 2 bad usage, 3 the\n"
    "model uses an operator or attribute pml does not support (the message names it).\n"
    "\n"
    "examples:\n"
    "  pml infer model.onnx --input test_data_set_0 --check\n"
    "  pml infer resnet50.onnx --input image.npy -o out --format npy\n";

enum { EXIT_UNSUPPORTED = 3, MAX_INPUTS = 64 };

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* DIR/NAME_K.pb, else DIR/NAME_K.npy; false when neither exists */
static bool data_file(const char *dir, const char *name, int k, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s_%d.pb", dir, name, k);
    if (is_file(out)) return true;
    snprintf(out, cap, "%s/%s_%d.npy", dir, name, k);
    return is_file(out);
}

/* compares y with the expected tensor at \p expect_path; prints the result. \return true when
 * they agree */
static bool check(const char *model_path, const char *expect_path, const pml_tensor *y,
                  double rtol, double atol)
{
    pml_tensor e;
    if (pml_tensor_read(expect_path, &e) != PML_OK) {
        fprintf(stderr, "pml infer: %s\n", pml_errmsg());
        return false;
    }
    pml_tensor_diff d;
    bool ok = pml_tensor_compare(y, &e, rtol, atol, &d);
    if (!ok)
        fprintf(stderr, "pml infer: %s: the output has %zu values (rank %d), %s has %zu (rank %d)\n",
                cli_safe(model_path), y->n, y->rank, cli_safe(expect_path), e.n, e.rank);
    else if (d.bad)
        printf("%s, output '%s': %zu of %zu values differ (the largest at %zu: %.9g, expected "
               "%.9g); max abs error %.3g, max rel error %.3g\n",
               cli_safe(model_path), cli_safe(y->name ? y->name : ""), d.bad, e.n, d.worst, (double)y->data[d.worst],
               (double)e.data[d.worst], d.max_abs, d.max_rel);
    else
        printf("%s, output '%s': %zu values agree (max abs error %.3g, max rel error %.3g)\n",
               cli_safe(model_path), cli_safe(y->name ? y->name : ""), e.n, d.max_abs, d.max_rel);
    pml_tensor_free(&e);
    return ok && d.bad == 0;
}

int cmd_infer(int argc, char **argv)
{
    cli c;
    cli_start(&c, "infer", argc, argv, infer_opts);
    const char *path = NULL, *out_dir = NULL, *check_dir = NULL, *a, *inputs[MAX_INPUTS];
    int ninputs = 0, threads = pml_machine_cores();
    long batch = 0;
    double rtol = 1e-3, atol = 1e-7;
    bool npy = false, do_check = false;
    uint64_t seed = 1;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &path, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, infer_intro, infer_opts, infer_examples);
            return 0;
        } else if (cli_is(&c, "--input")) {
            const char *v = cli_str(&c);
            if (v && ninputs == MAX_INPUTS) cli_error(&c, "more than %d --input", MAX_INPUTS);
            else if (v) inputs[ninputs++] = v;
        } else if (cli_is(&c, "--output")) {
            out_dir = cli_str(&c);
        } else if (cli_is(&c, "--format")) {
            const char *v = cli_str(&c);
            if (v && strcmp(v, "npy") != 0 && strcmp(v, "pb") != 0)
                cli_error(&c, "--format '%s': pb or npy", v);
            npy = v && strcmp(v, "npy") == 0;
        } else if (cli_is(&c, "--check")) {
            do_check = true;
            check_dir = c.value; /* --check=DIR (an optional value) */
        } else if (cli_is(&c, "--rtol")) {
            rtol = cli_double(&c, 0, 1e9, false, false);
        } else if (cli_is(&c, "--atol")) {
            atol = cli_double(&c, 0, 1e9, false, false);
        } else if (cli_is(&c, "--batch")) {
            batch = cli_long(&c, 1, 1 << 20);
        } else if (cli_is(&c, "--threads")) {
            threads = (int)cli_long(&c, 1, 64);
        } else if (cli_is(&c, "--seed")) {
            seed = cli_u64(&c);
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!path) cli_error(&c, "missing MODEL (see pml infer --help)");
    else if (!ninputs) cli_error(&c, "missing --input DIR|FILE (see pml infer --help)");
    else if (ninputs > 1 && is_dir(inputs[0]))
        cli_error(&c, "--input '%s' is a folder: give one folder or files", inputs[0]);
    else if (do_check && !check_dir && !is_dir(inputs[0]))
        cli_error(&c, "--check without a folder needs --input DIR (the expected outputs' folder)");
    if (c.failed) return EXIT_USAGE;

    /* the input files first: an integer input (a shape) is folded when the model is read */
    pml_tensor t[MAX_INPUTS], y[PML_ONNX_MAX_OUTPUTS];
    memset(t, 0, sizeof t);
    memset(y, 0, sizeof y);
    int rc = 1, nt = 0;
    pml_onnx m;
    memset(&m, 0, sizeof m);
    pml_graph_init(&m.g, NULL);
    pml_status st = PML_OK;
    const char *in_dir = is_dir(inputs[0]) ? inputs[0] : NULL;
    for (int k = 0; k < (in_dir ? MAX_INPUTS : ninputs); k++) {
        char p[4096];
        if (!in_dir) snprintf(p, sizeof p, "%s", inputs[k]);
        else if (!data_file(in_dir, "input", k, p, sizeof p)) break;
        if ((st = pml_tensor_read(p, &t[k])) != PML_OK) goto out;
        nt = k + 1;
    }
    if ((st = pml_infer_load_given(path, seed, t, nt, &m)) != PML_OK) goto out;
    if ((!in_dir && ninputs != m.ninputs) || m.ninputs > MAX_INPUTS) {
        st = pml_fail(PML_EINVAL, "%s has %d inputs, %d --input given", path, m.ninputs, ninputs);
        goto out;
    }
    if (nt < m.ninputs) {
        st = pml_fail(PML_ENOTFOUND, "%s: no input_%d.pb or input_%d.npy for input '%s'", in_dir,
                      nt, nt, m.inputs[nt].name);
        goto out;
    }
    if ((st = pml_infer_run(&m, t, threads, (int)batch, y)) != PML_OK) goto out;
    if (out_dir && mkdir(out_dir, 0777) != 0 && !is_dir(out_dir)) {
        st = pml_fail(PML_EIO, "-o %s: cannot make the folder", out_dir);
        goto out;
    }
    for (int k = 0; out_dir && k < m.noutputs; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/output_%d.%s", out_dir, k, npy ? "npy" : "pb");
        if ((st = pml_tensor_write(p, &y[k])) != PML_OK) {
            /* all the outputs or none: those written already go */
            for (int j = 0; j < k; j++) {
                snprintf(p, sizeof p, "%s/output_%d.%s", out_dir, j, npy ? "npy" : "pb");
                unlink(p);
            }
            goto out;
        }
    }
    rc = 0;
    for (int k = 0; do_check && k < m.noutputs; k++) {
        char p[4096];
        const char *dir = check_dir ? check_dir : in_dir;
        if (!data_file(dir, "output", k, p, sizeof p)) {
            st = pml_fail(PML_ENOTFOUND, "%s: no output_%d.pb or output_%d.npy to check against",
                          dir, k, k);
            rc = 1;
            goto out;
        }
        if (!check(path, p, &y[k], rtol, atol)) rc = 1;
    }
out:
    if (st != PML_OK) {
        fprintf(stderr, "pml infer: %s\n", pml_errmsg());
        rc = st == PML_EUNSUPPORTED ? EXIT_UNSUPPORTED : cli_exit_code(st);
    }
    for (int k = 0; k < m.noutputs && k < PML_ONNX_MAX_OUTPUTS; k++) pml_tensor_free(&y[k]);
    for (int k = 0; k < nt; k++) pml_tensor_free(&t[k]);
    pml_onnx_free(&m);
    return rc;
}
