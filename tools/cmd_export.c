/* pml export — writes a model as a model DOT file, or with its weights as an ONNX model. */
#include "cli.h"

#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char export_intro[] =
    "usage: pml export MODEL -o FILE.dot|FILE.onnx [--seed N]\n"
    "\n"
    "Writes MODEL (a zoo name with optional parameters, e.g. resnet50 or\n"
    "mlp:units=512,layers=8, or a model .dot file) as a model DOT file: one node per operator\n"
    "with every attribute it needs (op=conv2d, out=64, kernel=3, stride=1, padding=same, ...),\n"
    "one edge per tensor from producer to consumer (input=K orders a consumer's inputs), and\n"
    "the graph attributes input_shape and classes. The format is described in models/models.h;\n"
    "every command that takes a MODEL reads such a file. The file is written under a temporary\n"
    "name and renamed: it is the old file or the complete new one, never a part (through a\n"
    "symbolic link, the file it leads to is replaced; a device or a FIFO is written to).\n"
    "\n"
    "\n"
    "With -o FILE.onnx it writes an ONNX model (opset 13; 14 with HardSwish) with the weights:\n"
    "an ONNX model's own, a saved model's (.pml, pml train --save), or for a zoo name or .dot\n"
    "file pml's initialisation from --seed. One ONNX node per operator (a fused relu as a Relu\n"
    "after it), weights as initializers in ONNX's layouts, input (N, C, H, W), (N, C, D, H, W)\n"
    "for a 3-D model or (N, C), with N symbolic, the logits as the output. pml, and ONNX's\n"
    "checker, read it back.\n"
    "\n";

static const cli_opt export_opts[] = {
    {"output", 'o', "FILE", "the file to write (.dot or .gv, .onnx), or - for standard output (DOT)"},
    {"seed", 0, "N", "the weights of a zoo or .dot model (default 1)"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char export_examples[] =
    "examples:\n"
    "  pml export resnet50 -o resnet50.dot\n"
    "  pml export mlp:units=512,layers=8 -o mlp-wide.dot && pml train mlp-wide.dot\n"
    "  pml export trained.pml -o trained.onnx\n";

int cmd_export(int argc, char **argv)
{
    cli c;
    cli_start(&c, "export", argc, argv, export_opts);
    const char *model = NULL, *out = NULL, *a;
    uint64_t seed = 1;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, export_intro, export_opts, export_examples);
            return 0;
        } else if (cli_is(&c, "--output")) {
            out = cli_str(&c);
        } else if (cli_is(&c, "--seed")) {
            seed = cli_u64(&c);
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!model)
        cli_error(&c, "missing MODEL (see pml export --help)");
    else if (!out)
        cli_error(&c, "missing -o FILE.dot (see pml export --help)");
    else if (strcmp(out, "-") != 0 && !cli_dot_name(out) && !pml_model_is_onnx(out))
        cli_error(&c, "-o '%s': export writes DOT (.dot or .gv) or ONNX (.onnx); to draw a model use "
                      "pml viz", out);
    if (c.failed) return EXIT_USAGE;

    pml_graph g;
    pml_status st;
    if (pml_model_is_onnx(out)) {
        pml_onnx m;
        if ((st = pml_infer_load(model, seed, &m)) == PML_OK)
            st = pml_onnx_write(&m.g, m.params, m.state, out);
        pml_onnx_free(&m);
    } else if ((st = pml_model_load(model, &g)) == PML_OK) {
        st = pml_model_write_dot(&g, out); /* "-": standard output */
        pml_graph_free(&g);
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml export: %s\n", pml_errmsg());
        return cli_exit_code(st);
    }
    return 0;
}
