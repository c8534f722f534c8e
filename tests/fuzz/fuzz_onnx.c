/* libFuzzer harness for the ONNX importer (not part of the meson build; see run.sh).
 *
 * Every input must import or be refused with one message naming the file, without a crash, a
 * leak or undefined behaviour; what imports must export, and read back as the same graph. */
#include "models/models.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pml_onnx m, b;
    if (pml_onnx_parse(data, size, "fuzz.onnx", 1, &m) != PML_OK) {
        if (strncmp(pml_errmsg(), "fuzz.onnx: ", 11) != 0 || strchr(pml_errmsg(), '\n')) abort();
        pml_onnx_free(&m);
        return 0;
    }
    if (!m.g.finalized) abort();
    char path[] = "/tmp/fuzz-onnx-XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    if (fd < 0) abort();
    close(fd);
    if (pml_onnx_write(&m.g, m.params, m.state, path) != PML_OK) abort();
    if (pml_onnx_read(path, 1, &b) != PML_OK) abort();
    unlink(path);
    if (b.g.nparams != m.g.nparams || b.g.nnodes != m.g.nnodes) abort();
    pml_onnx_free(&b);
    pml_onnx_free(&m);
    return 0;
}
