/* pml — charts for the command line (cairo): line charts with error bars, as SVG or PNG. */
#ifndef PML_TOOLS_PLOT_H
#define PML_TOOLS_PLOT_H

#include <stdbool.h>

#include "ops/ops.h"

/* A chart is npanels panels side by side, each PLOT_PANEL_W x PLOT_PANEL_H (pixels in a PNG,
 * points in an SVG), below a band of PLOT_TITLE_H for the overall title when there is one. */
enum { PLOT_PANEL_W = 480, PLOT_PANEL_H = 360, PLOT_TITLE_H = 30, PLOT_MAX_PANELS = 32 };

typedef struct plot_series {
    const char *label;      /* legend entry */
    int n;
    const double *x, *y;    /* n points; a NaN y is a gap */
    const double *ylo, *yhi;/* NULL or n values: an error bar (e.g. min and max over repeats) */
    bool dashed;            /* e.g. "predicted" beside "measured" */
} plot_series;

typedef struct plot_panel {
    const char *title, *xlabel, *ylabel;
    bool xlog;              /* log2-spaced x (units 32..512); ticks at the data's x values */
    bool xticks_at_data;    /* ticks exactly at the x values present (sweep parameters) */
    int nseries;
    const plot_series *s;
} plot_panel;

/* Writes npanels charts side by side (a row) with an overall title to path: .svg or .png by its
 * extension (anything else: PML_EINVAL naming the path); written atomically (a temporary file
 * in the same folder, then rename; no half-written file on error). Returns PML_OK or an error
 * with a message (pml_fail) naming the path. Never prints.
 *
 * Each panel: axes with 1-2-5 ticks (x: at the data's values when asked, if their labels have
 * room; on a log axis every other one, or fewer, when they have not), a light grid, series in a
 * fixed colour-blind-safe palette (Okabe and Ito's) with a marker shape each, error bars with
 * caps, the y range padded by 5%, and a legend of the series with a label: inside the plot area
 * at the first of its corners (then its top and bottom centre) where it covers no point, line
 * or bar, else below the axes. A NaN, infinite or huge (beyond 1e300) value, and with xlog an
 * x <= 0, is a gap. Text too wide for its place ends in an ellipsis. Text is drawn as outlines
 * in an SVG; the SVG also holds the title, and each panel's title, axes and series labels, as
 * text in its <title> and <desc>. */
pml_status plot_write(const char *path, const char *title, const plot_panel *p, int npanels);

/** \return true when \p path names a file plot_write writes: a name ending in .svg or .png (any
 * case), for checking a flag before the work whose chart it is. */
bool plot_name_ok(const char *path);

#endif
