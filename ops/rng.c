/* pml — counter-based random numbers (splitmix64 finaliser over a mixed key). */
#include "ops/ops.h"

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t pml_rand_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t k = mix64(seed + 0x9e3779b97f4a7c15ull);
    k = mix64(k ^ (stream * 0xd1b54a32d192ed03ull + 0x8cb92ba72f3d8dd7ull));
    return mix64(k ^ (counter + 0x9e3779b97f4a7c15ull * 3));
}

float pml_rand_unif(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (float)(pml_rand_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

/* MT19937 (Matsumoto and Nishimura), seeded as NumPy's legacy RandomState seeds an integer
 * (init_genrand), its doubles as NumPy's random_sample makes them (53 bits of two draws). */
void pml_mt_seed(pml_mt19937 *m, uint32_t seed)
{
    m->s[0] = seed;
    for (int i = 1; i < PML_MT_N; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->i = PML_MT_N;
}

static void mt_twist(pml_mt19937 *m)
{
    enum { M = 397 };
    uint32_t *s = m->s;
    for (int k = 0; k < PML_MT_N; k++) {
        uint32_t y = (s[k] & 0x80000000u) | (s[(k + 1) % PML_MT_N] & 0x7fffffffu);
        s[k] = s[(k + M) % PML_MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    m->i = 0;
}

uint32_t pml_mt_u32(pml_mt19937 *m)
{
    if (m->i >= PML_MT_N) mt_twist(m);
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

double pml_mt_double(pml_mt19937 *m)
{
    const uint32_t a = pml_mt_u32(m) >> 5, b = pml_mt_u32(m) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

void pml_mt_skip(pml_mt19937 *m, uint64_t doubles)
{
    for (uint64_t u = 2 * doubles; u > 0;) {
        if (m->i >= PML_MT_N) mt_twist(m);
        const uint64_t left = (uint64_t)(PML_MT_N - m->i), take = u < left ? u : left;
        m->i += (int)take; /* the skipped words need no tempering */
        u -= take;
    }
}
