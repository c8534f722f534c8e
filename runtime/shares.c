/* The samples of each batch that data-parallel ranks take, by their measured speeds. */
#include "exec.h"

double pml__shares_balance(const double *rate, int parts, int m, int cap, int *share)
{
    /* Greedy: each sample goes where it ends soonest, (share + 1) / rate least, a rank at cap
     * excepted; this makes the largest share / rate as small as it can be. At least one
     * sample each: a rank without samples has no speed to measure. Ties: the lower rank. */
    for (int r = 0; r < parts; r++) share[r] = 1;
    for (int left = m - parts; left > 0; left--) {
        int best = -1;
        double end = 0;
        for (int r = 0; r < parts; r++) {
            if (share[r] >= cap) continue;
            const double e = (share[r] + 1) / rate[r];
            if (best < 0 || e < end) best = r, end = e;
        }
        if (best < 0) return -1; /* parts * cap < m: checked by the caller */
        share[best]++;
    }
    return pml__shares_time(rate, parts, share);
}

double pml__shares_time(const double *rate, int parts, const int *share)
{
    double t = 0;
    for (int r = 0; r < parts; r++)
        if (share[r] / rate[r] > t) t = share[r] / rate[r];
    return t;
}
