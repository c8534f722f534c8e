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
