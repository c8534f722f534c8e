/* pml — internal: Graphviz glue shared by the DOT module (dotfile.c) and the drawing code
 * (viz.c); nothing outside models/ sees cgraph or gvc.
 *
 * cgraph and gvc keep global state (the parser, the error handler), so every use of them goes
 * between pml__cg_begin() and pml__cg_end(): one thread at a time, with cgraph's messages caught
 * instead of printed on stderr. */
#ifndef PML_MODELS_CG_H
#define PML_MODELS_CG_H

#include <graphviz/cgraph.h>
#include <stdbool.h>

/** Takes the Graphviz lock and starts catching cgraph/gvc messages (errors and warnings). */
void pml__cg_begin(void);
/** Restores the previous handler and releases the lock. */
void pml__cg_end(void);
/** \return how many messages were caught since pml__cg_begin() (or the last clear). */
int pml__cg_count(void);
/** \return the first caught message, on one line, without "Error: " / "Warning: " and without a
 * leading "<source>: " when \p source is given; "" if none. Valid until the next call. */
const char *pml__cg_first(const char *source);
/** Forgets the caught messages. */
void pml__cg_clear(void);

#endif
