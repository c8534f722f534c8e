/* pml train — Keras-like training of a zoo model on Fashion-MNIST, an MNIST-style folder, a
 * folder of images with one subfolder per class, or synthetic images. */
#include "cli.h"
#include "plot.h"

#include "models/models.h"
#include "runtime/runtime.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char train_intro[] =
    "usage: pml train MODEL [options]\n"
    "\n"
    "Trains MODEL (a zoo name with optional parameters, e.g. mlp, mlp:units=512,layers=8,\n"
    "fashion-cnn, flowers-cnn:size=64; see `pml --help`; or a model .dot file, see\n"
    "`pml export --help`; or an ONNX model or a saved model (.pml), which start from their\n"
    "weights) and reports Keras-like progress:\n"
    "one line per epoch with loss, accuracy, val_loss, val_accuracy and seconds, then the\n"
    "test-set loss and accuracy. A progress bar with ETA is drawn on stderr when it is a\n"
    "terminal.\n"
    "\n"
    "Ctrl-C (SIGINT), SIGTERM or SIGHUP during training lets the running step finish, prints\n"
    "what the epochs so far gave (and --json output) and exits with 130 (SIGINT), 143\n"
    "(SIGTERM) or 129 (SIGHUP);\n"
    "a second one ends pml at once. Before training starts (loading, planning) either ends\n"
    "pml at once, saying so.\n"
    "\n";

static const cli_opt train_opts[] = {
    {"epochs", 0, "N", "epochs to train (default 5)"},
    {"batch", 0, "N", "mini-batch size (default 32)"},
    {"optimizer", 0, "adam|sgd",
     "optimizer (default adam: lr 0.001, beta1 0.9, beta2 0.999, eps 1e-7)"},
    {"lr", 0, "X", "learning rate, up to 1e9 (default 0.001 for adam, 0.01 for sgd)"},
    {"momentum", 0, "X", "SGD momentum in [0, 1) (default 0)"},
    {"seed", 0, "N", "seed for initialisation, shuffling, dropout, synthetic data (default 1)"},
    {"threads", 0, "N",
     "cores to run on, one pinned worker each (default: all cores of\n"
     "this machine); --threads 1 runs on one core"},
    {"plan", 0, "P",
     "how to split the work: a plan file (pml compile), data, model or\n"
     "owt (baselines), search, or none (split each operator across the\n"
     "threads as it comes). Default: search, once per model, machine and\n"
     "batch; the plan is cached in ~/.cache/pml/plans and reused"},
    {"trace", 0, "FILE.json",
     "write a Chrome trace of every task (chrome://tracing, Perfetto;\n"
     "pml simulate PLAN --compare FILE.json compares it with the\n"
     "simulator's prediction); - for standard output (progress lines\n"
     "go to stderr)"},
    {"data", 0, "DIR|synthetic",
     "an MNIST-style folder of IDX files (default for 28x28x1 models:\n"
     PML_FASHION_MNIST_DIR ", Debian package dataset-fashion-mnist),\n"
     "a folder of JPEG/PNG images with one subfolder per class (as\n"
     "Keras' image_dataset_from_directory; resized to the model's\n"
     "input; with train/ and test/ subfolders those are the sets, else\n"
     "there is no test set), or synthetic images of the model's input\n"
     "shape (fixed seed)"},
    {"skip-bad", 0, NULL,
     "image folders: skip images that cannot be decoded (and say how\n"
     "many) instead of stopping at the first"},
    {"train-samples", 0, "N",
     "use only the first N training samples (synthetic: generate N;\n"
     "default 2936, the flowers tutorial's training set)"},
    {"test-samples", 0, "N", "use only the first N test samples (synthetic default 734)"},
    {"validation-split", 0, "F",
     "hold out the last fraction F (0 < F < 1) of the training set and\n"
     "report val_loss and val_accuracy each epoch"},
    {"max-steps", 0, "N", "stop after N training steps in total"},
    {"machine", 0, "M",
     "under mpirun: one plan for the whole run across the ranks, on a\n"
     "machine whose nodes are the ranks (M: a file from mpirun -np N pml\n"
     "topo -o M, or ranks: measured at start-up, then cached); --plan\n"
     "(a file or a strategy) may then split operators across ranks;\n"
     "without it, the searched plan unless a short trial across the\n"
     "ranks finds data parallelism faster"},
    {"sync", 0, "allreduce|ps",
     "under mpirun: every rank computes and the gradients are summed\n"
     "across them (allreduce, the default), or the last --servers ranks\n"
     "are parameter servers: they hold the parameters in shards, sum\n"
     "the workers' gradients and update them (ps)"},
    {"servers", 0, "K", "with --sync ps: K parameter-server ranks (default 1)"},
    {"bucket-mb", 0, "X",
     "under mpirun: sum the gradients across the ranks in buckets of\n"
     "about X MB while the backward pass runs (default: an eighth of\n"
     "the gradients, 64 KiB to 4 MiB); 0: in one sum after it"},
    {"shares", 0, "auto|equal|N,N,...",
     "under mpirun, data-parallel ranks: the samples of each batch\n"
     "every rank takes; auto (the default): equal, then re-split by\n"
     "the ranks' measured speeds when a faster rank taking more would\n"
     "shorten the steps (not for models with batch normalisation);\n"
     "equal; or one number per rank, adding up to --batch"},
    {"checkpoint", 0, "DIR",
     "write checkpoints to DIR (made when missing): every\n"
     "--checkpoint-every N steps (default 500) and when training stops\n"
     "(its end, Ctrl-C, SIGTERM, --max-steps), from a copy taken between\n"
     "two steps while training goes on; the newest --keep K stay\n"
     "(default 3)"},
    {"checkpoint-every", 0, "N", "with --checkpoint: a checkpoint every N steps (default 500)"},
    {"keep", 0, "K", "with --checkpoint: the newest K checkpoints stay (default 3)"},
    {"resume", 0, "DIR|FILE",
     "go on from a checkpoint (a folder's newest): the same model,\n"
     "--seed and --batch; the losses are those of a run not stopped"},
    {"save", 0, "FILE.pml",
     "after training, write the model and its weights to FILE (pml\n"
     "evaluate, pml predict and every MODEL argument read it)"},
    {"plot", 0, "FILE.svg|png",
     "after training (also when stopped early), draw the loss and the\n"
     "accuracy per epoch, with validation's (--validation-split), as a\n"
     "chart of two panels"},
    {"check-numerics", 0, NULL, "stop with the node's name when a loss or gradient is not finite"},
    {"json", 0, NULL,
     "print one JSON object with the results on stdout (progress lines\n"
     "go to stderr)"},
    {"help", 'h', NULL, "this help"},
    {0},
};

/* Before training nothing can stop at a clean point: loading and planning are single calls
 * (and write their files atomically). A signal there ends pml at once, with one line saying
 * where. From pml_train on, it handles SIGINT, SIGTERM and SIGHUP (opts.handle_signals). */
enum { PHASE_MODEL, PHASE_DATA, PHASE_PLAN, PHASE_START };
static const char *const phase_names[] = {"while loading the model", "while loading the data",
                                          "while planning", "while starting to train"};
static volatile sig_atomic_t phase;

static void say(const char *s) /* async-signal-safe */
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

static void on_early_signal(int sig)
{
    say("pml train: interrupted by ");
    say(sig == SIGINT ? "SIGINT " : sig == SIGHUP ? "SIGHUP " : "SIGTERM ");
    say(phase_names[phase]);
    say("\n");
    signal(sig, SIG_DFL); /* SA_RESETHAND did it; be sure */
    raise(sig);           /* the parent sees how pml ended */
}

/* "pml train", or "pml train (rank 3)" in a run of several processes */
static char who[48] = "pml train";

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", who);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

typedef struct progress {
    FILE *out; /* epoch lines */
    bool bar;  /* draw a progress bar on stderr */
    int epochs;
    int reported; /* epochs whose line is out */
    const char *plan_file; /* the plan as a file, for the explanation of a slow run */
    /* the choice among candidates, kept in the cache when the run changes it */
    const pml_graph *g;
    const pml_machine *here;
    const pml_candidates *cands;
    int batch;
    bool shares_said; /* the ranks' shares of a batch changed, and a line said so */
} progress;

static void on_slow(void *ud, double measured, double predicted)
{
    progress *p = ud;
    if (p->bar) fprintf(stderr, "\r\033[K");
    fprintf(stderr,
            "pml train: steps take %.3g ms, %.1fx the %.3g ms the plan predicted; run with "
            "--trace T.json, then pml simulate %s --compare T.json shows where the time goes\n",
            1e3 * measured, measured / predicted, 1e3 * predicted,
            p->plan_file ? cli_safe(p->plan_file) : "PLAN.dot");
}

static void on_shares(void *ud, long step, const int *share, int ranks)
{
    progress *p = ud;
    if (p->shares_said) return; /* once: the JSON has the last */
    p->shares_said = true;
    if (p->bar) fprintf(stderr, "\r\033[K");
    fprintf(p->out, "Shares: the ranks run at different speeds; from step %ld each batch's "
            "samples by rank are ", step + 1);
    for (int r = 0; r < ranks; r++) fprintf(p->out, "%s%d", r ? ", " : "", share[r]);
    fputc('\n', p->out);
    fflush(p->out);
}

static void on_rechecked(void *ud, const pml_candidate *from, const pml_candidate *to)
{
    progress *p = ud;
    if (p->bar) fprintf(stderr, "\r\033[K");
    if (strcmp(from->name, to->name) == 0)
        fprintf(stderr,
                "pml train: steps slowed down; each other choice tried in this run was slower: "
                "kept %s (%.3g ms/step): this machine is busier than when it was chosen\n",
                to->name, 1e3 * to->measured);
    else
        err("steps slowed down; tried in this run, %s takes %.3g ms/step, %s %.3g: switched to "
            "%s\n",
            from->name, 1e3 * from->measured, to->name, 1e3 * to->measured, to->name);
    /* the next run starts with what this one measured */
    if (p->cands && p->cands->n > 0)
        pml_choice_save(p->g, p->here, p->batch, p->cands->c, p->cands->n,
                        (int)(to - p->cands->c));
}

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (s >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", (int)(s / 3600), (int)fmod(s / 60, 60),
                 (int)fmod(s, 60));
    else if (s >= 60)
        snprintf(buf, cap, "%d:%02d", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, cap, "%ds", (int)ceil(s));
}

static void on_step(void *ud, int epoch, long step, long steps, double loss, double acc,
                    double elapsed)
{
    progress *p = ud; /* pml_train calls this about every 100 ms */
    if (!p->bar) return;
    char bar[31], eta[32];
    int fill = (int)(30.0 * step / steps);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
    bar[30] = 0;
    fmt_eta(eta, sizeof eta, elapsed / step * (double)(steps - step));
    fprintf(stderr, "\r\033[KEpoch %d/%d %ld/%ld [%s] - ETA: %s - loss: %.4f - accuracy: %.4f",
            epoch, p->epochs, step, steps, bar, eta, loss, acc);
    fflush(stderr);
}

static void epoch_line(progress *p, const pml_epoch_stats *s, bool partial)
{
    if (p->bar) fprintf(stderr, "\r\033[K");
    if (partial) /* the epoch it stopped in: its steps so far */
        fprintf(p->out, "Epoch %d/%d - %ld step%s, interrupted", s->epoch, p->epochs, s->steps,
                s->steps == 1 ? "" : "s");
    else if (s->resumed_at > 0) /* a resumed run's first epoch: its steps, after those before */
        fprintf(p->out, "Epoch %d/%d - %ld/%ld (resumed after step %ld)", s->epoch, p->epochs,
                s->resumed_at + s->steps, s->resumed_at + s->steps, s->resumed_at);
    else
        fprintf(p->out, "Epoch %d/%d - %ld/%ld", s->epoch, p->epochs, s->steps, s->steps);
    fprintf(p->out, " - %.2fs %.2fms/step - loss: %.4f - accuracy: %.4f", s->seconds,
            s->steps ? 1e3 * s->seconds / (double)s->steps : 0.0, s->loss, s->accuracy);
    if (s->has_val)
        fprintf(p->out, " - val_loss: %.4f - val_accuracy: %.4f", s->val_loss, s->val_accuracy);
    fputc('\n', p->out);
    fflush(p->out);
    p->reported = s->epoch;
}

static void on_checkpoint_failed(void *ud, long step, const char *why)
{
    (void)ud;
    err("the checkpoint of step %ld could not be written: %s; training goes on, the checkpoints "
        "before it are intact\n",
        step, why);
}

static void on_epoch(void *ud, const pml_epoch_stats *s)
{
    epoch_line(ud, s, false);
}

static const char *stop_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "stop request";
}

/* interrupted: the run was stopped; error: it failed (the message); the epochs so far either way */
static int json_ranks = 1;
static double json_predicted; /* the simulator's seconds per step of the plan run (0: none) */

static void print_json(const char *model, const char *plan, int threads, int batch,
                       const pml_train_result *r, bool interrupted, const char *error)
{
    FILE *f = stdout;
    cli_json_begin(f);
    fputs(",\"model\":", f);
    cli_json_str(f, model);
    fputs(",\"plan\":", f);
    cli_json_str(f, plan);
    fprintf(f, ",\"threads\":%d,\"ranks\":%d,\"batch\":%d", threads, json_ranks, batch);
    if (json_predicted > 0) fprintf(f, ",\"predicted_step_seconds\":%.6g", json_predicted);
    fputs(",\"epochs\":[", f);
    for (int i = 0, k = 0; i < r->epochs_run; i++) {
        const pml_epoch_stats *s = &r->epochs[i];
        if (s->steps == 0) continue; /* before the step a run resumed at */
        /* the loss in full: runs that should match can be compared bit for bit */
        fprintf(f, "%s{\"epoch\":%d,\"steps\":%ld,\"samples\":%ld,\"loss\":%.17g,\"accuracy\":%.6g",
                k++ ? "," : "", s->epoch, s->steps, s->samples, s->loss, s->accuracy);
        if (s->has_val)
            fprintf(f, ",\"val_loss\":%.6g,\"val_accuracy\":%.6g", s->val_loss, s->val_accuracy);
        fprintf(f, ",\"seconds\":%.6g}", s->seconds);
    }
    fputc(']', f);
    if (r->has_test)
        fprintf(f, ",\"test_loss\":%.17g,\"test_accuracy\":%.6g", r->test_loss, r->test_accuracy);
    if (r->resumed_step > 0)
        fprintf(f, ",\"resumed_step\":%ld,\"resume_seconds\":%.6g", r->resumed_step,
                r->resume_seconds);
    if (r->resumed_plan[0]) {
        fputs(",\"resumed_plan\":", f);
        cli_json_str(f, r->resumed_plan);
    }
    if (r->checkpoints > 0)
        fprintf(f, ",\"checkpoints\":%d,\"checkpoints_failed\":%d,\"checkpoint_wait_seconds\":%.6g",
                r->checkpoints, r->checkpoints_failed, r->checkpoint_wait);
    if (r->allreduce_seconds > 0) /* rank 0's buckets: seconds summing, the part hidden */
        fprintf(f, ",\"buckets\":%d,\"allreduce_seconds\":%.6g,\"allreduce_hidden\":%.4f",
                r->buckets, r->allreduce_seconds, r->allreduce_hidden / r->allreduce_seconds);
    if (r->allreduce_last_seconds > 0) /* the same on the rank that ended its pass last */
        fprintf(f, ",\"allreduce_last_seconds\":%.6g,\"allreduce_last_hidden\":%.4f",
                r->allreduce_last_seconds, r->allreduce_last_hidden / r->allreduce_last_seconds);
    if (r->nshares > 1) { /* data-parallel ranks: each one's samples of a batch at the end */
        fputs(",\"shares\":[", f);
        for (int i = 0; i < r->nshares; i++) fprintf(f, "%s%d", i ? "," : "", r->shares[i]);
        fprintf(f, "],\"share_tries\":%d,\"share_changes\":%d", r->share_tries,
                r->share_changes);
    }
    if (interrupted) {
        fputs(",\"interrupted\":", f);
        cli_json_str(f, stop_name(r->signal));
    }
    if (error) {
        fputs(",\"error\":", f);
        cli_json_str(f, error);
    }
    fputs("}\n", f);
}

/* --plot FILE: two panels, the loss and the accuracy per epoch of training and, when there was
 * one, validation, at the epochs the run reports (those with steps: not the ones before the step
 * a resumed run went on from). */
static pml_status plot_epochs(const char *path, const char *title, const pml_train_result *r)
{
    const size_t n = (size_t)r->epochs_run;
    double *v = malloc(5 * (n ? n : 1) * sizeof *v);
    if (!v) return pml_fail(PML_ENOMEM, "cannot draw '%s': out of memory", path);
    double *x = v, *loss = v + n, *acc = v + 2 * n, *vloss = v + 3 * n, *vacc = v + 4 * n;
    int k = 0;
    bool val = false;
    for (int i = 0; i < r->epochs_run; i++) {
        const pml_epoch_stats *s = &r->epochs[i];
        if (s->steps == 0) continue;
        x[k] = s->epoch;
        loss[k] = s->loss;
        acc[k] = s->accuracy;
        vloss[k] = s->has_val ? s->val_loss : NAN;
        vacc[k] = s->has_val ? s->val_accuracy : NAN;
        val |= s->has_val;
        k++;
    }
    pml_status st;
    if (k == 0) {
        st = pml_fail(PML_ENOTFOUND, "--plot %s: no epoch ran, nothing to draw", path);
    } else {
        const plot_series sl[] = {{.label = "loss", .n = k, .x = x, .y = loss},
                                  {.label = "val_loss", .n = k, .x = x, .y = vloss}};
        const plot_series sa[] = {{.label = "accuracy", .n = k, .x = x, .y = acc},
                                  {.label = "val_accuracy", .n = k, .x = x, .y = vacc}};
        const plot_panel p[] = {{.title = "Loss", .xlabel = "epoch", .ylabel = "loss",
                                 .xticks_at_data = true, .nseries = val ? 2 : 1, .s = sl},
                                {.title = "Accuracy", .xlabel = "epoch", .ylabel = "accuracy",
                                 .xticks_at_data = true, .nseries = val ? 2 : 1, .s = sa}};
        st = plot_write(path, title, p, 2);
    }
    free(v);
    return st;
}

/* Every rank must run the same: pml, model, data, batch, epochs, seed, plan, machine. */
static pml_status same_run(pml_dist *dist, const pml_graph *g, const char *plan,
                           const char *machine, const char *data, const pml_train_opts *o)
{
    char *text = NULL;
    size_t len = 0;
    pml_status st = pml_model_format_dot(g, &text, &len);
    if (st != PML_OK) return st;
    uint64_t h = pml_hash_str(PML_HASH_INIT, "pml " PML_VERSION);
    h = pml_hash(h, text, len);
    free(text);
    char run[512];
    snprintf(run, sizeof run, "batch %d epochs %d seed %llu data %s plan %s servers %d machine %s",
             o->batch, o->epochs, (unsigned long long)o->seed, data ? data : "-",
             plan ? plan : "-", o->ps_servers, machine ? machine : "-");
    h = pml_hash_str(h, run);
    return pml_dist_check_same(dist, h, "pml, model, data, batch, seed, plan or machine");
}

/* A rank of a run across processes: its share of this host's cores (the host's ranks split
 * them), the per-operator executor there or the plan named for its part of each batch; every
 * rank must run the same model, data and plan with the same pml. */
static pml_status rank_plan(pml_dist *dist, const pml_graph *g, const char *plan,
                            bool threads_given, bool trace, const char *data, pml_train_opts *o,
                            pml_machine *here, pml_plan *pl, char *desc, size_t cap)
{
    int first, per = cli_rank_cores(dist, &first);
    if (threads_given && o->threads < per) per = o->threads;
    const int workers = pml_dist_size(dist) - o->ps_servers; /* servers compute nothing */
    const int batch = (o->batch + workers - 1) / workers;
    pml_status st = same_run(dist, g, plan, NULL, data, o);
    if (st != PML_OK) return st;
    o->threads = per;
    o->first_core = first;
    /* a trace records a plan's tasks: without --plan, data parallelism over the rank's cores
     * (the per-operator executor's split, as tasks) */
    if (!plan && trace) plan = "data";
    if (!plan || strcmp(plan, "none") == 0) {
        snprintf(desc, cap, "none (each operator split as it comes), on cores %d-%d", first,
                 first + per - 1);
        return PML_OK;
    }
    pml_machine full;
    if ((st = cli_machine_load_ranks(dist, &full)) != PML_OK) return st; /* collective */
    st = pml_machine_some_cores(&full, first, per, here);
    pml_machine_free(&full);
    if (st != PML_OK) return st;
    if ((st = pml_plan_for(plan, g, here, batch, 5, pl)) != PML_OK) return st;
    snprintf(desc, cap, "%s, for %d samples of each batch on cores %d-%d", plan, batch, first,
             first + per - 1);
    o->machine = here;
    o->plan = pl;
    return PML_OK;
}

/* Rank 0's text to every rank (pml_dist_bcast_text); when rank 0 failed to make it (st), every
 * rank fails, rank 0 with its own message. */
static pml_status share_text(pml_dist *dist, pml_status st, char **text, size_t *len)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", st != PML_OK ? pml_errmsg() : "");
    pml_status bs = pml_dist_bcast_text(dist, text, len); /* NULL text: every rank fails */
    if (st != PML_OK) {
        free(*text);
        *text = NULL;
        return pml_fail(st, "%s", why);
    }
    return bs;
}

/* Plan `spec` (a file or a strategy) for the run across ranks, made or read by rank 0 and sent
 * to every rank (a search takes time and is not the same twice). */
static pml_status bcast_plan(pml_dist *dist, const pml_graph *g, const pml_machine *m,
                             const char *spec, int batch, pml_plan *pl)
{
    const pml_plan_read_opts ro = {.model = g, .batch = batch, .any_machine = true};
    char *text = NULL;
    size_t len = 0;
    pml_status st = PML_OK;
    memset(pl, 0, sizeof *pl);
    if (pml_dist_rank(dist) == 0) {
        if (pml_plan_is_strategy(spec)) {
            pml_strategy_opts so = {.budget = 5};
            st = pml_plan_strategy(spec, g, m, batch, &so, pl);
        } else {
            st = pml_plan_read_ext(spec, &ro, m, NULL, pl, NULL);
        }
        if (st == PML_OK) st = pml_plan_format(pl, g, m, &text, &len);
    }
    if ((st = share_text(dist, st, &text, &len)) != PML_OK) {
        pml_plan_free(pl);
        return st;
    }
    if (pml_dist_rank(dist) != 0) st = pml_plan_parse(text, len, spec, &ro, m, NULL, pl, NULL);
    free(text);
    return st;
}

/* A plan for the whole run across the ranks (--machine under mpirun): its machine, a node per
 * rank (`spec`: a file, or "ranks": this run's, measured now), and the plan (`plan`: a file or a
 * strategy; default search) are made by rank 0 and sent to every rank, so every rank runs the
 * same tasks; each runs its node's on its share of this host's cores. */
static pml_status across_plan(pml_dist *dist, const pml_graph *g, const char *spec,
                              const char *plan, const char *data, const pml_dataset *train,
                              pml_train_opts *o,
                              pml_machine *m, pml_plan *pl, char *desc, size_t cap)
{
    const int rank = pml_dist_rank(dist), ranks = pml_dist_size(dist);
    char note[512] = "";
    char *text = NULL;
    size_t len = 0;
    pml_status st = same_run(dist, g, plan, spec, data, o);
    if (st != PML_OK) return st;
    if (strcmp(spec, "ranks") == 0)
        st = cli_ranks_machine(dist, true, m, note, sizeof note); /* collective */
    else if (rank == 0)
        st = pml_machine_load(spec, m);
    if (st == PML_OK && rank == 0) st = pml_machine_format_dot(m, &text, &len);
    if ((st = share_text(dist, st, &text, &len)) != PML_OK) return st;
    if (rank != 0) {
        pml_machine_free(m);
        st = pml_machine_parse_dot(text, len, spec, m);
    }
    free(text);
    text = NULL;
    if (st != PML_OK) return st;
    int nodes = 0;
    for (int c = 0; c < m->ncompute; c++)
        if (m->dev[m->compute[c]].node + 1 > nodes) nodes = m->dev[m->compute[c]].node + 1;
    if (nodes != ranks)
        return pml_fail(PML_EINVAL,
                        "--machine %s: the machine has %d node%s, and mpirun started %d ranks: "
                        "a plan across ranks needs a node per rank (mpirun -np %d pml topo -o "
                        "ranks.dot makes one)",
                        spec, nodes, nodes == 1 ? "" : "s", ranks, ranks);
    int first, per = cli_rank_cores(dist, &first);
    char trial[256] = "";
    if (plan) {
        st = bcast_plan(dist, g, m, plan, o->batch, pl);
    } else { /* the searched plan, unless a short trial finds data parallelism faster */
        pml_plan alt;
        memset(&alt, 0, sizeof alt);
        plan = "search";
        st = bcast_plan(dist, g, m, "search", o->batch, pl);
        if (st == PML_OK) st = bcast_plan(dist, g, m, "data", o->batch, &alt);
        pml_candidate c[2] = {{.name = "search", .machine = m, .plan = pl, .threads = per},
                              {.name = "data", .machine = m, .plan = &alt, .threads = per}};
        pml_choose_opts co = pml_choose_opts_default();
        co.seed = o->seed;
        co.dist = dist;
        co.first_core = first;
        int best = 0;
        if (st == PML_OK) st = pml_choose(g, train, o->batch, c, 2, &co, &best);
        if (st == PML_OK) {
            snprintf(trial, sizeof trial, " (trial: search %.3g ms/step, data %.3g ms/step)",
                     1e3 * c[0].measured, 1e3 * c[1].measured);
            if (best == 1) {
                pml_plan t = *pl;
                *pl = alt;
                alt = t;
                plan = "data";
            }
        }
        pml_plan_free(&alt);
    }
    if (st != PML_OK) return st;
    o->threads = per;
    o->first_core = first;
    o->machine = m;
    o->plan = pl;
    o->plan_across_ranks = true;
    snprintf(desc, cap, "%s across the %d ranks of machine '%s'%s%s%s", plan, ranks, m->name,
             trial, note[0] ? "; " : "", note);
    size_t n = strlen(desc);
    if (n && desc[n - 1] == '\n') desc[n - 1] = 0;
    return PML_OK;
}

/* "Trial (1.4 s): search plan 0.121 ms/step, data parallel 0.118 ms/step, ..." */
static void trial_line(FILE *f, const pml_candidates *cs, double seconds)
{
    fprintf(f, "Trial (%.1f s):", seconds);
    for (int i = 0; i < cs->n; i++)
        fprintf(f, "%s %s %.3g ms/step", i ? "," : "", cs->c[i].name, 1e3 * cs->c[i].measured);
    if (cs->n > 0 && cs->c[0].others >= PML_CHOICE_QUIET)
        fprintf(f, " (other processes used %.0f%% of the machine: the next run tries again)",
                100 * cs->c[0].others);
    fputc('\n', f);
}

#define MAX_SHARES 4096

/* --shares N,N,...: samples per rank (at most MAX_SHARES ranks) */
static bool parse_shares(const char *v, int *share, int *n)
{
    *n = 0;
    for (const char *p = v;; p++) {
        char *end;
        errno = 0;
        const long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 0x7fffffffL || *n == MAX_SHARES ||
            isspace((unsigned char)*p))
            return false;
        share[(*n)++] = (int)x;
        if (*end == 0) return true;
        if (*end != ',') return false;
        p = end;
    }
}

int cmd_train(int argc, char **argv)
{
    cli c;
    cli_start(&c, "train", argc, argv, train_opts);
    const char *model = NULL, *data = NULL;
    pml_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 5;
    o.batch = 32;
    o.seed = 1;
    o.threads = pml_machine_cores();
    pml_optim_kind kind = PML_OPTIM_ADAM;
    double lr = -1, momentum = 0;
    long train_samples = 0, test_samples = 0;
    bool json = false, threads_given = false, sync_ps = false, skip_bad = false;
    int servers = 0;
    static int shares[MAX_SHARES]; /* --shares N,N,...: o.shares */
    const char *plan = NULL, *trace = NULL, *machine = NULL, *plot = NULL;
    char plan_desc[4096] = "none", plan_file[4096] = "";
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, train_intro, train_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--epochs")) {
            o.epochs = (int)cli_long(&c, 1, 1000000);
        } else if (cli_is(&c, "--batch")) {
            o.batch = (int)cli_long(&c, 1, 1 << 20);
        } else if (cli_is(&c, "--optimizer")) {
            const char *s = cli_str(&c);
            if (s && strcmp(s, "adam") == 0)
                kind = PML_OPTIM_ADAM;
            else if (s && strcmp(s, "sgd") == 0)
                kind = PML_OPTIM_SGD;
            else if (s)
                cli_error(&c, "--optimizer '%s' must be adam or sgd", s);
        } else if (cli_is(&c, "--lr")) {
            lr = cli_double(&c, 0, 1e9, true, false);
        } else if (cli_is(&c, "--momentum")) {
            momentum = cli_double(&c, 0, 1, false, true);
        } else if (cli_is(&c, "--seed")) {
            o.seed = cli_u64(&c);
        } else if (cli_is(&c, "--threads")) {
            o.threads = (int)cli_long(&c, 1, 64);
            threads_given = true;
        } else if (cli_is(&c, "--plan")) {
            plan = cli_str(&c);
        } else if (cli_is(&c, "--machine")) {
            machine = cli_str(&c);
        } else if (cli_is(&c, "--trace")) {
            trace = cli_str(&c);
        } else if (cli_is(&c, "--data")) {
            data = cli_str(&c);
        } else if (cli_is(&c, "--skip-bad")) {
            skip_bad = true;
        } else if (cli_is(&c, "--train-samples")) {
            train_samples = cli_long(&c, 1, 0x7fffffffL);
        } else if (cli_is(&c, "--test-samples")) {
            test_samples = cli_long(&c, 1, 0x7fffffffL);
        } else if (cli_is(&c, "--validation-split")) {
            o.validation_split = cli_double(&c, 0, 1, true, true);
        } else if (cli_is(&c, "--max-steps")) {
            o.max_steps = cli_long(&c, 1, 0x7fffffffffffffffL);
        } else if (cli_is(&c, "--sync")) {
            const char *v = cli_str(&c);
            if (v && strcmp(v, "ps") == 0) sync_ps = true;
            else if (v && strcmp(v, "allreduce") != 0)
                cli_error(&c, "--sync '%s': allreduce or ps", v);
        } else if (cli_is(&c, "--servers")) {
            servers = (int)cli_long(&c, 1, 1024);
        } else if (cli_is(&c, "--bucket-mb")) {
            const double mb = cli_double(&c, 0, 1024, false, false);
            o.bucket_bytes = mb > 0 ? mb * 1e6 : -1;
        } else if (cli_is(&c, "--shares")) {
            const char *v = cli_str(&c);
            if (v && strcmp(v, "equal") == 0) {
                o.equal_shares = true;
            } else if (v && strcmp(v, "auto") != 0) {
                if (!parse_shares(v, shares, &o.nshares))
                    cli_error(&c, "--shares '%s': auto, equal, or samples per rank (N,N,...)", v);
            }
        } else if (cli_is(&c, "--checkpoint")) {
            o.checkpoint_dir = cli_str(&c);
        } else if (cli_is(&c, "--checkpoint-every")) {
            o.checkpoint_every = cli_long(&c, 1, 0x7fffffffffffffffL);
        } else if (cli_is(&c, "--keep")) {
            o.checkpoint_keep = (int)cli_long(&c, 1, 1000000);
        } else if (cli_is(&c, "--resume")) {
            o.resume_from = cli_str(&c);
        } else if (cli_is(&c, "--save")) {
            o.save_path = cli_str(&c);
        } else if (cli_is(&c, "--plot")) {
            if ((plot = cli_str(&c)) && !plot_name_ok(plot))
                cli_error(&c, "--plot '%s': a chart is written as .svg or .png", plot);
        } else if (cli_is(&c, "--check-numerics")) {
            o.check_numerics = true;
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (servers && !sync_ps) cli_error(&c, "--servers: parameter servers come with --sync ps");
    if ((o.checkpoint_every || o.checkpoint_keep) && !o.checkpoint_dir)
        cli_error(&c, "%s goes with --checkpoint DIR", o.checkpoint_every ? "--checkpoint-every" : "--keep");
    if (c.failed) return EXIT_USAGE;
    if (sync_ps) o.ps_servers = servers ? servers : 1;
    o.shares = o.nshares ? shares : NULL;
    if (!model) {
        err("missing MODEL (see pml train --help)\n");
        return EXIT_USAGE;
    }
    if (o.save_path) { /* a place it can be written, before training */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", o.save_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        const char *d = slash ? (dir[0] ? dir : "/") : ".";
        struct stat sb;
        if (stat(o.save_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            err("--save %s: a folder, not a file\n", cli_safe(o.save_path));
            return 1;
        }
        if (access(d, W_OK | X_OK) != 0) {
            err("--save %s: cannot write in '%s': %s\n", cli_safe(o.save_path), cli_safe(d),
                strerror(errno));
            return 1;
        }
    }
    pml_optim_defaults(&o.optim, kind);
    if (lr > 0) o.optim.lr = (float)lr;
    o.optim.momentum = (float)momentum;
    if (momentum > 0 && kind != PML_OPTIM_SGD) {
        err("--momentum applies to --optimizer sgd only\n");
        return EXIT_USAGE;
    }
    const bool trace_stdout = trace && strcmp(trace, "-") == 0;
    if (trace_stdout && json) {
        fprintf(stderr,
                "pml train: --trace - and --json both write to standard output; pick one\n");
        return EXIT_USAGE;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_early_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* under mpirun (or srun): one rank of a data-parallel run across processes */
    pml_dist *dist = NULL;
    pml_status st = pml_dist_init(&argc, &argv, &dist);
    if (st != PML_OK) {
        err("%s\n", pml_errmsg());
        return 1;
    }
    const int ranks = pml_dist_size(dist), rank = pml_dist_rank(dist);
    if (o.ps_servers >= ranks) {
        err("--sync ps: %d parameter server%s and at least one worker need %d ranks (mpirun -np "
            "%d); this run has %d\n",
            o.ps_servers, o.ps_servers == 1 ? "" : "s", o.ps_servers + 1, o.ps_servers + 1, ranks);
        pml_dist_abort(dist, EXIT_USAGE);
        pml_dist_finalize(dist);
        return EXIT_USAGE;
    }
    if (o.shares && ranks == 1) {
        err("--shares N,N,...: the samples of each batch every rank takes under mpirun; this "
            "run is one process\n");
        pml_dist_finalize(dist);
        return EXIT_USAGE;
    }
    if (ranks > 1) {
        snprintf(who, sizeof who, "pml train (rank %d)", rank);
        if (rank != 0 && !freopen("/dev/null", "w", stdout)) { /* rank 0 speaks for all */
            err("cannot silence standard output\n");
            pml_dist_abort(dist, 1);
        }
    }

    pml_graph g;
    phase = PHASE_MODEL;
    /* an ONNX model or a saved model starts from its weights */
    pml_onnx from;
    memset(&from, 0, sizeof from);
    if (pml_model_is_onnx(model) || pml_model_is_saved(model)) {
        if ((st = pml_infer_load(model, o.seed, &from)) == PML_OK) {
            g = from.g; /* moves out */
            pml_graph_init(&from.g, NULL);
            o.init_params = from.params;
            o.init_state = from.state;
        }
    } else {
        st = pml_model_load(model, &g);
    }
    if (st != PML_OK) {
        pml_onnx_free(&from);
        err("%s\n", pml_errmsg());
        pml_dist_abort(dist, 1);
        pml_dist_finalize(dist);
        return cli_exit_code(st);
    }
    pml_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    pml_machine here;
    pml_plan pl;
    pml_candidates cands;
    memset(&cands, 0, sizeof cands);
    memset(&here, 0, sizeof here);
    memset(&pl, 0, sizeof pl);
    int rc = 1;
    phase = PHASE_DATA;
    int skipped = 0;
    if ((st = pml_data_for_model(&g, data, train_samples, test_samples, o.seed, skip_bad, &skipped,
                                 &train, &test)) != PML_OK) {
        err("%s\n", pml_errmsg());
        goto out;
    }
    if (skipped)
        err("skipped %d bad image%s (without --skip-bad the first is an error naming it)\n",
            skipped, skipped == 1 ? "" : "s");

    /* the plan: this machine (its first --threads cores) and a plan for it */
    phase = PHASE_PLAN;
    if (machine && ranks == 1) {
        err("--machine %s: a machine is given for a run across ranks (under mpirun); alone, "
            "pml train runs on this machine\n",
            machine);
        rc = EXIT_USAGE;
        goto out;
    }
    if (trace && !machine && plan && strcmp(plan, "none") == 0) {
        err("--trace records the tasks of a plan; it needs a --plan other than none\n");
        rc = EXIT_USAGE;
        goto out;
    }
    if (machine) { /* one plan across the ranks */
        if (o.ps_servers > 0 || (plan && strcmp(plan, "none") == 0)) {
            err("--machine: a plan across the ranks takes %s\n",
                o.ps_servers > 0 ? "no --sync ps (the plan sums its gradients)"
                                 : "a plan other than none");
            rc = EXIT_USAGE;
            goto out;
        }
        if ((st = across_plan(dist, &g, machine, plan, data, &train, &o, &here, &pl, plan_desc,
                              sizeof plan_desc)) != PML_OK) {
            err("%s\n", pml_errmsg());
            rc = cli_exit_code(st);
            goto out;
        }
    } else if (ranks > 1) { /* this rank's share of this host's cores, and its part of each batch */
        if (o.shares && plan && strcmp(plan, "none") != 0) {
            err("--shares %s: the ranks run --plan %s, made for equal parts of each batch; "
                "fixed shares run on the per-operator executor (no --plan, or --plan none)\n",
                "N,N,...", cli_safe(plan));
            rc = EXIT_USAGE;
            goto out;
        }
        if ((st = rank_plan(dist, &g, plan, threads_given, trace, data, &o, &here, &pl, plan_desc,
                            sizeof plan_desc)) != PML_OK) {
            err("%s\n", pml_errmsg());
            goto out;
        }
    } else if (!plan || strcmp(plan, "none") != 0) {
        if (threads_given && o.threads > pml_machine_cores()) {
            err("--threads %d: this machine has %d cores\n", o.threads,
                    pml_machine_cores());
            rc = EXIT_USAGE;
            goto out;
        }
        st = pml_plan_here(&g, plan, threads_given ? o.threads : 0, o.batch, &here, &pl,
                           plan_desc, sizeof plan_desc);
        if (st != PML_OK) {
            err("%s\n", pml_errmsg());
            rc = cli_exit_code(st);
            goto out;
        }
        o.threads = here.ncompute;
        o.machine = &here;
        o.plan = &pl;
        if (access(plan_desc, R_OK) == 0) snprintf(plan_file, sizeof plan_file, "%s", plan_desc);
        /* no plan given: a short trial on the training data decides between the plan, data
         * parallel, the per-operator executor and one core (cached for the next run) */
        if (!plan && here.ncompute > 1) { /* here: all cores, or the first --threads */
            if ((st = pml_candidates_make(&g, &here, &pl, o.batch, &cands)) != PML_OK) {
                err("%s\n", pml_errmsg());
                goto out;
            }
            /* a trace records a plan's tasks; --threads N asks for N cores */
            for (int i = 0; i < cands.n; i++)
                if ((trace && !cands.c[i].plan) ||
                    (threads_given && cands.c[i].threads != here.ncompute))
                    cands.c[i--] = cands.c[--cands.n];
            int best = pml_choice_load(&g, &here, o.batch, cands.c, cands.n);
            const char *how = "the fastest in an earlier trial on this machine";
            /* a heavy model trained for a few steps: a trial would cost more than it saves */
            const long per_epoch = (train.n + o.batch - 1) / o.batch;
            long run_steps = per_epoch * o.epochs;
            if (o.max_steps > 0 && o.max_steps < run_steps) run_steps = o.max_steps;
            char short_note[96], margin_note[160];
            int planned = -1; /* the plan's candidate: its prediction was made with it */
            for (int i = 0; i < cands.n; i++)
                if (cands.c[i].plan == &pl) planned = i;
            if (best < 0 && planned >= 0 &&
                !pml_trial_worth(cands.n, cands.c[planned].predicted, run_steps)) {
                best = planned;
                snprintf(short_note, sizeof short_note,
                         "predicted; %ld steps are too few for a trial", run_steps);
                how = short_note;
            }
            if (best < 0) {
                const double t0 = pml_now();
                if ((st = pml_choose(&g, &train, o.batch, cands.c, cands.n, NULL, &best)) !=
                    PML_OK) {
                    err("%s\n", pml_errmsg());
                    goto out;
                }
                pml_choice_save(&g, &here, o.batch, cands.c, cands.n, best);
                trial_line(json || trace_stdout ? stderr : stdout, &cands, pml_now() - t0);
                how = "the fastest in the trial";
                for (int i = 0; i < cands.n; i++)
                    if (cands.c[i].measured < cands.c[best].measured) { /* PML_CHOICE_MARGIN */
                        snprintf(margin_note, sizeof margin_note,
                                 "the fastest in the trial on the fewest cores: other processes "
                                 "were busy, and more cores did not win by %.0f%%",
                                 100 * PML_CHOICE_MARGIN);
                        how = margin_note;
                    }
            }
            const pml_candidate *win = &cands.c[best];
            if (win->plan != &pl)
                snprintf(plan_desc, sizeof plan_desc, "%s (%s)", win->name, how);
            else
                snprintf(plan_desc + strlen(plan_desc), sizeof plan_desc - strlen(plan_desc),
                         " (%s)", how);
            o.threads = win->threads;
            o.machine = win->machine;
            o.plan = win->plan;
            o.predicted_step = win->predicted;
            if (!trace) {
                o.alternatives = cands.c;
                o.nalternatives = cands.n;
                o.current = best;
            }
        }
    }
    o.trace_path = trace;
    phase = PHASE_START;

    progress p = {.out = (json || trace_stdout) && rank == 0 ? stderr : stdout, /* others: null */
                  .bar = isatty(2) != 0 && rank == 0,
                  .epochs = o.epochs,
                  .plan_file = plan_file[0] ? plan_file : NULL,
                  .g = &g,
                  .here = &here,
                  .cands = cands.n ? &cands : NULL,
                  .batch = o.batch};
    json_ranks = ranks;
    json_predicted = o.predicted_step > 0                   ? o.predicted_step
                     : o.plan && o.machine && ranks == 1 ? pml_plan_predict(&g, o.machine, o.plan)
                                                          : 0;
    char ranks_note[48] = "";
    if (ranks > 1) snprintf(ranks_note, sizeof ranks_note, " in each of %d ranks", ranks);
    o.dist = dist;
    o.cb = (pml_train_cb){.ud = &p, .step = on_step, .epoch = on_epoch, .slow = on_slow,
                          .rechecked = on_rechecked, .checkpoint_failed = on_checkpoint_failed,
                          .shares = on_shares};
    o.handle_signals = true;
    char test_note[32] = "no test set";
    if (test.n) snprintf(test_note, sizeof test_note, "%d test", test.n);
    fprintf(p.out,
            "Model %s: %zu parameters, %.3g MFLOP/sample; data %s: %d train, %s; "
            "%d thread%s%s, batch %d, %s lr %g\n",
            cli_safe(g.name), pml_graph_param_count(&g), pml_graph_flops(&g) / 1e6,
            cli_safe(train.name), train.n, test_note, o.threads, o.threads == 1 ? "" : "s",
            ranks_note, o.batch, kind == PML_OPTIM_ADAM ? "adam" : "sgd", (double)o.optim.lr);
    if (o.resume_from) fprintf(p.out, "Resume: from %s\n", cli_safe(o.resume_from));
    fprintf(p.out, "Plan: %s\n",
            o.plan || cands.n || ranks > 1 ? cli_safe(plan_desc)
                                           : "none (each operator split as it comes)");
    fflush(p.out);

    pml_train_result r;
    st = pml_train(&g, &train, test.n ? &test : NULL, &o, &r); /* an image folder: maybe none */
    /* training is over, whatever comes now: the results are printed whole */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);
    if (p.bar) fprintf(stderr, "\r\033[K");
    if (r.resumed_plan[0])
        err("note: the checkpoint was made with plan '%s', this run's differs: its losses agree "
            "with a run not stopped to about 1e-5, not bit for bit\n",
            cli_safe(r.resumed_plan));
    if (st == PML_OK) {
        if (r.has_test)
            fprintf(p.out, "Test loss: %.4f - test accuracy: %.4f\n", r.test_loss,
                    r.test_accuracy);
        if (json) print_json(model, plan_desc, o.threads, o.batch, &r, false, NULL);
        rc = 0;
    } else if (st == PML_EINTR) {
        if (r.epochs_run > p.reported) /* the epoch it stopped in */
            epoch_line(&p, &r.epochs[r.epochs_run - 1], true);
        int done = 0;
        for (int i = 0; i < r.epochs_run; i++) done += r.epochs[i].complete;
        err("%s; %d epoch%s completed\n", pml_errmsg(), done,
                done == 1 ? "" : "s");
        if (json) print_json(model, plan_desc, o.threads, o.batch, &r, true, NULL);
        rc = r.signal ? 128 + r.signal : EXIT_INTERRUPTED;
    } else {
        err("%s\n", pml_errmsg());
        if (json) print_json(model, plan_desc, o.threads, o.batch, &r, false, pml_errmsg());
    }
    if (plot && rank == 0 && (st == PML_OK || st == PML_EINTR)) {
        char title[512];
        snprintf(title, sizeof title, "%s on %s: batch %d, %s lr %g", model, train.name, o.batch,
                 kind == PML_OPTIM_ADAM ? "adam" : "sgd", (double)o.optim.lr);
        if (plot_epochs(plot, title, &r) != PML_OK) {
            err("%s\n", pml_errmsg());
            if (rc == 0) rc = 1; /* an interrupted run keeps its status */
        }
    }
    pml_train_result_free(&r);
out:
    if (rc != 0 && rc != EXIT_INTERRUPTED && rc < 128 && ranks > 1)
        pml_dist_abort(dist, rc); /* one rank cannot go on: none can */
    pml_dist_finalize(dist);
    pml_candidates_free(&cands);
    pml_plan_free(&pl);
    pml_machine_free(&here);
    pml_data_free(&train);
    pml_data_free(&test);
    pml_graph_free(&g);
    pml_onnx_free(&from);
    return rc;
}
