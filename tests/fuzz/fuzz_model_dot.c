/* libFuzzer harness for the model DOT reader (not part of the meson build; see run.sh).
 *
 * Every input must read or be refused with a message, without a crash, a leak or undefined
 * behaviour; what reads must write and read back as the same model, and must draw (the view is
 * built, with --collapse's block search, but not laid out: that is Graphviz's code). */
#include "models/models.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pml_graph g, h;
    if (pml_model_parse_dot((const char *)data, size, "fuzz.dot", &g) != PML_OK) {
        if (strncmp(pml_errmsg(), "fuzz.dot: ", 10) != 0 || strchr(pml_errmsg(), '\n')) abort();
        return 0;
    }
    char *text;
    size_t len;
    if (pml_model_format_dot(&g, &text, &len) != PML_OK) abort();
    if (pml_model_parse_dot(text, len, "again.dot", &h) != PML_OK) abort();
    if (h.nnodes != g.nnodes || h.nparams != g.nparams || h.classes != g.classes) abort();
    for (int i = 0; i < g.nnodes; i++)
        if (strcmp(g.nodes[i].name, h.nodes[i].name) != 0 ||
            memcmp(&g.nodes[i].a, &h.nodes[i].a, sizeof g.nodes[i].a) != 0 ||
            g.nodes[i].nin != h.nodes[i].nin ||
            memcmp(g.nodes[i].in, h.nodes[i].in, sizeof g.nodes[i].in) != 0)
            abort();
    pml_graph_free(&h);
    free(text);
    pml_viz_opts o = {.collapse = true};
    pml_viz *v;
    if (pml_viz_model(&g, &o, &v) != PML_OK) abort();
    pml_viz_free(v);
    pml_graph_free(&g);
    return 0;
}
