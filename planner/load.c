/* pml — planner: how busy other processes keep this machine. A measurement (the machine's
 * calibration, a benchmark's kernels and runs) is about this machine only when nothing else ran
 * meanwhile; this watches the CPU time others use: the busy time of all CPUs (/proc/stat, steal
 * included) minus this process's own, over the wall time between two snapshots.
 *
 * /proc/stat counts in clock ticks (10 ms): over a window of W seconds the estimate is off by up
 * to about 2 ticks / W cores, so a window meant to see a tenth of a core needs W >= 0.2 s. */
#include "planner/planner.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void pml_cpu_snap_take(pml_cpu_snap *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen("/proc/stat", "re");
    if (f) {
        /* user nice system idle iowait irq softirq steal */
        unsigned long long v[8] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8)
            s->busy =
                (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    s->self = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    s->wall = pml_now();
}

double pml_foreign_load(const pml_cpu_snap *a, const pml_cpu_snap *b, int ncpu)
{
    const double wall = b->wall - a->wall;
    if (!(wall > 0) || a->busy == 0 || ncpu < 1) return 0;
    double f = ((b->busy - a->busy) - (b->self - a->self)) / (wall * ncpu);
    /* never more than the machine's cores: a window shorter than a tick can count a whole
     * tick in it */
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const double most = cpus > 0 ? (double)cpus / ncpu : f;
    return f > 0 ? (f < most ? f : most) : 0;
}

double pml_foreign_load_since(const pml_cpu_snap *a)
{
    pml_cpu_snap b;
    pml_cpu_snap_take(&b);
    return pml_foreign_load(a, &b, (int)sysconf(_SC_NPROCESSORS_ONLN));
}

double pml_wait_quiet(double max_s, double quiet, int ncpu)
{
    const double t0 = pml_now();
    double f;
    do {
        pml_cpu_snap a, b;
        pml_cpu_snap_take(&a);
        usleep(500000);
        pml_cpu_snap_take(&b);
        f = pml_foreign_load(&a, &b, ncpu);
    } while (f >= quiet && pml_now() - t0 < max_s);
    return f;
}
