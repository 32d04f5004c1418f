// fastmath.h: a branch-free expf that compilers vectorise inside `omp simd` loops.
// Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6 polynomial for e^r;
// relative error below 2e-7 on [-87, 88]; returns 0 below -87.3 (the float denormal range, where
// an attention weight is zero for every statistic here).
#ifndef SKEL_FASTMATH_H
#define SKEL_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float xc = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float n = __builtin_floorf(xc * log2e + 0.5f);
    float r = xc - n * ln2_hi - n * ln2_lo;
    float p = 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    float y = p * scale;
    return x < -87.3f ? 0.f : y;
}

#endif
