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
 * \p skipped (may be NULL) counts the bad files skipped in both. \return PML_OK or an error
 * naming the folder or file; on error both are empty. */
pml_status pml__image_sets(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                           pml_dataset *train, pml_dataset *test);

#endif
