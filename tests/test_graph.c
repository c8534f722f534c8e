/* Graph IR tests: finalisation orders nodes, infers shapes, lays out parameters, and rejects
 * malformed graphs with a message naming the node. */
#include "ops/kernels.h"
#include "models/models.h"
#include "test.h"

static int input(pml_graph *g, int c, int h, int w)
{
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){c, h, w};
    return pml_graph_add(g, "input", PML_OP_INPUT, &a, 0, NULL);
}

static int linear(pml_graph *g, const char *name, int in, int out)
{
    pml_attrs a = pml_attrs_default(PML_OP_LINEAR);
    a.out = out;
    return pml_graph_add(g, name, PML_OP_LINEAR, &a, 1, &in);
}

static void expect_error(pml_graph *g, pml_status st, const char *needle)
{
    pml_status got = pml_graph_finalize(g);
    CHECK_MSG(got == st, "status %s, expected %s (%s)", pml_status_str(got), pml_status_str(st),
              pml_errmsg());
    CHECK_MSG(strstr(pml_errmsg(), needle) != NULL, "message '%s' lacks '%s'", pml_errmsg(),
              needle);
    CHECK(!g->finalized);
}

static void t_order_and_shapes(void)
{
    pml_graph g;
    pml_graph_init(&g, "t");
    int x = input(&g, 1, 4, 5);
    int f = pml_graph_add(&g, "flat", PML_OP_FLATTEN, NULL, 1, &x);
    int a = linear(&g, "a", f, 7);
    int l = pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &a);
    CHECK_OK(pml_graph_finalize(&g));
    CHECK(g.input == x && g.loss == l && g.logits == a && g.classes == 7);
    CHECK(g.order[0] == x && g.order[3] == l);
    CHECK(g.nodes[f].out.c == 20 && g.nodes[f].out.h == 1);
    CHECK(pml_graph_param_count(&g) == 20 * 7 + 7);
    CHECK(g.nodes[a].param_off[0] % 16 == 0 && g.nodes[a].param_off[1] % 16 == 0);
    CHECK(g.nparams >= pml_graph_param_count(&g));
    CHECK_NEAR(pml_graph_flops(&g), 2.0 * 20 * 7 + 4 * 7, 1e-9);
    pml_graph_free(&g);
}

static void t_topological_order_of_dag(void)
{
    /* nodes added in an order that is not topological (ids refer forward) */
    pml_graph g;
    pml_graph_init(&g, "dag");
    pml_attrs la = pml_attrs_default(PML_OP_LINEAR);
    la.out = 3;
    int in2[2] = {3, 4};
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, (int[]){1});   /* 0 */
    pml_graph_add(&g, "sum", PML_OP_ADD, NULL, 2, in2);                   /* 1 */
    pml_graph_add(&g, "input", PML_OP_INPUT, &(pml_attrs){.shape = {6, 1, 1}}, 0, NULL); /* 2 */
    pml_graph_add(&g, "l1", PML_OP_LINEAR, &la, 1, (int[]){2});           /* 3 */
    pml_graph_add(&g, "l2", PML_OP_LINEAR, &la, 1, (int[]){3});           /* 4 */
    CHECK_OK(pml_graph_finalize(&g));
    int pos[5];
    for (int k = 0; k < 5; k++) pos[g.order[k]] = k;
    for (int v = 0; v < 5; v++)
        for (int j = 0; j < g.nodes[v].nin; j++) CHECK(pos[g.nodes[v].in[j]] < pos[v]);
    CHECK(g.nodes[1].out.c == 3);
    pml_graph_free(&g);
}

static void t_errors(void)
{
    pml_graph g;
    /* empty */
    pml_graph_init(&g, "e");
    expect_error(&g, PML_EFORMAT, "no nodes");
    pml_graph_free(&g);
    /* no input */
    pml_graph_init(&g, "e");
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, (int[]){0});
    expect_error(&g, PML_EFORMAT, "cycle");
    pml_graph_free(&g);
    /* cycle through two nodes */
    pml_graph_init(&g, "e");
    int x = input(&g, 4, 1, 1);
    int in_a[2] = {x, 2};
    pml_graph_add(&g, "a", PML_OP_ADD, NULL, 2, in_a);
    linear(&g, "b", 1, 4);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, (int[]){2});
    expect_error(&g, PML_EFORMAT, "cycle");
    pml_graph_free(&g);
    /* dangling input id */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    linear(&g, "fc", 9, 3);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, (int[]){1});
    expect_error(&g, PML_EFORMAT, "'fc': input 0 refers to no node");
    pml_graph_free(&g);
    /* two inputs */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    pml_attrs a2 = pml_attrs_default(PML_OP_INPUT);
    a2.shape = (pml_shape){4, 1, 1};
    int y = pml_graph_add(&g, "input2", PML_OP_INPUT, &a2, 0, NULL);
    int s = pml_graph_add(&g, "s", PML_OP_ADD, NULL, 2, (int[]){x, y});
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &s);
    /* several inputs, each of its own shape (the batch shared): the first is g.input */
    CHECK_OK(pml_graph_finalize(&g));
    CHECK(g.input == x && g.nodes[y].out.c == 4);
    pml_graph_free(&g);
    /* inputs whose shapes an op cannot take */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    a2.shape = (pml_shape){5, 1, 1};
    y = pml_graph_add(&g, "input2", PML_OP_INPUT, &a2, 0, NULL);
    s = pml_graph_add(&g, "s", PML_OP_ADD, NULL, 2, (int[]){x, y});
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &s);
    expect_error(&g, PML_ESHAPE, "'s'");
    pml_graph_free(&g);
    /* no loss */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    linear(&g, "fc", x, 3);
    expect_error(&g, PML_EFORMAT, "no loss");
    pml_graph_free(&g);
    /* an unused node */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    int fc = linear(&g, "fc", x, 3);
    linear(&g, "orphan", x, 3);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &fc);
    expect_error(&g, PML_EFORMAT, "'orphan'");
    pml_graph_free(&g);
    /* wrong input count */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    pml_graph_add(&g, "r", PML_OP_RELU, NULL, 2, (int[]){x, x});
    expect_error(&g, PML_EFORMAT, "'r' (relu) has 2 inputs, needs 1");
    pml_graph_free(&g);
    /* shape mismatch */
    pml_graph_init(&g, "e");
    x = input(&g, 4, 1, 1);
    int l1 = linear(&g, "l1", x, 3), l2 = linear(&g, "l2", x, 5);
    s = pml_graph_add(&g, "sum", PML_OP_ADD, NULL, 2, (int[]){l1, l2});
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &s);
    expect_error(&g, PML_ESHAPE, "'sum' (add): input 1 is 5x1x1");
    pml_graph_free(&g);
    /* linear on an image */
    pml_graph_init(&g, "e");
    x = input(&g, 1, 4, 4);
    fc = linear(&g, "fc", x, 3);
    pml_graph_add(&g, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &fc);
    expect_error(&g, PML_ESHAPE, "add a flatten");
    pml_graph_free(&g);
    /* duplicate names, bad names */
    pml_graph_init(&g, "e");
    input(&g, 4, 1, 1);
    CHECK(pml_graph_add(&g, "input", PML_OP_RELU, NULL, 1, (int[]){0}) == -1);
    CHECK(strstr(pml_errmsg(), "defined twice"));
    CHECK(pml_graph_add(&g, "", PML_OP_RELU, NULL, 1, (int[]){0}) == -1);
    CHECK(pml_graph_add(&g, "x", PML_OP_COUNT, NULL, 0, NULL) == -1);
    pml_graph_free(&g);
}

static void t_names_and_status(void)
{
    for (int i = 0; i < PML_OP_COUNT; i++) {
        CHECK(pml_op_name((pml_op_type)i) != NULL);
        CHECK(pml_op_from_name(pml_op_name((pml_op_type)i)) == (pml_op_type)i);
        CHECK(strcmp(pml_ops[i].name, pml_op_name((pml_op_type)i)) == 0);
    }
    CHECK(pml_op_from_name("nope") == PML_OP_COUNT);
    CHECK(pml_op_name(PML_OP_COUNT) == NULL);
    CHECK(strcmp(pml_status_str(PML_OK), "ok") == 0);
    CHECK(strcmp(pml_status_str(PML_STATUS_COUNT), "unknown status") == 0);
    pml_fail(PML_EIO, "inner %d", 1);
    CHECK(pml_fail_ctx(PML_EIO, "file.dot: ") == PML_EIO);
    CHECK(strcmp(pml_errmsg(), "file.dot: inner 1") == 0);
}

static void t_window(void)
{
    int a, b;
    /* TF 'same', stride 2, even input: pad 0 before, 1 after */
    CHECK(pml__window_out(6, 3, 2, PML_PAD_SAME, 0, 0, &a, &b) == 3 && a == 0 && b == 1);
    CHECK(pml__window_out(5, 3, 1, PML_PAD_SAME, 0, 0, &a, &b) == 5 && a == 1 && b == 1);
    CHECK(pml__window_out(28, 3, 1, PML_PAD_VALID, 0, 0, &a, &b) == 26 && a == 0 && b == 0);
    CHECK(pml__window_out(224, 11, 4, PML_PAD_EXPLICIT, 2, 0, &a, &b) == 55 && a == 2 && b == 2);
    /* PyTorch ceil_mode */
    CHECK(pml__window_out(6, 3, 2, PML_PAD_VALID, 0, 1, &a, &b) == 3);
    CHECK(pml__window_out(2, 3, 1, PML_PAD_VALID, 0, 0, &a, &b) <= 0);
}

static void t_copy(void)
{
    pml_graph g, h;
    CHECK_OK(pml_model_build("mlp:units=16,layers=2", &g));
    CHECK_OK(pml_graph_copy(&h, &g));
    CHECK(h.nnodes == g.nnodes && h.nparams == g.nparams && h.finalized);
    CHECK(h.nodes != g.nodes && h.order != g.order);
    for (int i = 0; i < g.nnodes; i++) CHECK(strcmp(h.nodes[i].name, g.nodes[i].name) == 0);
    pml_graph_free(&g);
    CHECK(h.nodes[h.loss].op == PML_OP_SOFTMAX_XENT);
    pml_graph_free(&h);
}

static const pml_test tests[] = {
    {"order_and_shapes", t_order_and_shapes},
    {"topological_order_of_dag", t_topological_order_of_dag},
    {"errors", t_errors},
    {"names_and_status", t_names_and_status},
    {"window", t_window},
    {"copy", t_copy},
    {0, 0},
};

PML_TEST_MAIN(tests)
