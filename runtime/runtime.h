/* pml — runtime: datasets, the executor (reference and multi-threaded), training. */
#ifndef PML_RUNTIME_H
#define PML_RUNTIME_H

#include "ops/ops.h"
#include "planner/planner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- datasets */

/* A labelled image dataset. Images are stored as bytes (0..255) and handed out as floats scaled
 * to [0, 1]; a synthetic dataset generates each image from (seed, index) on demand. A dataset can
 * be a view [first, first + n) of another (validation split): views share storage. */
typedef struct pml_dataset {
    char name[64];          /* "fashion-mnist train", "synthetic test", ... */
    int n;                  /* samples in this dataset or view */
    int first;              /* first sample of the view in the storage */
    pml_shape shape;        /* per-sample shape (c, h, w) */
    int classes;
    const uint8_t *images;  /* storage: n_total * size bytes, CHW order per sample; NULL = synthetic */
    const int32_t *labels;  /* storage: n_total labels; NULL = synthetic */
    uint64_t seed;          /* synthetic */
    void *owner;            /* one allocation holding the storage, freed by pml_data_free (NULL for
                               views and synthetic sets); views die with it */
    struct pml__image_stream *stream; /* an image folder still being decoded into the storage
                                         (pml_data_open_image_dir), or NULL */
} pml_dataset;

/** Default folder of Fashion-MNIST (the Debian package dataset-fashion-mnist). */
#define PML_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Reads an IDX image file (magic 0x00000803: n, rows, cols unsigned bytes) and its IDX label
 * file (0x00000801) into \p d, each gzip-compressed or plain. The shape is (1, rows, cols), there
 * are 10 classes (MNIST-style: a label >= 10 is an error) and the name is the image file's base
 * name. Errors name the file and what is wrong (missing, wrong magic, data type or dimensions,
 * truncated, trailing data, corrupt gzip, counts differ, label out of range, no images, absurd
 * sizes); a header that declares more than the file holds costs no large allocation.
 * \return PML_OK or an error; on error \p d is empty. */
pml_status pml_data_load_idx(const char *images_path, const char *labels_path, pml_dataset *d);

/** Loads the training and test sets of an MNIST-style folder: train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each preferably with
 * .gz, else plain. \p dir NULL means PML_FASHION_MNIST_DIR. The sets are named after the folder
 * ("fashion-mnist train", "fashion-mnist test"); \p train or \p test may be NULL to skip it.
 * \return PML_OK or an error (a missing folder: the message says where the default data comes
 * from); on error both are empty. */
pml_status pml_data_load_mnist_dir(const char *dir, pml_dataset *train, pml_dataset *test);

/** Largest storage an image folder may take once decoded (n * c * h * w bytes): 8 GiB. */
#define PML_IMAGE_DIR_MAX_BYTES ((size_t)8 << 30)

/** Loads a folder of images with one subfolder per class, the layout of Keras'
 * image_dataset_from_directory (and of TensorFlow's flower_photos): the classes are the
 * subfolders in byte order of their names (labels 0..K-1, K >= 2), a class's images are its
 * files named *.jpg, *.jpeg or *.png (any case; in its subfolders too, in byte order of their
 * paths). Names starting with '.' are skipped; other files (a LICENSE.txt beside the classes, a
 * notes.txt in one) are ignored. Whether a file is a JPEG or a PNG is read from its first bytes.
 * Each image is decoded (libjpeg-turbo, libpng; several files at once in libuv's thread pool) to
 * \p shape.c channels as Keras' color_mode does — 3: grey replicated to RGB; 1: RGB to grey by
 * luminance, 0.299 R + 0.587 G + 0.114 B; alpha dropped, a palette expanded, 16 bits scaled to 8
 * — then resized to \p shape.h x \p shape.w by bilinear interpolation with half-pixel centres
 * and no antialiasing (tf.image.resize's "bilinear", Keras' default; PIL's when enlarging) and
 * rounded to bytes. The whole folder is decoded now: n * c * h * w bytes, refused (PML_ENOFIT)
 * above PML_IMAGE_DIR_MAX_BYTES or 3/4 of this machine's memory.
 * The samples are stored in an order shuffled once with a fixed seed (not a run's seed), so the
 * dataset is the same byte for byte on every run and machine, and a validation split (the last
 * fraction: pml_data_split) holds each class in about its share. The name is the folder's base
 * name.
 * A bad file (empty, truncated, not a JPEG or PNG, zero width or height, an unsupported colour
 * type such as CMYK, unreadable) is an error naming it — or, with \p skip_bad, skipped and
 * counted in \p skipped (may be NULL). Errors also name a class folder without images, a folder
 * without class subfolders or with only one, and a \p shape.c other than 1 or 3.
 * A decoded folder is cached on disk (pml_cache_dir("images"): the storage, labels, and the
 * listing's paths, sizes and mtimes, checksummed, written atomically): the next load of the same
 * folder at the same shape reads it instead of decoding when no file was added, removed or
 * changed (size or mtime). A stale, unreadable or corrupt cache is decoded anew and rewritten,
 * never an error. A cache with skipped files is used with \p skip_bad only.
 * \return PML_OK or an error; on error \p d is empty. */
pml_status pml_data_load_image_dir(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                                   pml_dataset *d);

/** As pml_data_load_image_dir, but returns once the folder is listed (and the storage bounds
 * checked), with n, labels and classes known, while the images decode in libuv's thread pool
 * (or come from the cache at once). pml_data_gather waits for the samples it gathers — or
 * decodes them itself when the pool has not started them — so a dataset gathered now gives the
 * same bytes as a loaded one. A bad file is not an error here: pml_data_check reports it (the
 * first bad file in sorted order, as pml_data_load_image_dir) once any file failed, and
 * pml_data_wait at the end; read d->images directly only after pml_data_wait. With \p skip_bad
 * the sample count depends on every file, so this loads the whole folder first, as
 * pml_data_load_image_dir. The cache is written once every file is decoded. */
pml_status pml_data_open_image_dir(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                                   pml_dataset *d);

/** Waits until a dataset opened by pml_data_open_image_dir is decoded (at once for others).
 * \return PML_OK, or the first bad file's error (in sorted order). */
pml_status pml_data_wait(const pml_dataset *d);

/** Without waiting while every file so far decoded: PML_OK; once a file failed, pml_data_wait
 * (which then ends soon: no file after the failed one in sorted order is started). */
pml_status pml_data_check(const pml_dataset *d);

/** A synthetic, learnable image dataset: each image is a striped disc on a random background;
 * the stripes' orientation and period and the disc's colour depend on the class, position,
 * jitter and noise on the image. Sample i (labels too) is a function of (\p seed, i); the class
 * patterns are the same for every seed, so make a test set from the same distribution with
 * another seed. Nothing is stored; images are made when a batch is gathered (about 1 ms for 32
 * images of 3x180x180). \return PML_OK, or PML_EINVAL for an empty or huge shape, classes
 * outside 1..65536 or n < 1. */
pml_status pml_data_synthetic(pml_shape shape, int classes, int n, uint64_t seed,
                              pml_dataset *d);

/** Splits off the last \p frac of \p d as \p val (views; \p d keeps ownership and becomes the
 * first part). As Keras' validation_split: the first floor(n * (1 - frac)) samples stay in \p d.
 * \return PML_OK, or PML_EINVAL when frac is not in (0, 1) or a part would be empty (then \p d is
 * unchanged and \p val empty). */
pml_status pml_data_split(pml_dataset *d, double frac, pml_dataset *val);

/** Gathers samples idx[0..n) (indices into the view, each in [0, d->n)) as floats byte / 255 into
 * x (n * size floats, NCHW) and their labels into y; x or y may be NULL. Thread-safe. From a
 * folder still decoding it waits for (or decodes) exactly those samples; a bad file's sample
 * reads as zeros, and pml_data_check then fails. */
void pml_data_gather(const pml_dataset *d, const int32_t *idx, int n, float *x, int32_t *y);

/** Releases storage the dataset owns (a view owns nothing) and empties \p d. Safe on empty and
 * zeroed datasets, views and NULL. */
void pml_data_free(pml_dataset *d);

/** The data pml train uses for model \p g: \p data "synthetic" (images of the model's input
 * shape: \p train_samples, default 2936, and \p test_samples, default 734, from \p seed), an
 * MNIST-style folder (train-images-idx3-ubyte and friends), an image folder
 * (pml_data_open_image_dir at the model's input shape when \p train is given — decoded while
 * training runs: check pml_data_check and pml_data_wait as pml_train does — else
 * pml_data_load_image_dir; \p skip_bad and \p skipped as there), or
 * NULL (Fashion-MNIST, for 28x28x1 models only). An image folder with train/ and test/
 * subfolders (each a folder of the same class subfolders) gives those two sets; any other is
 * the training set alone and \p test comes out empty (n = 0: no test set, as a Keras dataset
 * from one folder). \p train may be NULL to load the test set only: an image folder without
 * train/ and test/ is then the test set. A folder's sets are cut to the first \p train_samples
 * and \p test_samples (0: all). \return PML_OK or an error naming the folder or file
 * (PML_EINVAL: no default dataset for this model's shape); on error both are empty. */
pml_status pml_data_for_model(const pml_graph *g, const char *data, long train_samples,
                              long test_samples, uint64_t seed, bool skip_bad, int *skipped,
                              pml_dataset *train, pml_dataset *test);

/** A permutation of [0, n) for epoch \p epoch: Fisher-Yates driven by pml_rand_u64, the same
 * for the same (seed, epoch) and different across epochs. */
void pml_data_shuffle(int32_t *perm, int n, uint64_t seed, int epoch);

/* ---------------------------------------------------------------- executor */

/** \return the number of physical cores of this machine (hwloc; at least 1). */
int pml_machine_cores(void);

typedef struct pml_exec pml_exec;

typedef struct pml_exec_opts {
    int batch;            /* largest batch a step will run */
    int threads;          /* 1: the single-threaded reference path */
    uint64_t seed;        /* parameter init and dropout */
    bool check_numerics;  /* fail with the node's name on a non-finite loss or gradient */
    bool reference;       /* use the naive reference kernels (the oracle; implies threads = 1) */
    int first_core;       /* worker t is pinned to core first_core + t (a process sharing this
                             machine with others takes its own cores) */
    /* Testing: split every node that can be split, however small, preferring this split
     * (PML_SPLIT_*) where the op allows it. 0 = choose by cost. */
    unsigned force_split;
    /* Plan mode: run this plan's task graph on this machine's cores (one pinned worker per
     * compute device of `machine`, which must be this machine). batch must be the plan's batch;
     * threads and reference are ignored. Only whole training steps (pml_exec_train_step) and
     * inference passes (pml_exec_forward with training false) run in plan mode. */
    const struct pml_machine *machine;
    const struct pml_plan *plan;
    /* A plan across ranks: with several ranks in `dist` and a machine whose nodes are those
     * ranks (node r is rank r), this rank runs the tasks of node r's devices, on workers pinned
     * to cores first_core, first_core + 1, ... (at most `threads`); activations, gradients and
     * gradient sums that cross ranks go through MPI (runtime/link.c). Every rank creates the
     * executor (collective) and runs the same steps. NULL or one rank: the plan runs here. */
    struct pml_dist *dist;
} pml_exec_opts;

/** Creates an executor for a finalised graph: allocates every buffer a step needs (no allocation
 * in the steady state), initialises parameters from opts->seed. */
pml_status pml_exec_create(const pml_graph *g, const pml_exec_opts *opts, pml_exec **out);
void pml_exec_destroy(pml_exec *e);

/** Buffers the caller fills before a step: input (batch * input size floats), labels. */
float *pml_exec_input(pml_exec *e);
int32_t *pml_exec_labels(pml_exec *e);
/** The steps that follow read the (first) data input from \p x, batch * input size floats the
 * caller keeps unchanged until they return, instead of pml_exec_input's buffer (NULL: that buffer
 * again). Saves copying a batch that is already in memory: a data loader's prefetched batch. */
void pml_exec_use_input(pml_exec *e, float *x);
/** Floats from one batch to the next when batches of \p batch samples of \p size floats are laid
 * end to end for pml_exec_use_input: whole 64-byte lines, so each batch starts on a line. */
size_t pml_exec_input_stride(int batch, size_t size);
/** The parameter block, its gradients and the non-trainable state (graph->nparams, nstate). */
float *pml_exec_params(pml_exec *e);
float *pml_exec_grads(pml_exec *e);
float *pml_exec_state(pml_exec *e);
/** The output of node \p id after a forward pass (n * out size floats). */
const float *pml_exec_output(pml_exec *e, int id);

typedef struct pml_step_result {
    double loss_sum;  /* sum of per-sample losses */
    int correct;      /* samples whose argmax logit is the label */
} pml_step_result;

/** Forward pass on the first n samples of the input buffer. */
pml_status pml_exec_forward(pml_exec *e, int n, bool training, pml_step_result *res);
/** Backward pass after a training forward of the same n: fills the gradient block with the
 * gradient of the MEAN loss over the n samples. */
pml_status pml_exec_backward(pml_exec *e, int n);
/** Applies the optimizer to the parameters (threads share the work). */
pml_status pml_exec_update(pml_exec *e, pml_optim *o);
/** Turns per-node timing on or off (off by default). When on, every forward and backward pass
 * adds each node's wall time (all its parts, including partial-gradient reduction) to the
 * node's totals, read with pml_exec_profile(). */
void pml_exec_set_profiling(pml_exec *e, bool on);
/** Per-node seconds accumulated since profiling was turned on: fwd[id], bwd[id] (may be NULL),
 * plus the update's seconds in *update. */
void pml_exec_profile(const pml_exec *e, double *fwd, double *bwd, double *update);

/** Forward + backward + update. */
pml_status pml_exec_train_step(pml_exec *e, int n, pml_optim *o, pml_step_result *res);
/** A training step without its updates: afterwards pml_exec_grads holds the gradient of the
 * mean loss over the n samples, every parameter's (a plan whose updates take gradients from
 * other devices than the first is refused, PML_EUNSUPPORTED), and the caller may change it (sum
 * it across processes, say) before pml_exec_apply runs the updates. Together they are
 * pml_exec_train_step. */
pml_status pml_exec_grad_step(pml_exec *e, int n, pml_step_result *res);
pml_status pml_exec_apply(pml_exec *e, pml_optim *o);

/** Plan mode: records every task of the following steps (at most max_events) for a Chrome
 * trace (chrome://tracing, Perfetto). */
pml_status pml_exec_trace_begin(pml_exec *e, long max_events);
/** Writes the recorded trace as Chrome trace JSON, atomically. */
pml_status pml_exec_trace_write(pml_exec *e, const char *path);

/** Benchmark of the task runtime's own cost: runs a DAG of ntasks empty tasks `reps` times and
 * gives the best run's seconds per task. shape: "chain" (one worker), "chain2" (a chain whose
 * tasks alternate between two workers: every dependency crosses cores) or "wide" (one task, then
 * ntasks - 2 independent tasks on two workers, then one). */
pml_status pml_runtime_overhead(const char *shape, int ntasks, int reps, double *per_task);

/* ---------------------------------------------------------------- processes (MPI) */

/** The processes of one training run (runtime/dist.c). Under mpirun (or srun) and built with
 * MPI (meson option mpi), the MPI world; otherwise a world of one, without touching MPI. */
typedef struct pml_dist pml_dist;

/** Joins the world pml was started in. \return PML_OK, or an error (MPI could not start; started
 * by a launcher but built without MPI). */
pml_status pml_dist_init(int *argc, char ***argv, pml_dist **out);
/** Leaves the world (MPI_Finalize when pml_dist_init started MPI) and frees \p d. */
void pml_dist_finalize(pml_dist *d);
/** The same ranks with a communicator of their own (collective: every rank calls it; \p d NULL:
 * a world of one): its collectives never meet \p d's, so another thread may run them while
 * \p d's go on (MPI_THREAD_MULTIPLE: pml_dist_threaded). pml_dist_finalize frees it (MPI
 * stays \p d's). \return PML_OK or an MPI error. */
pml_status pml_dist_dup(pml_dist *d, pml_dist **out);
/** MPI lets several threads make calls at once (MPI_THREAD_MULTIPLE); true in a world of one
 * (no MPI call is made there). */
bool pml_dist_threaded(const pml_dist *d);
/** This process's rank and the world's size; its rank among the processes of its host and how
 * many those are (they share its cores). NULL is a world of one. */
int pml_dist_rank(const pml_dist *d);
int pml_dist_size(const pml_dist *d);
int pml_dist_local_rank(const pml_dist *d);
int pml_dist_local_size(const pml_dist *d);
/** Sums buf[0..n) over the ranks, in place (MPI_Allreduce). */
pml_status pml_dist_sum_floats(pml_dist *d, float *buf, size_t n);
pml_status pml_dist_sum_doubles(pml_dist *d, double *buf, int n);
/** \return PML_OK when every rank passes the same \p value (a hash of the model, plan, data and
 * build), else an error naming a rank that differs and \p what. Collective. */
pml_status pml_dist_check_same(pml_dist *d, uint64_t value, const char *what);
/** Sums a gradient block across the ranks in buckets while the backward pass runs: a
 * communication thread of this rank scales each bucket, posts MPI_Iallreduce for it once the
 * executor said it is complete (buckets go out in bucket order on every rank) and progresses the
 * requests with MPI_Test and short sleeps, never polling on a compute core. Bucket b is
 * buf[lo[b] .. hi[b]). *out is NULL (and PML_OK) when there is nothing to overlap: a world
 * of one, or an MPI without MPI_THREAD_MULTIPLE (then the caller sums after the step).
 * Collective: every rank creates its reducer at the same point. */
typedef struct pml_dist_reducer pml_dist_reducer;
pml_status pml_dist_reducer_create(pml_dist *d, float *buf, const size_t *lo, const size_t *hi,
                                   int n, pml_dist_reducer **out);
/** The same with parameter servers (pml_dist_ps): each bucket, once complete, is pushed to
 * the servers instead (its part in each server's shard summed on that server, MPI_Ireduce),
 * so the pushes overlap the backward pass; on a server the sums arrive in its shard of buf
 * (its own contribution must be zero there). Collective over the workers and servers. */
typedef struct pml_dist_ps pml_dist_ps;
pml_status pml_dist_reducer_create_ps(pml_dist_ps *ps, float *buf, const size_t *lo,
                                      const size_t *hi, int n, pml_dist_reducer **out);
/** Stops the thread; requests left in flight (a rank failed mid-step) are left to MPI_Abort. */
void pml_dist_reducer_destroy(pml_dist_reducer *r);
/** Before a step: each bucket is multiplied by \p pre before it is summed and by \p post after. */
void pml_dist_reducer_begin(pml_dist_reducer *r, float pre, float post);
/** Bucket \p bucket is complete on this rank (any thread). */
void pml_dist_reducer_ready(pml_dist_reducer *r, int bucket);
/** Waits until every bucket of the step is summed (buckets not marked are posted now).
 * \return PML_OK, or PML_EIO naming what failed. */
pml_status pml_dist_reducer_finish(pml_dist_reducer *r);
/** Gathers every rank's bytes on rank 0, in rank order: *all (malloc'd) and *alllen there, NULL
 * and 0 elsewhere. Collective. */
pml_status pml_dist_gather(pml_dist *d, const char *buf, size_t len, char **all, size_t *alllen);
/** Measures the network between the ranks through MPI (pairs of ranks in turn: ping-pongs of
 * 8 bytes and sends of 4 MiB, a few milliseconds a pair; all pairs up to 16 ranks, else each
 * with two others): the median one-way latency and bandwidth over the pairs, the same on every
 * rank; 0 and 0 in a world of one. Collective. */
pml_status pml_dist_measure_network(pml_dist *d, double *bw, double *latency);
/** Parameter servers across ranks: the last \p servers ranks hold the parameters in as many
 * nearly equal contiguous shards (one each) and update them; the others compute. Workers push
 * their gradients (pml_dist_ps_push: each shard summed on its server, MPI_Ireduce) and pull the
 * parameters (pml_dist_ps_pull: each server sends its shard, MPI_Ibcast). Collective. Refused
 * without more ranks than servers. */
pml_status pml_dist_ps_create(pml_dist *d, int servers, size_t nparams, pml_dist_ps **out);
void pml_dist_ps_destroy(pml_dist_ps *p);
/** The computing ranks (0 .. workers - 1). */
int pml_dist_ps_workers(const pml_dist_ps *p);
/** On a server: true and its shard [*lo, *hi) of the parameters; false on a worker. */
bool pml_dist_ps_shard(const pml_dist_ps *p, size_t *lo, size_t *hi);
/** Workers send \p grads; a server receives the workers' sum in its shard of \p grads (its own
 * contribution must be zero there). */
pml_status pml_dist_ps_push(pml_dist_ps *p, float *grads);
/** Servers send their shard of \p params; workers receive every shard. */
pml_status pml_dist_ps_pull(pml_dist_ps *p, float *params);
/** Waits until every rank got here (MPI_Ibarrier, tested every 0.1 ms: asleep between, so
 * that a waiting rank leaves its core to the others). */
pml_status pml_dist_barrier(pml_dist *d);
/** Rank 0's *text (*len bytes) to every rank: the others get a malloc'd copy (NUL-terminated)
 * in *text and *len, which they free. Collective. */
pml_status pml_dist_bcast_text(pml_dist *d, char **text, size_t *len);
/** The last step's post and completion times of every bucket (pml_now seconds); \return n. */
int pml_dist_reducer_times(const pml_dist_reducer *r, double *t_post, double *t_done);
/** Ends every rank of the world with exit status \p code (MPI_Abort): for the command, after it
 * said why, when one rank cannot go on. Does nothing in a world of one. */
void pml_dist_abort(pml_dist *d, int code);

/* ---------------------------------------------------------------- choosing by measuring */

/** A way to run training steps: a plan on a machine's cores, or the per-operator executor. */
typedef struct pml_candidate {
    char name[48];                   /* "searched plan", "data parallel", "per-operator", ... */
    const struct pml_machine *machine; /* with plan */
    const struct pml_plan *plan;     /* NULL: the per-operator executor on `threads` threads */
    int threads;                     /* cores it uses */
    double predicted;                /* simulated seconds per step (0: not simulated) */
    double measured;                 /* the trial's: mean seconds per step (INFINITY: none) */
    double others;                   /* the share of the machine other processes used while it
                                      * was measured (0..1; see pml_choice_save) */
} pml_candidate;

typedef struct pml_choose_opts pml_choose_opts;
/* Measures one candidate: *seconds receives the mean seconds of a training step. */
typedef pml_status (*pml_trial_fn)(void *ud, const pml_graph *g, const pml_candidate *c,
                                   const pml_dataset *d, int batch, const pml_choose_opts *o,
                                   double *seconds);

struct pml_choose_opts {
    int warmup;         /* steps run first, not measured */
    int min_steps;      /* measured steps, at least (but see max_seconds) ... */
    int max_steps;      /* ... and at most */
    double min_seconds; /* measure at least this long (small steps are many) */
    double max_seconds; /* a candidate with 3 steps measured stops after this long */
    double long_seconds; /* ... with 1 step, after this long (a step of seconds averages
                            thousands of kernels) */
    int rounds;         /* each candidate once a round; its best round counts ... */
    double round_seconds; /* ... no further round after one that took longer than this */
    double cutoff;      /* set by pml_choose: the best time so far; a candidate whose first steps
                           are over 1.5x it stops early (it cannot win) */
    uint64_t seed;      /* the executors' initialisation */
    pml_trial_fn measure; /* NULL: run the steps (tests give a fake) */
    void *ud;
    double others;      /* the share of the machine other processes used during the trial: < 0
                           (the default) measured; tests give one */
    /* Across ranks (collective): the candidates are plans across the ranks of `dist` (see
     * pml_exec_opts.dist), run on cores first_core.. (threads: the candidate's); every rank
     * runs warmup + min_steps steps of each (no time limits: the ranks' steps must match) and
     * a candidate's time is the ranks' mean, so every rank picks the same */
    pml_dist *dist;
    int first_core;
};

/** 2 warm-up steps; 10 to 200 measured steps and at least 0.1 s, or 3 steps and 0.4 s, or one
 * step and 2 s; 2 rounds unless the first took over a second; seed 1. */
pml_choose_opts pml_choose_opts_default(void);
/** Whether a candidate's trial can stop after \p n measured steps taking \p spent seconds (of
 * mean \p mean each): enough steps and time (min_steps, min_seconds), a slow model's few (3
 * steps and max_seconds, or 1 and long_seconds), or clearly slower than the best so far
 * (o->cutoff > 0): over 1.5x it after 3 steps, over 2x after one step of max_seconds. */
bool pml_trial_done(const pml_choose_opts *o, int n, double spent, double mean);
/** Whether a trial of \p ncands candidates is worth running before \p run_steps training steps
 * of about \p step seconds each (the plan's prediction; 0: unknown): false when it would take
 * over 10 seconds and over a quarter of the run (a heavy model trained for a few steps), where
 * the plan runs as predicted. */
bool pml_trial_worth(int ncands, double step, long run_steps);
/** Runs a trial of candidates c[0..n) on the first batches of \p train and sets each one's
 * `measured`; *best receives the fastest. A second or two for mlp, fashion-cnn and flowers-cnn
 * on 2 cores (a heavy model's candidates a step or two each, see pml_trial_done); no
 * candidate's steps are kept (each runs on an executor of its own). \return PML_OK or the error
 * of a candidate's step, naming it. */
pml_status pml_choose(const pml_graph *g, const pml_dataset *train, int batch, pml_candidate *c,
                      int n, const pml_choose_opts *o, int *best);
/** The candidate (index into c[0..n), by name) a previous trial chose for model \p g at
 * \p batch on machine \p m (its fingerprint), from the cache folder's choices/, and the
 * candidates' `measured` times it kept; -1: none, or a provisional choice (see
 * pml_choice_save): then a trial again. */
int pml_choice_load(const pml_graph *g, const struct pml_machine *m, int batch, pml_candidate *c,
                    int n);
/** Caches the trial's choice and measurements (a cache that cannot be written is no error). A
 * choice measured while other processes used PML_CHOICE_QUIET of the machine or more (a
 * candidate's `others`) is provisional: it tells what was fastest then, not on this machine,
 * and the next run measures again (a core someone kept busy for a minute would otherwise keep
 * every later run on one core). */
#define PML_CHOICE_QUIET 0.1
/** While other processes use PML_CHOICE_QUIET of the machine or more, a candidate on more cores
 * than the fewest-cores one is chosen only when its trial beat that one's by this share: a plan
 * on every core waits for a busy core whenever another process has it, in time slices a short
 * trial may catch or miss, so its figure is a draw that an epoch pays in full. */
#define PML_CHOICE_MARGIN 0.2
void pml_choice_save(const pml_graph *g, const struct pml_machine *m, int batch,
                     const pml_candidate *c, int n, int best);

/** The ways pml train weighs on this machine when it chooses itself: \p plan on \p here (all
 * its cores; its simulated step time is taken from \p here's cost model), data parallel on all
 * cores (when \p plan is not data parallel), the per-operator executor on all cores, and one
 * core. Owns the one-core machine and the plans it makes; free with pml_candidates_free. */
typedef struct pml_candidates {
    pml_candidate c[4];
    int n;
    struct pml_machine *one;   /* the first core alone */
    struct pml_plan *owned[2]; /* data parallel, one core */
} pml_candidates;
/** The simulator's seconds per training step of plan \p p on machine \p m (the cost model
 * measured on this machine, cached); 0 when it cannot say (that is no error). */
double pml_plan_predict(const pml_graph *g, const struct pml_machine *m, const struct pml_plan *p);
pml_status pml_candidates_make(const pml_graph *g, const struct pml_machine *here,
                               const struct pml_plan *plan, int batch, pml_candidates *out);
void pml_candidates_free(pml_candidates *c);

/* ---------------------------------------------------------------- checkpoints */

/** What a run needs to go on exactly where it stopped (runtime/ckpt.c has the file format). */
typedef struct pml_ckpt {
    uint64_t model_hash;  /* the model's signature: pml_hash of its DOT text */
    char model_name[64];
    uint64_t seed;        /* initialisation, shuffles, dropout */
    int batch;            /* the global batch */
    long step;            /* updates done */
    char plan[80];        /* how the run ran: "STRATEGY HASH" of its plan, or "none THREADS" */
    pml_optim optim;      /* kind, hyper-parameters and t (its m and v are below, not here) */
    size_t nparams, nstate;
    float *params, *m, *v, *state; /* m, v: NULL when the optimizer keeps none */
} pml_ckpt;

/** Writes c to DIR/step-NNNNNNNNNNNN.ckpt (DIR made when missing) atomically, fsyncs DIR, then
 * removes the oldest checkpoints there beyond the newest \p keep (0: keeps all) and what a run
 * killed while writing a checkpoint across ranks left. */
pml_status pml_ckpt_write(const char *dir, const pml_ckpt *c, int keep);
/** The floats of one tensor of a checkpoint a rank writes: [lo[i], lo[i] + n[i]), ascending. */
typedef struct pml_ckpt_ranges {
    size_t *lo, *n;
    size_t count;
} pml_ckpt_ranges;
/** A checkpoint of a run across the ranks of \p d, the folder DIR/step-NNNNNNNNNNNN.ckpt.
 * Collective (every rank, one checkpoint at a time; \p d's collectives run here, so another
 * thread may call it only with a pml_dist_dup of the run's world). Each rank writes the floats
 * of \p c that \p r names (params, m, v, state; the rest of \p c is not read) to its part,
 * fsynced; rank 0 gathers the parts' sizes and checksums, writes the manifest last and renames
 * the folder into place (fsyncing it and DIR), then prunes as pml_ckpt_write. \return on rank
 * 0 whether the checkpoint is in place (a rank that failed is named), on the others whether
 * their part was written. */
pml_status pml_ckpt_write_ranks(const char *dir, const pml_ckpt *c, const pml_ckpt_ranges r[4],
                                pml_dist *d, int keep);
/** The newest checkpoint in \p dir (by step) that counts into path: a file, or a folder across
 * ranks with its manifest (one without is passed over: its writing was cut short). */
pml_status pml_ckpt_newest(const char *dir, char *path, size_t cap);
/** Reads and checks a checkpoint, a file or a folder across ranks (its manifest, then every
 * part it lists, whatever the number of ranks reading); allocates its tensors (pml_ckpt_free). */
pml_status pml_ckpt_read(const char *path, pml_ckpt *c);
/** Allocates c's tensors (in huge pages where the kernel gives them); m, v: the optimizer's. */
pml_status pml_ckpt_alloc(pml_ckpt *c, size_t nparams, size_t nstate, bool m, bool v);
void pml_ckpt_free(pml_ckpt *c);

/** A saved model: the model's DOT text and its weights in one file (pml train --save), written
 * atomically; runtime/ckpt.c has the format. pml_model_load reads its model. */
pml_status pml_saved_write(const char *path, const pml_graph *g, const float *params,
                           const float *state);
/** Reads a saved model: \p g (finalised) and copies of its parameters and state (free them;
 * NULL when the model has none), all checked (format, sizes, CRC-32C). */
pml_status pml_saved_read(const char *path, pml_graph *g, float **params, float **state);

/* ---------------------------------------------------------------- training */

typedef struct pml_epoch_stats {
    int epoch;          /* 1-based */
    long samples;       /* training samples processed */
    long steps;         /* steps run (from step `resumed_at` of the epoch) */
    long resumed_at;    /* a run resumed mid-epoch: the epoch's steps done before (else 0) */
    double loss, accuracy;
    bool has_val;
    double val_loss, val_accuracy;
    double seconds;     /* training time, without evaluation */
    bool complete;      /* every step ran (and the validation, if any): not cut short by
                           max_steps or an interruption */
} pml_epoch_stats;

typedef struct pml_train_cb {
    void *ud;
    /* progress: the last finished step of epoch `epoch` (of `steps`), the epoch's running loss
     * and accuracy and its training seconds so far; called from a timer about every 100 ms
     * (between steps) and after the last step of each epoch */
    void (*step)(void *ud, int epoch, long step, long steps, double loss, double acc,
                 double elapsed);
    /* called after each epoch (and its validation) */
    void (*epoch)(void *ud, const pml_epoch_stats *s);
    /* a checkpoint (pml_train_opts.checkpoint_dir) of `step` could not be written (why: the
     * message): training goes on, the checkpoints before it stay as they were */
    void (*checkpoint_failed)(void *ud, long step, const char *why);
    /* polled before every step and evaluation batch: non-zero stops training cleanly
     * (PML_EINTR) */
    int (*should_stop)(void *ud);
    /* once, when the mean of WATCH_STEPS steps is over 1.5x the plan's predicted step
     * (pml_train_opts.predicted_step): measured and predicted seconds per step */
    void (*slow)(void *ud, double measured, double predicted);
    /* when pml_train re-checked its choice between two steps (pml_train_opts.alternatives):
     * the candidate it ran and the one it runs from now (the same when it kept it), with their
     * new `measured` times */
    void (*rechecked)(void *ud, const pml_candidate *from, const pml_candidate *to);
    /* for tests, a clock of their own: the seconds the run's watch counts for a step that took
     * `measured`, running alternative `running` (-1: pml_train_opts.alternatives unset); NULL:
     * the measured seconds */
    double (*step_seconds)(void *ud, int running, double measured);
    /* data-parallel ranks re-split each batch by their measured speeds (pml_train_opts.shares):
     * from global step `step` on, rank r takes share[r] samples of a full batch */
    void (*shares)(void *ud, long step, const int *share, int ranks);
    /* for tests, a clock of their own: the seconds rank `rank`'s forward and backward pass of
     * n samples counts for the balancing of data-parallel ranks (NULL: the measured ones) */
    double (*pass_seconds)(void *ud, int rank, int n, double measured);
} pml_train_cb;

typedef struct pml_train_opts {
    int epochs;
    int batch;
    int threads;
    uint64_t seed;
    pml_optim optim;          /* kind and hyper-parameters (state is allocated by pml_train) */
    double validation_split;  /* 0: none */
    long max_steps;           /* 0: no limit; otherwise stop after this many steps in total */
    bool check_numerics;
    pml_train_cb cb;
    /* run this plan on this machine's cores (see pml_exec_opts); NULL: the per-operator
     * executor on `threads` threads */
    const struct pml_machine *machine;
    const struct pml_plan *plan;
    const char *trace_path; /* plan mode: write a Chrome trace of every task here */
    /* Data parallel across processes (NULL or a world of one: this process alone): every rank
     * runs its part of each global batch of `batch` samples on its executor (a plan, if any,
     * for batch / ranks, rounded up), the gradients are summed over the ranks and every rank
     * applies the same update; losses and accuracies are the global batch's. The ranks stop
     * together. */
    pml_dist *dist;
    /* across ranks, the gradients are summed in buckets of about this many bytes while the
     * backward pass runs (pml_dist_reducer); 0: pml's choice (an eighth of the gradients,
     * 64 KiB to 4 MiB); negative: in one sum after the backward pass */
    double bucket_bytes;
    /* across ranks: the last ps_servers ranks are parameter servers (pml_dist_ps), the others
     * split each batch; 0: every rank computes and the gradients are all-reduced */
    int ps_servers;
    /* data-parallel ranks (no servers, no plan in the ranks): the samples of each full batch
     * rank r takes, shares[r] (nshares == ranks entries, summing to batch; a short last batch
     * is split in the same proportions). NULL: equal parts, re-split every few dozen steps by
     * the ranks' measured speeds when a faster rank taking more would shorten the steps (a
     * rank on a core another process uses, a slower node), unless equal_shares or the model
     * has batch normalisation (its statistics are each rank's part's). The gradient sum
     * weights each rank's part by its samples: the losses are one process's either way. */
    const int *shares;
    int nshares;
    bool equal_shares;
    /* across ranks: `plan` is a plan for the whole run, on a machine whose nodes are the ranks
     * (node r is rank r): every rank takes every batch and runs its node's tasks; activations,
     * gradients and gradient sums cross ranks as the plan says (pml_exec_opts.dist) */
    bool plan_across_ranks;
    int first_core; /* the per-operator executor's workers start at this core */
    double predicted_step;  /* the plan's simulated seconds per step (0: none): see cb.slow */
    /* Ways to run it might switch to (pml_candidates; the one it runs is alternatives[current]):
     * when the mean of the last WATCH_STEPS steps is over 1.5x its `measured` time (another
     * process took a core, say), a short trial of all of them runs between two steps and
     * training goes on with the fastest, parameters and all (cb.rechecked says so). NULL: none.
     * Not with a trace. */
    pml_candidate *alternatives;
    int nalternatives, current;
    /* SIGINT, SIGTERM and SIGHUP stop training cleanly: the step running finishes, then
     * PML_EINTR with a message naming the signal (pml_train_result.signal). While pml_train
     * runs it handles them (one pml_train at a time may), unblocked on the calling thread
     * and blocked on its compute threads; the first one gives all three their
     * default action back, so a second ends the process at once. pml_train returns with the
     * three BLOCKED on the calling thread and the caller's handlers back: one that comes after
     * the last step stays pending while the caller prints the results (unblock to take it). */
    bool handle_signals;
    /* checkpoints (one process): every checkpoint_every steps (0: 500) and when training stops
     * (its end, a signal, --max-steps), a checkpoint goes to checkpoint_dir, written by libuv's
     * thread pool from a copy taken at the step boundary while training goes on; the newest
     * checkpoint_keep stay (0: 3). resume_from: a checkpoint file or a folder (its newest), to
     * go on from: the same model, seed and batch; the losses are an uninterrupted run's */
    const char *checkpoint_dir;
    long checkpoint_every;
    int checkpoint_keep;
    const char *resume_from;
    const char *save_path; /* after training: the model and its weights (pml_saved_write) */
    /* the starting weights (an ONNX model's initializers, a saved model's weights: nparams and
     * nstate floats), or NULL: initialised from seed. A checkpoint resumed from wins. */
    const float *init_params, *init_state;
} pml_train_opts;

typedef struct pml_train_result {
    int epochs_run;
    pml_epoch_stats *epochs;  /* epochs_run entries; free with pml_train_result_free */
    bool has_test;
    double test_loss, test_accuracy;
    int signal; /* SIGINT, SIGTERM or SIGHUP when one stopped training (handle_signals), else 0 */
    /* across ranks with gradient buckets: the seconds this rank's buckets were being summed
     * (post to completion, all steps), and the part of them before its backward pass ended */
    double allreduce_seconds, allreduce_hidden;
    /* the same, step by step on the rank that ended its backward pass last (the one whose
     * buckets were summed in the least time: the others also wait for it), every step but the
     * last; data-parallel ranks summing with all-reduce only (0 otherwise) */
    double allreduce_last_seconds, allreduce_last_hidden;
    long resumed_step;       /* the step the run went on from (0: from the start) */
    char resumed_plan[80];   /* that checkpoint's plan, when this run's differs ("" otherwise):
                                its losses then agree to about 1e-5, not bit for bit */
    double resume_seconds;   /* reading and checking that checkpoint */
    int checkpoints;         /* checkpoints taken */
    int checkpoints_failed;  /* of those, not written (cb.checkpoint_failed said why) */
    double checkpoint_wait;  /* seconds training waited for checkpoints (copies, a write still
                                in flight at the next one, the last at the end) */
    int buckets; /* gradient buckets summed during the pass at the end (0: one sum after it) */
    /* data-parallel ranks: each rank's samples of a full batch at the end (nshares entries,
     * NULL otherwise); the splits by the ranks' speeds tried, and of those, kept */
    int *shares;
    int nshares, share_tries, share_changes;
} pml_train_result;

/** Steps whose mean pml_train watches (cb.slow, alternatives). */
#define PML_WATCH_STEPS 100

/** Trains \p g on \p train (and evaluates on \p test when not NULL). Its control plane is a
 * libuv loop on the calling thread, polled between steps: the next batches are gathered in
 * libuv's thread pool while a step runs (the same batches, in the same order, as gathering
 * each before its step), a timer reports progress, signals are handled when asked.
 * \return PML_OK; PML_EINTR when stopped by a signal or should_stop (res holds the epochs run so
 * far, the last one possibly partial); or the error of a step, naming the epoch, step and task.
 * Free \p res with pml_train_result_free whatever the status (it holds nothing when no epoch
 * ran). */
pml_status pml_train(const pml_graph *g, pml_dataset *train, const pml_dataset *test,
                     const pml_train_opts *opts, pml_train_result *res);
void pml_train_result_free(pml_train_result *r);

/* ---------------------------------------------------------------- inference (runtime/infer.c) */

/** Inference passes (of up to \p batch samples) of the executor's parameters on \p n samples
 * of \p x (the input's size each): node \p node's output into \p y (its size each). */
pml_status pml_infer(pml_exec *e, int node, const float *x, int n, int batch, float *y);
/** Loads MODEL for inference into \p m: an ONNX model (pml_onnx_read), a saved model (.pml: its
 * weights), or a zoo spec or model DOT file (weights from \p seed), whose inputs are then the
 * model's input alone and whose output is its logits. Free with pml_onnx_free. */
pml_status pml_infer_load(const char *model, uint64_t seed, pml_onnx *m);
/** pml_infer_load() with values of an ONNX model's inputs known now (pml_onnx_read_given). */
pml_status pml_infer_load_given(const char *model, uint64_t seed, const pml_tensor *given,
                                int ngiven, pml_onnx *m);
/** Runs \p m on in[0..m->ninputs) (the data input: N samples; then run-time weights) on
 * \p threads cores, \p batch samples per pass (0: all): its outputs into y[0..m->noutputs)
 * (free each with pml_tensor_free; y[k].name: a copy of output k's name). The weights bound from in[] stay in
 * m->params. \return PML_OK or an error naming the input at fault. */
pml_status pml_infer_run(pml_onnx *m, const pml_tensor *in, int threads, int batch, pml_tensor *y);
/** Loss and accuracy of the executor's current parameters over a dataset (inference mode). */
/** The class with the largest logit and its softmax probability for each sample of \p d, in
 * order, into cls[d->n] and prob[d->n], and its label into label[d->n] (may be NULL);
 * inference passes of up to \p batch samples. */
pml_status pml_predict(pml_exec *e, const pml_dataset *d, int batch, int32_t *cls, float *prob,
                       int32_t *label);
pml_status pml_evaluate(pml_exec *e, const pml_dataset *d, int batch, double *loss,
                        double *accuracy);

/* ---------------------------------------------------------------- traces: predicted vs measured */

/** One task of a Chrome trace written by pml train --trace (pml_exec_trace_write). */
typedef struct pml_trace_event {
    uint64_t key;      /* the task's program-order key (pml_task.key) */
    double start, dur; /* seconds */
    int step;          /* training steps run before it */
    int tid;           /* the worker (compute device) that ran it */
    int part;
    int node;     /* operator name: names[node] */
    uint8_t kind; /* pml_task_kind */
    bool train;   /* phase "train" (else "eval": an inference pass) */
} pml_trace_event;

typedef struct pml_trace {
    char model[PML_NAME_MAX], machine[64], fingerprint[17], strategy[32];
    int batch, devices;
    double parameters; /* the model's parameter count (0: not given) */
    bool across;       /* a plan across ranks: every rank's tasks (tids are the plan's devices) */
    long nevents;
    pml_trace_event *ev;
    int nnames;
    char (*names)[PML_NAME_MAX];
} pml_trace;

/** Reads a trace file. Malformed or truncated JSON, a JSON file that is not such a trace: one
 * message naming the file (and the line). \return PML_OK or an error; on error \p t is empty. */
pml_status pml_trace_read(const char *path, pml_trace *t);
/** pml_trace_read() on \p len bytes of text; \p source names it in messages. */
pml_status pml_trace_parse(const char *text, size_t len, const char *source, pml_trace *t);
void pml_trace_free(pml_trace *t);

/** Predicted vs measured: the simulator's figures and the trace's, medians over the training
 * steps after the warm-up. */
typedef struct pml_trace_cmp {
    int steps;             /* complete training steps in the trace */
    int used;              /* steps measured: the last steps - warm-up (at least 1) */
    int ntasks;            /* tasks of a step */
    double predicted_step; /* simulated step seconds */
    double measured_step;  /* median of a step's makespan (first start to last end) */
    double predicted_kind[PML_TASK_KIND_COUNT]; /* the simulator's summed task seconds per kind */
    double measured_kind[PML_TASK_KIND_COUNT];  /* median of a step's summed durations per kind */
    int *task;                                  /* ntasks simulator task ids, in program order */
    double *predicted; /* per entry of task: the simulated seconds (the task's cost) */
    double *measured;  /* per entry of task: its median measured seconds */
} pml_trace_cmp;

/** Compares trace \p t (\p source names it in messages) with simulation \p s of plan
 * pml_sim_plan(s) of model \p g on machine \p m, skipping the first \p warmup training steps
 * (fewer when the trace has no more). Each task of the trace is matched to the simulated task
 * with the same key, kind, operator, part and worker. A trace of another model, batch, machine
 * or plan, or without training steps, is refused with a message naming \p source. Free \p out
 * with pml_trace_cmp_free(). \return PML_OK or an error (then \p out is empty). */
pml_status pml_trace_compare(const pml_trace *t, const char *source, const pml_graph *g,
                             const pml_machine *m, const pml_sim *s, int warmup,
                             pml_trace_cmp *out);
void pml_trace_cmp_free(pml_trace_cmp *c);

#ifdef __cplusplus
}
#endif
#endif
