/* pml — planner: the drawing of a plan (pml viz PLAN.dot). The model's drawing (pml_viz_model),
 * with each operator filled with the colour of its device, or striped with one stripe per part
 * when it runs on several, a line giving its parallel config and device list, edges drawn red
 * where the producer's and consumer's configs differ (data moves between devices there), a
 * legend of the devices and their colours, and a title naming the machine, batch and strategy
 * (title and legend together as the view's HTML label).
 *
 * Colours: up to 12 devices, a qualitative palette (ColorBrewer Set3); more, hues spread evenly
 * around the colour wheel in device order, so the devices of one cluster node get neighbouring
 * hues. An operator on up to 8 devices is striped, one stripe per part in part order; on more, a
 * gradient from its first device's colour to its last's (its label lists them). */
#include "models/models.h"
#include "planner/planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const palette[] = {"#8dd3c7", "#ffffb3", "#bebada", "#fb8072",
                                      "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
                                      "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"};
enum { NPALETTE = sizeof palette / sizeof palette[0] };

/* Graphviz colour of device d of ndev */
static void dev_colour(int d, int ndev, char *buf, size_t cap)
{
    if (ndev <= NPALETTE)
        snprintf(buf, cap, "%s", palette[d % NPALETTE]);
    else
        snprintf(buf, cap, "%.3f 0.400 0.980", 0.8 * d / (ndev - 1)); /* HSV: red to violet */
}

/* "n=2 c=2" (degrees above 1; "1 part" for none) */
static void config_str(const pml_opcfg *c, char *buf, size_t cap)
{
    static const char key[PML_NDIMS] = {'n', 'c', 'h'};
    size_t l = 0;
    buf[0] = 0;
    for (int d = 0; d < PML_NDIMS; d++)
        if (c->deg[d] > 1 && l < cap)
            l += (size_t)snprintf(buf + l, cap - l, "%s%c=%d", l ? " " : "", key[d], c->deg[d]);
    if (!buf[0]) snprintf(buf, cap, "1 part");
}

/* "0-3,8" from a set of devices (flags) */
static void set_str(const bool *used, int ndev, char *buf, size_t cap)
{
    size_t l = 0;
    buf[0] = 0;
    for (int i = 0; i < ndev && l < cap;) {
        if (!used[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < ndev && used[j + 1]) j++;
        if (j == i)
            l += (size_t)snprintf(buf + l, cap - l, "%s%d", l ? "," : "", i);
        else
            l += (size_t)snprintf(buf + l, cap - l, "%s%d-%d", l ? "," : "", i, j);
        i = j + 1;
    }
}

/* The fill of a node running on devices dev[0..n): a colour; stripes ("a;0.25:b;0.25:...") for
 * up to MAX_STRIPES devices; more, a gradient from the first device's colour to the last's. */
enum { MAX_STRIPES = 8 };

static bool striped(int n)
{
    return n > 1 && n <= MAX_STRIPES;
}

static char *fill_of(const int16_t *dev, int n, int ndev)
{
    if (n > MAX_STRIPES) {
        char a[32], b[32], *s = malloc(80);
        if (!s) return NULL;
        dev_colour(dev[0], ndev, a, sizeof a);
        dev_colour(dev[n - 1], ndev, b, sizeof b);
        snprintf(s, 80, "%s:%s", a, b);
        return s;
    }
    size_t cap = (size_t)n * 32 + 32;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t l = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        char c[32];
        dev_colour(dev[i], ndev, c, sizeof c);
        if (n == 1)
            l += (size_t)snprintf(s + l, cap - l, "%s", c);
        else
            l += (size_t)snprintf(s + l, cap - l, "%s%s;%.4f", i ? ":" : "", c, 1.0 / n);
    }
    return s;
}

static void html_escape(const char *s, char *buf, size_t cap)
{
    size_t l = 0;
    for (; *s && l + 7 < cap; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (e) {
            memcpy(buf + l, e, strlen(e));
            l += strlen(e);
        } else if ((unsigned char)*s >= 0x20) {
            buf[l++] = *s;
        }
    }
    buf[l] = 0;
}

/* The title (lines of text) and under it the legend, a table of the devices and their colours
 * (four a row), as the view's HTML label: on top, out of the way of the layout. */
static bool set_title(pml_viz *v, const char *title, const pml_machine *m, const bool *used,
                      int ndev)
{
    size_t cap = (size_t)ndev * 240 + 4 * strlen(title) + 1024, l = 0;
    char *h = malloc(cap);
    if (!h) return false;
    int nused = 0;
    for (int d = 0; d < ndev; d++) nused += used[d];
    l += (size_t)snprintf(h + l, cap - l, "<TABLE BORDER=\"0\" CELLSPACING=\"6\"><TR><TD>");
    for (const char *t = title; *t && l < cap;) {
        char line[512], esc[1024];
        size_t n = strcspn(t, "\n");
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, t, n);
        line[n] = 0;
        html_escape(line, esc, sizeof esc);
        l += (size_t)snprintf(h + l, cap - l, "%s%s", t == title ? "" : "<BR/>", esc);
        t += strcspn(t, "\n");
        if (*t) t++;
    }
    l += (size_t)snprintf(h + l, cap - l,
                          "</TD></TR><TR><TD><FONT POINT-SIZE=\"10\"><TABLE BORDER=\"0\" "
                          "CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"3\"><TR><TD "
                          "COLSPAN=\"4\">devices (%d of %d used)</TD></TR>",
                          nused, ndev);
    int col = 0;
    for (int d = 0; d < ndev && l < cap; d++) {
        char c[32], name[160];
        if (!m && !used[d]) continue;
        if (m)
            html_escape(m->dev[m->compute[d]].name, name, sizeof name);
        else
            snprintf(name, sizeof name, "device %d", d);
        dev_colour(d, ndev, c, sizeof c);
        if (col == 0) l += (size_t)snprintf(h + l, cap - l, "<TR>");
        if (used[d])
            l += (size_t)snprintf(h + l, cap - l, "<TD BGCOLOR=\"%s\">%d %s</TD>", c, d, name);
        else
            l += (size_t)snprintf(
                h + l, cap - l, "<TD><FONT COLOR=\"#999999\">%d %s (unused)</FONT></TD>", d, name);
        if (++col == 4) {
            l += (size_t)snprintf(h + l, cap - l, "</TR>");
            col = 0;
        }
    }
    if (col) l += (size_t)snprintf(h + l, cap - l, "</TR>");
    if (l < cap) snprintf(h + l, cap - l, "</TABLE></FONT></TD></TR></TABLE>");
    pml_viz_set_html(pml_viz_root(v), "label", h);
    free(h);
    return true;
}

static bool same_cfg(const pml_opcfg *a, const pml_opcfg *b)
{
    if (memcmp(a->deg, b->deg, sizeof a->deg) != 0) return false;
    return memcmp(a->dev, b->dev, (size_t)pml_opcfg_parts(a) * sizeof a->dev[0]) == 0;
}

/* adds "\nline" to node n's label and fills it */
static bool style_node(pml_viz_obj *n, const char *line, const char *fill, bool striped)
{
    const char *old = pml_viz_get(n, "label");
    size_t len = (old ? strlen(old) : 0) + strlen(line) + 2;
    char *label = malloc(len);
    if (!label) return false;
    snprintf(label, len, "%s\n%s", old ? old : "", line);
    pml_viz_set(n, "label", label);
    free(label);
    pml_viz_set(n, "fillcolor", fill);
    if (striped) pml_viz_set(n, "style", "rounded,striped");
    return true;
}

pml_status pml_viz_plan(const pml_graph *g, const pml_plan *p, const pml_machine *m,
                        const pml_plan_info *info, const pml_viz_opts *o, pml_viz **view)
{
    *view = NULL;
    if (!g->finalized || p->nnodes != g->nnodes || !p->cfg)
        return pml_fail(PML_EINVAL, "model '%s': the plan does not match the model",
                        pml_dot_brief(g->name));
    /* devices: the machine's, or as many as the plan uses */
    int ndev = m ? m->ncompute : 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < pml_opcfg_parts(&p->cfg[i]); k++) {
            if (p->cfg[i].dev[k] < 0)
                return pml_fail(PML_EINVAL, "operator '%s': device %d does not exist",
                                pml_dot_brief(g->nodes[i].name), p->cfg[i].dev[k]);
            if (p->cfg[i].dev[k] >= ndev) {
                if (m)
                    return pml_fail(PML_EINVAL,
                                    "operator '%s': device %d does not exist (machine '%s' has "
                                    "%d)",
                                    pml_dot_brief(g->nodes[i].name), p->cfg[i].dev[k],
                                    pml_dot_brief(m->name), m->ncompute);
                ndev = p->cfg[i].dev[k] + 1;
            }
        }
    pml_status st = pml_viz_model(g, o, view);
    if (st != PML_OK) return st;
    pml_viz *v = *view;
    const int n = g->nnodes;
    bool *used = calloc((size_t)ndev + 1, sizeof *used);
    bool *bused = calloc((size_t)ndev + 1, sizeof *bused);
    int *block = malloc((size_t)n * sizeof *block);
    char(*bnames)[PML_NAME_MAX] = malloc((size_t)n * sizeof *bnames);
    pml_viz_obj **vn = calloc((size_t)n, sizeof *vn);
    int16_t *bdev = malloc(((size_t)ndev + 1) * sizeof *bdev);
    int nb = 0;
    if (!used || !bused || !block || !bnames || !vn || !bdev) goto nomem;
    for (int i = 0; i < n; i++) block[i] = -1;
    if (o && o->collapse && (nb = pml_model_blocks(g, block, bnames)) < 0) goto nomem;
    char line[160], cfg[64], devs[2048];
    for (int i = 0; i < n; i++) {
        const pml_opcfg *c = &p->cfg[i];
        for (int k = 0; k < pml_opcfg_parts(c); k++) used[c->dev[k]] = true;
        if (block[i] >= 0) continue;
        if (!(vn[i] = pml_viz_find_node(v, g->nodes[i].name))) continue;
        const int parts = pml_opcfg_parts(c);
        config_str(c, cfg, sizeof cfg);
        pml_plan_format_devices(c->dev, parts, devs, sizeof devs);
        if (parts == 1 && m)
            snprintf(line, sizeof line, "on %d (%s)", c->dev[0],
                     pml_dot_brief(m->dev[m->compute[c->dev[0]]].name));
        else
            snprintf(line, sizeof line, "%s on %s%.60s", cfg, parts == 1 ? "device " : "", devs);
        char *fill = fill_of(c->dev, parts, ndev);
        if (!fill || !style_node(vn[i], line, fill, striped(parts))) {
            free(fill);
            goto nomem;
        }
        free(fill);
    }
    /* folded blocks: the devices of their operators, and their config when they share one */
    for (int b = 0; b < nb; b++) {
        int first = -1;
        bool same = true;
        memset(bused, 0, (size_t)ndev * sizeof *bused);
        for (int i = 0; i < n; i++) {
            if (block[i] != b) continue;
            if (first < 0) first = i;
            same &= same_cfg(&p->cfg[i], &p->cfg[first]);
            for (int k = 0; k < pml_opcfg_parts(&p->cfg[i]); k++) bused[p->cfg[i].dev[k]] = true;
        }
        pml_viz_obj *bn = first >= 0 ? pml_viz_find_node(v, bnames[b]) : NULL;
        if (!bn) continue;
        for (int i = 0; i < n; i++)
            if (block[i] == b) vn[i] = bn;
        int nd = 0;
        for (int d = 0; d < ndev; d++)
            if (bused[d]) bdev[nd++] = (int16_t)d;
        set_str(bused, ndev, devs, sizeof devs);
        if (same) {
            config_str(&p->cfg[first], cfg, sizeof cfg);
            snprintf(line, sizeof line, "%s on %.60s", cfg, devs);
        } else {
            snprintf(line, sizeof line, "configs vary, on %.60s", devs);
        }
        char *fill = fill_of(bdev, nd, ndev);
        if (!fill || !style_node(bn, line, fill, striped(nd))) {
            free(fill);
            goto nomem;
        }
        pml_viz_set(bn, "style", striped(nd) ? "bold,striped" : "filled,bold");
        free(fill);
    }
    /* edges where data changes devices */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) {
            int u = g->nodes[i].in[j];
            if (!vn[u] || !vn[i] || vn[u] == vn[i] || same_cfg(&p->cfg[u], &p->cfg[i])) continue;
            pml_viz_obj *e = pml_viz_find_edge(v, vn[u], vn[i]);
            if (!e) continue;
            pml_viz_set(e, "color", "#cc0000");
            pml_viz_set(e, "penwidth", "1.6");
        }
    /* the title: the model's, with the plan's lines after its first */
    {
        const char *old = pml_viz_get(pml_viz_root(v), "label");
        const char *rest = old ? strchr(old, '\n') : NULL;
        const char *mname = m ? m->name : info && info->machine[0] ? info->machine : NULL;
        char head[256], sync[64] = "parameter servers";
        if (p->sync == PML_SYNC_ALLREDUCE)
            snprintf(sync, sizeof sync, "all-reduce in %.3g MB buckets", p->bucket_bytes / 1e6);
        if (mname)
            snprintf(head, sizeof head, "plan of %s for %s", pml_dot_brief(g->name),
                     pml_dot_brief(mname));
        else
            snprintf(head, sizeof head, "plan of %s", pml_dot_brief(g->name));
        size_t len = strlen(head) + (rest ? strlen(rest) : 0) + 256;
        char *title = malloc(len);
        if (!title) goto nomem;
        snprintf(title, len, "%s\nstrategy %s, global batch %d, %s%s", head,
                 pml_dot_brief(p->strategy), p->batch, sync, rest ? rest : "");
        bool ok = set_title(v, title, m, used, ndev);
        free(title);
        if (!ok) goto nomem;
    }
    goto out;
nomem:
    pml_viz_free(v);
    *view = NULL;
    st =
        pml_fail(PML_ENOMEM, "out of memory drawing a plan of model '%s'", pml_dot_brief(g->name));
out:
    free(used);
    free(bused);
    free(block);
    free(bnames);
    free(vn);
    free(bdev);
    return st;
}
