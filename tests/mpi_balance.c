/* Run under mpirun by test_cli.sh: data-parallel ranks re-split each batch by their measured
 * speeds, here on a clock of the test's own (pml_train_cb.pass_seconds), so what the balancing
 * decides is known. Usage: mpi_balance MODE, MODE one of
 *   slow   rank 1 takes 1.5 times as long a sample: the split goes to 19, 13 of 32 and stays;
 *   fixed  rank 1's pass takes 20 ms whatever its samples: a split by the measured speeds is
 *          tried, its slowest pass is no shorter, and the equal split comes back;
 *   drift  as fixed, on a machine that gets faster step by step (by half over 50 steps): a
 *          trial's steps are faster than the window's before it, yet the split tried is
 *          still no better than the equal one beside it, and the equal split stays;
 *   equal  the measured clock, with equal shares kept (the reference losses).
 * Rank 0 prints one line: the shares at the end, the splits tried, kept and reported, and the
 * epochs' losses. Exit status 0 when training ran. */
#include "models/models.h"
#include "runtime/runtime.h"

#include <stdio.h>
#include <string.h>

static const char *mode;
static int reported;
static long passes; /* this rank's passes so far: one a step */

static double fake_pass(void *ud, int rank, int n, double measured)
{
    (void)ud;
    (void)measured;
    const double speed = strcmp(mode, "drift") == 0 ? 1 + 0.02 * (double)passes : 1;
    passes++;
    if (strcmp(mode, "slow") == 0) return n * (rank == 1 ? 1.5e-3 : 1e-3);
    return (rank == 1 ? 0.02 : n * 1e-3) / speed; /* fixed, drift */
}

static void on_shares(void *ud, long step, const int *share, int ranks)
{
    (void)ud;
    (void)step;
    (void)share;
    (void)ranks;
    reported++;
}

int main(int argc, char **argv)
{
    pml_dist *dist = NULL;
    if (pml_dist_init(&argc, &argv, &dist) != PML_OK || argc != 2) {
        fprintf(stderr, "mpi_balance: %s\n", argc != 2 ? "usage: mpi_balance slow|fixed|drift|equal"
                                                       : pml_errmsg());
        return 2;
    }
    mode = argv[1];
    pml_graph g;
    pml_dataset train;
    pml_status st = pml_model_build("mlp:units=24", &g);
    if (st == PML_OK)
        st = pml_data_synthetic(g.nodes[g.input].out, g.classes, 1200, 7, &train);
    if (st != PML_OK) {
        fprintf(stderr, "mpi_balance: %s\n", pml_errmsg());
        return 1;
    }
    pml_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 3;
    o.batch = 32;
    o.threads = 1;
    o.seed = 1;
    o.dist = dist;
    pml_optim_defaults(&o.optim, PML_OPTIM_ADAM);
    o.cb.shares = on_shares;
    if (strcmp(mode, "equal") == 0)
        o.equal_shares = true;
    else
        o.cb.pass_seconds = fake_pass;
    pml_train_result r;
    st = pml_train(&g, &train, NULL, &o, &r);
    if (st == PML_OK && pml_dist_rank(dist) == 0) {
        for (int i = 0; i < r.nshares; i++) printf("%s%d", i ? "," : "", r.shares[i]);
        printf(" %d %d %d", r.share_tries, r.share_changes, reported);
        for (int i = 0; i < r.epochs_run; i++) printf(" %.9g", r.epochs[i].loss);
        printf("\n");
    } else if (st != PML_OK) {
        fprintf(stderr, "mpi_balance (rank %d): %s\n", pml_dist_rank(dist), pml_errmsg());
    }
    pml_train_result_free(&r);
    pml_data_free(&train);
    pml_graph_free(&g);
    pml_dist_finalize(dist);
    return st == PML_OK ? 0 : 1;
}
