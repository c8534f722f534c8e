/* pml — internal: what the dataset loaders share (runtime/data.c: IDX files, synthetic images,
 * the data pml train uses; runtime/data_images.c: image folders). */
#ifndef PML_RUNTIME_DATA_INT_H
#define PML_RUNTIME_DATA_INT_H

#include "runtime/runtime.h"

/** Memory this process can have: the machine's, or less under an address-space limit
 * (INFINITY when unknown). */
double pml__usable_memory(void);

/** "dir/train-images-idx3-ubyte.gz" -> "train-images-idx3-ubyte.gz"; "a/b/" -> "b" (cut to
 * \p cap - 1 bytes). */
void pml__base_name(const char *path, char *out, size_t cap);

/** \p d becomes the dataset of one loaded block (it owns \p block, whose labels are \p labels):
 * n samples of \p shape in \p classes classes, named after \p path's base name. */
void pml__data_own(pml_dataset *d, const char *path, int n, pml_shape shape, int classes,
                   uint8_t *block, int32_t *labels);

/** Where a loaded dataset's labels start in its one block: after \p image_bytes of images,
 * 16-byte aligned. */
static inline size_t pml__labels_offset(size_t image_bytes)
{
    return (image_bytes + 15) & ~(size_t)15;
}

/** \return true when \p dir holds a subfolder whose name does not start with '.' (an image
 * folder's classes, or its train/ and test/). */
bool pml__has_subfolder(const char *dir);

/** The sets of an image folder for pml_data_for_model: with train/ and test/ subfolders (each a
 * folder of class subfolders with the same class names) those two; else the whole folder is the
 * training set and \p test comes out empty (n = 0) — or, when \p train is NULL, the whole folder
 * is the test set. Names: "FOLDER train" and "FOLDER test" for a pair, else "FOLDER".
 * \p skipped (may be NULL) counts the bad files skipped in both. With \p stream the sets are
 * opened with pml_data_open_image_dir (decoded while the caller goes on), else loaded whole. \return PML_OK or an error
 * naming the folder or file; on error both are empty. */
pml_status pml__image_sets(const char *dir, pml_shape shape, bool skip_bad, bool stream,
                           int *skipped, pml_dataset *train, pml_dataset *test);

/* ---------------------------------------------------------------- image folders decoded while
 * training runs (data_images.c: the states of a sample, the decoder thread, the cache) */

typedef struct pml__image_stream pml__image_stream;

/** Before storage sample \p s (an index into the whole storage) is read: returns at once when it
 * is decoded (or bad: zeros), else decodes it on this thread when nothing has claimed it yet,
 * else waits for exactly that sample. Thread-safe. */
void pml__image_need(pml__image_stream *S, size_t s);
/** Waits until the decoder has ended; \return PML_OK or the first bad file's error. */
pml_status pml__image_wait(pml__image_stream *S);
/** PML_OK while no file failed (no waiting); after a failure pml__image_wait. */
pml_status pml__image_check(pml__image_stream *S);
/** Stops the decoder (files in the pool finish; a complete decode's cache is written) and frees
 * the stream (not the dataset's storage). NULL is fine. */
void pml__image_close(pml__image_stream *S);
/** For tests: samples gathers decoded themselves, and gathers that waited for a sample. */
void pml__image_stats(pml__image_stream *S, long *stolen, long *waited);
/** For tests: image files decoded by this process so far. */
long pml__image_decodes(void);
/** For tests: while on, decodes in the pool wait (gathers still decode what no job claimed;
 * one that needs a sample a held job claimed waits until the hold ends). */
void pml__image_hold(bool on);

#endif
