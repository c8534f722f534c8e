/* Drawings: formats from file names, the blocks --collapse folds, and real rendered output (SVG
 * names every operator, PNG has a sane header, laid-out DOT has positions), views built with the
 * generic helpers, nothing printed, nothing left behind on errors. */
#include "models/models.h"
#include "test.h"

#include <fcntl.h>
#include <unistd.h>

static void t_format_of(void)
{
    pml_viz_format f;
    CHECK(pml_viz_format_of("a.svg", &f) == PML_OK && f == PML_VIZ_SVG);
    CHECK(pml_viz_format_of("dir/a.b.PNG", &f) == PML_OK && f == PML_VIZ_PNG);
    CHECK(pml_viz_format_of("/x/y.pdf", &f) == PML_OK && f == PML_VIZ_PDF);
    CHECK(pml_viz_format_of("y.dot", &f) == PML_OK && f == PML_VIZ_DOT);
    CHECK(pml_viz_format_of("y.gv", &f) == PML_OK && f == PML_VIZ_DOT);
    CHECK(pml_viz_format_of("y.jpg", &f) == PML_EINVAL && strstr(pml_errmsg(), "'.jpg'") &&
          strstr(pml_errmsg(), ".svg, .png, .pdf or .dot"));
    CHECK(pml_viz_format_of("a.d/noext", &f) == PML_EINVAL && strstr(pml_errmsg(), "no extension"));
    CHECK(pml_viz_format_of("trailing.", &f) == PML_EINVAL);
}

static bool build(const char *spec, pml_graph *g)
{
    pml_status st = pml_model_load(spec, g);
    CHECK_MSG(st == PML_OK, "%s: %s", spec, pml_errmsg());
    return st == PML_OK;
}

static int blocks(const char *spec, int *block, char (*names)[PML_NAME_MAX], pml_graph *g)
{
    if (!build(spec, g)) return -1;
    return pml_model_blocks(g, block, names);
}

static void t_blocks_resnet(void)
{
    pml_graph g;
    int block[512];
    char names[512][PML_NAME_MAX];
    int nb = blocks("resnet50", block, names, &g);
    CHECK_MSG(nb == 16, "%d blocks", nb);
    if (nb != 16) goto out;
    static const int per_layer[4] = {3, 4, 6, 3};
    int b = 0;
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < per_layer[l]; i++, b++) {
            char want[32];
            snprintf(want, sizeof want, "layer%d.%d", l + 1, i);
            CHECK_MSG(strcmp(names[b], want) == 0, "block %d is '%s', expected '%s'", b, names[b],
                      want);
        }
    for (int i = 0; i < g.nnodes; i++) {
        const char *n = g.nodes[i].name;
        if (strncmp(n, "layer", 5) == 0) {
            /* layerL.B.* goes to block layerL.B */
            CHECK_MSG(block[i] >= 0 && strncmp(n, names[block[i]], strlen(names[block[i]])) == 0 &&
                          n[strlen(names[block[i]])] == '.',
                      "node '%s' in block %d", n, block[i]);
        } else {
            CHECK_MSG(block[i] == -1, "node '%s' is in a block", n);
        }
    }
out:
    pml_graph_free(&g);
}

static void t_blocks_inception(void)
{
    pml_graph g;
    int block[512];
    char names[512][PML_NAME_MAX];
    int nb = blocks("inception-v3", block, names, &g);
    static const char *const want[] = {"Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                                       "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                                       "Mixed_7a", "Mixed_7b", "Mixed_7c"};
    CHECK_MSG(nb == 11, "%d blocks", nb);
    for (int b = 0; b < nb && b < 11; b++) CHECK(strcmp(names[b], want[b]) == 0);
    for (int i = 0; i < g.nnodes && nb == 11; i++) {
        const char *n = g.nodes[i].name;
        /* the module's concat is named like the module; nested concats fold into it too */
        if (strncmp(n, "Mixed_", 6) == 0)
            CHECK_MSG(block[i] >= 0 && strncmp(n, names[block[i]], 8) == 0, "node '%s'", n);
        else
            CHECK_MSG(block[i] == -1, "node '%s' is in a block", n);
    }
    pml_graph_free(&g);
}

static void t_blocks_none(void)
{
    /* chains without merges stay as they are */
    const char *specs[] = {"mlp", "fashion-cnn", "alexnet", "vgg16"};
    int block[512];
    char names[512][PML_NAME_MAX];
    for (int s = 0; s < 4; s++) {
        pml_graph g;
        int nb = blocks(specs[s], block, names, &g);
        CHECK_MSG(nb == 0, "%s: %d blocks", specs[s], nb);
        pml_graph_free(&g);
    }
    pml_graph g;
    int nb = blocks("fixtures/models/good_branches.dot", block, names, &g);
    CHECK_MSG(nb == 2, "%d blocks", nb);
    if (nb == 2) CHECK(strcmp(names[0], "block1") == 0 && strcmp(names[1], "mix") == 0);
    pml_graph_free(&g);
}

/* ---------------------------------------------------------------- rendering */

static char *render(const char *spec, bool collapse, pml_viz_format f, size_t *len)
{
    pml_graph g;
    char *data = NULL;
    *len = 0;
    if (!build(spec, &g)) return NULL;
    pml_viz *v;
    pml_viz_opts o = {.collapse = collapse};
    CHECK_OK(pml_viz_model(&g, &o, &v));
    CHECK_OK(pml_viz_render(v, f, &data, len));
    pml_viz_free(v);
    pml_graph_free(&g);
    return data;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void t_svg_names_every_op(void)
{
    const char *specs[] = {"mlp", "resnet50", "fixtures/models/good_branches.dot"};
    for (int s = 0; s < 3; s++) {
        size_t len;
        char *svg = render(specs[s], false, PML_VIZ_SVG, &len);
        if (!svg) continue;
        pml_graph g;
        build(specs[s], &g);
        CHECK(strstr(svg, "<svg") && strstr(svg, "</svg>"));
        CHECK_MSG(count(svg, "class=\"node\"") == g.nnodes, "%s: %d nodes drawn, %d in the model",
                  specs[s], count(svg, "class=\"node\""), g.nnodes);
        for (int i = 0; i < g.nnodes; i++) {
            char t[PML_NAME_MAX + 2];
            snprintf(t, sizeof t, ">%s<", g.nodes[i].name);
            CHECK_MSG(strstr(svg, t), "%s: node '%s' not drawn", specs[s], g.nodes[i].name);
        }
        /* the title: name, parameters, FLOPs */
        char params[32];
        pml_fmt_count(params, sizeof params, (double)pml_graph_param_count(&g));
        CHECK_MSG(strstr(svg, params) && strstr(svg, "FLOP per sample"), "%s: no title", specs[s]);
        pml_graph_free(&g);
        free(svg);
    }
}

static void t_svg_labels(void)
{
    size_t len;
    char *svg = render("resnet50", false, PML_VIZ_SVG, &len);
    if (!svg) return;
    CHECK(strstr(svg, ">conv2d 64, 7x7/2 pad 3, no bias<")); /* op and key attributes */
    CHECK(strstr(svg, ">64x112x112, 9,408 params<"));        /* output shape, params */
    CHECK(strstr(svg, ">maxpool2d 3x3/2 pad 1<"));
    CHECK(strstr(svg, ">2048x7x7<"));                                   /* an edge's tensor */
    CHECK(strstr(svg, "25,557,032 parameters, 8.24 GFLOP per sample")); /* the title */
    free(svg);
}

static void t_collapse(void)
{
    size_t l1, l2;
    const char *specs[] = {"resnet50", "inception-v3"};
    const int want[] = {25, 34};
    for (int s = 0; s < 2; s++) {
        char *full = render(specs[s], false, PML_VIZ_SVG, &l1);
        char *folded = render(specs[s], true, PML_VIZ_SVG, &l2);
        if (full && folded) {
            int a = count(full, "class=\"node\""), b = count(folded, "class=\"node\"");
            CHECK_MSG(b == want[s] && a > 4 * b, "%s: %d nodes, %d collapsed", specs[s], a, b);
            CHECK(strstr(folded, specs[s][0] == 'r' ? ">layer3.4<" : ">Mixed_6e<"));
            CHECK(strstr(folded, "block of "));
        }
        free(full);
        free(folded);
    }
    /* resnet50's first block: its op counts and parameters */
    char *folded = render("resnet50", true, PML_VIZ_SVG, &l2);
    if (folded) {
        CHECK(strstr(folded, ">block of 12 ops: 4 conv2d, 3 relu, 1 add, 4 batchnorm<"));
        CHECK(strstr(folded, ">256x56x56, 75,008 params, 472 MFLOP<"));
    }
    free(folded);
}

static unsigned be32(const unsigned char *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

static void t_png_pdf_dot(void)
{
    size_t len;
    unsigned char *png = (unsigned char *)render("fashion-cnn", false, PML_VIZ_PNG, &len);
    if (png) {
        CHECK(len > 1000 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
        CHECK(be32(png + 8) == 13 && memcmp(png + 12, "IHDR", 4) == 0);
        unsigned w = be32(png + 16), h = be32(png + 20);
        CHECK_MSG(w >= 200 && w <= 5000 && h >= 400 && h <= 20000, "%ux%u", w, h);
        free(png);
    }
    char *pdf = render("mlp", false, PML_VIZ_PDF, &len);
    if (pdf) CHECK(len > 500 && memcmp(pdf, "%PDF-", 5) == 0 && memmem(pdf, len, "%%EOF", 5));
    free(pdf);
    char *dot = render("mlp", false, PML_VIZ_DOT, &len);
    if (dot) {
        CHECK(strncmp(dot, "digraph mlp {", 13) == 0);
        CHECK_MSG(count(dot, "pos=\"") >= 5 + 4, "%s", dot); /* every node and edge */
        CHECK(strstr(dot, "bb=\""));
    }
    free(dot);
}

/* The generic helpers a plan or machine view uses; Graphviz's warnings are not printed. */
static void t_custom_view(void)
{
    pml_viz *v = pml_viz_new("machine", "two cores\nand a link");
    CHECK(v != NULL);
    if (!v) return;
    pml_viz_obj *a = pml_viz_node(pml_viz_root(v), "core0", "core 0\n1 GHz", "#cfe2f3");
    pml_viz_obj *b = pml_viz_node(pml_viz_root(v), "core1", NULL, NULL);
    CHECK(a && b && pml_viz_node(pml_viz_root(v), "core0", NULL, NULL) == a);
    CHECK(strcmp(pml_viz_get(a, "label"), "core 0\n1 GHz") == 0);
    CHECK(strcmp(pml_viz_get(b, "label"), "\\N") == 0); /* Graphviz: the node's name */
    CHECK(pml_viz_get(a, "no-such-attribute") == NULL);
    pml_viz_obj *e = pml_viz_edge(v, a, b, "10 GB/s");
    CHECK(e && pml_viz_edge(v, a, b, "again") == e);
    pml_viz_set(a, "color", "no-such-colour"); /* Graphviz warns about this */
    pml_viz_set(e, "style", "dashed");
    fflush(stderr);
    int saved = dup(2);
    char errpath[] = "/tmp/pml-test-viz-stderr-XXXXXX";
    int fd = mkstemp(errpath);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    char *svg;
    size_t len;
    pml_status st = pml_viz_render(v, PML_VIZ_SVG, &svg, &len);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t printed = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(errpath);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    CHECK_MSG(printed == 0, "%ld bytes printed on stderr", (long)printed);
    if (st == PML_OK) {
        CHECK(strstr(svg, ">core 0<") && strstr(svg, ">1 GHz<") && strstr(svg, ">core1<"));
        CHECK(strstr(svg, ">10 GB/s<") && !strstr(svg, "again") && strstr(svg, ">two cores<"));
        CHECK(count(svg, "class=\"edge\"") == 1 && strstr(svg, "stroke-dasharray"));
        free(svg);
    }
    pml_viz_free(v);
}

/* pml_viz_write: a bad extension or an unwritable path leaves nothing behind. */
static void t_write_errors(void)
{
    char dir[] = "/tmp/pml-test-viz-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    pml_graph g;
    if (!build("mlp", &g)) return;
    pml_viz *v;
    CHECK_OK(pml_viz_model(&g, NULL, &v));
    char path[256];
    snprintf(path, sizeof path, "%s/m.jpg", dir);
    CHECK(pml_viz_write(v, path) == PML_EINVAL && access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/missing/m.svg", dir);
    pml_status st = pml_viz_write(v, path);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), path));
    snprintf(path, sizeof path, "%s/m.svg", dir);
    CHECK_OK(pml_viz_write(v, path));
    CHECK(access(path, F_OK) == 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1 && rm -r '%s'", dir, dir);
    CHECK(system(cmd) == 0);
    pml_viz_free(v);
    g.finalized = false;
    CHECK(pml_viz_model(&g, NULL, &v) == PML_EINVAL && v == NULL);
    pml_graph_free(&g);
}

static void t_fmt(void)
{
    char b[64];
    pml_fmt_count(b, sizeof b, 25557032);
    CHECK(strcmp(b, "25,557,032") == 0);
    pml_fmt_count(b, sizeof b, 999);
    CHECK(strcmp(b, "999") == 0);
    pml_fmt_count(b, sizeof b, 1000);
    CHECK(strcmp(b, "1,000") == 0);
    pml_fmt_si(b, sizeof b, 8.24e9, "FLOP");
    CHECK(strcmp(b, "8.24 GFLOP") == 0);
    pml_fmt_si(b, sizeof b, 512, "FLOP");
    CHECK(strcmp(b, "512 FLOP") == 0);
}

static const pml_test tests[] = {
    {"format_of", t_format_of},
    {"blocks_resnet", t_blocks_resnet},
    {"blocks_inception", t_blocks_inception},
    {"blocks_none", t_blocks_none},
    {"svg_names_every_op", t_svg_names_every_op},
    {"svg_labels", t_svg_labels},
    {"collapse", t_collapse},
    {"png_pdf_dot", t_png_pdf_dot},
    {"custom_view", t_custom_view},
    {"write_errors", t_write_errors},
    {"fmt", t_fmt},
    {0},
};
PML_TEST_MAIN(tests)
