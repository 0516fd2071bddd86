#include "dcl/core.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dcl_rng_seed(dcl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dcl_rng_u64(dcl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

uint32_t dcl_rng_u32(dcl_rng *r) { return (uint32_t)(dcl_rng_u64(r) >> 32); }

double dcl_rng_uniform(dcl_rng *r) { return (double)(dcl_rng_u64(r) >> 11) * 0x1.0p-53; }

uint32_t dcl_rng_below(dcl_rng *r, uint32_t n) {
    if (n == 0) return 0;
    uint32_t lim = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint64_t m = (uint64_t)dcl_rng_u32(r) * n;
        if ((uint32_t)m >= lim) return (uint32_t)(m >> 32);
    }
}

double dcl_rng_normal(dcl_rng *r) {
    double u1 = dcl_rng_uniform(r), u2 = dcl_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

dcl_rng dcl_rng_split(dcl_rng *r) {
    dcl_rng o;
    dcl_rng_seed(&o, dcl_rng_u64(r) ^ 0x5851f42d4c957f2dULL);
    return o;
}
