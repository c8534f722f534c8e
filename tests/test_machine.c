/* Machine model tests: named machines (devices, links, routes through the hubs), hwloc synthetic
 * strings and XML fixtures, this machine (measured once, then read from the cache; a corrupt cache
 * is measured again), its calibration with fake measurements, probes and load (busy: measured
 * again and cached as provisional; a cache the probe contradicts is measured again; two
 * processes at once measure once; a lock held too long is not waited for), cluster files (explicit and template forms, units), write -> load round
 * trips with the same fingerprint, route choice (fewest hops, then widest, then lowest latency),
 * validation of hand-built machines, one bad fixture per fault, and a mutation fuzz loop over the
 * cluster file reader. No timing. */
#include "models/models.h"
#include "planner/planner.h"
#include "test.h"

#include <hwloc.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIX "fixtures/machines/"

static bool load(const char *spec, pml_machine *m)
{
    pml_status st = pml_machine_load(spec, m);
    CHECK_MSG(st == PML_OK, "%s: %s", spec ? spec : "(null)", pml_errmsg());
    return st == PML_OK;
}

static int dev_id(const pml_machine *m, const char *name)
{
    for (int i = 0; i < m->ndev; i++)
        if (strcmp(m->dev[i].name, name) == 0) return i;
    return -1;
}

static int comp_id(const pml_machine *m, const char *name)
{
    int d = dev_id(m, name);
    return d < 0 ? -1 : m->compute_of[d];
}

/* The devices a route from compute i to j passes through, after i: "a b c". Checks that its
 * resources chain from i to j, and its bandwidth and latency. */
static void route_str(const pml_machine *m, int i, int j, char *buf, size_t cap)
{
    int len;
    const int *r = pml_machine_route(m, i, j, &len);
    int at = m->compute[i];
    double bw = INFINITY, lat = 0;
    buf[0] = 0;
    for (int k = 0; k < len; k++) {
        const pml_link *l = &m->link[r[k] / 2];
        int from = r[k] % 2 ? l->b : l->a, to = r[k] % 2 ? l->a : l->b;
        CHECK_MSG(from == at, "route %d->%d: hop %d starts at %s, not %s", i, j, k,
                  m->dev[from].name, m->dev[at].name);
        at = to;
        bw = fmin(bw, l->bw);
        lat += l->latency;
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", n ? " " : "", m->dev[to].name);
    }
    CHECK(at == m->compute[j]);
    CHECK(m->route_bw[i * m->ncompute + j] == bw);
    CHECK_NEAR(m->route_lat[i * m->ncompute + j], lat, 1e-12);
}

static void check_all_routes(const pml_machine *m)
{
    char buf[1024];
    for (int i = 0; i < m->ncompute; i++)
        for (int j = 0; j < m->ncompute; j++) {
            int len, back;
            pml_machine_route(m, i, j, &len);
            pml_machine_route(m, j, i, &back);
            CHECK(len == back);
            CHECK((i == j) == (len == 0));
            if (i != j) route_str(m, i, j, buf, sizeof buf);
            CHECK(m->route_bw[i * m->ncompute + j] == m->route_bw[j * m->ncompute + i]);
        }
}

static int count_kind(const pml_machine *m, pml_dev_kind k)
{
    int n = 0;
    for (int i = 0; i < m->ndev; i++) n += m->dev[i].kind == k;
    return n;
}

/* ---------------------------------------------------------------- named machines */

static void t_names(void)
{
    const char *const *names = pml_machine_names();
    int n = 0;
    for (; names[n]; n++) {
        pml_machine m;
        if (load(names[n], &m)) {
            CHECK(strcmp(m.name, names[n]) == 0);
            CHECK(strlen(m.fingerprint) == 16);
            CHECK(m.measured == 0);
            for (int i = 0; i < m.ndev; i++) CHECK(!m.dev[i].present);
            check_all_routes(&m);
        }
        pml_machine_free(&m);
    }
    CHECK(n == 5);
    bool ref = false;
    for (int k = 0; k < n; k++) ref |= strcmp(names[k], "reference-cluster") == 0;
    CHECK(ref);
    pml_machine m;
    CHECK(pml_machine_load("flexflow-v100", &m) == PML_EUNKNOWN);
    CHECK(strstr(pml_errmsg(), "flexflow-v100") && strstr(pml_errmsg(), "flexflow-k80") &&
          strstr(pml_errmsg(), "cpu-2socket"));
    CHECK(m.ndev == 0 && m.dev == NULL);
}

static void t_p100(void)
{
    pml_machine m;
    if (!load("flexflow-p100", &m)) return;
    CHECK(m.ncompute == 16 && count_kind(&m, PML_DEV_GPU) == 16);
    CHECK(count_kind(&m, PML_DEV_HUB) == 5); /* 4 NICs, the network */
    int g = dev_id(&m, "node3/gpu1");
    CHECK(g >= 0);
    if (g >= 0) {
        CHECK(m.dev[g].node == 3 && m.dev[g].flops == 9.3e12 && m.dev[g].mem_bw == 732e9 &&
              m.dev[g].mem_bytes == 16e9);
    }
    CHECK(m.dev[dev_id(&m, "network")].node == -1);
    /* NVLink between every two GPUs of a node: 6 per node; PCIe to the NIC: 4 per node */
    int nv = 0, pcie = 0, ib = 0;
    for (int l = 0; l < m.nlink; l++) {
        if (m.link[l].bw == 20e9) nv++;
        if (m.link[l].bw == 12e9) pcie++;
        if (m.link[l].bw == 12.5e9) ib++;
    }
    CHECK(nv == 24 && pcie == 16 && ib == 4 && m.nlink == 44);
    char buf[512];
    int a = comp_id(&m, "node0/gpu0"), b = comp_id(&m, "node0/gpu3"), c = comp_id(&m, "node2/gpu1");
    route_str(&m, a, b, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "node0/gpu3") == 0, "%s", buf);
    CHECK(m.route_bw[a * 16 + b] == 20e9);
    CHECK_NEAR(m.route_lat[a * 16 + b], 2e-6, 1e-12);
    route_str(&m, a, c, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "node0/nic network node2/nic node2/gpu1") == 0, "%s", buf);
    CHECK(m.route_bw[a * 16 + c] == 12e9);
    CHECK_NEAR(m.route_lat[a * 16 + c], 10e-6, 1e-12);
    pml_machine_free(&m);
}

static void t_k80(void)
{
    pml_machine m;
    if (!load("flexflow-k80", &m)) return;
    CHECK(m.ncompute == 64 && count_kind(&m, PML_DEV_GPU) == 64);
    CHECK(count_kind(&m, PML_DEV_HUB) == 33); /* 16 switches, 16 NICs, the network */
    CHECK(m.nlink == 64 + 16 + 16);
    int g = dev_id(&m, "node15/gpu3");
    CHECK(g >= 0 && m.dev[g].flops == 4.4e12 && m.dev[g].mem_bw == 240e9 &&
          m.dev[g].mem_bytes == 12e9);
    int net = dev_id(&m, "network");
    for (int l = 0; l < m.nlink; l++)
        if (m.link[l].a == net || m.link[l].b == net) CHECK(m.link[l].bw == 7e9); /* 56 Gb/s */
    char buf[512];
    int a = comp_id(&m, "node3/gpu1"), b = comp_id(&m, "node3/gpu2"), c = comp_id(&m, "node9/gpu0");
    route_str(&m, a, b, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "node3/pcie node3/gpu2") == 0, "%s", buf);
    CHECK(m.route_bw[a * 64 + b] == 12e9);
    CHECK_NEAR(m.route_lat[a * 64 + b], 5e-6, 1e-12);
    route_str(&m, a, c, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "node3/pcie node3/nic network node9/nic node9/pcie node9/gpu0") == 0,
              "%s", buf);
    CHECK(m.route_bw[a * 64 + c] == 7e9);
    CHECK_NEAR(m.route_lat[a * 64 + c], 17e-6, 1e-12);
    /* the resources of the two directions differ: full duplex */
    int len, back;
    const int *r = pml_machine_route(&m, a, c, &len), *s = pml_machine_route(&m, c, a, &back);
    CHECK(len == 6 && back == 6);
    if (len == 6 && back == 6)
        for (int k = 0; k < 6; k++) CHECK(r[k] == (s[5 - k] ^ 1));
    pml_machine_free(&m);
}

static void t_cpu_servers(void)
{
    pml_machine m;
    if (load("cpu-1socket", &m)) {
        CHECK(m.ncompute == 16 && count_kind(&m, PML_DEV_HUB) == 1 && m.nlink == 16);
        for (int i = 0; i < m.ncompute; i++) {
            const pml_device *d = &m.dev[m.compute[i]];
            CHECK(d->kind == PML_DEV_CPU && d->cores == 1 && d->flops == 80e9);
            CHECK_NEAR(d->mem_bw, 100e9 / 16, 1e-12);
            CHECK_NEAR(d->mem_bytes, 256e9 / 16, 1e-12);
        }
        char buf[256];
        route_str(&m, 0, 15, buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "pkg0/mem core15") == 0, "%s", buf);
    }
    pml_machine_free(&m);
    if (load("cpu-2socket", &m)) {
        CHECK(m.ncompute == 32 && count_kind(&m, PML_DEV_HUB) == 2 && m.nlink == 33);
        int p0 = dev_id(&m, "pkg0/mem"), p1 = dev_id(&m, "pkg1/mem"), upi = -1;
        for (int l = 0; l < m.nlink; l++)
            if ((m.link[l].a == p0 && m.link[l].b == p1) ||
                (m.link[l].a == p1 && m.link[l].b == p0))
                upi = l;
        CHECK(upi >= 0 && m.link[upi].bw == 40e9);
        char buf[256];
        int a = comp_id(&m, "core3"), b = comp_id(&m, "core20");
        route_str(&m, a, b, buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "pkg0/mem pkg1/mem core20") == 0, "%s", buf);
        int len;
        const int *r = pml_machine_route(&m, a, b, &len);
        CHECK(len == 3 && r[1] / 2 == upi);
        CHECK_NEAR(m.dev[m.compute[0]].mem_bytes, 512e9 / 32, 1e-12);
    }
    pml_machine_free(&m);
}

/* ---------------------------------------------------------------- hwloc sources */

static void t_synthetic(void)
{
    pml_machine m;
    if (load("synthetic:pack:2 core:16 pu:1", &m)) {
        CHECK(m.ncompute == 32 && count_kind(&m, PML_DEV_HUB) == 2);
        CHECK(strcmp(m.name, "synthetic:pack:2 core:16 pu:1") == 0);
        int a = comp_id(&m, "core0"), b = comp_id(&m, "core31");
        int len;
        const int *r = pml_machine_route(&m, a, b, &len);
        CHECK(len == 3);
        if (len == 3) {
            const pml_link *upi = &m.link[r[1] / 2];
            CHECK(m.dev[upi->a].kind == PML_DEV_HUB && m.dev[upi->b].kind == PML_DEV_HUB);
            CHECK(upi->bw == 40e9);
        }
        for (int i = 0; i < m.ndev; i++) CHECK(!m.dev[i].present);
        CHECK(m.dev[0].flops == 80e9);
        CHECK_NEAR(m.dev[0].mem_bw, 100e9 / 16, 1e-12);
    }
    pml_machine_free(&m);
    /* PUs when there are no cores */
    if (load("synthetic:pack:1 pu:4", &m)) CHECK(m.ncompute == 4);
    pml_machine_free(&m);
    CHECK(pml_machine_load("synthetic:pack:2 sockets:8", &m) == PML_EFORMAT);
    CHECK(strstr(pml_errmsg(), "synthetic:pack:2 sockets:8") != NULL);
    CHECK(pml_machine_load("synthetic:", &m) == PML_EFORMAT);
    CHECK(pml_machine_load("synthetic:pack:100 core:1000 pu:1", &m) == PML_EFORMAT);
    CHECK(strstr(pml_errmsg(), "at most") != NULL);
    CHECK(m.ndev == 0 && m.dev == NULL);
}

static void t_xml(void)
{
    pml_machine m;
    if (load(FIX "server_1socket.xml", &m)) {
        CHECK(m.ncompute == 8 && count_kind(&m, PML_DEV_HUB) == 1);
        CHECK(strcmp(m.name, "server_1socket") == 0);
        CHECK_NEAR(m.dev[0].mem_bytes, 64.0 * (1 << 30) / 8, 1e-12);
        CHECK(!m.dev[0].present && m.measured == 0);
    }
    pml_machine_free(&m);
    if (load(FIX "server_2socket.xml", &m)) {
        CHECK(m.ncompute == 32 && count_kind(&m, PML_DEV_HUB) == 2);
        char buf[256];
        route_str(&m, comp_id(&m, "core0"), comp_id(&m, "core16"), buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "pkg0/mem pkg1/mem core16") == 0, "%s", buf);
        check_all_routes(&m);
    }
    pml_machine_free(&m);
}

/* ---------------------------------------------------------------- calibration hooks
 *
 * A fake measurement, probe and load source (pml_calib_opts), so that no test depends on how
 * fast or busy the machine running it is. */

typedef struct fake_calib {
    double copy_bw, flops; /* what the fake measurement finds */
    double probe;          /* what the fake probe finds */
    bool busy;             /* the fake load source: others use 10 cores, or none */
    int measures, probes;
    double busy_t, wall_t; /* the fake CPU clock */
    const char *record;    /* when set, each measurement appends a line here */
    unsigned sleep_us;     /* a measurement takes this long (widens a race) */
} fake_calib;

static pml_status fake_measure(void *ctx, double *copy_bw, double *flops)
{
    fake_calib *f = ctx;
    f->measures++;
    if (f->record) {
        FILE *r = fopen(f->record, "a");
        if (r) {
            fprintf(r, "measured by %ld\n", (long)getpid());
            fclose(r);
        }
    }
    if (f->sleep_us) usleep(f->sleep_us);
    *copy_bw = f->copy_bw;
    *flops = f->flops;
    return PML_OK;
}

static pml_status fake_probe(void *ctx, double *flops)
{
    fake_calib *f = ctx;
    f->probes++;
    *flops = f->probe;
    return PML_OK;
}

static void fake_snap(void *ctx, pml_cpu_snap *s)
{
    fake_calib *f = ctx;
    f->wall_t += 1;
    if (f->busy) f->busy_t += 10;
    s->busy = 100 + f->busy_t;
    s->self = 0;
    s->wall = f->wall_t;
}

static fake_calib fake(double copy_bw, double flops)
{
    fake_calib f;
    memset(&f, 0, sizeof f);
    f.copy_bw = copy_bw;
    f.flops = flops;
    f.probe = flops;
    return f;
}

/* options with the fakes, no waiting, the cache in \p dir */
static pml_calib_opts fake_opts(fake_calib *f, const char *dir)
{
    pml_calib_opts o = pml_calib_opts_default();
    o.cache_dir = dir;
    o.measure = fake_measure;
    o.probe = fake_probe;
    o.snap = fake_snap;
    o.ctx = f;
    o.window = 0;
    o.retry_wait = 0;
    return o;
}

static bool load_this(pml_machine *m, const pml_calib_opts *o)
{
    pml_status st = pml_machine_load_this(m, o);
    CHECK_MSG(st == PML_OK, "this: %s", pml_errmsg());
    return st == PML_OK;
}

/* the machine cache file in dir; its text in *text (malloc'd, "" when there is none) */
static void calib_file(const char *dir, const pml_machine *m, char *path, size_t cap, char **text)
{
    snprintf(path, cap, "%s/machine-%s.txt", dir, m->fingerprint);
    size_t len;
    if (pml_read_file(path, 1 << 16, text, &len) != PML_OK) *text = strdup("");
}

/* sets \p name back to \p old (malloc'd, or NULL: unset) and frees it */
static void restore_env(const char *name, char *old)
{
    if (old) setenv(name, old, 1);
    else unsetenv(name);
    free(old);
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---------------------------------------------------------------- this machine */

static int hwloc_cores(void)
{
    hwloc_topology_t t;
    hwloc_topology_init(&t);
    hwloc_topology_load(t);
    int n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    if (n <= 0) n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    hwloc_topology_destroy(t);
    return n;
}

/* The real measurement, cached; the load source and the probe are fakes (a quiet machine, a
 * probe that finds it slower than cached), so the second load reads the cache whatever else
 * runs meanwhile. */
static void t_this_machine(void)
{
    char dir[] = "/tmp/pml-test-machine-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char xdg[128];
    snprintf(xdg, sizeof xdg, "%s/xdg", dir); /* not there yet: created with pml/ in it */
    /* given back at the end: the later tests' loads would otherwise write their caches into
     * the folder after it is removed, and create it again */
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", xdg, 1);
    fake_calib f = fake(0, 0);
    f.probe = 1e7; /* slower than any cache: keeps it */
    pml_calib_opts o = fake_opts(&f, NULL);
    o.measure = NULL; /* the real one */
    pml_machine m, m2;
    if (!load_this(&m, &o)) {
        restore_env("XDG_CACHE_HOME", old_xdg);
        rm_rf(dir);
        return;
    }
    CHECK(m.measured == 1 && !m.busy);
    CHECK(m.ncompute == hwloc_cores());
    CHECK(m.cpu_model[0] != 0);
    for (int i = 0; i < m.ncompute; i++) {
        const pml_device *d = &m.dev[m.compute[i]];
        CHECK(d->present && d->kind == PML_DEV_CPU && d->cores == 1 && d->first_core >= 0);
        CHECK(d->flops > 1e8 && d->mem_bw > 1e8);
    }
    for (int l = 0; l < m.nlink; l++) CHECK(m.link[l].bw > 1e8);
    check_all_routes(&m);
    char path[256];
    snprintf(path, sizeof path, "%s/pml/machine-%s.txt", xdg, m.fingerprint);
    struct stat sa, sb;
    CHECK(stat(path, &sa) == 0);
    /* the second load reads the cache: the same numbers, the file untouched */
    if (load_this(&m2, &o)) {
        CHECK(m2.measured == 2);
        CHECK(strcmp(m.fingerprint, m2.fingerprint) == 0);
        CHECK(m2.dev[0].flops == m.dev[0].flops && m2.link[0].bw == m.link[0].bw);
        CHECK(stat(path, &sb) == 0 && sb.st_ino == sa.st_ino);
    }
    pml_machine_free(&m2);
    /* a corrupt or implausible cache file is measured again and rewritten */
    const char *bad[] = {"garbage\n", "pml machine cache 1\ncpu_model x\ncopy_bw 1\nflops 1\n",
                         "pml machine cache 1\ncopy_bw nan\nflops 1e11\n", "",
                         "pml machine cache 1\ncopy_bw 1e10\nflops 1e11\nprovisional 2\n"};
    for (int k = 0; k < 5; k++) {
        FILE *fp = fopen(path, "w");
        if (fp) {
            fputs(bad[k], fp);
            fclose(fp);
        }
        if (load_this(&m2, &o)) {
            CHECK_MSG(m2.measured == 1, "cache %d", k);
            CHECK(strcmp(m.fingerprint, m2.fingerprint) == 0);
        }
        pml_machine_free(&m2);
        if (load_this(&m2, &o)) CHECK_MSG(m2.measured == 2, "cache %d rewritten", k);
        pml_machine_free(&m2);
    }
    /* the default load ("this", "" and NULL) works whatever the machine's load */
    if (load("this", &m2)) {
        CHECK(m2.measured >= 1 && strcmp(m.fingerprint, m2.fingerprint) == 0);
        /* the traffic between cores is measured at every load (more than one core) and kept
         * by a machine of some of its cores */
        if (m2.ncompute >= 2) {
            CHECK(m2.handoff > 0 && m2.handoff < 1e-3);
            CHECK(m2.xcore_bw > 1e8 && m2.xshared_bw > 1e7 && m2.core_cache >= 4096);
            CHECK_MSG(m2.xupdate_bw > 1e7 && m2.xupdate_bw <= 1e15, "%g", m2.xupdate_bw);
            pml_machine some;
            if (pml_machine_first_cores(&m2, 2, &some) == PML_OK) {
                CHECK(some.handoff == m2.handoff && some.xcore_bw == m2.xcore_bw &&
                      some.xshared_bw == m2.xshared_bw && some.core_cache == m2.core_cache &&
                      some.xupdate_bw == m2.xupdate_bw);
                pml_machine_free(&some);
            }
        }
    }
    pml_machine_free(&m2);
    /* the fingerprint hashes the hardware, not the numbers: remeasuring keeps it; changing a
     * number of a device that is not present changes it */
    char fp[17];
    memcpy(fp, m.fingerprint, sizeof fp);
    m.dev[0].flops *= 1.01;
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) == 0);
    /* written out and read back: the same numbers, devices not present */
    char out[300];
    snprintf(out, sizeof out, "%s/this.dot", dir);
    CHECK_OK(pml_machine_write_dot(&m, out));
    if (load(out, &m2)) {
        CHECK(m2.ndev == m.ndev && m2.nlink == m.nlink && !m2.dev[0].present);
        CHECK(m2.dev[0].flops == m.dev[0].flops && m2.link[0].bw == m.link[0].bw);
    }
    pml_machine_free(&m2);
    restore_env("XDG_CACHE_HOME", old_xdg);
    rm_rf(dir);
    pml_machine_free(&m);
}

/* Others busy while measuring: measured again (tries), the best used, cached as provisional and
 * measured again by the next load; quiet: cached for good. */
static void t_calib_quiet(void)
{
    char dir[] = "/tmp/pml-test-calib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_calib f = fake(2e10, 1e11);
    f.busy = true;
    pml_calib_opts o = fake_opts(&f, dir);
    pml_machine m;
    char path[300], *text;
    if (!load_this(&m, &o)) return;
    CHECK_MSG(f.measures == 3, "%d measurements on a busy machine", f.measures);
    CHECK(m.measured == 1 && m.busy && m.dev[m.compute[0]].flops == 1e11);
    calib_file(dir, &m, path, sizeof path, &text);
    CHECK_MSG(strstr(text, "provisional 1\n") != NULL, "%s", text);
    free(text);
    pml_machine_free(&m);
    /* still busy: measured again, once; the best numbers of both runs kept */
    f.measures = 0;
    f.flops = 0.9e11;
    f.copy_bw = 3e10;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 1 && m.measured == 1 && m.busy);
    CHECK(m.dev[m.compute[0]].flops == 1e11 && m.link[0].bw == 3e10);
    calib_file(dir, &m, path, sizeof path, &text);
    CHECK(strstr(text, "provisional 1\n") != NULL && strstr(text, "flops 100000000000\n"));
    free(text);
    pml_machine_free(&m);
    /* quiet: this measurement is the answer, cached for good */
    f.busy = false;
    f.measures = 0;
    f.flops = 1.2e11;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 1 && m.measured == 1 && !m.busy && m.dev[m.compute[0]].flops == 1.2e11);
    calib_file(dir, &m, path, sizeof path, &text);
    CHECK(strstr(text, "provisional") == NULL && strstr(text, "flops 120000000000\n"));
    free(text);
    pml_machine_free(&m);
    /* and read from the cache from then on, busy or not */
    f.busy = true;
    f.measures = 0;
    f.probe = 1.2e11;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 0 && f.probes == 1 && m.measured == 2 && !m.busy);
    CHECK(m.dev[m.compute[0]].flops == 1.2e11);
    pml_machine_free(&m);
    /* a busy measurement without a disk cache: retried too, nothing written */
    f.measures = 0;
    o.cache_dir = "";
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 3 && m.measured == 1 && m.busy);
    pml_machine_free(&m);
    rm_rf(dir);
}

/* A cached calibration the probe finds clearly slower than the machine is measured again and
 * rewritten; one the probe finds faster (a busy machine) or about as fast is kept. */
static void t_calib_contradiction(void)
{
    char dir[] = "/tmp/pml-test-calib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_calib f = fake(2e10, 1e11);
    pml_calib_opts o = fake_opts(&f, dir);
    pml_machine m;
    char path[300], *text;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 1 && m.measured == 1);
    pml_machine_free(&m);
    /* a probe 30% faster: the cache was measured under load */
    f.probe = 1.3e11;
    f.flops = 1.25e11;
    if (!load_this(&m, &o)) return;
    CHECK(f.probes == 1 && f.measures == 2 && m.measured == 1 && !m.busy);
    CHECK(m.dev[m.compute[0]].flops == 1.25e11);
    calib_file(dir, &m, path, sizeof path, &text);
    CHECK_MSG(strstr(text, "flops 125000000000\n") && !strstr(text, "provisional"), "%s", text);
    free(text);
    pml_machine_free(&m);
    /* slower (others busy now) or within 15%: kept */
    const double probes[] = {0.5e11, 1.25e11, 1.4e11};
    for (int k = 0; k < 3; k++) {
        f.probe = probes[k];
        if (!load_this(&m, &o)) return;
        CHECK_MSG(f.measures == 2 && m.measured == 2, "probe %g", probes[k]);
        CHECK(m.dev[m.compute[0]].flops == 1.25e11);
        pml_machine_free(&m);
    }
    /* contradicted on a busy machine: the best of the cache, the probe and the measurements,
     * cached as provisional */
    f.probe = 2e11;
    f.busy = true;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 5 && m.measured == 1 && m.busy);
    CHECK(m.dev[m.compute[0]].flops == 2e11);
    calib_file(dir, &m, path, sizeof path, &text);
    CHECK_MSG(strstr(text, "flops 200000000000\n") && strstr(text, "provisional 1"), "%s", text);
    free(text);
    pml_machine_free(&m);
    rm_rf(dir);
}

/* The real probe: any machine beats a cache that says 10 MFLOP/s, and is measured again. */
static void t_calib_real_probe(void)
{
    char dir[] = "/tmp/pml-test-calib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_calib f = fake(2e10, 1e11);
    pml_calib_opts o = fake_opts(&f, dir);
    pml_machine m;
    char path[300], *text;
    if (!load_this(&m, &o)) return;
    calib_file(dir, &m, path, sizeof path, &text);
    char slow[512];
    snprintf(slow, sizeof slow, "pml machine cache 1\ncpu_model %s\ncopy_bw 2e10\nflops 1e7\n",
             m.cpu_model);
    CHECK_OK(pml_write_file_atomic(path, slow, strlen(slow)));
    free(text);
    pml_machine_free(&m);
    o.probe = NULL;
    f.measures = 0;
    if (!load_this(&m, &o)) return;
    CHECK(f.measures == 1 && m.measured == 1 && m.dev[m.compute[0]].flops == 1e11);
    pml_machine_free(&m);
    rm_rf(dir);
}

/* Two processes calibrate at once against one cache folder: one measures, the other waits for
 * the lock and reads its result. */
static void t_calib_lock(void)
{
    char dir[] = "/tmp/pml-test-calib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char record[300];
    snprintf(record, sizeof record, "%s/record", dir);
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t kid[2];
    for (int k = 0; k < 2; k++) {
        kid[k] = fork();
        CHECK(kid[k] >= 0);
        if (kid[k] == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) != 1) _exit(10);
            fake_calib f = fake(2e10, 1e11);
            f.record = record;
            f.sleep_us = 300000; /* both would be measuring at once without the lock */
            pml_calib_opts o = fake_opts(&f, dir);
            pml_machine m;
            if (pml_machine_load_this(&m, &o) != PML_OK) _exit(11);
            int rc = m.dev[m.compute[0]].flops == 1e11 ? m.measured : 12;
            pml_machine_free(&m);
            _exit(rc);
        }
    }
    close(go[0]);
    CHECK(write(go[1], "gg", 2) == 2);
    close(go[1]);
    int got = 0;
    for (int k = 0; k < 2; k++) {
        int status = 0;
        if (kid[k] > 0 && waitpid(kid[k], &status, 0) == kid[k] && WIFEXITED(status))
            got |= 1 << WEXITSTATUS(status);
    }
    CHECK_MSG(got == ((1 << 1) | (1 << 2)), "children's exits %#x: one measures, one reads", got);
    char *text;
    size_t len;
    CHECK_OK(pml_read_file(record, 4096, &text, &len));
    if (text) {
        int lines = 0;
        for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
        CHECK_MSG(lines == 1, "%s", text);
        free(text);
    }
    rm_rf(dir);
}

/* A holder that never lets go: the calibration waits as long as it was told, then measures
 * and writes nothing. */
static void t_calib_lock_bounded(void)
{
    char dir[] = "/tmp/pml-test-calib-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_calib f = fake(2e10, 1e11);
    pml_calib_opts o = fake_opts(&f, "");
    pml_machine m;
    if (!load_this(&m, &o)) return; /* the fingerprint, for the lock's name */
    char name[64], path[300];
    snprintf(name, sizeof name, "machine-%s.txt", m.fingerprint);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pml_machine_free(&m);
    pml_cache_lock held;
    CHECK(pml_cache_lock_take(&held, dir, name, 1));
    o.cache_dir = dir;
    o.lock_wait = 0.2;
    f.measures = 0;
    if (load_this(&m, &o)) {
        CHECK(f.measures == 1 && m.measured == 1 && !m.busy);
        CHECK(m.dev[m.compute[0]].flops == 1e11);
    }
    pml_machine_free(&m);
    CHECK(access(path, F_OK) != 0); /* not cached */
    pml_cache_unlock(&held);
    /* let go: the next load measures and caches */
    if (load_this(&m, &o))
        CHECK_MSG(f.measures == 2 && access(path, F_OK) == 0, "measures %d, measured %d, %s, %s",
                  f.measures, m.measured, m.fingerprint, path);
    pml_machine_free(&m);
    rm_rf(dir);
}

/* ---------------------------------------------------------------- cluster files */

static void t_explicit(void)
{
    pml_machine m;
    if (!load(FIX "good_explicit.dot", &m)) return;
    CHECK(strcmp(m.name, "small") == 0);
    CHECK(m.ndev == 10 && m.nlink == 9 && m.ncompute == 5);
    int h = dev_id(&m, "node0/host");
    CHECK(h >= 0 && m.dev[h].kind == PML_DEV_CPU && m.dev[h].cores == 16);
    CHECK(m.dev[h].mem_bytes == 256.0 * (1ull << 30) && m.dev[h].flops == 80e9);
    int g = dev_id(&m, "node1/gpu1");
    CHECK(m.dev[g].node == 1 && m.dev[g].flops == 9.3e12 && m.dev[g].mem_bw == 732e9 &&
          m.dev[g].mem_bytes == 0);
    for (int i = 0; i < m.ndev; i++)
        if (m.dev[i].kind == PML_DEV_GPU) CHECK(m.dev[i].flops == 9.3e12);
    /* units: every link to a GPU is 12 GB/s and 2.5 us, however it is written */
    for (int l = 0; l < m.nlink; l++) {
        const pml_link *k = &m.link[l];
        if (m.dev[k->a].kind == PML_DEV_GPU || m.dev[k->b].kind == PML_DEV_GPU) {
            CHECK_MSG(k->bw == 12e9, "link %d: %g", l, k->bw);
            CHECK_MSG(k->latency == 2.5e-6, "link %d: %g", l, k->latency);
        }
    }
    CHECK(m.link[2].bw == 16.0 * (1 << 30) && m.link[2].latency == 1e-6);
    CHECK(m.link[7].bw == 12.5e9);
    char buf[256];
    route_str(&m, comp_id(&m, "node0/host"), comp_id(&m, "node1/gpu0"), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "node0/pcie node0/nic network node1/nic node1/pcie node1/gpu0") == 0,
              "%s", buf);
    check_all_routes(&m);
    pml_machine_free(&m);
}

/* The reference study's cluster: a master of 32 vCPUs, 6 workers of 16, 3 parameter servers of
 * 8 (two vCPUs a core), one NIC each on a 10 Gb/s network. */
static void t_reference_cluster(void)
{
    pml_machine m;
    if (load("reference-cluster", &m)) {
        CHECK(m.ncompute == 16 + 6 * 8 + 3 * 4);
        int per[10] = {0}, maxnode = 0;
        for (int i = 0; i < m.ncompute; i++) {
            const pml_device *d = &m.dev[m.compute[i]];
            CHECK(d->kind == PML_DEV_CPU && d->flops == 64e9 && !d->present);
            if (d->node >= 0 && d->node < 10) per[d->node]++;
            if (d->node > maxnode) maxnode = d->node;
        }
        CHECK(maxnode == 9 && per[0] == 16 && per[1] == 8 && per[6] == 8 && per[7] == 4 &&
              per[9] == 4);
        /* every node's cores, two vCPUs each: 32 + 6 x 16 + 3 x 8; the last 3 nodes' cores
         * are the parameter servers */
        int cores[10] = {0}, vcpus = 0, servers = 0;
        for (int i = 0; i < m.ncompute; i++) {
            const pml_device *d = &m.dev[m.compute[i]];
            if (d->node >= 0 && d->node < 10) cores[d->node] += d->cores;
            vcpus += 2 * d->cores;
            servers += d->ps;
            CHECK_MSG(d->ps == (d->node >= 7), "%s", d->name);
        }
        CHECK(cores[0] == 16 && cores[1] == 8 && cores[5] == 8 && cores[7] == 4 && cores[8] == 4);
        CHECK(vcpus == 32 + 6 * 16 + 3 * 8);
        CHECK(servers == 12);
        for (int i = 0; i < m.ndev; i++) CHECK(m.dev[i].kind != PML_DEV_HUB || !m.dev[i].ps);
        /* the fingerprint: the same at every load, and the servers are part of it */
        pml_machine again;
        if (load("reference-cluster", &again)) CHECK(strcmp(m.fingerprint, again.fingerprint) == 0);
        pml_machine_free(&again);
        char fp[17];
        memcpy(fp, m.fingerprint, sizeof fp);
        m.dev[m.compute[70]].ps = false;
        CHECK_OK(pml_machine_finalize(&m));
        CHECK(strcmp(fp, m.fingerprint) != 0);
        m.dev[m.compute[70]].ps = true;
        CHECK_OK(pml_machine_finalize(&m));
        CHECK(strcmp(fp, m.fingerprint) == 0);
        CHECK_NEAR(m.dev[dev_id(&m, "node0/core3")].mem_bytes, 120e9 / 16, 1e-12);
        CHECK_NEAR(m.dev[dev_id(&m, "node8/core1")].mem_bytes, 30e9 / 4, 1e-12);
        char buf[512];
        route_str(&m, comp_id(&m, "node1/core0"), comp_id(&m, "node8/core2"), buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "node1/pkg0/mem node1/nic network node8/nic node8/pkg0/mem "
                              "node8/core2") == 0,
                  "%s", buf);
        int len;
        const int *r = pml_machine_route(&m, comp_id(&m, "node1/core0"), comp_id(&m, "node8/core2"), &len);
        CHECK(len == 6 && m.link[r[2] / 2].bw == 10e9 / 8);
        check_all_routes(&m);
    }
    pml_machine_free(&m);
    /* node kinds in a template: counted, checked against nodes=, refused when malformed */
    static const char ok[] = "digraph g { graph [kind=machine, network_bw=\"1G\", "
                             "topology=\"2*synthetic:pack:1 core:2 pu:1; synthetic:pack:2 core:3 pu:1\"]; }";
    const pml_status st = pml_machine_parse_dot(ok, strlen(ok), "kinds.dot", &m);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    if (st == PML_OK) {
        CHECK(m.ncompute == 2 + 2 + 6);
        CHECK(dev_id(&m, "node2/pkg1/mem") >= 0 && dev_id(&m, "node1/pkg1/mem") < 0);
    }
    pml_machine_free(&m);
    static const char *const bad[][2] = {
        {"digraph g { graph [kind=machine, nodes=4, network_bw=\"1G\", "
         "topology=\"2*synthetic:core:2 pu:1; synthetic:core:2 pu:1\"]; }",
         "nodes=4, but topology counts 3 nodes"},
        {"digraph g { graph [kind=machine, network_bw=\"1G\", topology=\"0*synthetic:core:2 pu:1\"]; }",
         "'0' before '*' must be a node count"},
        {"digraph g { graph [kind=machine, network_bw=\"1G\", topology=\"x*synthetic:core:2 pu:1\"]; }",
         "'x' before '*' must be a node count"},
        {"digraph g { graph [kind=machine, network_bw=\"1G\", topology=\"synthetic:core:2 pu:1;;\"]; }",
         "an empty or too long part"},
        {"digraph g { graph [kind=machine, network_bw=\"1G\", topology=\"2*pack:1 core:2\"]; }",
         "must be \"synthetic:DESC\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(pml_machine_parse_dot(bad[i][0], strlen(bad[i][0]), "kinds.dot", &m) == PML_EFORMAT);
        CHECK_MSG(strstr(pml_errmsg(), bad[i][1]) && strstr(pml_errmsg(), "kinds.dot"), "%s",
                  pml_errmsg());
        CHECK(m.ndev == 0 && m.dev == NULL);
    }
}

/* Parameter servers: a template's last ps_nodes nodes, or role=ps on a device; written back as
 * role=ps; a machine without them keeps its fingerprint; bad values are refused naming the file. */
static void t_parameter_servers(void)
{
    static const char tmpl[] =
        "digraph g { graph [kind=machine, network_bw=\"1G\", ps_nodes=1, "
        "topology=\"2*synthetic:pack:1 core:2 pu:1; synthetic:pack:1 core:3 pu:1\"]; }";
    static const char plain[] =
        "digraph g { graph [kind=machine, network_bw=\"1G\", "
        "topology=\"2*synthetic:pack:1 core:2 pu:1; synthetic:pack:1 core:3 pu:1\"]; }";
    pml_machine m, n;
    pml_status st = pml_machine_parse_dot(tmpl, strlen(tmpl), "ps.dot", &m);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    if (st == PML_OK) {
        CHECK(m.ncompute == 2 + 2 + 3);
        for (int i = 0; i < m.ndev; i++)
            CHECK_MSG(m.dev[i].ps == (m.dev[i].node == 2 && m.dev[i].kind == PML_DEV_CPU), "%s",
                      m.dev[i].name);
        char *text;
        size_t len;
        CHECK_OK(pml_machine_format_dot(&m, &text, &len));
        CHECK(strstr(text, "\"node2/core0\" [kind=cpu, node_id=2, ") &&
              strstr(text, "cores=1, role=ps];"));
        const char *w = strstr(text, "\"node1/core0\" [");
        CHECK(w && strchr(w, '\n') && !memmem(w, (size_t)(strchr(w, '\n') - w), "role", 4));
        int roles = 0;
        for (const char *q = text; (q = strstr(q, "role=ps")); q++) roles++;
        CHECK(roles == 3);
        free(text);
        /* the same machine without servers has another fingerprint */
        if (pml_machine_parse_dot(plain, strlen(plain), "plain.dot", &n) == PML_OK) {
            CHECK(strcmp(m.fingerprint, n.fingerprint) != 0);
            for (int i = 0; i < n.ndev; i++) CHECK(!n.dev[i].ps);
        }
        pml_machine_free(&n);
        /* a device that is not a server keeps the fingerprint it had before servers existed:
         * ps_nodes=0 is no server */
        static const char zero[] =
            "digraph g { graph [kind=machine, network_bw=\"1G\", ps_nodes=0, "
            "topology=\"2*synthetic:pack:1 core:2 pu:1; synthetic:pack:1 core:3 pu:1\"]; }";
        pml_machine z;
        if (pml_machine_parse_dot(plain, strlen(plain), "plain.dot", &n) == PML_OK &&
            pml_machine_parse_dot(zero, strlen(zero), "zero.dot", &z) == PML_OK)
            CHECK(strcmp(z.fingerprint, n.fingerprint) == 0);
        pml_machine_free(&n);
        pml_machine_free(&z);
    }
    pml_machine_free(&m);
    /* explicit: role=ps on one core */
    static const char expl[] =
        "digraph e { graph [kind=machine]; a [kind=cpu, flops=\"1G\", mem_bw=\"1G\", role=ps]; "
        "b [kind=cpu, flops=\"1G\", mem_bw=\"1G\", role=worker]; a -> b [bw=\"1G\"]; }";
    st = pml_machine_parse_dot(expl, strlen(expl), "e.dot", &m);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    if (st == PML_OK) CHECK(m.dev[0].ps && !m.dev[1].ps);
    pml_machine_free(&m);
    static const char *const bad[][2] = {
        {"digraph g { graph [kind=machine, network_bw=\"1G\", ps_nodes=4, "
         "topology=\"3*synthetic:core:2 pu:1\"]; }",
         "ps_nodes=4, but the machine has 3 nodes"},
        {"digraph g { graph [kind=machine, ps_nodes=-1, topology=\"synthetic:core:2 pu:1\"]; }",
         "ps_nodes='-1' must be an integer in [0, 1024]"},
        {"digraph g { graph [kind=machine, ps_nodes=two, topology=\"synthetic:core:2 pu:1\"]; }",
         "ps_nodes='two'"},
        {"digraph e { a [kind=cpu, flops=\"1G\", mem_bw=\"1G\", role=server]; }",
         "role='server' must be worker or ps"},
        {"digraph e { a [kind=cpu, flops=\"1G\", mem_bw=\"1G\"]; h [kind=hub, role=ps]; a -> h "
         "[bw=\"1G\"]; }",
         "attribute 'role' does not apply to a hub"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(pml_machine_parse_dot(bad[i][0], strlen(bad[i][0]), "ps.dot", &m) == PML_EFORMAT);
        CHECK_MSG(strstr(pml_errmsg(), bad[i][1]) && strstr(pml_errmsg(), "ps.dot"), "%s",
                  pml_errmsg());
        CHECK(m.ndev == 0 && m.dev == NULL);
    }
    /* built by hand: a hub cannot serve */
    if (load("reference-cluster", &m)) {
        m.dev[dev_id(&m, "network")].ps = true;
        CHECK(pml_machine_finalize(&m) == PML_EFORMAT);
        CHECK_MSG(strstr(pml_errmsg(), "'network' is a hub"), "%s", pml_errmsg());
    }
    pml_machine_free(&m);
}

static void t_templates(void)
{
    pml_machine m, k80;
    if (load(FIX "good_template_k80.dot", &m) && load("flexflow-k80", &k80)) {
        /* the same machine: the fingerprint leaves out the machine's name */
        CHECK(strcmp(m.name, "k80-template") == 0);
        CHECK(strcmp(m.fingerprint, k80.fingerprint) == 0);
        CHECK(m.ndev == k80.ndev && m.nlink == k80.nlink);
    }
    pml_machine_free(&m);
    pml_machine_free(&k80);
    if (load(FIX "good_template_cpu.dot", &m)) {
        CHECK(m.ncompute == 32);
        CHECK(count_kind(&m, PML_DEV_HUB) == 4 * 3 + 1); /* 2 packages and a NIC per node */
        int c = dev_id(&m, "node2/core5");
        CHECK(c >= 0 && m.dev[c].flops == 50e9 && m.dev[c].node == 2);
        CHECK_NEAR(m.dev[c].mem_bw, 80e9 / 4, 1e-12);
        CHECK_NEAR(m.dev[c].mem_bytes, 128e9 / 8, 1e-12);
        char buf[512];
        route_str(&m, comp_id(&m, "node0/core0"), comp_id(&m, "node0/core7"), buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "node0/pkg0/mem node0/pkg1/mem node0/core7") == 0, "%s", buf);
        route_str(&m, comp_id(&m, "node0/core0"), comp_id(&m, "node3/core7"), buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "node0/pkg0/mem node0/nic network node3/nic node3/pkg1/mem "
                              "node3/core7") == 0,
                  "%s", buf);
        int a = comp_id(&m, "node0/core0"), b = comp_id(&m, "node3/core7");
        CHECK(m.route_bw[a * m.ncompute + b] == 25e9 / 8);
        CHECK_NEAR(m.route_lat[a * m.ncompute + b], 0.1e-6 + 2.5e-6 + 20e-6 + 2.5e-6 + 0.1e-6,
                   1e-12);
    }
    pml_machine_free(&m);
    /* topology from an XML file beside the cluster file; GPUs joined by NVLink; a NIC joins them */
    if (load(FIX "good_template_mixed.dot", &m)) {
        CHECK(strcmp(m.name, "good_template_mixed") == 0);
        CHECK(m.ncompute == 10 && count_kind(&m, PML_DEV_GPU) == 2);
        int g0 = comp_id(&m, "gpu0"), g1 = comp_id(&m, "gpu1"), c = comp_id(&m, "core0");
        CHECK(m.route_bw[g0 * m.ncompute + g1] == 150e9);
        char buf[256];
        route_str(&m, c, g1, buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "pkg0/mem nic gpu1") == 0, "%s", buf);
        CHECK(m.dev[m.compute[g0]].mem_bytes == 32.0 * (1u << 30));
    }
    pml_machine_free(&m);
    /* `node` is a DOT keyword: quoted, it is topology's synonym */
    const char *t1 = "digraph t { graph [\"node\"=\"synthetic:pack:1 core:2 pu:1\"]; }";
    CHECK_OK(pml_machine_parse_dot(t1, strlen(t1), "t1.dot", &m));
    CHECK(m.ncompute == 2 && strcmp(m.name, "t") == 0);
    pml_machine_free(&m);
    const char *t2 = "digraph { graph [\"node\"=\"synthetic:pack:1 core:2\", "
                     "topology=\"synthetic:pack:1 core:2\"]; }";
    CHECK(pml_machine_parse_dot(t2, strlen(t2), "t2.dot", &m) == PML_EFORMAT);
    CHECK(strstr(pml_errmsg(), "t2.dot: give topology or \"node\", not both"));
}

/* Quantities as the reader takes them: one GPU with flops, mem_bw and mem, linked to a hub. */
static pml_status parse_one(const char *flops, const char *bw, const char *mem, const char *lat,
                            pml_machine *m)
{
    char text[600];
    snprintf(text, sizeof text,
             "digraph u { g [kind=gpu, flops=\"%s\", mem_bw=\"%s\", mem=\"%s\"]; h [kind=hub]; "
             "g -> h [bw=\"%s\", latency=\"%s\"]; }",
             flops, bw, mem, bw, lat);
    return pml_machine_parse_dot(text, strlen(text), "units.dot", m);
}

static void t_units(void)
{
    static const struct {
        const char *flops, *bw, *mem, *lat;
        double f, b, s, t;
    } good[] = {
        {"9.3T", "56Gb", "16G", "5us", 9.3e12, 7e9, 16e9, 5e-6},
        {"9.3 TFLOPS", "100 Gb/s", "16 GB", "2.5 us", 9.3e12, 12.5e9, 16e9, 2.5e-6},
        {"4.4e12", "12 GB/s", "16GiB", "0.2us", 4.4e12, 12e9, 17179869184.0, 0.2e-6},
        {"80 GFLOP/s", "100Gbps", "12 GiB", "1ms", 80e9, 12.5e9, 12884901888.0, 1e-3},
        {"80gflops", "1.5e3 MB/s", "1e9", "100ns", 80e9, 1.5e9, 1e9, 1e-7},
        {"1000000", "7G", "0", "0", 1e6, 7e9, 0, 0},
        {".5P", "16 GiB/s", "1.5 TB", "3e-6", 0.5e15, 17179869184.0, 1.5e12, 3e-6},
        {"2K", "1 KiB/s", "1Ki", "1 s", 2e3, 1024, 1024, 1},
        {"3M", "8 b/s", "2 MiB", "7\xc2\xb5s", 3e6, 1, 2097152, 7e-6},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pml_machine m;
        pml_status st = parse_one(good[i].flops, good[i].bw, good[i].mem, good[i].lat, &m);
        CHECK_MSG(st == PML_OK, "case %zu: %s", i, pml_errmsg());
        if (st != PML_OK) continue;
        CHECK_MSG(m.dev[0].flops == good[i].f, "case %zu: flops %.17g", i, m.dev[0].flops);
        CHECK_MSG(m.dev[0].mem_bw == good[i].b, "case %zu: bw %.17g", i, m.dev[0].mem_bw);
        CHECK_MSG(m.link[0].bw == good[i].b, "case %zu", i);
        CHECK_MSG(m.dev[0].mem_bytes == good[i].s, "case %zu: mem %.17g", i, m.dev[0].mem_bytes);
        CHECK_MSG(m.link[0].latency == good[i].t, "case %zu: lat %.17g", i, m.link[0].latency);
        pml_machine_free(&m);
    }
    /* refused, and the message names the file, the device or link and the attribute */
    static const struct {
        const char *flops, *bw, *mem, *lat, *attr;
    } bad[] = {
        {"9.3X", "1G", "1G", "1us", "flops"},    {"9.3 T FLOPS", "1G", "1G", "1us", "flops"},
        {"1Ti", "1G", "1G", "1us", "flops"},     {"0", "1G", "1G", "1us", "flops"},
        {"-1T", "1G", "1G", "1us", "flops"},     {"inf", "1G", "1G", "1us", "flops"},
        {"1T", "12 GBs", "1G", "1us", "mem_bw"}, {"1T", "0x10", "1G", "1us", "mem_bw"},
        {"1T", "1G", "1G", "1 min", "latency"},  {"1T", "1G", "1G", "-1us", "latency"},
        {"1T", "1G", "1 Gb", "1us", "mem"},      {"1T", "1G", "-5", "1us", "mem"},
        {"1T", "1e", "1G", "1us", "mem_bw"},     {"1T", "1.2.3G", "1G", "1us", "mem_bw"},
        {"1T", "1G ", "1G", "1us", "mem_bw"},    {"1T", " 1G", "1G", "1us", "mem_bw"},
        {"1T", "nan", "1G", "1us", "mem_bw"},    {"1T", "1e999", "1G", "1us", "mem_bw"},
        {"1T", "1G", "1G", "1e5", "latency"},    {"1T", "1G", "1G", "us", "latency"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pml_machine m;
        pml_status st = parse_one(bad[i].flops, bad[i].bw, bad[i].mem, bad[i].lat, &m);
        CHECK_MSG(st == PML_EFORMAT, "case %zu: status %d", i, (int)st);
        char want[32];
        snprintf(want, sizeof want, "%s='", bad[i].attr);
        CHECK_MSG(strstr(pml_errmsg(), "units.dot") && strstr(pml_errmsg(), want) &&
                      (strstr(pml_errmsg(), "device 'g'") || strstr(pml_errmsg(), "link 'g'")),
                  "case %zu: %s", i, pml_errmsg());
        CHECK(m.ndev == 0 && m.dev == NULL);
    }
}

/* ---------------------------------------------------------------- round trips, fingerprints */

static void round_trip(const char *spec)
{
    pml_machine a, b;
    if (!load(spec, &a)) return;
    char *text;
    size_t len;
    CHECK_OK(pml_machine_format_dot(&a, &text, &len));
    pml_status st = pml_machine_parse_dot(text, len, "written.dot", &b);
    CHECK_MSG(st == PML_OK, "%s: %s", spec, pml_errmsg());
    if (st == PML_OK) {
        CHECK_MSG(strcmp(a.fingerprint, b.fingerprint) == 0, "%s", spec);
        CHECK(strcmp(a.name, b.name) == 0);
        CHECK(a.ndev == b.ndev && a.nlink == b.nlink && a.ncompute == b.ncompute);
        for (int i = 0; i < a.ndev && i < b.ndev; i++) {
            const pml_device *x = &a.dev[i], *y = &b.dev[i];
            CHECK(strcmp(x->name, y->name) == 0 && x->kind == y->kind && x->node == y->node);
            CHECK(x->flops == y->flops && x->mem_bw == y->mem_bw && x->mem_bytes == y->mem_bytes);
            CHECK(x->kind != PML_DEV_CPU || x->cores == y->cores);
            CHECK(x->ps == y->ps);
        }
        for (int l = 0; l < a.nlink && l < b.nlink; l++)
            CHECK(memcmp(&a.link[l], &b.link[l], sizeof a.link[l]) == 0);
        if (a.ncompute == b.ncompute) {
            size_t n = (size_t)a.ncompute * a.ncompute;
            CHECK(memcmp(a.route_len, b.route_len, n * sizeof *a.route_len) == 0);
            CHECK(memcmp(a.route_bw, b.route_bw, n * sizeof *a.route_bw) == 0);
        }
        /* and once more: the text is a fixed point */
        char *text2;
        size_t len2;
        CHECK_OK(pml_machine_format_dot(&b, &text2, &len2));
        CHECK(len2 == len && memcmp(text, text2, len) == 0);
        free(text2);
    }
    free(text);
    pml_machine_free(&a);
    pml_machine_free(&b);
}

static void t_round_trip(void)
{
    const char *specs[] = {"flexflow-p100",
                           "flexflow-k80",
                           "cpu-1socket",
                           "cpu-2socket",
                           "synthetic:pack:2 core:3 pu:2",
                           FIX "server_2socket.xml",
                           FIX "good_explicit.dot",
                           FIX "good_template_cpu.dot",
                           FIX "good_template_mixed.dot",
                           "reference-cluster"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) round_trip(specs[i]);
    /* through a file, written atomically */
    char dir[] = "/tmp/pml-test-rt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/k80.dot", dir);
    pml_machine a, b;
    if (load("flexflow-k80", &a)) {
        CHECK_OK(pml_machine_write_dot(&a, path));
        if (load(path, &b)) CHECK(strcmp(a.fingerprint, b.fingerprint) == 0);
        pml_machine_free(&b);
        /* an unwritable target leaves nothing */
        char bad[160];
        snprintf(bad, sizeof bad, "%s/no/such/dir/k80.dot", dir);
        CHECK(pml_machine_write_dot(&a, bad) == PML_EIO);
        CHECK(strstr(pml_errmsg(), bad) != NULL);
    }
    pml_machine_free(&a);
    unlink(path);
    rmdir(dir);
}

/* cores_of: kept through a round trip, in the fingerprint, and checked */
static void t_cores_of(void)
{
    static const char tmpl[] =
        "digraph r { graph [kind=machine, %snodes=2, topology=\"synthetic:pack:1 core:1 pu:1\", "
        "network_bw=\"4G\", network_latency=\"1us\"]; }";
    char text[512];
    pml_machine a, b, c;
    snprintf(text, sizeof text, tmpl, "cores_of=\"0123456789abcdef\", ");
    CHECK_OK(pml_machine_parse_dot(text, strlen(text), "r.dot", &a));
    snprintf(text, sizeof text, tmpl, "");
    CHECK_OK(pml_machine_parse_dot(text, strlen(text), "r.dot", &b));
    CHECK(strcmp(a.cores_of, "0123456789abcdef") == 0 && b.cores_of[0] == 0);
    CHECK(strcmp(a.fingerprint, b.fingerprint) != 0); /* it changes what is measured */
    char *out = NULL;
    size_t len = 0;
    CHECK_OK(pml_machine_format_dot(&a, &out, &len));
    CHECK(out && strstr(out, "cores_of=\"0123456789abcdef\""));
    if (out && pml_machine_parse_dot(out, len, "back.dot", &c) == PML_OK) {
        CHECK(strcmp(c.cores_of, a.cores_of) == 0 && strcmp(c.fingerprint, a.fingerprint) == 0);
        pml_machine_free(&c);
    } else {
        CHECK_MSG(false, "written machine not read back: %s", pml_errmsg());
    }
    free(out);
    pml_machine_free(&a);
    pml_machine_free(&b);
    /* this machine's fingerprint as loading it gives it, found without measuring */
    pml_machine here;
    if (pml_machine_load(NULL, &here) == PML_OK) {
        CHECK_MSG(strcmp(pml_machine_this_fingerprint(), here.fingerprint) == 0, "%s vs %s",
                  pml_machine_this_fingerprint(), here.fingerprint);
        pml_machine_free(&here);
    }
    const char *bad[] = {"\"0123\"", "\"0123456789ABCDEF\"", "\"0123456789abcdefa\"",
                         "\"0123456789abcdeg\"", "x0123456789abcdef"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char attr[64];
        snprintf(attr, sizeof attr, "cores_of=%s, ", bad[i]);
        snprintf(text, sizeof text, tmpl, attr);
        CHECK(pml_machine_parse_dot(text, strlen(text), "r.dot", &a) == PML_EFORMAT);
        CHECK_MSG(strstr(pml_errmsg(), "r.dot: graph attribute cores_of=") &&
                      strstr(pml_errmsg(), "16 hex digits"),
                  "%s", pml_errmsg());
    }
}

static void t_fingerprint(void)
{
    pml_machine m;
    if (!load("flexflow-p100", &m)) return;
    char fp[17];
    memcpy(fp, m.fingerprint, sizeof fp);
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) == 0); /* deterministic */
    m.link[5].bw *= 2;
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) != 0);
    m.link[5].bw /= 2;
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) == 0);
    double lat = m.link[5].latency;
    m.link[5].latency += 1e-6;
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) != 0);
    m.link[5].latency = lat;
    m.dev[3].flops = 10e12;
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) != 0);
    m.dev[3].flops = 9.3e12;
    snprintf(m.name, sizeof m.name, "renamed");
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) == 0); /* the name is not hardware */
    snprintf(m.dev[3].name, sizeof m.dev[3].name, "gpu-x");
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(strcmp(fp, m.fingerprint) != 0); /* plans name devices */
    pml_machine_free(&m);
    pml_machine a, b;
    if (load("cpu-1socket", &a) && load("cpu-2socket", &b))
        CHECK(strcmp(a.fingerprint, b.fingerprint) != 0);
    pml_machine_free(&a);
    pml_machine_free(&b);
}

/* ---------------------------------------------------------------- hand-built machines */

static void hand_init(pml_machine *m, int ndev, int nlink)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "hand");
    m->ndev = ndev;
    m->nlink = nlink;
    m->dev = calloc((size_t)ndev, sizeof *m->dev);
    m->link = calloc((size_t)(nlink ? nlink : 1), sizeof *m->link);
    for (int i = 0; i < ndev; i++) {
        snprintf(m->dev[i].name, sizeof m->dev[i].name, "d%d", i);
        m->dev[i].kind = PML_DEV_GPU;
        m->dev[i].flops = 1e12;
        m->dev[i].mem_bw = 1e11;
    }
}

static void hand_link(pml_machine *m, int l, int a, int b, double bw, double lat)
{
    m->link[l] = (pml_link){a, b, bw, lat};
}

/* Route choice: fewest hops first, then the widest, then the lowest latency. */
static void t_route_choice(void)
{
    pml_machine m;
    char buf[256];
    /* d0 -> d3: directly at 1 GB/s, or through hub d1 (10 GB/s) or hub d2 (20 GB/s, slower) */
    hand_init(&m, 4, 5);
    m.dev[1].kind = m.dev[2].kind = PML_DEV_HUB;
    hand_link(&m, 0, 0, 1, 10e9, 1e-6);
    hand_link(&m, 1, 1, 3, 10e9, 1e-6);
    hand_link(&m, 2, 0, 2, 20e9, 5e-6);
    hand_link(&m, 3, 2, 3, 20e9, 5e-6);
    hand_link(&m, 4, 3, 0, 1e9, 9e-6);
    CHECK_OK(pml_machine_finalize(&m));
    route_str(&m, 0, 1, buf, sizeof buf); /* compute indices: d0 = 0, d3 = 1 */
    CHECK_MSG(strcmp(buf, "d3") == 0, "fewest hops: %s", buf);
    CHECK(m.route_bw[1] == 1e9);
    int l;
    const int *r = pml_machine_route(&m, 1, 0, &l);
    CHECK(l == 1 && r[0] == 2 * 4 + 0); /* link 4 is d3 -> d0: its a -> b direction */
    m.nlink = 4;                        /* without the direct link: the widest of two hops */
    CHECK_OK(pml_machine_finalize(&m));
    route_str(&m, 0, 1, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "d2 d3") == 0, "widest: %s", buf);
    CHECK(m.route_bw[1] == 20e9);
    CHECK_NEAR(m.route_lat[1], 10e-6, 1e-12);
    m.link[2].bw = m.link[3].bw = 10e9; /* equal widths: the lowest latency */
    CHECK_OK(pml_machine_finalize(&m));
    route_str(&m, 0, 1, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "d1 d3") == 0, "lowest latency: %s", buf);
    CHECK_NEAR(m.route_lat[1], 2e-6, 1e-12);
    pml_machine_free(&m);

    /* The lowest latency among the widest routes is not built from the best routes to the hops
     * before: to hub d3 the widest is d0-d1-d3 (20 GB/s, slow), but the last link (5 GB/s) makes
     * the width 5 GB/s, where d0-d2-d3 (8 GB/s, fast) wins on latency. */
    hand_init(&m, 5, 5);
    m.dev[1].kind = m.dev[2].kind = m.dev[3].kind = PML_DEV_HUB;
    hand_link(&m, 0, 0, 1, 20e9, 10e-6);
    hand_link(&m, 1, 1, 3, 20e9, 10e-6);
    hand_link(&m, 2, 0, 2, 8e9, 1e-6);
    hand_link(&m, 3, 2, 3, 8e9, 1e-6);
    hand_link(&m, 4, 3, 4, 5e9, 1e-6);
    CHECK_OK(pml_machine_finalize(&m));
    route_str(&m, 0, 1, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "d2 d3 d4") == 0, "%s", buf);
    CHECK(m.route_bw[1] == 5e9);
    CHECK_NEAR(m.route_lat[1], 3e-6, 1e-12);
    pml_machine_free(&m);
}

static void expect_finalize_error(pml_machine *m, const char *what, const char *want)
{
    pml_status st = pml_machine_finalize(m);
    CHECK_MSG(st == PML_EFORMAT, "%s: status %d", what, (int)st);
    CHECK_MSG(strstr(pml_errmsg(), "machine 'hand'") && strstr(pml_errmsg(), want), "%s: %s", what,
              pml_errmsg());
    CHECK(m->compute == NULL && m->route_len == NULL && m->ncompute == 0);
    pml_machine_free(m);
}

static void t_validation(void)
{
    pml_machine m;
    hand_init(&m, 3, 2);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    hand_link(&m, 1, 1, 2, 1e9, 0);
    snprintf(m.dev[2].name, sizeof m.dev[2].name, "d0");
    expect_finalize_error(&m, "duplicate", "two devices are called 'd0'");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 5, 1e9, 0);
    expect_finalize_error(&m, "missing device", "link 0 joins device 0 and 5");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, 0, 0);
    expect_finalize_error(&m, "zero bandwidth", "link 'd0' -- 'd1': bandwidth 0");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, -1e9, 0);
    expect_finalize_error(&m, "negative bandwidth", "bandwidth -1e+09");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, NAN, 0);
    expect_finalize_error(&m, "NaN bandwidth", "bandwidth nan");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, INFINITY, 0);
    expect_finalize_error(&m, "infinite bandwidth", "finite");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, 1e9, -1e-6);
    expect_finalize_error(&m, "negative latency", "latency");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    m.dev[1].flops = 0;
    expect_finalize_error(&m, "zero flops", "device 'd1' (gpu): flops=0");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    m.dev[0].kind = m.dev[1].kind = PML_DEV_HUB;
    expect_finalize_error(&m, "no compute", "no compute device");
    hand_init(&m, 3, 1);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    expect_finalize_error(&m, "disconnected", "'d0' and 'd2' are not connected");
    hand_init(&m, 2, 2);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    hand_link(&m, 1, 1, 0, 1e9, 0);
    expect_finalize_error(&m, "linked twice", "linked twice");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 1, 1, 1e9, 0);
    expect_finalize_error(&m, "self link", "joins a device to itself");
    hand_init(&m, 2, 1);
    hand_link(&m, 0, 0, 1, 1e9, 0);
    m.dev[0].kind = PML_DEV_CPU; /* cores 0 */
    expect_finalize_error(&m, "cpu without cores", "cores=0");
    /* one device needs no link */
    hand_init(&m, 1, 0);
    CHECK_OK(pml_machine_finalize(&m));
    CHECK(m.ncompute == 1 && m.route_len[0] == 0 && m.route_bw[0] == INFINITY);
    pml_machine_free(&m);
}

/* ---------------------------------------------------------------- bad files */

static void t_bad_files(void)
{
    static const struct {
        const char *file;
        pml_status st;
        const char *want1, *want2;
    } cases[] = {
        {"bad_not_dot.dot", PML_EFORMAT, "syntax error", NULL},
        {"bad_binary.dot", PML_EFORMAT, "not a DOT file", "binary"},
        {"bad_malformed.dot", PML_EFORMAT, "syntax error", NULL},
        {"bad_unterminated.dot", PML_EFORMAT, "", NULL},
        {"bad_empty.dot", PML_EFORMAT, "no graph", NULL},
        {"bad_no_devices.dot", PML_EFORMAT, "describes no machine", NULL},
        {"bad_kind_model.dot", PML_EFORMAT, "kind=model", "not a machine file"},
        {"bad_undirected.dot", PML_EFORMAT, "undirected", NULL},
        {"bad_unknown_kind.dot", PML_EFORMAT, "device 't0'", "unknown kind 'tpu'"},
        {"bad_no_kind.dot", PML_EFORMAT, "device 'lonely' has no kind", NULL},
        {"bad_zero_bw.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "bw='0'"},
        {"bad_negative_bw.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "bw='-12G'"},
        {"bad_nan_bw.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "bw='nan'"},
        {"bad_inf_bw.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "bw='1e999'"},
        {"bad_unit.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "bw='12 furlongs'"},
        {"bad_negative_latency.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "latency='-1us'"},
        {"bad_missing_bw.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "missing attribute bw"},
        {"bad_missing_flops.dot", PML_EFORMAT, "device 'g1' (gpu)", "missing attribute flops"},
        {"bad_missing_mem_bw.dot", PML_EFORMAT, "device 'g0' (gpu)", "missing attribute mem_bw"},
        {"bad_bad_flops.dot", PML_EFORMAT, "device 'g0' (gpu)", "flops='fast'"},
        {"bad_hub_flops.dot", PML_EFORMAT, "device 'h' (hub)", "'flops' does not apply"},
        {"bad_unknown_attr.dot", PML_EFORMAT, "link 'g0' -> 'g1'", "unknown attribute 'colour'"},
        {"bad_unknown_device_attr.dot", PML_EFORMAT, "device 'g0'", "unknown attribute 'speed'"},
        {"bad_unknown_graph_attr.dot", PML_EFORMAT, "unknown graph attribute 'gpus'",
         "gpus_per_node"},
        {"bad_link_missing_device.dot", PML_EFORMAT, "link 'g1' -> 'g2'",
         "device 'g2' is not declared"},
        {"bad_disconnected.dot", PML_EFORMAT, "'g0' and 'g2' are not connected", NULL},
        {"bad_self_link.dot", PML_EFORMAT, "link 'g1' -> 'g1'", "to itself"},
        {"bad_double_link.dot", PML_EFORMAT, "'g0' and 'g1' are linked twice", NULL},
        {"bad_only_hubs.dot", PML_EFORMAT, "no compute device", NULL},
        {"bad_long_name.dot", PML_EFORMAT, "longer than 63", NULL},
        {"bad_bad_node_id.dot", PML_EFORMAT, "device 'g0' (gpu)", "node_id='-7'"},
        {"bad_mixed_forms.dot", PML_EFORMAT, "devices and template", NULL},
        {"bad_template_no_flops.dot", PML_EFORMAT, "missing graph attribute gpu_flops", NULL},
        {"bad_template_network.dot", PML_EFORMAT, "network_bw='fast'", NULL},
        {"bad_template_no_network.dot", PML_EFORMAT, "missing graph attribute network_bw", NULL},
        {"bad_template_intra.dot", PML_EFORMAT, "intra='infiniband'", "pcie or nvlink"},
        {"bad_template_too_big.dot", PML_EFORMAT, "nodes=1000 x gpus_per_node=64", NULL},
        {"bad_template_topology.dot", PML_EFORMAT, "topology='synthetic:pack:2 bogus:8'",
         "not a valid hwloc synthetic"},
        {"bad_template_topology_file.dot", PML_EIO, "no_such_file.xml", "No such file"},
        {"bad_template_nothing.dot", PML_EFORMAT, "no compute device", "gpus_per_node"},
        {"bad_not_xml.xml", PML_EFORMAT, "not a hwloc XML topology", NULL},
        {"bad_malformed.xml", PML_EFORMAT, "malformed hwloc XML", NULL},
        {"no_such_file.dot", PML_EIO, "No such file", NULL},
        {"no_such_file.xml", PML_EIO, "No such file", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", cases[i].file);
        pml_machine m;
        memset(&m, 0x5a, sizeof m); /* load must clear it */
        pml_status st = pml_machine_load(path, &m);
        const char *msg = pml_errmsg();
        CHECK_MSG(st == cases[i].st, "%s: status %d (%s), expected %d", cases[i].file, (int)st, msg,
                  (int)cases[i].st);
        CHECK_MSG(strstr(msg, path) != NULL, "%s: the message does not name the file: %s",
                  cases[i].file, msg);
        CHECK_MSG(strstr(msg, cases[i].want1) != NULL, "%s: '%s' not in: %s", cases[i].file,
                  cases[i].want1, msg);
        CHECK_MSG(!cases[i].want2 || strstr(msg, cases[i].want2) != NULL, "%s: '%s' not in: %s",
                  cases[i].file, cases[i].want2, msg);
        CHECK_MSG(!strchr(msg, '\n'), "%s: the message has a newline: %s", cases[i].file, msg);
        CHECK(m.ndev == 0 && m.dev == NULL && m.link == NULL && m.compute == NULL);
        pml_machine_free(&m);
    }
}

/* ---------------------------------------------------------------- drawing */

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void draw(const char *spec, int clusters, const char *const *want)
{
    pml_machine m;
    if (!load(spec, &m)) return;
    pml_viz *v = NULL;
    CHECK_OK(pml_viz_machine(&m, &v));
    char *svg = NULL;
    size_t len;
    if (v) CHECK_OK(pml_viz_render(v, PML_VIZ_SVG, &svg, &len));
    if (svg) {
        CHECK_MSG(count(svg, "class=\"cluster\"") == clusters, "%s: %d clusters", spec,
                  count(svg, "class=\"cluster\""));
        CHECK(count(svg, "class=\"node\"") == m.ndev);
        CHECK(count(svg, "class=\"edge\"") == m.nlink);
        for (int i = 0; i < m.ndev; i++) {
            char t[96];
            snprintf(t, sizeof t, ">%s<", m.dev[i].name);
            CHECK_MSG(strstr(svg, t), "%s: %s not drawn", spec, m.dev[i].name);
        }
        for (int k = 0; want[k]; k++) CHECK_MSG(strstr(svg, want[k]), "%s: no '%s'", spec, want[k]);
    }
    free(svg);
    pml_viz_free(v);
    pml_machine_free(&m);
}

static void t_viz(void)
{
    draw("flexflow-k80", 16,
         (const char *const[]){"7 GB/s", "12 GB/s", "4.4 TFLOP/s, 240 GB/s", "node 15", "#d9ead3",
                               NULL});
    draw("flexflow-p100", 4, (const char *const[]){"20 GB/s", "2 us", "node 3", NULL});
    draw("cpu-2socket", 2, (const char *const[]){"40 GB/s", "#cfe2f3", "#eeeeee", NULL});
    draw(FIX "good_explicit.dot", 2, (const char *const[]){"80 GFLOP/s", "node 1", NULL});
    pml_machine m;
    memset(&m, 0, sizeof m);
    pml_viz *v;
    CHECK(pml_viz_machine(&m, &v) == PML_EINVAL && v == NULL);
}

/* ---------------------------------------------------------------- fuzzing */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static char *read_text(const char *path, size_t *len)
{
    char *t;
    if (pml_read_file(path, 1 << 20, &t, len) != PML_OK) return NULL;
    return t;
}

/* Applies one to four random edits: byte changes, deletions, insertions of DOT and unit tokens,
 * line duplications and removals. */
static size_t mutate(uint64_t *s, const char *in, size_t len, char *out, size_t cap)
{
    static const char *const tokens[] = {
        "\"",
        "->",
        "{",
        "}",
        ";",
        "[",
        "]",
        "=",
        ",",
        "0",
        "-1",
        "nan",
        "1e999",
        "kind=gpu",
        "kind=hub",
        "kind=cpu",
        "bw=",
        "12G",
        "Gb/s",
        "us",
        "flops=",
        "mem_bw=",
        "node_id=",
        "nodes=1024",
        "gpus_per_node=",
        "intra=nvlink",
        "topology=\"synthetic:pack:64 core:64\"",
        "digraph",
        "graph",
        "node",
        "edge",
        " ",
        "\n",
        "\\",
        "//",
        "/*",
        "<",
        ">",
        "\xc3\xa9",
        "\xff",
        "x",
        "subgraph cluster_a {",
        "strict",
    };
    const size_t ntok = sizeof tokens / sizeof tokens[0];
    memcpy(out, in, len);
    size_t n = len;
    int edits = 1 + (int)(rng_next(s) % 4);
    for (int e = 0; e < edits; e++) {
        size_t pos = n ? (size_t)(rng_next(s) % n) : 0;
        switch (rng_next(s) % 6) {
        case 0: /* change a byte */
            if (n) out[pos] = (char)(rng_next(s) % 256);
            break;
        case 1: { /* delete a run */
            size_t k = 1 + (size_t)(rng_next(s) % 8);
            if (pos + k > n) k = n - pos;
            memmove(out + pos, out + pos + k, n - pos - k);
            n -= k;
            break;
        }
        case 2:
        case 3: { /* insert a token */
            const char *t = tokens[rng_next(s) % ntok];
            size_t k = strlen(t);
            if (n + k >= cap) break;
            memmove(out + pos + k, out + pos, n - pos);
            memcpy(out + pos, t, k);
            n += k;
            break;
        }
        case 4: { /* duplicate a line */
            size_t a = pos;
            while (a > 0 && out[a - 1] != '\n') a--;
            size_t b = pos;
            while (b < n && out[b] != '\n') b++;
            if (b < n) b++;
            if (n + (b - a) >= cap) break;
            memmove(out + b + (b - a), out + b, n - b);
            memcpy(out + b, out + a, b - a);
            n += b - a;
            break;
        }
        case 5: { /* remove a line */
            size_t a = pos;
            while (a > 0 && out[a - 1] != '\n') a--;
            size_t b = pos;
            while (b < n && out[b] != '\n') b++;
            memmove(out + a, out + b, n - b);
            n -= b - a;
            break;
        }
        }
    }
    return n;
}

static void t_fuzz(void)
{
    const char *seeds[] = {FIX "good_explicit.dot", FIX "good_template_k80.dot",
                           FIX "good_template_cpu.dot", FIX "bad_double_link.dot"};
    const char *env = getenv("PML_FUZZ_ITERS");
    long iters = env ? atol(env) : 3000;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    if ((env = getenv("PML_FUZZ_SEED"))) s ^= strtoull(env, NULL, 0) * 0x2545f4914f6cdd1dull;
    if (!s) s = 1;
    char *text[4];
    size_t len[4];
    for (int k = 0; k < 4; k++) {
        text[k] = read_text(seeds[k], &len[k]);
        CHECK(text[k] != NULL);
        if (!text[k]) return;
    }
    static char buf[1 << 16];
    long ok = 0, failed = 0;
    for (long it = 0; it < iters; it++) {
        int k = (int)(it % 4);
        size_t n = mutate(&s, text[k], len[k], buf, sizeof buf);
        pml_machine m;
        pml_status st = pml_machine_parse_dot(buf, n, "fuzz.dot", &m);
        if (st == PML_OK) {
            ok++;
            /* a machine that loads is whole: compute devices, routes, and it writes and reads
             * back with the same fingerprint */
            CHECK(m.ncompute > 0 && m.compute && m.route_len && strlen(m.fingerprint) == 16);
            char *out;
            size_t olen;
            pml_machine b;
            if (pml_machine_format_dot(&m, &out, &olen) == PML_OK) {
                pml_status st2 = pml_machine_parse_dot(out, olen, "fuzz-rt.dot", &b);
                CHECK_MSG(st2 == PML_OK, "iteration %ld: %s", it, pml_errmsg());
                if (st2 == PML_OK) CHECK(strcmp(m.fingerprint, b.fingerprint) == 0);
                pml_machine_free(&b);
                free(out);
            }
        } else {
            failed++;
            const char *msg = pml_errmsg();
            CHECK_MSG(msg[0] && !strchr(msg, '\n'), "iteration %ld: '%s'", it, msg);
            CHECK(m.ndev == 0 && m.dev == NULL);
        }
        pml_machine_free(&m);
    }
    CHECK(ok > 0 && failed > 0);
    printf("  fuzz: %ld inputs, %ld loaded, %ld refused\n", iters, ok, failed);
    for (int k = 0; k < 4; k++) free(text[k]);
}

static const pml_test tests[] = {
    {"names", t_names},
    {"p100", t_p100},
    {"k80", t_k80},
    {"cpu_servers", t_cpu_servers},
    {"synthetic", t_synthetic},
    {"xml", t_xml},
    {"this_machine", t_this_machine},
    {"calib_quiet", t_calib_quiet},
    {"calib_contradiction", t_calib_contradiction},
    {"calib_real_probe", t_calib_real_probe},
    {"calib_lock", t_calib_lock},
    {"calib_lock_bounded", t_calib_lock_bounded},
    {"explicit", t_explicit},
    {"reference_cluster", t_reference_cluster},
    {"parameter_servers", t_parameter_servers},
    {"templates", t_templates},
    {"units", t_units},
    {"round_trip", t_round_trip},
    {"fingerprint", t_fingerprint},
    {"cores_of", t_cores_of},
    {"route_choice", t_route_choice},
    {"validation", t_validation},
    {"bad_files", t_bad_files},
    {"viz", t_viz},
    {"fuzz", t_fuzz},
    {0},
};

PML_TEST_MAIN(tests)
