/* Trace tests: the Chrome-trace reader (good traces, malformed, truncated, empty, not a trace)
 * and the predicted-vs-measured comparison (exact medians on a synthetic trace of a simulated
 * plan; traces of another model, batch, machine or plan refused; a real plan run read back). */
#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the reader */

static const char good[] =
    "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"model\":\"m\\u0031\",\"machine\":\"this\","
    "\"fingerprint\":\"0123456789abcdef\",\"batch\":8,\"strategy\":\"data\",\"devices\":2,"
    "\"parameters\":12730,"
    "\"extra\":[1,{\"a\":null},true,false,-1.5e3]},\n\"traceEvents\":[\n"
    "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":0,\"args\":{\"name\":\"core0\"}},\n"
    "{\"name\":\"fwd a[0]\",\"cat\":\"fwd\",\"ph\":\"X\",\"pid\":0,\"tid\":1,\"ts\":10.5,\"dur\":2,"
    "\"args\":{\"step\":3,\"phase\":\"train\",\"kind\":\"fwd\",\"node\":\"a\",\"part\":0,"
    "\"key\":\"00000800000000ff\"}},\n"
    "{\"ph\":\"X\",\"tid\":0,\"ts\":1e1,\"dur\":0.25,\"args\":{\"key\":\"0000000000000001\","
    "\"phase\":\"eval\",\"kind\":\"update\",\"node\":\"b \\\"q\\\"\",\"part\":-1,\"step\":4}},\n"
    "{\"ph\":\"X\",\"tid\":0,\"ts\":12,\"dur\":1,\"args\":{\"step\":3,\"phase\":\"train\","
    "\"kind\":\"sync\",\"node\":\"a\",\"part\":2,\"key\":\"FFFFFFFFFFFFFFFF\"}}\n]}\n";

static void t_parse_good(void)
{
    pml_trace t;
    CHECK_OK(pml_trace_parse(good, strlen(good), "good.json", &t));
    CHECK(strcmp(t.model, "m1") == 0);
    CHECK(strcmp(t.machine, "this") == 0);
    CHECK(strcmp(t.fingerprint, "0123456789abcdef") == 0);
    CHECK(strcmp(t.strategy, "data") == 0);
    CHECK(t.batch == 8 && t.devices == 2 && t.parameters == 12730);
    CHECK(t.nevents == 3);
    CHECK(t.nnames == 2);
    if (t.nevents == 3) {
        const pml_trace_event *e = t.ev;
        CHECK(e[0].key == 0x00000800000000ffull && e[0].step == 3 && e[0].train && e[0].tid == 1);
        CHECK(e[0].kind == PML_TASK_FWD && e[0].part == 0 && strcmp(t.names[e[0].node], "a") == 0);
        CHECK_NEAR(e[0].start, 10.5e-6, 1e-12);
        CHECK_NEAR(e[0].dur, 2e-6, 1e-12);
        CHECK(!e[1].train && e[1].kind == PML_TASK_UPDATE && e[1].part == -1 && e[1].step == 4);
        CHECK(strcmp(t.names[e[1].node], "b \"q\"") == 0);
        CHECK_NEAR(e[1].start, 10e-6, 1e-12);
        CHECK(e[2].key == UINT64_MAX && e[2].kind == PML_TASK_SYNC && e[2].node == e[0].node);
    }
    pml_trace_free(&t);
}

/* ranks: rank 0's tasks; with a plan across ranks every rank's, messages skipped */
static void t_parse_ranks(void)
{
    static const char *const heads[2] = {
        "{\"otherData\":{\"model\":\"m\",\"batch\":8,\"devices\":2,\"ranks\":2},",
        "{\"otherData\":{\"model\":\"m\",\"batch\":8,\"devices\":2,\"ranks\":2,\"across\":true},"};
    static const char events[] =
        "\"traceEvents\":["
        "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"ts\":1,\"dur\":1,\"args\":{\"step\":0,\"phase\":"
        "\"train\",\"kind\":\"fwd\",\"node\":\"a\",\"part\":0,\"key\":\"0000000000000001\"}},"
        "{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":1,\"dur\":1,\"args\":{\"step\":0,\"phase\":"
        "\"train\",\"kind\":\"fwd\",\"node\":\"a\",\"part\":1,\"key\":\"0000000000000002\"}},"
        "{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":2,\"dur\":1,\"args\":{\"step\":0,\"phase\":"
        "\"train\",\"kind\":\"message\",\"node\":\"a\",\"part\":0,\"key\":\"0000000000000003\"}},"
        "{\"ph\":\"X\",\"pid\":0,\"tid\":9,\"ts\":2,\"dur\":1,\"args\":{\"step\":0,\"phase\":"
        "\"train\",\"kind\":\"allreduce\",\"node\":\"\",\"part\":0,\"key\":\"0000000000000004\"}}]}";
    for (int across = 0; across < 2; across++) {
        char text[2048];
        snprintf(text, sizeof text, "%s%s", heads[across], events);
        pml_trace t;
        CHECK_OK(pml_trace_parse(text, strlen(text), "ranks.json", &t));
        CHECK(t.across == (across == 1));
        CHECK(t.nevents == (across ? 2 : 1));
        if (t.nevents == 2) CHECK(t.ev[1].tid == 1 && t.ev[1].key == 2);
        pml_trace_free(&t);
    }
}

typedef struct bad_case {
    const char *text, *want;
} bad_case;

#define HEAD "{\"otherData\":{\"model\":\"m\",\"batch\":8,\"devices\":2},\"traceEvents\":["
#define ARGS "\"args\":{\"step\":0,\"phase\":\"train\",\"kind\":\"fwd\",\"node\":\"a\",\"part\":0,"
#define EV(rest) "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"dur\":1," rest "}"
#define OKEV EV(ARGS "\"key\":\"0000000000000001\"}")

static void t_parse_bad(void)
{
    static const bad_case cases[] = {
        {"", "the file is empty"},
        {" \n\t ", "the file is empty"},
        {"[1,2]", "not a trace written by pml train --trace"},
        {"{}", "not a trace written by pml train --trace (no traceEvents)"},
        {"{\"traceEvents\":[]}", "(no otherData.model)"},
        {"{\"otherData\":{\"model\":\"m\"},\"traceEvents\":[]}", "has no otherData.batch"},
        {"{\"otherData\":{\"model\":\"m\",\"batch\":8},\"traceEvents\":[]}",
         "no otherData.devices"},
        {"{", "ends early"},
        {HEAD OKEV, "ends early"},
        {HEAD OKEV ",", "ends early"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"du", "ends early"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1.", "ends early"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":tr", "ends early"},
        {HEAD OKEV "]", "ends early"},
        {HEAD OKEV "]} x", "text after the trace object"},
        {HEAD OKEV ",]}", "malformed trace at line 1"},
        {HEAD "{\"ph\":\"X\",}]}", "expected a string"},
        {HEAD "{\"ph\" \"X\"}]}", "expected ':'"},
        {HEAD "{\"ph\":\"X\" \"tid\":0}]}", "expected ',' or '}'"},
        {HEAD "1]}", "an event must be an object"},
        {HEAD "{\"ph\":\"X\",\"ts\":01}]}", "expected ',' or '}'"},
        {HEAD "{\"ph\":\"X\",\"ts\":1.e3}]}", "bad number"},
        {HEAD "{\"ph\":\"X\",\"ts\":-}]}", "expected a number"},
        {HEAD "{\"ph\":\"X\",\"ts\":1e999}]}", "number out of range"},
        {HEAD "{\"ph\":\"X\",\"x\":nul}]}", "expected a value"},
        {HEAD "{\"ph\":\"X\",\"x\":\"a\\qb\"}]}", "bad escape"},
        {HEAD "{\"ph\":\"X\",\"x\":\"a\\u12g4\"}]}", "bad \\u escape"},
        {HEAD "{\"ph\":\"X\",\"x\":\"a\tb\"}]}", "control character"},
        {"{\"otherData\":{\"model\":\"m\",\"batch\":8,\"devices\":2},\n\"traceEvents\":\n[{\"ph\":"
         "\"X\"",
         "at line 3"},
        {"{\"otherData\":{\"model\":\"m\",\"batch\":8,\"devices\":2},\n\"traceEvents\":[\n{\"ph\"::"
         "1}]}",
         "line 3, column 7"},
        {HEAD EV(ARGS "\"kex\":\"0000000000000001\"}") "]}", "has no args.key"},
        {HEAD "{\"ph\":\"X\",\"ts\":1,\"dur\":1}]}", "has no tid"},
        {HEAD EV("\"args\":{\"key\":\"0000000000000001\"}") "]}", "has no args.step"},
        {HEAD EV(ARGS "\"key\":\"00000000000001\"}") "]}", "not 16 hex digits"},
        {HEAD EV(ARGS "\"key\":\"000000000000000g\"}") "]}", "not 16 hex digits"},
        {HEAD EV(ARGS "\"key\":\"-000000000000001\"}") "]}", "not 16 hex digits"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"dur\":-1," ARGS
              "\"key\":\"0000000000000001\"}}]}",
         "a bad ts or dur"},
        {HEAD "{\"ph\":\"X\",\"tid\":0.5,\"ts\":1,\"dur\":1," ARGS
              "\"key\":\"0000000000000001\"}}]}",
         "a bad tid"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"dur\":1,\"args\":{\"step\":0,\"phase\":\"train\","
              "\"kind\":\"fly\",\"node\":\"a\",\"part\":0,\"key\":\"0000000000000001\"}}]}",
         "unknown args.kind"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"dur\":1,\"args\":{\"step\":0,\"phase\":\"test\","
              "\"kind\":\"fwd\",\"node\":\"a\",\"part\":0,\"key\":\"0000000000000001\"}}]}",
         "neither train nor eval"},
        {HEAD "{\"ph\":\"X\",\"tid\":0,\"ts\":1,\"dur\":1,\"args\":{\"step\":1.5}}]}",
         "args.step must be an integer"},
        {"{\"otherData\":{\"model\":"
         "\"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
         "mmmmmmmmm\"},\"traceEvents\":[]}",
         "otherData.model is longer than 63 characters"},
        {"{\"otherData\":7,\"traceEvents\":[]}", "otherData must be an object"},
        {"{\"otherData\":{\"model\":\"m\"},\"traceEvents\":{}}", "traceEvents must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pml_trace t;
        pml_status st = pml_trace_parse(cases[i].text, strlen(cases[i].text), "bad.json", &t);
        CHECK_MSG(st != PML_OK, "case %zu parsed", i);
        if (st == PML_OK) {
            pml_trace_free(&t);
            continue;
        }
        CHECK(t.nevents == 0 && t.ev == NULL && t.names == NULL);
        CHECK_MSG(strstr(pml_errmsg(), "bad.json: ") == pml_errmsg(), "case %zu: %s", i,
                  pml_errmsg());
        CHECK_MSG(strstr(pml_errmsg(), cases[i].want) != NULL, "case %zu: '%s' lacks '%s'", i,
                  pml_errmsg(), cases[i].want);
        CHECK_MSG(strchr(pml_errmsg(), '\n') == NULL, "case %zu: two lines", i);
    }
    /* nesting beyond the limit */
    char deep[512];
    int n = snprintf(deep, sizeof deep, HEAD "{\"ph\":\"M\",\"x\":");
    for (int k = 0; k < 100; k++) deep[n++] = '[';
    for (int k = 0; k < 100; k++) deep[n++] = ']';
    n += snprintf(deep + n, sizeof deep - (size_t)n, "}]}");
    pml_trace t;
    CHECK(pml_trace_parse(deep, (size_t)n, "deep.json", &t) == PML_EFORMAT);
    CHECK(strstr(pml_errmsg(), "nested too deeply") != NULL);
    /* every truncation of a good trace is refused (and never crashes) */
    for (size_t len = 0; len + 2 < strlen(good); len++) {
        pml_status st = pml_trace_parse(good, len, "cut.json", &t);
        CHECK_MSG(st != PML_OK, "cut at %zu parsed", len);
        if (st == PML_OK) pml_trace_free(&t);
    }
    /* a missing file */
    CHECK(pml_trace_read("/nonexistent/t.json", &t) != PML_OK);
    CHECK(strstr(pml_errmsg(), "/nonexistent/t.json") != NULL);
}

/* ---------------------------------------------------------------- comparison */

typedef struct fixture {
    pml_graph g;
    pml_machine m;
    pml_costmodel *c;
    pml_plan p;
    pml_sim *s;
    int T;
    const int *order;
} fixture;

static bool fx_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    CHECK_OK(pml_model_build("mlp:units=16,layers=1,size=8", &f->g));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:2 pu:1", &f->m));
    pml_cost_opts o = pml_cost_opts_default();
    o.measure = false;
    o.cache_dir = "";
    CHECK_OK(pml_cost_create(&f->g, &f->m, &o, &f->c));
    CHECK_OK(pml_plan_data_parallel(&f->p, &f->g, &f->m, 8));
    if (!f->c) return false;
    CHECK_OK(pml_sim_create(&f->g, &f->m, &f->p, f->c, &f->s));
    if (!f->s) return false;
    f->order = pml_taskgraph_order((pml_taskgraph *)pml_sim_taskgraph(f->s), &f->T);
    return f->T > 0;
}

static void fx_close(fixture *f)
{
    pml_sim_destroy(f->s);
    pml_plan_free(&f->p);
    pml_cost_destroy(f->c);
    pml_machine_free(&f->m);
    pml_graph_free(&f->g);
}

static int worker(const pml_task *t)
{
    if (t->kind == PML_TASK_XFER) return t->grad ? t->dst : t->dev;
    if (t->kind == PML_TASK_SYNC) return t->dev >= 0 ? t->dev : t->group[0];
    return t->dev;
}

/* Changes to the synthetic trace */
typedef struct mutation {
    const char *model, *fingerprint, *strategy;
    int batch, devices;
    double parameters; /* -1: left out */
    int steps;         /* training steps */
    int drop_step;     /* a step missing its task 0 (-1: none) */
    int dup_step;      /* a step holding task 0 twice */
    bool bad_key, bad_worker, bad_part, bad_node, eval_only;
} mutation;

/* A trace of the fixture's plan: step s, task i (program order) lasts (i + 1) (s + 1) us, tasks
 * back to back from t = 1000 s; an inference pass after each step. */
static char *make_trace(const fixture *f, const mutation *mu, size_t *len)
{
    char *buf = NULL;
    FILE *o = open_memstream(&buf, len);
    if (!o) return NULL;
    fprintf(o,
            "{\"otherData\":{\"model\":\"%s\",\"machine\":\"x\",\"fingerprint\":\"%s\","
            "\"batch\":%d,\"strategy\":\"%s\",\"devices\":%d",
            mu->model ? mu->model : f->g.name, mu->fingerprint ? mu->fingerprint : f->m.fingerprint,
            mu->batch ? mu->batch : 8, mu->strategy ? mu->strategy : f->p.strategy,
            mu->devices ? mu->devices : 2);
    if (mu->parameters >= 0)
        fprintf(o, ",\"parameters\":%.0f",
                mu->parameters ? mu->parameters : (double)pml_graph_param_count(&f->g));
    fprintf(o, "},\"traceEvents\":[\n");
    const pml_taskgraph *tg = pml_sim_taskgraph(f->s);
    double ts = 1000e6;
    bool first = true;
    for (int s = 0; s < mu->steps; s++)
        for (int phase = 0; phase < 2; phase++)
            for (int i = 0; i < f->T; i++) {
                const pml_task *t = pml_taskgraph_task(tg, f->order[i]);
                if (phase == 1 && t->kind != PML_TASK_FWD) continue;
                if (phase == 0 && mu->eval_only) continue;
                if (phase == 0 && s == mu->drop_step && i == 0) continue;
                const double dur = (i + 1.0) * (s + 1.0);
                for (int rep = 0; rep < (phase == 0 && s == mu->dup_step && i == 0 ? 2 : 1);
                     rep++) {
                    fprintf(
                        o,
                        "%s{\"ph\":\"X\",\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%d,"
                        "\"phase\":\"%s\",\"kind\":\"%s\",\"node\":\"%s\",\"part\":%d,"
                        "\"key\":\"%016llx\"}}\n",
                        first ? "" : ",", worker(t) ^ (mu->bad_worker && i == 1), ts, dur,
                        phase ? s + 1 : s, phase ? "eval" : "train",
                        pml_task_kind_name((pml_task_kind)t->kind), f->g.nodes[t->node].name,
                        t->part + (mu->bad_part && i == 2),
                        (unsigned long long)(t->key + (mu->bad_key && i == 3)));
                    first = false;
                }
                ts += dur;
            }
    fprintf(o, "]}\n");
    fclose(o);
    if (mu->bad_node) { /* rename the first node of a task event */
        char *at = strstr(buf, "\"node\":\"");
        if (at) at[8] = at[8] == 'Q' ? 'R' : 'Q';
    }
    return buf;
}

static pml_status compare(const fixture *f, const mutation *mu, int warmup, pml_trace_cmp *c)
{
    size_t len;
    char *text = make_trace(f, mu, &len);
    pml_trace t;
    pml_status st = pml_trace_parse(text, len, "syn.json", &t);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    free(text);
    if (st != PML_OK) {
        memset(c, 0, sizeof *c);
        return st;
    }
    st = pml_trace_compare(&t, "syn.json", &f->g, &f->m, f->s, warmup, c);
    pml_trace_free(&t);
    return st;
}

static void t_compare_values(void)
{
    fixture f;
    if (!fx_open(&f)) {
        fx_close(&f);
        return;
    }
    const pml_taskgraph *tg = pml_sim_taskgraph(f.s);
    pml_sim_result r;
    CHECK_OK(pml_sim_result_get(f.s, &r));
    const double T = f.T;
    /* 5 steps, 2 warm-up: steps 2, 3, 4 measured, medians are step 3's: x 4 */
    for (int variant = 0; variant < 3; variant++) {
        mutation mu = {.steps = 5, .drop_step = -1, .dup_step = -1};
        int warmup = 2, want_used = 3, want_steps = 5;
        double scale = 4;
        if (variant == 1) { /* the last step cut short: dropped */
            mu.steps = 6;
            mu.drop_step = 5;
        }
        if (variant == 1) mu.parameters = -1; /* an older trace */
        if (variant == 2) {                   /* more warm-up than steps: one step kept, the last */
            warmup = 9;
            want_used = 1;
            scale = 5;
        }
        pml_trace_cmp c;
        CHECK_OK(compare(&f, &mu, warmup, &c));
        CHECK(c.steps == want_steps && c.used == want_used && c.ntasks == f.T);
        CHECK_NEAR(c.measured_step, 1e-6 * scale * T * (T + 1) / 2, 1e-9);
        CHECK(c.predicted_step == r.step_seconds);
        double kinds[PML_TASK_KIND_COUNT] = {0};
        for (int i = 0; i < c.ntasks && c.task; i++) {
            const pml_task *t = pml_taskgraph_task(tg, c.task[i]);
            CHECK(c.task[i] == f.order[i]);
            CHECK_NEAR(c.measured[i], 1e-6 * scale * (i + 1), 1e-12);
            /* what the simulated step ran: the cost (no crowding here), to rounding */
            CHECK(c.predicted[i] == pml_sim_task_seconds(f.s, c.task[i]));
            CHECK_NEAR(c.predicted[i], t->cost, 1e-9 * t->cost + 1e-15);
            kinds[t->kind] += 1e-6 * scale * (i + 1);
        }
        for (int k = 0; k < PML_TASK_KIND_COUNT; k++) {
            CHECK_NEAR(c.measured_kind[k], kinds[k], 1e-12);
            CHECK(c.predicted_kind[k] == r.kind_seconds[k]);
        }
        pml_trace_cmp_free(&c);
        CHECK(c.task == NULL && c.measured == NULL);
    }
    pml_sim_result_free(&r);
    fx_close(&f);
}

static void t_compare_refuses(void)
{
    fixture f;
    if (!fx_open(&f)) {
        fx_close(&f);
        return;
    }
    const mutation base = {.steps = 4, .drop_step = -1, .dup_step = -1};
    for (int k = 0; k < 13; k++) {
        mutation mu = base;
        const char *want = NULL;
        switch (k) {
        case 0:
            mu.model = "fashion-cnn", want = "the trace is of model 'fashion-cnn'";
            break;
        case 1:
            mu.batch = 16, want = "the trace ran batch 16, the plan is for batch 8";
            break;
        case 2:
            mu.fingerprint = "0000000000000000", want = "fingerprint 0000000000000000";
            break;
        case 3:
            mu.devices = 4, want = "the trace ran on 4 devices";
            break;
        case 4:
            mu.strategy = "owt", want = "the trace ran a 'owt' plan";
            break;
        case 5:
            mu.bad_key = true, want = "is not a task of the plan";
            break;
        case 6:
            mu.bad_worker = true, want = "is not a task of the plan";
            break;
        case 7:
            mu.bad_part = true, want = "is not a task of the plan";
            break;
        case 8:
            mu.bad_node = true, want = "is not a task of the plan";
            break;
        case 9:
            mu.drop_step = 1, want = "training step 1 has";
            break;
        case 10:
            mu.dup_step = 2, want = "step 2 holds task";
            break;
        case 11:
            mu.eval_only = true, want = "the trace has no training steps";
            break;
        case 12:
            mu.parameters = 99, want = "with 99 parameters, the plan's has";
            break;
        }
        pml_trace_cmp c;
        pml_status st = compare(&f, &mu, 2, &c);
        CHECK_MSG(st != PML_OK, "case %d compared", k);
        if (st == PML_OK) {
            pml_trace_cmp_free(&c);
            continue;
        }
        CHECK(c.task == NULL && c.ntasks == 0);
        CHECK_MSG(strstr(pml_errmsg(), "syn.json: ") == pml_errmsg(), "case %d: %s", k,
                  pml_errmsg());
        CHECK_MSG(strstr(pml_errmsg(), want) != NULL, "case %d: '%s' lacks '%s'", k, pml_errmsg(),
                  want);
    }
    fx_close(&f);
}

/* a plan run on this machine, traced to a file and read back: every task of every step */
static void t_real_run(void)
{
    pml_machine here;
    CHECK_OK(pml_machine_load(NULL, &here));
    if (here.ncompute < 2) {
        SKIP("this machine has one core: plan runs need two");
        pml_machine_free(&here);
        return;
    }
    pml_graph g;
    CHECK_OK(pml_model_build("mlp:units=16,layers=1,size=8", &g));
    pml_plan p;
    CHECK_OK(pml_plan_owt(&p, &g, &here, 8));
    pml_exec_opts eo = {.batch = 8, .seed = 3, .machine = &here, .plan = &p};
    pml_exec *e = NULL;
    pml_optim o;
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    CHECK_OK(pml_optim_alloc(&o, g.nparams));
    CHECK_OK(pml_exec_create(&g, &eo, &e));
    char path[] = "/tmp/pml-test-trace-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    if (e && fd >= 0) {
        float *x = pml_exec_input(e);
        int32_t *y = pml_exec_labels(e);
        for (size_t i = 0; i < 8 * pml_shape_size(g.nodes[g.input].out); i++)
            x[i] = (float)(i % 7) / 7.0f;
        for (int i = 0; i < 8; i++) y[i] = i % g.classes;
        CHECK_OK(pml_exec_trace_begin(e, 100000));
        pml_step_result r;
        for (int s = 0; s < 4; s++) CHECK_OK(pml_exec_train_step(e, 8, &o, &r));
        CHECK_OK(pml_exec_forward(e, 8, false, &r));
        CHECK_OK(pml_exec_trace_write(e, path));
        pml_trace t;
        CHECK_OK(pml_trace_read(path, &t));
        pml_costmodel *c = NULL;
        pml_cost_opts co = pml_cost_opts_default();
        co.measure = false;
        co.cache_dir = "";
        CHECK_OK(pml_cost_create(&g, &here, &co, &c));
        pml_sim *s = NULL;
        if (c) CHECK_OK(pml_sim_create(&g, &here, &p, c, &s));
        if (s && t.nevents) {
            int T;
            pml_taskgraph_order((pml_taskgraph *)pml_sim_taskgraph(s), &T);
            long fwd = 0;
            for (int i = 0; i < pml_taskgraph_size(pml_sim_taskgraph(s)); i++) {
                const pml_task *task = pml_taskgraph_task(pml_sim_taskgraph(s), i);
                fwd += task &&
                       (task->kind == PML_TASK_FWD || (task->kind == PML_TASK_XFER && !task->grad));
            }
            CHECK(t.nevents == 4 * T + fwd);
            pml_trace_cmp cmp;
            CHECK_OK(pml_trace_compare(&t, path, &g, &here, s, 2, &cmp));
            CHECK(cmp.steps == 4 && cmp.used == 2 && cmp.ntasks == T);
            CHECK(cmp.measured_step > 0 && cmp.measured_kind[PML_TASK_FWD] > 0);
            for (int i = 0; i < cmp.ntasks; i++) CHECK(cmp.measured[i] >= 0);
            pml_trace_cmp_free(&cmp);
            /* the same trace against another plan of the model */
            pml_plan dp;
            pml_sim *ds = NULL;
            CHECK_OK(pml_plan_data_parallel(&dp, &g, &here, 8));
            snprintf(dp.strategy, sizeof dp.strategy, "%s", p.strategy);
            CHECK_OK(pml_sim_create(&g, &here, &dp, c, &ds));
            if (ds) {
                CHECK(pml_trace_compare(&t, path, &g, &here, ds, 2, &cmp) == PML_EINVAL);
                CHECK(strstr(pml_errmsg(), "another plan") != NULL);
            }
            pml_sim_destroy(ds);
            pml_plan_free(&dp);
        }
        pml_sim_destroy(s);
        pml_cost_destroy(c);
        pml_trace_free(&t);
    }
    if (fd >= 0) unlink(path);
    pml_exec_destroy(e);
    pml_optim_free(&o);
    pml_plan_free(&p);
    pml_graph_free(&g);
    pml_machine_free(&here);
}

static const pml_test tests[] = {
    {"parse_good", t_parse_good},
    {"parse_ranks", t_parse_ranks},
    {"parse_bad", t_parse_bad},
    {"compare_values", t_compare_values},
    {"compare_refuses", t_compare_refuses},
    {"real_run", t_real_run},
    {0},
};

PML_TEST_MAIN(tests)
