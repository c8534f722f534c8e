/* pml topo — prints a machine (devices, links, routes) and writes it as a cluster DOT file. */
#include "cli.h"

#include "planner/planner.h"
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char topo_intro[] =
    "usage: pml topo [--machine M] [-o FILE.dot] [--json]\n"
    "\n"
    "Prints a machine as the planner sees it: its name and fingerprint, every device (kind,\n"
    "cluster node, peak FLOP/s, memory bandwidth, memory; parameter servers say so), every\n"
    "full-duplex link (bandwidth, latency), and the routes from the first compute device to\n"
    "the others (bottleneck bandwidth, summed latency, hops, the hubs they pass).\n"
    "\n"
    "M is one of:\n"
    "  this (default)        this machine, from hwloc: one CPU device per core, a memory hub per\n"
    "                        package; per-core sgemm FLOP/s and memcpy bandwidth measured once\n"
    "                        on a quiet machine (about 0.3 s) and cached in $XDG_CACHE_HOME/pml\n"
    "                        or ~/.cache/pml (measured again while others keep it busy)\n"
    "  this:N                this machine's first N cores (as pml train --threads N runs)\n"
    "  flexflow-p100         4 nodes x 4 P100 (NVLink in a node, 100 Gb/s InfiniBand)\n"
    "  flexflow-k80          16 nodes x 4 K80 (PCIe switch in a node, 56 Gb/s InfiniBand)\n"
    "  cpu-1socket           a 16-core server; cpu-2socket: two such sockets\n"
    "  reference-cluster     the reference study's cluster: a master of 32 vCPUs, 6 workers of\n"
    "                        16 and 3 parameter servers of 8 (10 Gb/s between them)\n"
    "  synthetic:DESC        a hwloc synthetic topology, e.g. \"synthetic:pack:2 core:8 pu:1\"\n"
    "  FILE.xml              a hwloc XML export (lstopo --of xml, hwloc-gather-topology)\n"
    "  FILE.dot              a cluster file: a template (nodes=16, gpus_per_node=4, ...) or one\n"
    "                        node per device and one edge per link; see planner/machine_file.c\n"
    "\n"
    "Under mpirun without --machine it prints the machine of the run: a node per rank with the\n"
    "rank's share of its host's cores (as pml train gives them), and the network between the\n"
    "ranks measured through MPI now (8-byte ping-pongs and 4 MiB sends between pairs of ranks);\n"
    "-o RANKS.dot keeps it for pml compile --machine RANKS.dot.\n"
    "\n";

static const cli_opt topo_opts[] = {
    {"machine", 'm', "M", "the machine (default: this)"},
    {"output", 'o', "FILE",
     "also write the machine as a cluster DOT file (.dot or .gv; - for\n"
     "standard output), one node per device and one edge per link; loading\n"
     "it gives the same machine and fingerprint. Written under a temporary\n"
     "name and renamed: on an error nothing is left behind (a device or a\n"
     "FIFO is written to)"},
    {"json", 0, NULL,
     "print one JSON object: {\"name\", \"fingerprint\", \"cores_of\" (when the file\n"
     "says whose cores its CPUs are), \"devices\": [...],\n"
     "\"links\": [...], \"routes\": [...]}"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char topo_examples[] =
    "examples:\n"
    "  pml topo\n"
    "  pml topo --machine flexflow-k80 -o k80.dot && pml viz k80.dot -o k80.svg\n"
    "  pml topo --machine \"synthetic:pack:2 core:16 pu:2\" --json\n"
    "  mpirun -np 2 pml topo -o ranks.dot && pml compile fashion-cnn --machine ranks.dot\n";

static const char *const kind_str[PML_DEV_KIND_COUNT] = {"cpu", "gpu", "hub"};

/* 12e9 -> "12 G" + unit */


/* The hubs a route passes, "a, b, c" ("direct" when none). */
static void via(const pml_machine *m, int i, int j, char *buf, size_t cap)
{
    int len;
    const int *r = pml_machine_route(m, i, j, &len);
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k + 1 < len && n < cap; k++) {
        const pml_link *l = &m->link[r[k] / 2];
        int to = r[k] % 2 ? l->a : l->b;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? ", " : "", m->dev[to].name);
    }
    if (!buf[0]) snprintf(buf, cap, "direct");
}

static void print_text(const pml_machine *m)
{
    char b1[32], b2[32], b3[32];
    int nk[PML_DEV_KIND_COUNT] = {0}, maxnode = 0, w = 4;
    for (int i = 0; i < m->ndev; i++) {
        nk[m->dev[i].kind]++;
        if (m->dev[i].node > maxnode) maxnode = m->dev[i].node;
        int n = (int)strlen(m->dev[i].name);
        if (n > w) w = n;
    }
    printf("machine %s  fingerprint %s\n", m->name, m->fingerprint);
    if (m->cores_of[0])
        printf("its CPUs are cores of machine %s%s\n", m->cores_of,
               strcmp(m->cores_of, pml_machine_this_fingerprint()) == 0
                   ? " (this one: their kernels are measured here)"
                   : " (not this one: costed from their numbers)");
    printf("%d compute device%s (%d cpu, %d gpu), %d hub%s, %d link%s, %d node%s\n", m->ncompute,
           m->ncompute == 1 ? "" : "s", nk[PML_DEV_CPU], nk[PML_DEV_GPU], nk[PML_DEV_HUB],
           nk[PML_DEV_HUB] == 1 ? "" : "s", m->nlink, m->nlink == 1 ? "" : "s", maxnode + 1,
           maxnode ? "s" : "");
    if (m->measured) {
        const pml_device *d = &m->dev[m->compute[0]];
        printf("this machine: %s; per core %s sgemm, %s memory traffic, %s (%s)\n", m->cpu_model,
               pml_fmt_si(b1, sizeof b1, d->flops, "FLOP/s"), pml_fmt_si(b2, sizeof b2, d->mem_bw, "B/s"),
               m->nlink ? pml_fmt_si(b3, sizeof b3, m->link[0].bw, "B/s memcpy") : "no links",
               m->measured == 2 ? (m->busy ? "from the cache, measured while others were busy"
                                           : "from the cache")
               : m->busy        ? "measured now, while others were busy: again next time"
                                : "measured now");
        if (m->handoff > 0) {
            char b4[32];
            printf("between cores (measured now): a hand-off %s; rewriting data another core "
                   "wrote %s, that other cores read %s (Adam's update of it: %s of parameters)\n",
                   pml_fmt_seconds(b4, sizeof b4, m->handoff, 3),
                   pml_fmt_si(b1, sizeof b1, m->xcore_bw, "B/s"),
                   pml_fmt_si(b2, sizeof b2, m->xshared_bw, "B/s"),
                   pml_fmt_si(b3, sizeof b3, m->xupdate_bw, "B/s"));
        }
    }
    printf("\ndevices:\n  %-*s  kind  node  %-13s  %-11s  %s\n", w, "name", "FLOP/s", "memory bw",
           "memory");
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        printf("  %-*s  %-4s  %4d", w, d->name, kind_str[d->kind], d->node);
        if (d->kind != PML_DEV_HUB) {
            printf("  %-13s  %-11s  %s", pml_fmt_si(b1, sizeof b1, d->flops, "FLOP/s"),
                   pml_fmt_si(b2, sizeof b2, d->mem_bw, "B/s"),
                   d->mem_bytes > 0 ? pml_fmt_si(b3, sizeof b3, d->mem_bytes, "B") : "unlimited");
            if (d->kind == PML_DEV_CPU && d->cores > 1) printf("  %d cores", d->cores);
            if (d->present) printf("  (present)");
            if (d->ps) printf("  parameter server");
        }
        putchar('\n');
    }
    printf("\nlinks:\n");
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        char ends[160];
        snprintf(ends, sizeof ends, "%s -- %s", m->dev[k->a].name, m->dev[k->b].name);
        printf("  %-*s  %-10s  %s\n", 2 * w + 4, ends, pml_fmt_si(b1, sizeof b1, k->bw, "B/s"),
               pml_fmt_seconds(b2, sizeof b2, k->latency, 3));
    }
    if (m->ncompute < 2) return;
    /* routes from the first compute device, one line per kind of route (same hops, bandwidth
     * and latency), with an example and how many devices it reaches */
    printf("\nroutes from %s:\n", m->dev[m->compute[0]].name);
    const int C = m->ncompute;
    bool *done = calloc((size_t)C, sizeof *done);
    if (!done) return;
    for (int j = 1; j < C; j++) {
        if (done[j]) continue;
        int len, count = 0;
        pml_machine_route(m, 0, j, &len);
        for (int k = j; k < C; k++) {
            int kl;
            pml_machine_route(m, 0, k, &kl);
            if (!done[k] && kl == len && m->route_bw[k] == m->route_bw[j] &&
                m->route_lat[k] == m->route_lat[j]) {
                done[k] = true;
                count++;
            }
        }
        char hubs[512];
        via(m, 0, j, hubs, sizeof hubs);
        printf("  to %s%s: %s, %s, %d hop%s (%s)\n", m->dev[m->compute[j]].name,
               count > 1 ? (snprintf(b3, sizeof b3, " and %d more", count - 1), b3) : "",
               pml_fmt_si(b1, sizeof b1, m->route_bw[j], "B/s"), pml_fmt_seconds(b2, sizeof b2, m->route_lat[j], 3),
               len, len == 1 ? "" : "s", hubs);
    }
    free(done);
}

static void print_json(const pml_machine *m)
{
    FILE *f = stdout;
    cli_json_begin(f);
    fputs(",\"name\":", f);
    cli_json_str(f, m->name);
    fputs(",\"fingerprint\":", f);
    cli_json_str(f, m->fingerprint);
    if (m->cores_of[0]) {
        fputs(",\"cores_of\":", f);
        cli_json_str(f, m->cores_of);
    }
    fprintf(f, ",\"compute\":%d", m->ncompute);
    if (m->measured) {
        fputs(",\"cpu_model\":", f);
        cli_json_str(f, m->cpu_model);
        fprintf(f, ",\"measured\":\"%s\",\"busy\":%s", m->measured == 2 ? "cache" : "now",
                m->busy ? "true" : "false");
    }
    fputs(",\"devices\":[", f);
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        cli_json_str(f, d->name);
        fprintf(f, ",\"kind\":\"%s\",\"node\":%d", kind_str[d->kind], d->node);
        if (d->kind != PML_DEV_HUB) {
            fprintf(f, ",\"flops\":%.17g,\"mem_bw\":%.17g,\"mem_bytes\":%.17g", d->flops, d->mem_bw,
                    d->mem_bytes);
            if (d->kind == PML_DEV_CPU) fprintf(f, ",\"cores\":%d", d->cores);
            fprintf(f, ",\"present\":%s,\"role\":\"%s\"", d->present ? "true" : "false",
                    d->ps ? "ps" : "worker");
        }
        fputc('}', f);
    }
    fputs("],\"links\":[", f);
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        fputs(l ? ",{\"a\":" : "{\"a\":", f);
        cli_json_str(f, m->dev[k->a].name);
        fputs(",\"b\":", f);
        cli_json_str(f, m->dev[k->b].name);
        fprintf(f, ",\"bw\":%.17g,\"latency\":%.17g}", k->bw, k->latency);
    }
    fputs("],\"routes\":[", f);
    for (int j = 1; j < m->ncompute; j++) {
        int len;
        pml_machine_route(m, 0, j, &len);
        fputs(j > 1 ? ",{\"from\":" : "{\"from\":", f);
        cli_json_str(f, m->dev[m->compute[0]].name);
        fputs(",\"to\":", f);
        cli_json_str(f, m->dev[m->compute[j]].name);
        fprintf(f, ",\"hops\":%d,\"bw\":%.17g,\"latency\":%.17g}", len, m->route_bw[j],
                m->route_lat[j]);
    }
    fputs("]}\n", f);
}

int cmd_topo(int argc, char **argv)
{
    cli c;
    cli_start(&c, "topo", argc, argv, topo_opts);
    const char *machine = NULL, *out = NULL, *a;
    bool json = false;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &machine, a, "machine: --machine M")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, topo_intro, topo_opts, topo_examples);
            return 0;
        } else if (cli_is(&c, "--machine")) {
            if (machine) {
                cli_error(&c, "%s: one machine only", c.flag);
                break;
            }
            machine = cli_str(&c);
        } else if (cli_is(&c, "--output")) {
            out = cli_str(&c);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (out && strcmp(out, "-") != 0 && !cli_dot_name(out))
        cli_error(&c,
                  "-o '%s': topo writes a cluster DOT file (.dot or .gv); to draw it use pml viz",
                  out);
    else if (out && json && strcmp(out, "-") == 0)
        cli_error(&c, "-o - and --json both write to standard output; pick one");
    if (c.failed) return EXIT_USAGE;

    /* under mpirun without --machine: the machine of the run; rank 0 speaks for all */
    pml_dist *dist = NULL;
    pml_status st = machine ? PML_OK : pml_dist_init(&argc, &argv, &dist);
    if (st != PML_OK) {
        fprintf(stderr, "pml topo: %s\n", pml_errmsg());
        return 1;
    }
    const int ranks = pml_dist_size(dist), rank = pml_dist_rank(dist);
    char note[512] = "";
    pml_machine m;
    if (ranks > 1) {
        st = cli_ranks_machine(dist, false, &m, note, sizeof note);
        if (rank != 0) { /* the others: only errors, with their rank */
            if (st != PML_OK) fprintf(stderr, "pml topo (rank %d): %s\n", rank, pml_errmsg());
            else pml_machine_free(&m);
            pml_dist_finalize(dist);
            return st == PML_OK ? 0 : 1;
        }
    } else {
        st = pml_machine_load(machine, &m);
    }
    pml_dist_finalize(dist);
    if (st == PML_OK && out) {
        st = pml_machine_write_dot(&m, out); /* "-": standard output */
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml topo: %s\n", pml_errmsg());
        pml_machine_free(&m);
        return cli_exit_code(st);
    }
    if (json)
        print_json(&m);
    else if (!out || strcmp(out, "-") != 0) {
        fputs(note, stdout);
        print_text(&m);
        if (out) printf("\nwrote %s\n", out);
    }
    pml_machine_free(&m);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "pml topo: cannot write to standard output\n");
        return 1;
    }
    return 0;
}
