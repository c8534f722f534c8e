/* Model DOT files: every zoo model round-trips exactly, the shipped zoo files are current, each
 * bad-file fixture gives one message naming the file and the thing at fault, hand-written files
 * read as documented, and a deterministic mutation loop over valid files never crashes (run it
 * in the ASan build). */
#include "models/models.h"
#include "test.h"

#include <graphviz/cgraph.h>

#include <stdint.h>

/* ---------------------------------------------------------------- helpers */

/* a and b are the same model: names, ops, every attribute, inputs in order, shapes, parameter
 * and state layout, order, totals. Reports the first difference; \return true when equal. */
static bool same_graph(const pml_graph *a, const pml_graph *b, const char *what)
{
    int before = pml__test_failed;
    CHECK_MSG(strcmp(a->name, b->name) == 0, "%s: name '%s' vs '%s'", what, a->name, b->name);
    CHECK_MSG(a->nnodes == b->nnodes, "%s: %d vs %d nodes", what, a->nnodes, b->nnodes);
    CHECK_MSG(a->finalized && b->finalized, "%s: not finalised", what);
    if (a->nnodes != b->nnodes || !a->finalized || !b->finalized) return false;
    CHECK(a->input == b->input && a->loss == b->loss && a->logits == b->logits);
    CHECK(a->classes == b->classes && a->nparams == b->nparams && a->nstate == b->nstate);
    CHECK(pml_graph_param_count(a) == pml_graph_param_count(b));
    CHECK(pml_graph_flops(a) == pml_graph_flops(b));
    for (int i = 0; i < a->nnodes && pml__test_failed == before; i++) {
        const pml_node *x = &a->nodes[i], *y = &b->nodes[i];
        CHECK_MSG(strcmp(x->name, y->name) == 0, "%s: node %d is '%s' vs '%s'", what, i, x->name,
                  y->name);
        CHECK_MSG(x->op == y->op, "%s: node '%s' op %s vs %s", what, x->name, pml_op_name(x->op),
                  pml_op_name(y->op));
        CHECK_MSG(memcmp(&x->a, &y->a, sizeof x->a) == 0, "%s: node '%s': attributes differ", what,
                  x->name);
        CHECK_MSG(x->nin == y->nin, "%s: node '%s': %d vs %d inputs", what, x->name, x->nin,
                  y->nin);
        for (int j = 0; j < x->nin && j < y->nin; j++)
            CHECK_MSG(x->in[j] == y->in[j], "%s: node '%s' input %d: %d vs %d", what, x->name, j,
                      x->in[j], y->in[j]);
        CHECK_MSG(pml_shape_eq(x->out, y->out), "%s: node '%s': output shapes differ", what,
                  x->name);
        CHECK(x->nparam == y->nparam && x->nstate == y->nstate);
        for (int j = 0; j < x->nparam; j++)
            CHECK(x->param_size[j] == y->param_size[j] && x->param_off[j] == y->param_off[j] &&
                  x->param_init[j] == y->param_init[j] && x->param_fan_in[j] == y->param_fan_in[j]);
        for (int j = 0; j < x->nstate; j++)
            CHECK(x->state_size[j] == y->state_size[j] && x->state_off[j] == y->state_off[j]);
        CHECK(x->aux_per_sample == y->aux_per_sample && x->aux_fixed == y->aux_fixed);
        CHECK_MSG(a->order[i] == b->order[i], "%s: order[%d] %d vs %d", what, i, a->order[i],
                  b->order[i]);
    }
    return pml__test_failed == before;
}

static char *slurp(const char *path, size_t *len)
{
    char *t;
    pml_status st = pml_read_file(path, 1 << 24, &t, len);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    return st == PML_OK ? t : NULL;
}

/* ---------------------------------------------------------------- round trips */

static void roundtrip(const char *spec)
{
    pml_graph g, h;
    char *text, *text2;
    size_t len, len2;
    pml_status st = pml_model_build(spec, &g);
    CHECK_MSG(st == PML_OK, "%s: %s", spec, pml_errmsg());
    if (st != PML_OK) return;
    CHECK_OK(pml_model_format_dot(&g, &text, &len));
    CHECK(text && strlen(text) == len);
    st = pml_model_parse_dot(text, len, spec, &h);
    CHECK_MSG(st == PML_OK, "%s: reading back: %s", spec, pml_errmsg());
    if (st == PML_OK) {
        same_graph(&g, &h, spec);
        /* writing the read model gives the same bytes */
        CHECK_OK(pml_model_format_dot(&h, &text2, &len2));
        CHECK_MSG(len2 == len && memcmp(text, text2, len) == 0, "%s: second write differs", spec);
        free(text2);
        pml_graph_free(&h);
    }
    free(text);
    pml_graph_free(&g);
}

static void t_roundtrip_zoo(void)
{
    int n;
    const pml_zoo_entry *z = pml_zoo_list(&n);
    CHECK(n >= 7);
    for (int i = 0; i < n; i++) roundtrip(z[i].name);
}

static void t_roundtrip_params(void)
{
    roundtrip("mlp:units=512,layers=8");
    roundtrip("mlp:units=64,layers=2,dropout=0.3,classes=7,size=12,channels=3");
    roundtrip("fashion-cnn:filters=8,units=32,classes=4,size=20");
    roundtrip("flowers-cnn:size=64");
    roundtrip("alexnet:size=430,classes=10"); /* has the 2x2 adaptive average pool */
    roundtrip("resnet50:size=64,classes=10");
    roundtrip("inception-v3:size=75,classes=3");
}

/* The shipped models/zoo/NAME.dot are what `pml export NAME` writes today. */
static void t_zoo_files_current(void)
{
    int n;
    const pml_zoo_entry *z = pml_zoo_list(&n);
    for (int i = 0; i < n; i++) {
        char path[256];
        snprintf(path, sizeof path, "../models/zoo/%s.dot", z[i].name);
        pml_graph g;
        if (pml_model_build(z[i].name, &g) != PML_OK) {
            CHECK_MSG(0, "%s", pml_errmsg());
            continue;
        }
        char *want;
        size_t wlen, len;
        CHECK_OK(pml_model_format_dot(&g, &want, &wlen));
        char *have = slurp(path, &len);
        CHECK_MSG(have && len == wlen && memcmp(have, want, len) == 0,
                  "%s is not current: regenerate with `pml export %s -o %s` (see "
                  "models/zoo/README)",
                  path + 3, z[i].name, path + 3);
        /* and reading the file gives the zoo model */
        pml_graph h;
        if (have && pml_model_read_dot(path, &h) == PML_OK) {
            same_graph(&g, &h, path);
            pml_graph_free(&h);
        } else {
            CHECK_MSG(0, "%s: %s", path, pml_errmsg());
        }
        free(have);
        free(want);
        pml_graph_free(&g);
    }
}

/* ---------------------------------------------------------------- hand-written files */

static const pml_node *find(const pml_graph *g, const char *name)
{
    int id = pml_graph_find(g, name);
    CHECK_MSG(id >= 0, "no node '%s'", name);
    return id >= 0 ? &g->nodes[id] : NULL;
}

/* Defaults left out, an edge chain, as the example in models.h. */
static void t_tiny(void)
{
    pml_graph g;
    CHECK_OK(pml_model_read_dot("fixtures/models/good_tiny.dot", &g));
    if (!g.finalized) return;
    CHECK(strcmp(g.name, "tiny") == 0 && g.nnodes == 6 && g.classes == 10);
    const pml_node *c = find(&g, "conv1"), *p = find(&g, "pool1"), *l = find(&g, "logits");
    if (c)
        CHECK(c->a.out == 32 && c->a.kh == 3 && c->a.kw == 3 && c->a.sh == 1 &&
              c->a.pad_mode == PML_PAD_SAME && c->a.act == PML_ACT_RELU && c->a.bias == 1);
    if (c) CHECK(c->out.c == 32 && c->out.h == 28 && c->out.w == 28);
    /* a pool's stride defaults to its kernel */
    if (p) CHECK(p->a.kh == 2 && p->a.sh == 2 && p->out.h == 14);
    if (l) CHECK(l->a.act == PML_ACT_NONE && l->a.bias == 1 && l->a.out == 10);
    CHECK(pml_graph_param_count(&g) == 32 * 9 + 32 + (32 * 14 * 14) * 10 + 10);
    pml_graph_free(&g);
}

/* An add's learned addend: its parameter, and written back as read; an add of one input needs
 * one. */
static void t_addend(void)
{
    pml_graph g, h;
    CHECK_OK(pml_model_read_dot("fixtures/models/good_addend.dot", &g));
    if (!g.finalized) return;
    const pml_node *pos = find(&g, "pos"), *sum = find(&g, "sum"), *shift = find(&g, "shift");
    if (pos)
        CHECK(pos->a.addend == 1 && pos->nin == 1 && pos->nparam == 1 &&
              pos->param_size[0] == 4 * 8 * 8 && pos->param_init[0] == PML_INIT_ZEROS);
    if (sum) CHECK(sum->a.addend == 1 && sum->nin == 2 && sum->param_size[0] == 4 * 8 * 8);
    if (shift) CHECK(shift->a.addend == 1 && shift->param_size[0] == 6);
    CHECK(pml_graph_param_count(&g) ==
          (4 * 27 + 4) + 256 + (4 * 36 + 4) + 256 + (6 * 64 + 6) + 6 + (4 * 6 + 4));
    char *text;
    size_t len;
    CHECK_OK(pml_model_format_dot(&g, &text, &len));
    if (text) {
        CHECK(strstr(text, "pos [op=add, addend=1]") != NULL);
        CHECK_OK(pml_model_parse_dot(text, len, "addend.dot", &h));
        if (h.finalized) same_graph(&g, &h, "addend");
        pml_graph_free(&h);
        free(text);
    }
    pml_graph_free(&g);
    const char *one = "digraph { graph [input_shape=\"3x1x1\"]; x [op=input]; s [op=add]; "
                      "l [op=linear, out=2]; loss [op=softmax_xent]; x -> s -> l -> loss }";
    pml_status st = pml_model_parse_dot(one, strlen(one), "one.dot", &g);
    CHECK_MSG(st != PML_OK && strstr(pml_errmsg(), "node 's' (add)") &&
                  strstr(pml_errmsg(), "no addend"),
              "%s", pml_errmsg());
}

/* A dropout that drops in inference too, with ONNX's seeded mask: read, written back as read;
 * a seed below -1 refused */
static void t_dropout_seeded(void)
{
    pml_graph g, h;
    CHECK_OK(pml_model_read_dot("fixtures/models/good_dropout_seeded.dot", &g));
    if (!g.finalized) return;
    const pml_node *d = find(&g, "drop");
    CHECK(d && d->a.always == 1 && d->a.seed == 3 && d->a.rate == 0.5f);
    char *text;
    size_t len;
    CHECK_OK(pml_model_format_dot(&g, &text, &len));
    if (text) {
        CHECK_MSG(strstr(text, "drop [op=dropout, rate=0.5, always=1, seed=3]") != NULL, "%s",
                  text);
        CHECK_OK(pml_model_parse_dot(text, len, "dropout.dot", &h));
        if (h.finalized) same_graph(&g, &h, "dropout");
        pml_graph_free(&h);
        free(text);
    }
    pml_graph_free(&g);
    const char *bad = "digraph { graph [input_shape=\"3x1x1\"]; x [op=input]; "
                      "d [op=dropout, seed=-2]; l [op=linear, out=2]; loss [op=softmax_xent]; "
                      "x -> d -> l -> loss }";
    pml_status st = pml_model_parse_dot(bad, strlen(bad), "bad.dot", &g);
    CHECK_MSG(st != PML_OK && strstr(pml_errmsg(), "bad.dot") &&
                  strstr(pml_errmsg(), "node 'd' (dropout)") && strstr(pml_errmsg(), "seed"),
              "%s", pml_errmsg());
}

/* Per-axis attributes, node defaults, Graphviz looks, clusters, input=K order that differs from
 * the file order, edges before nodes. */
static void t_branches(void)
{
    pml_graph g;
    CHECK_OK(pml_model_read_dot("fixtures/models/good_branches.dot", &g));
    if (!g.finalized) return;
    CHECK(strcmp(g.name, "branches") == 0 && g.classes == 5);
    const pml_node *stem = find(&g, "stem"), *bn = find(&g, "stem_bn");
    if (stem)
        CHECK(stem->a.pad_mode == PML_PAD_EXPLICIT && stem->a.ph == 1 && stem->a.pw == 1 &&
              stem->a.bias == 0 && stem->a.act == PML_ACT_RELU /* node [act=relu] */);
    if (bn) CHECK(bn->a.eps == 1e-5f && bn->a.momentum == 0.9f);
    const pml_node *add = find(&g, "block1.add"), *mix = find(&g, "mix");
    if (add)
        CHECK(add->nin == 2 && add->in[0] == pml_graph_find(&g, "block1.conv2") &&
              add->in[1] == pml_graph_find(&g, "stem_bn"));
    if (mix) {
        CHECK(mix->nin == 3 && mix->in[0] == pml_graph_find(&g, "mix.b1") &&
              mix->in[1] == pml_graph_find(&g, "mix.b2b") &&
              mix->in[2] == pml_graph_find(&g, "mix.pool"));
        CHECK(mix->out.c == 8 + 12 + 16 && mix->out.h == 32 && mix->out.w == 32);
    }
    const pml_node *b2a = find(&g, "mix.b2a"), *pool = find(&g, "mix.pool");
    if (b2a)
        CHECK(b2a->a.kh == 1 && b2a->a.kw == 3 && b2a->a.ph == 0 && b2a->a.pw == 1 &&
              b2a->a.act == PML_ACT_RELU);
    if (pool) CHECK(pool->a.count_pad == 1 && pool->a.sh == 1 && pool->a.ph == 1);
    const pml_node *down = find(&g, "down"), *gap = find(&g, "gap"), *drop = find(&g, "drop");
    if (down) CHECK(down->a.ceil_mode == 1 && down->out.h == 16);
    if (gap) CHECK(gap->a.global == 1 && gap->out.c == 36 && gap->out.h == 1);
    if (drop) CHECK(drop->a.rate == 0.25f);
    /* node ids follow first appearance: mix.pool (in an edge) before mix.b1 */
    CHECK(pml_graph_find(&g, "mix.pool") < pml_graph_find(&g, "mix.b1"));
    pml_graph_free(&g);
}

/* Edges into a multi-input node without input=K take file order. */
static void t_file_order(void)
{
    const char *text =
        "digraph m { graph [input_shape=\"2x4x4\"];\n"
        "x [op=input]; a [op=conv2d, out=1, kernel=1]; b [op=conv2d, out=3, kernel=1];\n"
        "cat [op=concat]; f [op=flatten]; l [op=linear, out=2]; loss [op=softmax_xent];\n"
        "x -> a; x -> b; b -> cat; a -> cat; cat -> f -> l -> loss; }";
    pml_graph g;
    CHECK_OK(pml_model_parse_dot(text, strlen(text), "order.dot", &g));
    if (!g.finalized) return;
    const pml_node *cat = find(&g, "cat");
    if (cat)
        CHECK(cat->nin == 2 && cat->in[0] == pml_graph_find(&g, "b") &&
              cat->in[1] == pml_graph_find(&g, "a"));
    pml_graph_free(&g);
}

/* add(x, x): two edges between the same nodes. */
static void t_same_input_twice(void)
{
    const char *text = "digraph m { graph [input_shape=\"4x1x1\"];\n"
                       "x [op=input]; s [op=add]; l [op=linear, out=2]; loss [op=softmax_xent];\n"
                       "x -> s [input=0]; x -> s [input=1]; s -> l -> loss; }";
    pml_graph g;
    CHECK_OK(pml_model_parse_dot(text, strlen(text), "twice.dot", &g));
    if (!g.finalized) return;
    const pml_node *s = find(&g, "s");
    if (s) CHECK(s->nin == 2 && s->in[0] == 0 && s->in[1] == 0);
    char *out;
    size_t len;
    CHECK_OK(pml_model_format_dot(&g, &out, &len));
    pml_graph h;
    CHECK_OK(pml_model_parse_dot(out, len, "twice2.dot", &h));
    if (h.finalized) same_graph(&g, &h, "twice");
    pml_graph_free(&h);
    free(out);
    pml_graph_free(&g);
}

/* pml_model_load: zoo spec or file. */
static void t_load(void)
{
    pml_graph g;
    CHECK_OK(pml_model_load("mlp:units=16", &g));
    CHECK(g.finalized && g.nnodes == 5);
    pml_graph_free(&g);
    CHECK_OK(pml_model_load("fixtures/models/good_tiny.dot", &g));
    CHECK(g.finalized && strcmp(g.name, "tiny") == 0);
    pml_graph_free(&g);
    CHECK(pml_model_is_file("x.dot") && pml_model_is_file("x.gv") && pml_model_is_file("a/b"));
    CHECK(!pml_model_is_file("mlp") && !pml_model_is_file("mlp:units=3") &&
          !pml_model_is_file(".dot"));
    pml_status st = pml_model_load("fixtures/models/no_such_file.dot", &g);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "no_such_file.dot") &&
          strstr(pml_errmsg(), "No such file"));
    CHECK(g.nnodes == 0 && g.nodes == NULL);
    st = pml_model_load("fixtures/models", &g); /* a folder */
    CHECK(st != PML_OK && strstr(pml_errmsg(), "fixtures/models"));
    st = pml_model_load("resnet9000", &g);
    CHECK(st == PML_EUNKNOWN && strstr(pml_errmsg(), ".dot, .onnx or .pml"));
}

/* Files with a model and more (plans): the writer adds the caller's attributes, the reader lets
 * them through to the caller and checks the kind. */
static void node_config(void *ud, int id, char *buf, size_t cap)
{
    snprintf(buf, cap, ", config=\"n=%d\", devices=\"%s\"", id % 3 + 1, (const char *)ud);
}

static void t_ext(void)
{
    pml_graph g, h;
    CHECK_OK(pml_model_build("resnet50:size=64", &g));
    pml_model_dot_ext ext = {.kind = "plan",
                             .graph_text = "machine=\"cpu-2socket\", fingerprint=\"3f2a\"",
                             .node_text = node_config,
                             .ud = "0,1"};
    char *text;
    size_t len;
    CHECK_OK(pml_model_format_dot_ext(&g, &ext, &text, &len));
    if (!text) return;
    CHECK(strstr(
        text, "graph [kind=plan, input_shape=\"3x64x64\", classes=1000, machine=\"cpu-2socket\""));
    CHECK(strstr(text, "\"layer1.0.add\" [op=add, config=\"n="));
    /* a plan is not a model: the model reader says so */
    pml_status st = pml_model_parse_dot(text, len, "p.dot", &h);
    CHECK_MSG(st == PML_EFORMAT && strstr(pml_errmsg(), "kind=plan: this is not a model file"),
              "%s", pml_errmsg());
    /* the plan reader's way: its attributes go through, the model comes back whole */
    static const char *const nattrs[] = {"config", "devices", NULL};
    static const char *const gattrs[] = {"machine", "fingerprint", NULL};
    pml_model_dot_ext rd = {.kind = "plan", .node_attrs = nattrs, .graph_attrs = gattrs};
    pml_dot ag;
    CHECK_OK(pml_dot_parse(text, len, "p.dot", &ag));
    if (ag.nnodes) {
        CHECK(strcmp(pml_dot_kind(&ag), "plan") == 0);
        CHECK_OK(pml_model_from_dot_ext(&ag, &rd, &h));
        if (h.finalized) same_graph(&g, &h, "plan");
        pml_graph_free(&h);
        CHECK(strcmp(pml_dot_get(ag.nattr, ag.attr, "machine"), "cpu-2socket") == 0);
        const pml_dot_node *n = NULL;
        for (int i = 0; i < ag.nnodes; i++)
            if (strcmp(ag.nodes[i].name, "layer1.0.add") == 0) n = &ag.nodes[i];
        char want[16];
        snprintf(want, sizeof want, "n=%d", pml_graph_find(&g, "layer1.0.add") % 3 + 1);
        CHECK(n && strcmp(pml_dot_get(n->nattr, n->attr, "config"), want) == 0 &&
              strcmp(pml_dot_get(n->nattr, n->attr, "devices"), "0,1") == 0);
        /* without them in the lists, they are unknown attributes */
        pml_model_dot_ext strict = {.kind = "plan", .graph_attrs = gattrs};
        st = pml_model_from_dot_ext(&ag, &strict, &h);
        CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "unknown attribute 'config'"));
        CHECK(strncmp(pml_errmsg(), "p.dot: ", 7) == 0);
        pml_dot_free(&ag);
    }
    free(text);
    /* a kind the caller wants must be there */
    CHECK_OK(pml_model_format_dot(&g, &text, &len));
    CHECK_OK(pml_dot_parse(text, len, "m.dot", &ag));
    if (ag.nnodes) {
        st = pml_model_from_dot_ext(&ag, &rd, &h);
        CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "kind=model: this is not a plan file"));
        pml_dot_free(&ag);
    }
    free(text);
    const char *nokind = "digraph m { graph [input_shape=\"3x1x1\"]; x [op=input]; l [op=linear, "
                         "out=2]; s [op=softmax_xent]; x -> l -> s }";
    CHECK_OK(pml_dot_parse(nokind, strlen(nokind), "k.dot", &ag));
    if (ag.nnodes) {
        st = pml_model_from_dot_ext(&ag, &rd, &h);
        CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "missing graph attribute kind=plan"));
        CHECK(strcmp(pml_dot_kind(&ag), "model") == 0);
        pml_dot_free(&ag);
    }
    pml_graph_free(&g);
}

/* ---------------------------------------------------------------- bad files */

typedef struct bad_case {
    const char *file;
    const char *must[3];
} bad_case;

static const bad_case bad_cases[] = {
    {"unknown_op", {"node 'c'", "unknown op 'conv3d'", "conv2d"}},
    {"missing_attr", {"node 'c' (conv2d)", "missing attribute out"}},
    {"malformed_int", {"node 'l' (linear)", "out='abc'", "integer"}},
    {"negative", {"node 'c' (conv2d)", "kernel='-3'"}},
    {"huge_value", {"node 'l' (linear)", "out='99999999999999999999999999'"}},
    {"huge_weights", {"node 'l' (linear)", "too many"}},
    {"bad_float", {"node 'd' (dropout)", "rate='1.5'", "[0, 1)"}},
    {"nan_float", {"node 'b' (batchnorm)", "eps='nan'"}},
    {"bad_padding", {"node 'c' (conv2d)", "padding='sideways'", "same, valid"}},
    {"bad_bool", {"node 'l' (linear)", "bias='2'", "0 or 1"}},
    {"bad_axis", {"node 'cat' (concat)", "axis='3'", "0 (channels), 1 (rows) or 2 (columns)"}},
    {"kernel_twice", {"node 'c' (conv2d)", "kernel or kh/kw"}},
    {"kernel_too_big", {"node 'c' (conv2d)", "kernel 4096x4096 is larger"}},
    {"wrong_input_count", {"node 'c' (conv2d)", "has 2 inputs, needs 1"}},
    {"too_many_inputs", {"node 'cat' (concat)", "more than 64 inputs"}},
    {"shape_mismatch", {"node 'sum' (add)", "20x1x1", "10x1x1"}},
    {"cycle", {"node 'sum'", "cycle"}},
    {"self_loop", {"node 'f'", "2 inputs"}},
    {"dangling_edge", {"node 'ghost'", "no op attribute", "dangling edge"}},
    {"duplicate_input_index", {"'a' -> 'sum'", "'b' -> 'sum'", "both have input=0"}},
    {"partial_input_index", {"edge 'b' -> 'sum'", "no input attribute"}},
    {"input_index_range", {"edge 'b' -> 'sum'", "input=5"}},
    {"empty_graph", {"no nodes"}},
    {"empty_file", {"no graph"}},
    {"comments_only", {"no graph"}},
    {"not_dot", {"syntax error in line 1"}},
    {"syntax_error", {"syntax error in line 4"}},
    {"truncated", {"syntax error"}},
    {"binary", {"not a DOT file", "binary"}},
    {"undirected", {"undirected"}},
    {"two_graphs", {"more than one graph"}},
    {"unknown_attr", {"node 'c' (conv2d)", "unknown attribute 'stide'", "stride"}},
    {"attr_wrong_op", {"node 'r' (relu)", "'out' does not apply to relu"}},
    {"unknown_edge_attr", {"edge 'input' -> 'f'", "unknown attribute 'slot'"}},
    {"missing_input_shape", {"missing graph attribute input_shape"}},
    {"bad_input_shape", {"input_shape='3x224'", "CxHxW"}},
    {"classes_mismatch", {"classes=5", "node 'logits' gives 10"}},
    {"no_loss", {"no loss node"}},
    {"two_inputs", {"'input' and 'input2'", "both inputs"}},
    {"unused_node", {"node 'extra'", "used by no node"}},
    {"badly_delimited", {"'2x'", "line 5"}},
    {"long_name", {"this_name_is_much_longer", "longer than 63"}},
    {"kind_plan", {"kind=plan", "not a model file"}},
};

static void t_bad_files(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char path[256];
        snprintf(path, sizeof path, "fixtures/models/%s.dot", c->file);
        pml_graph g;
        pml_status st = pml_model_read_dot(path, &g);
        const char *m = pml_errmsg();
        CHECK_MSG(st != PML_OK, "%s: read without error", path);
        if (st == PML_OK) {
            pml_graph_free(&g);
            continue;
        }
        /* one line that starts with the file's name */
        CHECK_MSG(strncmp(m, path, strlen(path)) == 0 && m[strlen(path)] == ':',
                  "%s: message '%s' does not start with the file", path, m);
        CHECK_MSG(!strchr(m, '\n'), "%s: message '%s' has several lines", path, m);
        for (int k = 0; k < 3 && c->must[k]; k++)
            CHECK_MSG(strstr(m, c->must[k]), "%s: message '%s' lacks '%s'", path, m, c->must[k]);
        CHECK(g.nnodes == 0 && g.nodes == NULL && g.order == NULL && !g.finalized);
    }
}

/* Every fixture in the folder is covered above (a new fixture needs a case). */
static void t_bad_files_listed(void)
{
    FILE *p = popen("ls fixtures/models", "r");
    CHECK(p != NULL);
    if (!p) return;
    char line[256];
    int seen = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        size_t l = strlen(line);
        if (l < 5 || strcmp(line + l - 4, ".dot") != 0 || strncmp(line, "good_", 5) == 0) continue;
        line[l - 4] = 0;
        bool found = false;
        for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
            found |= strcmp(bad_cases[i].file, line) == 0;
        CHECK_MSG(found, "fixtures/models/%s.dot has no case in t_bad_files", line);
        seen++;
    }
    pclose(p);
    CHECK(seen == (int)(sizeof bad_cases / sizeof bad_cases[0]));
}

/* Graph-level DOT errors from text: source named, nothing parsed. */
static void t_parse_text_errors(void)
{
    pml_graph g;
    pml_status st = pml_model_parse_dot("digraph { a -> }", 16, "mem.dot", &g);
    CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "mem.dot: syntax error"));
    /* a NUL byte inside */
    st = pml_model_parse_dot("digraph m {\0}", 13, "nul.dot", &g);
    CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "byte 11"));
    /* the writer refuses what it cannot write back */
    CHECK_OK(pml_model_build("mlp", &g));
    strcpy(g.nodes[1].name, "a\\b");
    char *t;
    size_t len;
    st = pml_model_format_dot(&g, &t, &len);
    CHECK(st == PML_EINVAL && strstr(pml_errmsg(), "backslash") && t == NULL);
    g.finalized = false;
    st = pml_model_format_dot(&g, &t, &len);
    CHECK(st == PML_EINVAL && strstr(pml_errmsg(), "finalize"));
    pml_graph_free(&g);
    /* an anonymous digraph takes the file's base name */
    const char *anon = "digraph { graph [input_shape=\"3x1x1\"]; x [op=input]; l [op=linear, "
                       "out=2]; s [op=softmax_xent]; x -> l -> s }";
    CHECK_OK(pml_model_parse_dot(anon, strlen(anon), "some/dir/my-net.v2.dot", &g));
    CHECK(strcmp(g.name, "my-net") == 0);
    pml_graph_free(&g);
}

/* A 3-D model: input_shape CxDxHxW, windows with depth, kd, sd, pd; shapes, a write read back
 * alike, and the depth's mistakes named. */
static void t_volumetric(void)
{
    static const char text[] =
        "digraph v { graph [kind=model, input_shape=\"2x4x6x6\", classes=3];\n"
        "x [op=input]; c [op=conv2d, out=4, kernel=3, padding=1, pd=1, depth=4, kd=3, act=relu];\n"
        "p [op=maxpool2d, kernel=2, depth=4, kd=2, sd=2]; a [op=avgpool2d, global=1, depth=2];\n"
        "f [op=flatten]; l [op=linear, out=3]; s [op=softmax_xent];\n"
        "x -> c -> p -> a -> f -> l -> s }";
    pml_graph g, h;
    CHECK_OK(pml_model_parse_dot(text, sizeof text - 1, "v.dot", &g));
    CHECK(pml_shape_eq(g.nodes[0].out, (pml_shape){2, 24, 6}) && g.nodes[0].a.depth == 4);
    CHECK(pml_shape_eq(g.nodes[1].out, (pml_shape){4, 24, 6}) && g.nodes[1].a.od == 4);
    CHECK(pml_shape_eq(g.nodes[2].out, (pml_shape){4, 6, 3}) && g.nodes[2].a.od == 2);
    CHECK(pml_shape_eq(g.nodes[3].out, (pml_shape){4, 1, 1}));
    CHECK(g.nodes[1].param_size[0] == 4 * 2 * 27); /* (O, C, kd, kh, kw) */
    char *t, *t2;
    size_t len, len2;
    CHECK_OK(pml_model_format_dot(&g, &t, &len));
    CHECK(strstr(t, "input_shape=\"2x4x6x6\"") && strstr(t, "depth=4, kd=3, sd=1, pd=1"));
    CHECK_OK(pml_model_parse_dot(t, len, "v2.dot", &h));
    same_graph(&g, &h, "volumetric");
    CHECK_OK(pml_model_format_dot(&h, &t2, &len2));
    CHECK(len2 == len && memcmp(t, t2, len) == 0);
    free(t), free(t2);
    pml_graph_free(&g);
    pml_graph_free(&h);
    static const struct {
        const char *node, *want;
    } bad[] = {
        {"c [op=conv2d, out=4, kernel=3, kd=3]", "kd, sd, dd and pd need depth"},
        {"c [op=conv2d, out=4, kernel=3, depth=5, kd=3]", "depth=5 does not divide the input's 24 rows"},
        {"c [op=conv2d, out=4, kernel=3, depth=4, kd=5]", "kernel depth 5 is larger than the padded"},
        {"c [op=conv2d, out=4, kernel=3, depth=4, kd=3, pd=1]", "pd needs padding=explicit"},
        {"c [op=avgpool2d, depth=4, kd=2, dd=2]", "'dd'"},
        {"c [op=activation, fn=relu6]", "fn='relu6'"},
        {"c [op=activation]", "fn is missing"},
        {"c [op=activation, fn=elu, alpha=inf]", "alpha='inf'"},
        {"c [op=mul]", "has 1 inputs, needs 2"},
    };
    /* activations: written with their function and parameters, read back alike */
    /* mul's second input: the first's shape or a value per channel */
    static const char mul[] =
        "digraph m { graph [input_shape=\"2x4x4\"]; x [op=input]; p [op=maxpool2d]; c [op=mul];"
        " f [op=flatten]; l [op=linear, out=2]; s [op=softmax_xent]; x -> p; x -> c [input=0];"
        " p -> c [input=1]; c -> f -> l -> s }";
    CHECK(pml_model_parse_dot(mul, sizeof mul - 1, "m.dot", &g) == PML_ESHAPE &&
          strstr(pml_errmsg(), "m.dot: node 'c' (mul): input 1 is 2x2x2; input 0 is 2x4x4"));
    /* matmul: the matrices along the channels (axis=1) written and read back; shapes that do
     * not multiply, and an axis matmul has not, named */
    static const char mm[] =
        "digraph m { graph [input_shape=\"2x3x3\"]; x [op=input]; r [op=relu];"
        " c [op=matmul, axis=1]; f [op=flatten]; l [op=linear, out=2]; s [op=softmax_xent];"
        " x -> r; x -> c [input=0]; r -> c [input=1]; c -> f -> l -> s }";
    CHECK_OK(pml_model_parse_dot(mm, sizeof mm - 1, "mm.dot", &g));
    CHECK(g.nodes[2].op == PML_OP_MATMUL && g.nodes[2].a.axis == 1 &&
          pml_shape_eq(g.nodes[2].out, (pml_shape){2, 3, 3}));
    CHECK_OK(pml_model_format_dot(&g, &t, &len));
    CHECK(strstr(t, "op=matmul, axis=1"));
    CHECK_OK(pml_model_parse_dot(t, len, "mm2.dot", &h));
    same_graph(&g, &h, "matmul");
    CHECK(h.nodes[2].a.axis == 1);
    free(t);
    pml_graph_free(&g);
    pml_graph_free(&h);
    static const char mm0[] =
        "digraph m { graph [input_shape=\"2x3x3\"]; x [op=input]; r [op=relu];"
        " c [op=matmul]; f [op=flatten]; l [op=linear, out=2]; s [op=softmax_xent];"
        " x -> r; x -> c [input=0]; r -> c [input=1]; c -> f -> l -> s }";
    CHECK(pml_model_parse_dot(mm0, sizeof mm0 - 1, "m.dot", &g) == PML_ESHAPE &&
          strstr(pml_errmsg(), "m.dot: node 'c' (matmul): input 0 is 2x3x3, input 1 2x3x3: one "
                               "matrix a sample (axis 0) takes (M, K, 1) and (K, P, 1)"));
    static const char mm2[] =
        "digraph m { graph [input_shape=\"2x3x3\"]; x [op=input]; r [op=relu];"
        " c [op=matmul, axis=2]; f [op=flatten]; l [op=linear, out=2]; s [op=softmax_xent];"
        " x -> r; x -> c [input=0]; r -> c [input=1]; c -> f -> l -> s }";
    CHECK(pml_model_parse_dot(mm2, sizeof mm2 - 1, "m.dot", &g) != PML_OK &&
          strstr(pml_errmsg(), "m.dot: node 'c' (matmul): axis=2; the matrices' rows are"));
    static const char act[] =
        "digraph a { graph [input_shape=\"5x1x1\"]; x [op=input]; s [op=activation, fn=selu];\n"
        "h [op=activation, fn=hard_sigmoid, alpha=0.25]; l [op=linear, out=2];\n"
        "loss [op=softmax_xent]; x -> s -> h -> l -> loss }";
    CHECK_OK(pml_model_parse_dot(act, sizeof act - 1, "a.dot", &g));
    CHECK(g.nodes[1].a.fn == PML_FN_SELU && g.nodes[1].a.alpha == 1.67326319217681884765625f &&
          g.nodes[1].a.beta == 1.05070102214813232421875f);
    CHECK(g.nodes[2].a.fn == PML_FN_HARD_SIGMOID && g.nodes[2].a.alpha == 0.25f &&
          g.nodes[2].a.beta == 0.5f);
    CHECK_OK(pml_model_format_dot(&g, &t, &len));
    CHECK(strstr(t, "fn=hard_sigmoid, alpha=0.25, beta=0.5"));
    CHECK_OK(pml_model_parse_dot(t, len, "a2.dot", &h));
    same_graph(&g, &h, "activations");
    CHECK(h.nodes[1].a.alpha == g.nodes[1].a.alpha && h.nodes[1].a.beta == g.nodes[1].a.beta);
    free(t);
    pml_graph_free(&g);
    pml_graph_free(&h);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char b[512];
        int n = snprintf(b, sizeof b,
                         "digraph v { graph [input_shape=\"2x4x6x6\"]; x [op=input]; %s; "
                         "f [op=flatten]; l [op=linear, out=3]; s [op=softmax_xent]; "
                         "x -> c -> f -> l -> s }",
                         bad[i].node);
        pml_status st = pml_model_parse_dot(b, (size_t)n, "bad.dot", &g);
        CHECK_MSG(st != PML_OK && strstr(pml_errmsg(), "bad.dot") &&
                      strstr(pml_errmsg(), bad[i].want),
                  "%s: %s", bad[i].node, pml_errmsg());
    }
}

/* ---------------------------------------------------------------- mutation fuzzing */

static uint64_t rng;
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_set(buf *b, const char *s, size_t n)
{
    if (n + 1 > b->cap) {
        b->cap = 2 * n + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p, s, n);
    b->len = n;
}

/* replaces [at, at+del) by ins[0..n) */
static void buf_splice(buf *b, size_t at, size_t del, const char *ins, size_t n)
{
    if (at > b->len) at = b->len;
    if (del > b->len - at) del = b->len - at;
    size_t len = b->len - del + n;
    if (len + 1 > b->cap) {
        b->cap = 2 * len + 64;
        b->p = realloc(b->p, b->cap);
    }
    memmove(b->p + at + n, b->p + at + del, b->len - at - del);
    memcpy(b->p + at, ins, n);
    b->len = len;
}

static const char *const tokens[] = {
    "->",
    "{",
    "}",
    "[",
    "]",
    ";",
    ",",
    "=",
    "\"",
    "digraph",
    "graph",
    "subgraph",
    "strict",
    "node",
    "edge",
    "input=1",
    "input=0",
    "op=add",
    "op=concat",
    "op=input",
    "op=softmax_xent",
    "/*",
    "*/",
    "//",
    "\n#",
    "<",
    ">",
    "\\",
    "x",
    " ",
    "\n",
    "cluster_a",
    "-",
    ".",
    "a -> b",
    "kind=plan",
    "classes=3",
    "global=1",
    "ceil_mode=1",
    "padding=explicit",
    "ph=3",
    "é",
    "\xe2\x82",
};
static const char *const values[] = {
    "-1",
    "0",
    "1",
    "2",
    "7",
    "8",
    "4096",
    "4097",
    "16777216",
    "2147483648",
    "99999999999999999999",
    "1e999",
    "\"1e-30\"",
    "nan",
    "inf",
    "\"\"",
    "same",
    "valid",
    "explicit",
    "relu",
    "none",
    "\"3x\"",
    "\"x3\"",
    "\"0x0\"",
    "\"4096x1\"",
    "x",
    "true",
    "conv2d",
    "add",
    "concat",
    "input",
    "linear",
    "flatten",
    "softmax_xent",
    "\"1x1x1\"",
    "\"3x4096x4096\"",
    "0.5",
    "1.0",
    "0.999999",
    "-0",
    "<b>",
    "\"a\\\"b\"",
};

/* [start, end) of a random line (end past its '\n') */
static void pick_line(const buf *b, size_t *start, size_t *end)
{
    size_t at = below(b->len + 1);
    *start = at;
    while (*start > 0 && b->p[*start - 1] != '\n') (*start)--;
    *end = at;
    while (*end < b->len && b->p[*end] != '\n') (*end)++;
    if (*end < b->len) (*end)++;
}

static void mutate(buf *b, const buf *seeds, int nseeds)
{
    /* mostly one mutation, so that many inputs stay valid DOT and reach the model checks */
    size_t r = below(20);
    int n = r < 12 ? 1 : r < 17 ? 2 : 3 + (int)below(3);
    for (int k = 0; k < n; k++) {
        size_t at = below(b->len + 1), s0, e0, s1, e1;
        switch (below(11)) {
        case 0: /* flip a byte: anything, or a DOT-meaningful character */
            if (b->len) {
                static const char meaningful[] = "{}[];,=->\"\n x0123456789_.<>/*#\\";
                b->p[below(b->len)] =
                    below(2) ? (char)below(256) : meaningful[below(sizeof meaningful - 1)];
            }
            break;
        case 1: /* delete a span */
            buf_splice(b, at, 1 + below(40), "", 0);
            break;
        case 2: /* truncate */
            b->len = below(b->len + 1);
            break;
        case 3: { /* duplicate a span */
            size_t from = below(b->len + 1), len = below(200);
            if (len > b->len - from) len = b->len - from;
            char *tmp = malloc(len + 1);
            memcpy(tmp, b->p + from, len);
            buf_splice(b, at, 0, tmp, len);
            free(tmp);
            break;
        }
        case 4: { /* splice in part of another seed */
            const buf *s = &seeds[below((size_t)nseeds)];
            size_t from = below(s->len + 1), len = below(300);
            if (len > s->len - from) len = s->len - from;
            buf_splice(b, at, below(100), s->p + from, len);
            break;
        }
        case 5:
        case 6: { /* swap an attribute's value */
            size_t eqs = 0;
            for (size_t i = 0; i < b->len; i++) eqs += b->p[i] == '=';
            if (!eqs) break;
            size_t pick = below(eqs), i = 0;
            for (;; i++)
                if (b->p[i] == '=' && pick-- == 0) break;
            size_t end = i + 1;
            while (end < b->len && !strchr(",];\n", b->p[end])) end++;
            const char *v = values[below(sizeof values / sizeof values[0])];
            buf_splice(b, i + 1, end - i - 1, v, strlen(v));
            break;
        }
        case 7: { /* insert a token */
            const char *t = tokens[below(sizeof tokens / sizeof tokens[0])];
            buf_splice(b, at, 0, t, strlen(t));
            break;
        }
        case 8: /* delete a line: a node or an edge goes missing */
            pick_line(b, &s0, &e0);
            buf_splice(b, s0, e0 - s0, "", 0);
            break;
        case 9: { /* copy a line elsewhere: a node twice, an edge twice */
            pick_line(b, &s0, &e0);
            pick_line(b, &s1, &e1);
            char *tmp = malloc(e0 - s0 + 1);
            memcpy(tmp, b->p + s0, e0 - s0);
            buf_splice(b, s1, 0, tmp, e0 - s0);
            free(tmp);
            break;
        }
        case 10: { /* swap two lines: order of nodes and edges */
            pick_line(b, &s0, &e0);
            pick_line(b, &s1, &e1);
            if (s1 < s0) {
                size_t t = s0;
                s0 = s1, s1 = t, t = e0, e0 = e1, e1 = t;
            }
            if (e0 > s1) break;
            char *a = malloc(e0 - s0 + 1), *c = malloc(e1 - s1 + 1);
            memcpy(a, b->p + s0, e0 - s0);
            memcpy(c, b->p + s1, e1 - s1);
            buf_splice(b, s1, e1 - s1, a, e0 - s0);
            buf_splice(b, s0, e0 - s0, c, e1 - s1);
            free(a);
            free(c);
            break;
        }
        }
        if (b->len > 200000) b->len = 200000;
    }
}

/* The mutated text reads or fails cleanly; what reads is a valid model that writes and reads
 * back the same. */
static void fuzz_one(const buf *b, int iter, int *ok, int *bad)
{
    pml_graph g, h;
    pml_status st = pml_model_parse_dot(b->p, b->len, "fuzz.dot", &g);
    if (st != PML_OK) {
        (*bad)++;
        const char *m = pml_errmsg();
        CHECK_MSG(strncmp(m, "fuzz.dot: ", 10) == 0 && !strchr(m, '\n') && strlen(m) > 12,
                  "iteration %d: message '%s' for\n%.*s", iter, m, (int)b->len, b->p);
        CHECK(g.nnodes == 0 && g.nodes == NULL);
        return;
    }
    (*ok)++;
    CHECK(g.finalized);
    char *t;
    size_t len;
    st = pml_model_format_dot(&g, &t, &len);
    CHECK_MSG(st == PML_OK, "iteration %d: writing: %s", iter, pml_errmsg());
    if (st == PML_OK) {
        st = pml_model_parse_dot(t, len, "fuzz2.dot", &h);
        CHECK_MSG(st == PML_OK, "iteration %d: reading back: %s\n%s", iter, pml_errmsg(), t);
        if (st == PML_OK) {
            char what[32];
            snprintf(what, sizeof what, "iteration %d", iter);
            if (!same_graph(&g, &h, what)) fprintf(stderr, "%.*s\n", (int)b->len, b->p);
            pml_graph_free(&h);
        }
        free(t);
    }
    pml_graph_free(&g);
}

static void t_fuzz(void)
{
    const char *files[] = {"fixtures/models/good_tiny.dot",
                           "fixtures/models/good_branches.dot",
                           "../models/zoo/mlp.dot",
                           "../models/zoo/fashion-cnn.dot",
                           "../models/zoo/alexnet.dot",
                           "fixtures/models/duplicate_input_index.dot",
                           "fixtures/models/too_many_inputs.dot",
                           "../models/zoo/resnet50.dot"};
    enum { NSEEDS = sizeof files / sizeof files[0] };
    buf seeds[NSEEDS];
    memset(seeds, 0, sizeof seeds);
    for (int i = 0; i < NSEEDS; i++) {
        size_t len;
        char *t = slurp(files[i], &len);
        if (!t) return;
        buf_set(&seeds[i], t, len);
        free(t);
    }
    buf b = {NULL, 0, 0};
    int ok = 0, bad = 0;
    /* PML_FUZZ_ITERS and PML_FUZZ_SEED run a longer or another campaign */
    const int iters = getenv("PML_FUZZ_ITERS") ? atoi(getenv("PML_FUZZ_ITERS")) : 20000;
    const uint64_t seed =
        getenv("PML_FUZZ_SEED") ? strtoull(getenv("PML_FUZZ_SEED"), NULL, 0) : 0x5eed0000ull;
    for (int it = 0; it < iters && !pml__test_failed; it++) {
        rng = seed + (uint64_t)it;
        /* resnet50 (the largest seed) one time in 20 */
        int s = (int)below(NSEEDS - 1);
        if (below(20) == 0) s = NSEEDS - 1;
        buf_set(&b, seeds[s].p, seeds[s].len);
        mutate(&b, seeds, NSEEDS);
        fuzz_one(&b, it, &ok, &bad);
    }
    printf("# fuzz: %d mutated files read, %d refused\n", ok, bad);
    /* the loop explores both sides */
    CHECK_MSG(ok > iters / 50 && bad > iters / 2, "%d read, %d refused", ok, bad);
    free(b.p);
    for (int i = 0; i < NSEEDS; i++) free(seeds[i].p);
}

static const pml_test tests[] = {
    {"roundtrip_zoo", t_roundtrip_zoo},
    {"roundtrip_params", t_roundtrip_params},
    {"dropout_seeded", t_dropout_seeded},
    {"zoo_files_current", t_zoo_files_current},
    {"tiny", t_tiny},
    {"branches", t_branches},
    {"addend", t_addend},
    {"file_order", t_file_order},
    {"same_input_twice", t_same_input_twice},
    {"load", t_load},
    {"bad_files", t_bad_files},
    {"bad_files_listed", t_bad_files_listed},
    {"parse_text_errors", t_parse_text_errors},
    {"volumetric", t_volumetric},
    {"ext", t_ext},
    {"fuzz", t_fuzz},
    {0},
};
PML_TEST_MAIN(tests)
