// testutil.h: shared helpers for the cmocka tests: a seeded generator, array comparison that
// reports the worst element, and synthetic heads with planted structure.
#ifndef SKEL_TESTUTIL_H
#define SKEL_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

// xorshift64*: deterministic across platforms.
typedef struct {
    uint64_t s;
} trng;
static inline double trng_uniform(trng *r) {
    r->s ^= r->s >> 12, r->s ^= r->s << 25, r->s ^= r->s >> 27;
    return ((r->s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}
static inline double trng_normal(trng *r) {
    double u = trng_uniform(r), v = trng_uniform(r);
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

// |got - ref| <= atol + rtol |ref| for every element; NaN or one-sided Inf fails. On failure prints
// the worst element (by excess over the tolerance) and fails the test.
static inline void assert_close_(const char *what, const double *got, const double *ref, size_t n, double atol,
                                 double rtol, const char *file, int line) {
    size_t worst = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(ref[i]);
        double err = fabs(got[i] - ref[i]);
        double excess = (isnan(got[i]) || isnan(ref[i]) || isinf(got[i]) != isinf(ref[i])) ? INFINITY : err - tol;
        if (isinf(got[i]) && isinf(ref[i]) && (got[i] > 0) == (ref[i] > 0)) excess = -tol;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    if (n && worst_excess > 0) {
        fprintf(stderr, "%s:%d: %s: element %zu: got %.9g, expected %.9g (atol %g, rtol %g)\n", file, line, what,
                worst, got[worst], ref[worst], atol, rtol);
        fail();
    }
}
#define assert_close(what, got, ref, n, atol, rtol) assert_close_(what, got, ref, n, atol, rtol, __FILE__, __LINE__)

static inline void assert_near_(const char *what, double got, double ref, double atol, const char *file, int line) {
    if (!(fabs(got - ref) <= atol)) {
        fprintf(stderr, "%s:%d: %s: got %.9g, expected %.9g (atol %g)\n", file, line, what, got, ref, atol);
        fail();
    }
}
#define assert_near(what, got, ref, atol) assert_near_(what, got, ref, atol, __FILE__, __LINE__)

// ---------------------------------------------------------------- brute-force reference heads

typedef struct {
    int64_t N;
    int d;
    float *q, *k;
    double *A;  // (N, N) reference attention, 0 above the diagonal
    double *z;  // (N, N)
    double *lse;
} ref_head;

// A head with structure: a few sink keys, a vertical key, and queries that vary in scale, so rows
// range from flat to very peaked.
static inline void make_head(ref_head *h, int64_t N, int d, uint64_t seed) {
    trng r = {seed * 2654435761u + 1};
    h->N = N, h->d = d;
    h->q = malloc(sizeof(float) * N * d);
    h->k = malloc(sizeof(float) * N * d);
    float *dir = malloc(sizeof(float) * d);
    for (int x = 0; x < d; x++) dir[x] = (float)trng_normal(&r) / sqrtf((float)d);
    for (int64_t i = 0; i < N; i++) {
        double scale = 0.3 + 1.2 * trng_uniform(&r);
        for (int x = 0; x < d; x++) {
            h->q[i * d + x] = (float)(scale * (trng_normal(&r) + dir[x] * sqrt((double)d)));
            h->k[i * d + x] = (float)trng_normal(&r) * 0.6f;
        }
    }
    for (int64_t j = 0; j < N; j += N / 5 + 7)  // sinks and verticals: keys along dir
        for (int x = 0; x < d; x++) h->k[j * d + x] += 12.f * dir[x];  // z about 12 x the query scale
    free(dir);
    double c = 1 / sqrt((double)d);
    h->A = calloc((size_t)(N * N), sizeof(double));
    h->z = calloc((size_t)(N * N), sizeof(double));
    h->lse = malloc(sizeof(double) * N);
    for (int64_t i = 0; i < N; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int x = 0; x < d; x++) s += (double)h->q[i * d + x] * h->k[j * d + x];
            h->z[i * N + j] = c * s;
            if (c * s > mx) mx = c * s;
        }
        double l = 0;
        for (int64_t j = 0; j <= i; j++) l += exp(h->z[i * N + j] - mx);
        h->lse[i] = mx + log(l);
        for (int64_t j = 0; j <= i; j++) h->A[i * N + j] = exp(h->z[i * N + j] - h->lse[i]);
    }
}

static inline void free_head(ref_head *h) {
    free(h->q), free(h->k), free(h->A), free(h->z), free(h->lse);
}

#endif
