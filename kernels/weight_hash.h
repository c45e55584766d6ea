/* The deterministic random weights: each element is a pure function of
 * (seed, tensor name, element index in the full unsharded tensor), so every
 * placement and shard sees the same values. Shared by the GPU initialiser and
 * the plain-C reference in the tests, hence host+device inline functions. */
#ifndef PB_WEIGHT_HASH_H
#define PB_WEIGHT_HASH_H
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PB_HD __host__ __device__ __forceinline__
#else
#define PB_HD static inline
#endif

#define PB_INIT_STD 0.02f

/* FNV-1a over the tensor name, mixed with the seed: the key of one tensor. */
PB_HD uint64_t weight_key(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
    return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

/* splitmix64 finaliser: a counter-based generator, one call per element. */
PB_HD uint64_t weight_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Normal(0, std) by Box-Muller from the two 32-bit halves of one hash. */
PB_HD float weight_normal(uint64_t key, uint64_t index, float std)
{
    uint64_t r = weight_mix(key ^ weight_mix(index));
    float u1 = ((float)(uint32_t)(r >> 32) + 1.0f) * 2.3283064365386963e-10f; /* (0, 1] */
    float u2 = (float)(uint32_t)r * 2.3283064365386963e-10f;                  /* [0, 1) */
    return std * sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}
#endif
