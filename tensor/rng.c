/* tensor/rng.c: the seeded xoshiro256** generator and the tensor fill helpers built on it. */
#include <math.h>

#include "tensor/tensor.h"

/* splitmix64: spreads one seed over the four state words */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna) */
uint64_t tg_rng_next(tg_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tg_rng_uniform(tg_rng *rng)
{
    return (double)(tg_rng_next(rng) >> 11) * 0x1.0p-53;
}

double tg_rng_normal(tg_rng *rng)
{
    double u1 = 1.0 - tg_rng_uniform(rng);   /* (0, 1]: log is finite */
    double u2 = tg_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int64_t tg_rng_below(tg_rng *rng, int64_t n)
{
    if (n <= 0)
        return 0;
    uint64_t un = (uint64_t)n;
    uint64_t limit = UINT64_MAX - UINT64_MAX % un;   /* reject the biased tail */
    uint64_t r;
    do {
        r = tg_rng_next(rng);
    } while (r >= limit);
    return (int64_t)(r % un);
}

void tg_tensor_fill_uniform(tg_tensor *t, tg_rng *rng, double lo, double hi)
{
    if (!t || !rng)
        return;
    for (int64_t i = 0; i < t->numel; i++)
        tg_tensor_set(t, i, lo + (hi - lo) * tg_rng_uniform(rng));
}

void tg_tensor_fill_normal(tg_tensor *t, tg_rng *rng, double mean, double sd)
{
    if (!t || !rng)
        return;
    for (int64_t i = 0; i < t->numel; i++)
        tg_tensor_set(t, i, mean + sd * tg_rng_normal(rng));
}
