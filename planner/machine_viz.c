/* pml — planner: the drawing of a machine (pml viz). Devices are boxes coloured by kind (CPU
 * blue, GPU green) and hubs grey ellipses; the devices of a cluster node are drawn in a box of
 * their own (in a machine of one node: each hub with the devices that hang off it alone); every
 * link is one line labelled with its bandwidth and latency. Hubs farther from the compute
 * devices are drawn higher, so a cluster reads top-down: network, NICs, switches, devices. */
#include "models/models.h"
#include "planner/planner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_fill[PML_DEV_KIND_COUNT] = {"#cfe2f3", "#d9ead3", "#eeeeee"};



pml_status pml_viz_machine(const pml_machine *m, pml_viz **view)
{
    *view = NULL;
    if (!m->compute || m->ndev <= 0)
        return pml_fail(PML_EINVAL, "machine '%s': finalize the machine before drawing it",
                        pml_dot_brief(m->name));
    const int V = m->ndev;
    int nk[PML_DEV_KIND_COUNT] = {0}, maxnode = 0;
    for (int i = 0; i < V; i++) {
        nk[m->dev[i].kind]++;
        if (m->dev[i].node > maxnode) maxnode = m->dev[i].node;
    }
    char title[512];
    snprintf(title, sizeof title,
             "machine %s\n%d compute device%s (%d cpu, %d gpu), %d hub%s, %d link%s, %d node%s\n"
             "fingerprint %s",
             m->name, m->ncompute, m->ncompute == 1 ? "" : "s", nk[PML_DEV_CPU], nk[PML_DEV_GPU],
             nk[PML_DEV_HUB], nk[PML_DEV_HUB] == 1 ? "" : "s", m->nlink, m->nlink == 1 ? "" : "s",
             maxnode + 1, maxnode ? "s" : "", m->fingerprint);
    /* level: hops to the nearest compute device (BFS from all of them) */
    int *level = malloc((size_t)V * sizeof *level), *queue = malloc((size_t)V * sizeof *queue);
    int *deg = calloc((size_t)V, sizeof *deg), *group = malloc((size_t)V * sizeof *group);
    pml_viz_obj **vn = calloc((size_t)V, sizeof *vn);
    pml_viz_obj **sub = calloc((size_t)V + 1, sizeof *sub);
    pml_viz *v = NULL;
    pml_status st = PML_OK;
    if (!level || !queue || !deg || !group || !vn || !sub) goto nomem;
    int head = 0, tail = 0;
    for (int i = 0; i < V; i++) {
        level[i] = m->dev[i].kind == PML_DEV_HUB ? -1 : 0;
        if (!level[i]) queue[tail++] = i;
    }
    for (int l = 0; l < m->nlink; l++) deg[m->link[l].a]++, deg[m->link[l].b]++;
    while (head < tail) {
        int u = queue[head++];
        for (int l = 0; l < m->nlink; l++) {
            int w = m->link[l].a == u ? m->link[l].b : m->link[l].b == u ? m->link[l].a : -1;
            if (w >= 0 && level[w] < 0) {
                level[w] = level[u] + 1;
                queue[tail++] = w;
            }
        }
    }
    /* groups: cluster nodes; in a machine of one node, a hub with the devices linked to it
     * alone (a socket and its cores, a switch and its GPUs) */
    for (int i = 0; i < V; i++) group[i] = -1;
    if (maxnode > 0) {
        for (int i = 0; i < V; i++) /* the first device of its node stands for the node */
            for (int j = 0; j <= i && group[i] < 0 && m->dev[i].node >= 0; j++)
                if (m->dev[j].node == m->dev[i].node) group[i] = j;
    } else {
        for (int l = 0; l < m->nlink; l++) {
            const pml_link *k = &m->link[l];
            for (int e = 0; e < 2; e++) {
                int d = e ? k->b : k->a, h = e ? k->a : k->b;
                if (m->dev[d].kind != PML_DEV_HUB && deg[d] == 1 && m->dev[h].kind == PML_DEV_HUB)
                    group[d] = group[h] = h;
            }
        }
    }
    if (!(v = pml_viz_new(m->name, title))) goto nomem;
    char label[256], b1[32], b2[32], b3[32];
    for (int i = 0; i < V; i++) {
        const pml_device *d = &m->dev[i];
        pml_viz_obj *in = pml_viz_root(v);
        int g = group[i];
        if (g >= 0) {
            if (!sub[g]) {
                char id[96];
                snprintf(id, sizeof id, "cluster_%d", g);
                if (maxnode > 0)
                    snprintf(label, sizeof label, "node %d", m->dev[g].node);
                else
                    snprintf(label, sizeof label, "%s", m->dev[g].name);
                if (!(sub[g] = pml_viz_cluster(v, id, label))) goto nomem;
            }
            in = sub[g];
        }
        if (d->kind == PML_DEV_HUB) {
            snprintf(label, sizeof label, "%s", d->name);
        } else {
            pml_fmt_si(b1, sizeof b1, d->flops, "FLOP/s");
            pml_fmt_si(b2, sizeof b2, d->mem_bw, "B/s");
            if (d->mem_bytes > 0)
                pml_fmt_si(b3, sizeof b3, d->mem_bytes, "B");
            else
                snprintf(b3, sizeof b3, "memory unlimited");
            snprintf(label, sizeof label, "%s\n%s, %s\n%s%s", d->name, b1, b2, b3,
                     d->present ? " (present)" : "");
        }
        if (!(vn[i] = pml_viz_node(in, d->name, label, kind_fill[d->kind]))) goto nomem;
        if (d->kind == PML_DEV_HUB) pml_viz_set(vn[i], "shape", "ellipse");
    }
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        /* from the device farther from the compute devices, so hubs sit above what they join.
         * (constraint=false on device-to-device links would draw them side by side, but makes
         * Graphviz 2.43 fail to route edges in clusters, and crash) */
        int a = k->a, b = k->b;
        if (level[b] > level[a]) a = k->b, b = k->a;
        pml_fmt_si(b1, sizeof b1, k->bw, "B/s");
        pml_fmt_seconds(b2, sizeof b2, k->latency, 3);
        snprintf(label, sizeof label, "%s\n%s", b1, b2);
        pml_viz_obj *e = pml_viz_edge(v, vn[a], vn[b], label);
        if (!e) goto nomem;
        pml_viz_set(e, "dir", "none");
    }
    *view = v;
    v = NULL;
    goto done;
nomem:
    st = pml_fail(PML_ENOMEM, "machine '%s': out of memory drawing it", pml_dot_brief(m->name));
done:
    pml_viz_free(v);
    free(level);
    free(queue);
    free(deg);
    free(group);
    free(vn);
    free(sub);
    return st;
}
