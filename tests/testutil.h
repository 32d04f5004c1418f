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

#endif
