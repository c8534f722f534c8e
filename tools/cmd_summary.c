/* pml summary — a model as Keras' model.summary() shows one: a row per layer with its output
 * shape, parameters and FLOPs, and the totals. */
#include "cli.h"

#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char summary_intro[] =
    "usage: pml summary MODEL [--json]\n"
    "\n"
    "Prints MODEL (a zoo name with optional parameters, a model .dot file, an ONNX model or a\n"
    "saved model) as Keras' model.summary() does: one row per layer in the order they run,\n"
    "with its type, output shape (per sample, channels first: (None, C, H, W), or (None, C)\n"
    "for a vector), trainable parameters, forward FLOPs per sample and the layers it reads;\n"
    "then the totals (trainable parameters, non-trainable state such as batchnorm's running\n"
    "statistics, FLOPs per sample).\n"
    "\n";

static const cli_opt summary_opts[] = {
    {"json", 0, NULL,
     "one JSON object: {\"version\",\"model\",\"input\",\"classes\",\"parameters\",\n"
     "\"state\",\"flops\",\"layers\":[{\"name\",\"op\",\"output\",\"parameters\",\n"
     "\"flops\",\"inputs\"}]}"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static size_t node_params(const pml_node *n)
{
    size_t k = 0;
    for (int j = 0; j < n->nparam; j++) k += n->param_size[j];
    return k;
}

static size_t node_state(const pml_node *n)
{
    size_t k = 0;
    for (int j = 0; j < n->nstate; j++) k += n->state_size[j];
    return k;
}

/* (None, C, H, W), or (None, C) when H = W = 1 */
static void shape_str(pml_shape s, char *buf, size_t cap)
{
    if (s.h == 1 && s.w == 1) snprintf(buf, cap, "(None, %d)", s.c);
    else snprintf(buf, cap, "(None, %d, %d, %d)", s.c, s.h, s.w);
}

/* 1,234,567 */
static void grouped(size_t v, char *buf, size_t cap)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%zu", v), o = 0;
    for (int i = 0; i < n && o + 2 < (int)cap; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

/* 4.11 G, 236 M, 12.5 K */
static void si(double v, char *buf, size_t cap)
{
    static const char *const unit[] = {"", " K", " M", " G", " T", " P"};
    int u = 0;
    while (v >= 1000 && u < 5) v /= 1000, u++;
    snprintf(buf, cap, u ? "%.3g%s" : "%.0f%s", v, unit[u]);
}

int cmd_summary(int argc, char **argv)
{
    cli c;
    cli_start(&c, "summary", argc, argv, summary_opts);
    const char *model = NULL, *a;
    bool json = false;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, summary_intro, summary_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (!c.failed && !model) cli_error(&c, "missing MODEL (see pml summary --help)");
    if (c.failed) return EXIT_USAGE;

    pml_graph g;
    pml_graph_init(&g, NULL);
    pml_status st;
    if (pml_model_is_saved(model)) {
        float *params = NULL, *state = NULL;
        st = pml_saved_read(model, &g, &params, &state);
        free(params);
        free(state);
    } else {
        st = pml_model_load(model, &g);
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml summary: %s\n", cli_safe(pml_errmsg()));
        pml_graph_free(&g);
        return cli_exit_code(st);
    }
    const pml_shape in = g.nodes[g.input].out;
    size_t params = 0, state = 0;
    for (int i = 0; i < g.nnodes; i++) {
        params += node_params(&g.nodes[i]);
        state += node_state(&g.nodes[i]);
    }
    const double flops = pml_graph_flops(&g);
    if (json) {
        cli_json_begin(stdout);
        fputs(",\"model\":", stdout);
        cli_json_str(stdout, g.name);
        printf(",\"input\":[%d,%d,%d],\"classes\":%d,\"parameters\":%zu,\"state\":%zu,"
               "\"flops\":%.17g,\"layers\":[",
               in.c, in.h, in.w, g.classes, params, state, flops);
        for (int k = 0; k < g.nnodes; k++) {
            const pml_node *n = &g.nodes[g.order[k]];
            fputs(k ? ",{\"name\":" : "{\"name\":", stdout);
            cli_json_str(stdout, n->name);
            printf(",\"op\":\"%s\",\"output\":[%d,%d,%d],\"parameters\":%zu,\"flops\":%.17g,"
                   "\"inputs\":[",
                   pml_op_name(n->op), n->out.c, n->out.h, n->out.w, node_params(n),
                   pml_node_flops(&g, g.order[k]));
            for (int j = 0; j < n->nin; j++) {
                if (j) putchar(',');
                cli_json_str(stdout, g.nodes[n->in[j]].name);
            }
            fputs("]}", stdout);
        }
        puts("]}");
        pml_graph_free(&g);
        return 0;
    }
    /* the widths the names need (within reason) */
    int wname = 12;
    for (int i = 0; i < g.nnodes; i++) {
        int w = (int)strlen(cli_safe(g.nodes[i].name)) + (int)strlen(pml_op_name(g.nodes[i].op)) + 3;
        if (w > wname) wname = w > 48 ? 48 : w;
    }
    char s1[64], s2[64], s3[64], row[128];
    printf("Model: \"%s\"\n", cli_safe(g.name));
    const int width = wname + 2 + 22 + 14 + 12 + 2 + 24;
    for (int i = 0; i < width; i++) putchar('_');
    printf("\n%-*s  %-22s %13s %11s  %s\n", wname, "Layer (type)", "Output Shape", "Param #",
           "FLOPs", "Connected to");
    for (int i = 0; i < width; i++) putchar('=');
    putchar('\n');
    for (int k = 0; k < g.nnodes; k++) {
        const int id = g.order[k];
        const pml_node *n = &g.nodes[id];
        snprintf(row, sizeof row, "%s (%s)", cli_safe(n->name), pml_op_name(n->op));
        shape_str(n->out, s1, sizeof s1);
        grouped(node_params(n), s2, sizeof s2);
        si(pml_node_flops(&g, id), s3, sizeof s3);
        printf("%-*.*s  %-22s %13s %11s  ", wname, wname, row, s1, s2, s3);
        for (int j = 0; j < n->nin; j++)
            printf("%s%s", j ? ", " : "", cli_safe(g.nodes[n->in[j]].name));
        putchar('\n');
    }
    for (int i = 0; i < width; i++) putchar('=');
    grouped(params + state, s1, sizeof s1);
    grouped(params, s2, sizeof s2);
    printf("\nTotal params: %s\nTrainable params: %s\n", s1, s2);
    grouped(state, s1, sizeof s1);
    si(flops, s3, sizeof s3);
    printf("Non-trainable params: %s\nForward FLOPs per sample: %s\nInput: %dx%dx%d, %d "
           "classes\n",
           s1, s3, in.c, in.h, in.w, g.classes);
    for (int i = 0; i < width; i++) putchar('_');
    putchar('\n');
    pml_graph_free(&g);
    return 0;
}
