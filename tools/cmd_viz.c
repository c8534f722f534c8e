/* pml viz — draws a graph: a model now; plans and machines once the planner writes them. */
#include "cli.h"

#include "models/models.h"
#include "planner/planner.h"

#include <stdio.h>
#include <string.h>

static const char viz_intro[] =
    "usage: pml viz GRAPH -o OUT [--collapse]\n"
    "\n"
    "Draws GRAPH with Graphviz's dot layout, top to bottom. GRAPH is a model: a zoo name with\n"
    "optional parameters (e.g. resnet50, mlp:units=512,layers=8) or a model .dot file; a .dot\n"
    "file's graph attribute kind (model, default) says what it holds. GRAPH may also be a\n"
    "machine: a cluster .dot file (kind=machine, see pml topo -o), or this, flexflow-p100,\n"
    "flexflow-k80, cpu-1socket, cpu-2socket or synthetic:DESC; it is drawn with its devices\n"
    "coloured by kind (cpu blue, gpu green, hubs grey), grouped by cluster node, and its\n"
    "links labelled with bandwidth and latency.\n"
    "\n"
    "A plan .dot file (kind=plan, see pml compile) is drawn as its model with each operator\n"
    "filled with its device's colour (striped, one stripe per part, when it runs on several),\n"
    "its parallel config and devices on an extra line (\"n=4 c=2 on 0-7\"), red edges where\n"
    "data changes devices, a legend of the devices, and the machine, batch and strategy on top.\n"
    "\n"
    "A model is drawn with one box per operator (name, op and key attributes, output shape,\n"
    "parameters), edges labelled with tensor shapes, and a title with the model's parameters\n"
    "and FLOPs per sample. OUT's extension picks the format: .svg, .png, .pdf, or .dot (the\n"
    "drawing as DOT with the layout's positions). OUT is written under a temporary name and\n"
    "renamed: on an error nothing is left behind (through a symbolic link, the file it leads to\n"
    "is replaced; a device or a FIFO is written to).\n"
    "\n";

static const cli_opt viz_opts[] = {
    {"output", 'o', "OUT", "the file to write (required)"},
    {"collapse", 0, NULL,
     "fold repeated blocks (residual blocks layer1.0, ..., inception modules\n"
     "Mixed_5b, ...) into one box each, with their parameters and FLOPs"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char viz_examples[] =
    "examples:\n"
    "  pml viz fashion-cnn -o fashion-cnn.png\n"
    "  pml viz inception-v3 --collapse -o inception-v3.svg\n"
    "  pml viz flexflow-k80 -o k80.svg\n"
    "  pml viz alexnet-k80.dot -o alexnet-k80.svg   (a plan from pml compile)\n"
    "  pml viz my-model.dot -o my-model.pdf\n";

/* ---------------------------------------------------------------- kinds of graphs
 * One entry per kind of graph pml draws. A view function gets GRAPH as given and, when GRAPH is a
 * DOT file, the file already parsed (NULL for a zoo spec), and builds the view. Plans and
 * machines are one entry each here, with their view builder in planner/. */

typedef pml_status (*view_fn)(const char *graph, const pml_dot *dot, const pml_viz_opts *o,
                              pml_viz **view);

static pml_status model_view(const char *graph, const pml_dot *dot, const pml_viz_opts *o,
                             pml_viz **view)
{
    pml_graph g;
    pml_status st = dot ? pml_model_from_dot(dot, &g) : pml_model_load(graph, &g);
    if (st != PML_OK) return st;
    st = pml_viz_model(&g, o, view);
    pml_graph_free(&g);
    return st;
}

static pml_status machine_view(const char *graph, const pml_dot *dot, const pml_viz_opts *o,
                               pml_viz **view)
{
    pml_machine m;
    pml_status st = dot ? pml_machine_from_dot(dot, &m) : pml_machine_load(graph, &m);
    if (st != PML_OK) return st;
    st = pml_viz_machine(&m, view);
    pml_machine_free(&m);
    return st;
}

/* A plan names its devices when the machine it names loads by name, is the same machine
 * (fingerprint) and has every device the plan uses; else they are drawn by index. */
static pml_status plan_view(const char *graph, const pml_dot *dot, const pml_viz_opts *o,
                            pml_viz **view)
{
    pml_graph g;
    pml_plan p;
    pml_plan_info info;
    pml_machine m;
    bool named = false;
    (void)graph;
    pml_status st = pml_plan_from_dot(dot, NULL, NULL, &g, &p, &info);
    if (st != PML_OK) return st;
    if (info.machine[0] && pml_machine_is_spec(info.machine) &&
        pml_machine_load(info.machine, &m) == PML_OK) {
        named = (!info.fingerprint[0] || strcmp(info.fingerprint, m.fingerprint) == 0) &&
                pml_plan_check(&p, &g, &m) == PML_OK;
        if (!named) pml_machine_free(&m);
    }
    st = pml_viz_plan(&g, &p, named ? &m : NULL, &info, o, view);
    if (named) pml_machine_free(&m);
    pml_plan_free(&p);
    pml_graph_free(&g);
    return st;
}

static const struct {
    const char *kind;
    view_fn view;
} kinds[] = {
    {"model", model_view},
    {"machine", machine_view},
    {"plan", plan_view},
};

static pml_status draw(const char *graph, const pml_viz_opts *o, const char *out)
{
    pml_dot file, *dot = NULL;
    pml_viz *view = NULL;
    pml_status st;
    const char *kind = "model";
    if (pml_model_is_file(graph) && !pml_model_is_onnx(graph)) {
        if ((st = pml_dot_read(graph, &file)) != PML_OK) return st;
        dot = &file;
        kind = pml_dot_kind(dot);
    } else if (pml_machine_is_spec(graph)) {
        kind = "machine";
    }
    size_t k = 0;
    while (k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k].kind, kind) != 0) k++;
    if (k == sizeof kinds / sizeof kinds[0]) {
        char known[128] = "";
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     kinds[i].kind);
        st = pml_fail(PML_EUNSUPPORTED,
                      "%s: kind=%s: pml viz cannot draw this kind of graph (it "
                      "draws: %s)",
                      graph, kind, known);
    } else {
        st = kinds[k].view(graph, dot, o, &view);
    }
    if (st == PML_OK) st = pml_viz_write(view, out);
    pml_dot_free(dot); /* after: kind points into it */
    pml_viz_free(view);
    return st;
}

int cmd_viz(int argc, char **argv)
{
    cli c;
    cli_start(&c, "viz", argc, argv, viz_opts);
    const char *graph = NULL, *out = NULL, *a;
    pml_viz_opts o = {.collapse = false};
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &graph, a, "GRAPH")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, viz_intro, viz_opts, viz_examples);
            return 0;
        } else if (cli_is(&c, "--output")) {
            out = cli_str(&c);
        } else if (cli_is(&c, "--collapse")) {
            o.collapse = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    pml_viz_format f;
    if (!graph)
        cli_error(&c, "missing GRAPH (see pml viz --help)");
    else if (!out)
        cli_error(&c, "missing -o OUT (.svg, .png, .pdf or .dot; see pml viz --help)");
    else if (pml_viz_format_of(out, &f) != PML_OK)
        cli_error(&c, "-o %s", pml_errmsg());
    if (c.failed) return EXIT_USAGE;
    pml_status st = draw(graph, &o, out);
    if (st != PML_OK) {
        fprintf(stderr, "pml viz: %s\n", pml_errmsg());
        return cli_exit_code(st);
    }
    return 0;
}
