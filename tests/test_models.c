/* pml — tests for the model zoo: parameter counts against the reference models, shapes, FLOPs,
 * and model-spec parsing errors. Graphs are only built, never run. */
#include "models/models.h"
#include "test.h"

/* ---------------------------------------------------------------- helpers */

/* Builds spec; on failure reports it and returns false (the graph is then empty). */
static bool build(const char *spec, pml_graph *g)
{
    pml_status st = pml_model_build(spec, g);
    if (st != PML_OK) {
        fprintf(stderr, "  building '%s' failed: %s: %s\n", spec, pml_status_str(st), pml_errmsg());
        pml__test_failed = 1;
        return false;
    }
    return true;
}

/* The node called name has output shape c x h x w. */
static void check_shape(const pml_graph *g, const char *name, int c, int h, int w)
{
    int id = pml_graph_find(g, name);
    CHECK_MSG(id >= 0, "%s: no node '%s'", g->name, name);
    if (id < 0) return;
    pml_shape s = g->nodes[id].out;
    CHECK_MSG(s.c == c && s.h == h && s.w == w, "%s: node '%s' is %dx%dx%d, expected %dx%dx%d",
              g->name, name, s.c, s.h, s.w, c, h, w);
}

/* The node called name has op type op. */
static const pml_node *node(const pml_graph *g, const char *name, pml_op_type op)
{
    int id = pml_graph_find(g, name);
    CHECK_MSG(id >= 0, "%s: no node '%s'", g->name, name);
    if (id < 0) return NULL;
    CHECK_MSG(g->nodes[id].op == op, "%s: node '%s' is %s, expected %s", g->name, name,
              pml_op_name(g->nodes[id].op), pml_op_name(op));
    return g->nodes[id].op == op ? &g->nodes[id] : NULL;
}

/* The logits are classes x 1 x 1 and feed the loss. */
static void check_logits(const pml_graph *g, int classes)
{
    CHECK(g->finalized);
    CHECK(g->classes == classes);
    CHECK(g->logits >= 0 && g->loss >= 0);
    if (g->logits < 0) return;
    pml_shape s = g->nodes[g->logits].out;
    CHECK_MSG(s.c == classes && s.h == 1 && s.w == 1, "%s: logits %dx%dx%d, expected %dx1x1",
              g->name, s.c, s.h, s.w, classes);
}

static void check_params(const pml_graph *g, size_t want)
{
    size_t got = pml_graph_param_count(g);
    CHECK_MSG(got == want, "%s: %zu parameters, expected %zu", g->name, got, want);
}

/* FLOPs per sample within 10% of the reference figure (multiply-add = 2). */
static void check_flops(const pml_graph *g, double want)
{
    double got = pml_graph_flops(g);
    CHECK_MSG(got >= 0.9 * want && got <= 1.1 * want, "%s: %.4g FLOP per sample, expected %.4g",
              g->name, got, want);
}

/* spec fails with status want, the message holds every string in must[] (NULL-terminated), and
 * the graph is left empty. */
static void check_bad(const char *spec, pml_status want, const char *const *must)
{
    pml_graph g;
    pml_status st = pml_model_build(spec, &g);
    CHECK_MSG(st == want, "'%s': got %s (%s), expected %s", spec, pml_status_str(st), pml_errmsg(),
              pml_status_str(want));
    for (const char *const *m = must; *m; m++)
        CHECK_MSG(strstr(pml_errmsg(), *m) != NULL, "'%s': message '%s' does not mention '%s'",
                  spec, pml_errmsg(), *m);
    CHECK_MSG(g.nnodes == 0 && g.nodes == NULL && g.order == NULL && !g.finalized,
              "'%s': the graph is not empty after the error", spec);
    pml_graph_free(&g);
}

#define BAD(spec, st, ...) check_bad(spec, st, (const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------- the planner's models */

static void t_alexnet(void)
{
    pml_graph g;
    if (!build("alexnet", &g)) return;
    check_params(&g, 61100840);
    check_logits(&g, 1000);
    check_shape(&g, "input", 3, 224, 224);
    check_shape(&g, "features.0", 64, 55, 55);
    check_shape(&g, "features.2", 64, 27, 27);
    check_shape(&g, "features.5", 192, 13, 13);
    check_shape(&g, "features.12", 256, 6, 6);
    check_shape(&g, "flatten", 9216, 1, 1);
    check_shape(&g, "classifier.4", 4096, 1, 1);
    CHECK(pml_graph_find(&g, "avgpool") < 0); /* AdaptiveAvgPool2d((6,6)) is the identity here */
    const pml_node *n = node(&g, "classifier.0", PML_OP_DROPOUT);
    if (n) CHECK_NEAR(n->a.rate, 0.5, 1e-6);
    n = node(&g, "features.0", PML_OP_CONV2D);
    if (n) CHECK(n->a.kh == 11 && n->a.sh == 4 && n->a.act == PML_ACT_RELU && n->a.bias);
    check_flops(&g, 1.428e9);
    pml_graph_free(&g);
}

static void t_alexnet_sizes(void)
{
    pml_graph g;
    /* 430 gives a 12x12 feature map: AdaptiveAvgPool2d((6,6)) is a 2x2 average pool */
    if (build("alexnet:size=430,classes=10", &g)) {
        check_shape(&g, "features.12", 256, 12, 12);
        check_shape(&g, "avgpool", 256, 6, 6);
        check_logits(&g, 10);
        check_params(&g, 61100840 - 990 * 4097);
        pml_graph_free(&g);
    }
    BAD("alexnet:size=300", PML_EINVAL, "alexnet", "size=300", "8x8");
    BAD("alexnet:size=62", PML_EINVAL, "alexnet", "size=62");
}

static void t_vgg16(void)
{
    pml_graph g;
    if (!build("vgg16", &g)) return;
    check_params(&g, 138357544);
    check_logits(&g, 1000);
    check_shape(&g, "features.0", 64, 224, 224);
    check_shape(&g, "features.4", 64, 112, 112);
    check_shape(&g, "features.28", 512, 14, 14);
    check_shape(&g, "features.30", 512, 7, 7);
    check_shape(&g, "flatten", 25088, 1, 1);
    CHECK(node(&g, "classifier.6", PML_OP_LINEAR) != NULL);
    CHECK(node(&g, "classifier.5", PML_OP_DROPOUT) != NULL);
    check_flops(&g, 30.94e9);
    pml_graph_free(&g);
    if (build("vgg16:classes=10,size=448", &g)) {
        check_shape(&g, "features.30", 512, 14, 14);
        check_shape(&g, "avgpool", 512, 7, 7);
        check_params(&g, 138357544 - 990 * 4097);
        pml_graph_free(&g);
    }
    BAD("vgg16:size=100", PML_EINVAL, "vgg16", "size=100", "3x3");
}

static void t_resnet50(void)
{
    pml_graph g;
    if (!build("resnet50", &g)) return;
    check_params(&g, 25557032);
    check_logits(&g, 1000);
    check_shape(&g, "conv1", 64, 112, 112);
    check_shape(&g, "maxpool", 64, 56, 56);
    check_shape(&g, "layer1.2.relu", 256, 56, 56);
    check_shape(&g, "layer2.0.conv1", 128, 56, 56); /* v1.5: the stride is on conv2 */
    check_shape(&g, "layer2.0.conv2", 128, 28, 28);
    check_shape(&g, "layer2.0.downsample.1", 512, 28, 28);
    check_shape(&g, "layer3.5.relu", 1024, 14, 14);
    check_shape(&g, "layer4.2.relu", 2048, 7, 7);
    check_shape(&g, "avgpool", 2048, 1, 1);
    CHECK(node(&g, "layer1.0.downsample.0", PML_OP_CONV2D) != NULL); /* 64 -> 256 channels */
    CHECK(pml_graph_find(&g, "layer1.1.downsample.0") < 0);
    CHECK(node(&g, "layer4.2.add", PML_OP_ADD) != NULL);
    const pml_node *n = node(&g, "layer3.1.conv2", PML_OP_CONV2D);
    if (n) CHECK(!n->a.bias && n->a.act == PML_ACT_NONE);
    n = node(&g, "layer3.1.bn2", PML_OP_BATCHNORM);
    if (n) {
        CHECK_NEAR(n->a.eps, 1e-5, 1e-9);
        CHECK_NEAR(n->a.momentum, 0.9, 1e-6); /* torchvision momentum 0.1 */
        CHECK(n->nparam == 2 && n->param_size[0] + n->param_size[1] == 512);
    }
    check_flops(&g, 8.18e9);
    pml_graph_free(&g);
    if (build("resnet50:size=128,classes=100", &g)) {
        check_shape(&g, "layer4.2.relu", 2048, 4, 4);
        check_logits(&g, 100);
        check_params(&g, 25557032 - 900 * 2049);
        pml_graph_free(&g);
    }
}

static void t_inception_v3(void)
{
    pml_graph g;
    if (!build("inception-v3", &g)) return;
    /* torchvision's 27,161,264 less the AuxLogits head (conv0 768*128 + bn 2*128, conv1
     * 128*768*25 + bn 2*768, fc 768*1000 + 1000 = 3,326,696) */
    check_params(&g, 23834568);
    check_logits(&g, 1000);
    check_shape(&g, "input", 3, 299, 299);
    check_shape(&g, "Conv2d_1a_3x3.relu", 32, 149, 149);
    check_shape(&g, "Conv2d_2b_3x3.relu", 64, 147, 147);
    check_shape(&g, "maxpool1", 64, 73, 73);
    check_shape(&g, "Conv2d_4a_3x3.relu", 192, 71, 71);
    check_shape(&g, "maxpool2", 192, 35, 35);
    check_shape(&g, "Mixed_5b", 256, 35, 35);
    check_shape(&g, "Mixed_5d", 288, 35, 35);
    check_shape(&g, "Mixed_6a", 768, 17, 17);
    check_shape(&g, "Mixed_6b.branch7x7_2.conv", 128, 17, 17);
    check_shape(&g, "Mixed_6e", 768, 17, 17);
    check_shape(&g, "Mixed_7a", 1280, 8, 8);
    check_shape(&g, "Mixed_7b.branch3x3", 768, 8, 8);
    check_shape(&g, "Mixed_7b.branch3x3dbl", 768, 8, 8);
    check_shape(&g, "Mixed_7c", 2048, 8, 8);
    check_shape(&g, "avgpool", 2048, 1, 1);
    /* 1x7 pad (0,3) and 7x1 pad (3,0), resolved to top/bottom/left/right */
    const pml_node *n = node(&g, "Mixed_6b.branch7x7_2.conv", PML_OP_CONV2D);
    if (n)
        CHECK(n->a.kh == 1 && n->a.kw == 7 && n->a.pt == 0 && n->a.pb == 0 && n->a.pl == 3 &&
              n->a.pr == 3 && !n->a.bias);
    n = node(&g, "Mixed_6b.branch7x7dbl_2.conv", PML_OP_CONV2D);
    if (n)
        CHECK(n->a.kh == 7 && n->a.kw == 1 && n->a.pt == 3 && n->a.pb == 3 && n->a.pl == 0 &&
              n->a.pr == 0);
    n = node(&g, "Mixed_7c.branch3x3_2a.conv", PML_OP_CONV2D);
    if (n) CHECK(n->a.kh == 1 && n->a.kw == 3 && n->a.pl == 1 && n->a.pt == 0);
    n = node(&g, "Mixed_5b.avg_pool", PML_OP_AVGPOOL2D);
    if (n) CHECK(n->a.kh == 3 && n->a.sh == 1 && n->a.count_pad && n->a.pt == 1 && n->a.pr == 1);
    n = node(&g, "Mixed_5b.branch_pool.bn", PML_OP_BATCHNORM);
    if (n) CHECK_NEAR(n->a.eps, 1e-3, 1e-9);
    n = node(&g, "Mixed_7c", PML_OP_CONCAT);
    if (n) CHECK(n->nin == 4);
    n = node(&g, "Mixed_6a", PML_OP_CONCAT);
    if (n) CHECK(n->nin == 3 && g.nodes[n->in[2]].op == PML_OP_MAXPOOL2D);
    CHECK(node(&g, "dropout", PML_OP_DROPOUT) != NULL);
    check_flops(&g, 11.43e9);
    pml_graph_free(&g);
    /* the smallest input torchvision accepts */
    if (build("inception-v3:size=75,classes=10", &g)) {
        check_shape(&g, "Mixed_7c", 2048, 1, 1);
        check_logits(&g, 10);
        check_params(&g, 23834568 - 990 * 2049);
        pml_graph_free(&g);
    }
    BAD("inception-v3:size=74", PML_EINVAL, "inception-v3", "size=74");
    BAD("inception-v3:aux_logits=1", PML_EUNKNOWN, "inception-v3", "aux_logits");
}

/* Every default listed in the zoo table is accepted, and gives the same graph as no parameters:
 * each builder reads every parameter it documents. */
static void t_zoo_defaults(void)
{
    int count = 0;
    const pml_zoo_entry *z = pml_zoo_list(&count);
    CHECK(count >= 7);
    for (int i = 0; i < count; i++) {
        char spec[256];
        int len = snprintf(spec, sizeof spec, "%s:%s", z[i].name, z[i].params);
        CHECK(len > 0 && (size_t)len < sizeof spec);
        for (char *c = spec; *c; c++)
            if (*c == ' ') *c = ',';
        pml_graph a, b;
        if (!build(z[i].name, &a)) continue;
        if (build(spec, &b)) {
            CHECK_MSG(pml_graph_param_count(&a) == pml_graph_param_count(&b) &&
                          a.nnodes == b.nnodes && a.classes == b.classes,
                      "'%s' differs from '%s'", spec, z[i].name);
            pml_graph_free(&b);
        }
        pml_graph_free(&a);
    }
}

/* classes= changes the logits of every model */
static void t_classes(void)
{
    static const char *const specs[] = {
        "mlp:classes=7",   "fashion-cnn:classes=7", "flowers-cnn:classes=7",  "alexnet:classes=7",
        "vgg16:classes=7", "resnet50:classes=7",    "inception-v3:classes=7",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        pml_graph g;
        if (!build(specs[i], &g)) continue;
        check_logits(&g, 7);
        pml_graph_free(&g);
    }
}

/* ---------------------------------------------------------------- the small models */

static void t_mlp(void)
{
    pml_graph g;
    if (build("mlp", &g)) {
        check_params(&g, 784 * 128 + 128 + 128 * 10 + 10);
        check_logits(&g, 10);
        pml_graph_free(&g);
    }
    if (build("mlp:units=512,layers=8", &g)) {
        check_params(&g, 784 * 512 + 512 + 7 * (512 * 512 + 512) + 512 * 10 + 10);
        check_shape(&g, "dense8", 512, 1, 1);
        CHECK(pml_graph_find(&g, "dense9") < 0);
        check_logits(&g, 10);
        pml_graph_free(&g);
    }
    if (build("mlp:layers=0,classes=3", &g)) {
        check_params(&g, 784 * 3 + 3);
        check_logits(&g, 3);
        pml_graph_free(&g);
    }
}

static void t_fashion_cnn(void)
{
    pml_graph g;
    if (!build("fashion-cnn", &g)) return;
    check_params(&g, 225034);
    check_shape(&g, "pool2", 64, 5, 5);
    check_logits(&g, 10);
    pml_graph_free(&g);
}

static void t_flowers_cnn(void)
{
    pml_graph g;
    if (!build("flowers-cnn", &g)) return;
    check_params(&g, 3989285); /* the TensorFlow tutorial's model.summary() */
    check_shape(&g, "input", 3, 180, 180);
    check_shape(&g, "pool3", 64, 22, 22);
    check_logits(&g, 5);
    pml_graph_free(&g);
}

/* ---------------------------------------------------------------- bad specs */

static void t_bad_specs(void)
{
    BAD("nosuchnet", PML_EUNKNOWN, "nosuchnet", "mlp", "resnet50");
    BAD("nosuchnet:units=3", PML_EUNKNOWN, "nosuchnet");
    BAD("mlp:depth=3", PML_EUNKNOWN, "mlp", "depth");
    BAD("resnet50:depth=101", PML_EUNKNOWN, "resnet50", "depth", "classes");
    BAD("mlp:units=abc", PML_EINVAL, "mlp", "units", "abc");
    BAD("mlp:units=12x", PML_EINVAL, "mlp", "units");
    BAD("mlp:units=99999999999999999999", PML_EINVAL, "mlp", "units");
    BAD("mlp:units=0", PML_EINVAL, "mlp", "units=0");
    BAD("mlp:layers=-1", PML_EINVAL, "mlp", "layers=-1");
    BAD("mlp:dropout=1.5", PML_EINVAL, "mlp", "dropout");
    BAD("vgg16:classes=0", PML_EINVAL, "vgg16", "classes=0");
    BAD("alexnet:classes=many", PML_EINVAL, "alexnet", "classes");
    BAD("mlp:units=1,units=2", PML_EINVAL, "mlp", "units", "twice");
    BAD("mlp:units", PML_EINVAL, "mlp", "units");
    BAD("mlp:units=", PML_EINVAL, "mlp", "units");
    BAD("mlp:=5", PML_EINVAL, "mlp");
    BAD("mlp:units=4,", PML_EINVAL, "mlp", "trailing");
    BAD("mlp:units=4,,layers=2", PML_EINVAL, "mlp");
    BAD(":units=4", PML_EINVAL, "name");
    BAD("", PML_EINVAL, "name");
}

static const pml_test tests[] = {
    {"alexnet", t_alexnet},
    {"alexnet_sizes", t_alexnet_sizes},
    {"vgg16", t_vgg16},
    {"resnet50", t_resnet50},
    {"inception_v3", t_inception_v3},
    {"zoo_defaults", t_zoo_defaults},
    {"classes", t_classes},
    {"mlp", t_mlp},
    {"fashion_cnn", t_fashion_cnn},
    {"flowers_cnn", t_flowers_cnn},
    {"bad_specs", t_bad_specs},
    {0},
};
PML_TEST_MAIN(tests)
