// Masks and their metrics (SPEC sections 2 and 4) against brute-force computations over the
// full N x N matrix of small heads.
#include <string.h>

#include "exact.h"
#include "mask.h"
#include "testutil.h"

#define MASS_RTOL 1e-4  // W in float32 from float32 A (see test_exact.c)
#define PRED_RTOL 1e-9  // the O(N) prediction sums against O(N^2) double sums

static float *rand_vec(int64_t N, double sd, double shift, trng *r) {
    float *x = malloc(sizeof(float) * N);
    for (int64_t i = 0; i < N; i++) x[i] = (float)(sd * trng_normal(r) + shift);
    return x;
}

static void test_block_vectors_and_threshold_mask(void **state) {
    const int64_t N = 1000;
    const int B = 64;
    const int64_t nb = (N + B - 1) / B;
    trng r = {5};
    float *s = rand_vec(N, 1.5, -2, &r), *v = rand_vec(N, 1.0, 0, &r), *h = rand_vec(N, 0.5, -6, &r);
    mask_params p = {.B = B, .S = 64, .T = 64, .eps = 0.8, .budget = 0};
    uint8_t *m = malloc(nb * nb);
    double pbs = mask_skeleton(m, s, v, h, N, &p);
    // reference: element-level maxima straight from the definitions
    double tauB = log(0.8 * B / N);
    int64_t below = 0;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J < nb; J++) {
            if (J > I) {
                assert_int_equal(m[I * nb + J], 0);
                continue;
            }
            double vb = -INFINITY, hb = -INFINITY, m0 = -INFINITY, m1 = -INFINITY;
            for (int64_t x = J * B; x < (J + 1) * B && x < N; x++) vb = fmax(vb, v[x]);
            for (int64_t x = I * B; x < (I + 1) * B && x < N; x++) hb = fmax(hb, h[x]);
            int64_t k = I - J;
            for (int64_t x = k * B; x < (k + 1) * B && x < N; x++) m1 = fmax(m1, s[x]);
            if (k > 0)
                for (int64_t x = (k - 1) * B; x < k * B; x++) m0 = fmax(m0, s[x]);
            double sb = k > 0 ? (m0 + m1) / 2 : m1, sc = sb + vb + hb;
            below += sc < tauB;
            int expect = J < 1 || k <= 1 || sc >= tauB;
            if (m[I * nb + J] != expect) fprintf(stderr, "block (%lld, %lld): score %g\n", (long long)I, (long long)J, sc);
            assert_int_equal(m[I * nb + J], expect);
        }
    assert_near("predicted block sparsity", pbs, below / (double)(nb * (nb + 1) / 2), 1e-12);
    free(s), free(v), free(h), free(m);
}

static void test_budget_mask(void **state) {
    const int64_t N = 2000;
    const int B = 32;
    const int64_t nb = (N + B - 1) / B, nc = nb * (nb + 1) / 2;
    trng r = {9};
    float *s = rand_vec(N, 1.5, -2, &r), *v = rand_vec(N, 1.0, 0, &r), *h = rand_vec(N, 0.5, -6, &r);
    float *sB = malloc(sizeof(float) * nb), *vB = malloc(sizeof(float) * nb), *hB = malloc(sizeof(float) * nb);
    mask_block_vectors(s, v, h, N, B, sB, vB, hB);
    uint8_t *m = malloc(nb * nb);
    for (int t = 0; t < 3; t++) {
        double rho = (double[]){0.1, 0.37, 0.9}[t];
        mask_params p = {.B = B, .S = 64, .T = 64, .eps = 0.8, .budget = rho};
        mask_skeleton(m, s, v, h, N, &p);
        int64_t kept = 0, forced_n = 0;
        float min_kept = INFINITY, max_dropped = -INFINITY;
        for (int64_t I = 0; I < nb; I++)
            for (int64_t J = 0; J <= I; J++) {
                int forced = J < 2 || I - J <= 2;
                float sc = sB[I - J] + vB[J] + hB[I];
                kept += m[I * nb + J];
                forced_n += forced;
                if (forced) assert_int_equal(m[I * nb + J], 1);
                else if (m[I * nb + J]) min_kept = fminf(min_kept, sc);
                else max_dropped = fmaxf(max_dropped, sc);
            }
        // the forced blocks stay even when they alone exceed the budget
        int64_t want = (int64_t)ceil(rho * nc);
        assert_int_equal(kept, want > forced_n ? want : forced_n);
        assert_true(min_kept >= max_dropped);  // the best-scoring blocks are the ones kept
    }
    free(s), free(v), free(h), free(sB), free(vB), free(hB), free(m);
}

static void test_predicted_sparsity(void **state) {
    const int64_t N = 777;
    trng r = {13};
    float *s = rand_vec(N, 1.5, -2, &r), *v = rand_vec(N, 1.0, 0.3, &r), *h = rand_vec(N, 0.5, -6, &r);
    double mean, var;
    double p = mask_predict_sparsity(s, v, h, N, 0.8, &mean, &var);
    double s1 = 0, s2 = 0, np = N * (N + 1) / 2.0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j <= i; j++) {
            double x = (double)s[i - j] + v[j] + h[i];
            s1 += x, s2 += x * x;
        }
    double rm = s1 / np, rv = s2 / np - rm * rm;
    assert_near("mean of s+v+h", mean, rm, PRED_RTOL * fabs(rm) + 1e-12);
    assert_near("variance of s+v+h", var, rv, 1e-7 * rv);
    double tau = log(0.8 / N);
    assert_near("Phi((tau - mu) / sigma)", p, 0.5 * erfc(-(tau - rm) / sqrt(2 * rv)), 1e-9);
    free(s), free(v), free(h);
}

// Recall, worst row-block recall, density and compute fraction of a mask, and the oracle mask,
// against sums over the reference attention matrix itself.
static void test_metrics_and_oracle(void **state) {
    const int64_t N = 450;
    const int d = 32, B = 16;
    const int64_t nb = (N + B - 1) / B;
    ref_head hd;
    make_head(&hd, N, d, 21);
    exact_stats st;
    exact_stats_init(&st, N, d, B, 64, 0.8);
    exact_compute(&st, hd.q, hd.k, NULL, NULL, 0);
    trng r = {17};
    uint8_t *m = calloc(nb * nb, 1);
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) m[I * nb + J] = trng_uniform(&r) < 0.4 || J == I;
    mask_metrics mm;
    mask_evaluate(m, st.block_mass, N, B, &mm);
    double kept = 0, worst = INFINITY;
    int64_t kblocks = 0, kpairs = 0;
    for (int64_t I = 0; I < nb; I++) {
        double row = 0;
        int64_t rows = 0;
        for (int64_t i = I * B; i < (I + 1) * B && i < N; i++, rows++)
            for (int64_t j = 0; j <= i; j++)
                if (m[I * nb + j / B]) row += hd.A[i * N + j], kpairs++;
        for (int64_t J = 0; J <= I; J++) kblocks += m[I * nb + J];
        kept += row;
        worst = fmin(worst, row / rows);
    }
    assert_near("recall", mm.recall, kept / N, MASS_RTOL * kept / N);
    assert_near("min row-block recall", mm.min_rowblock_recall, worst, MASS_RTOL);
    assert_near("density", mm.density, kblocks / (double)(nb * (nb + 1) / 2), 1e-12);
    assert_near("compute fraction", mm.compute_fraction, kpairs / (N * (N + 1) / 2.0), 1e-12);

    // oracle: every row block reaches r, and the kept blocks are exactly the heaviest ones
    const double target = 0.9;
    uint8_t *o = malloc(nb * nb);
    mask_oracle(o, st.block_mass, N, B, target);
    for (int64_t I = 0; I < nb; I++) {
        int64_t rows = (I + 1) * B < N ? B : N - I * B;
        double mass = 0, lightest_kept = INFINITY, heaviest_dropped = 0;
        for (int64_t J = 0; J <= I; J++) {
            double w = 0;
            for (int64_t i = I * B; i < I * B + rows; i++)
                for (int64_t j = J * B; j < (J + 1) * B && j <= i; j++) w += hd.A[i * N + j];
            if (o[I * nb + J]) mass += w, lightest_kept = fmin(lightest_kept, w);
            else heaviest_dropped = fmax(heaviest_dropped, w);
        }
        assert_true(mass >= target * rows * (1 - MASS_RTOL));
        assert_true(mass - lightest_kept < target * rows * (1 + MASS_RTOL));  // fewest blocks
        assert_true(lightest_kept >= heaviest_dropped * (1 - MASS_RTOL));
    }
    free(o), free(m);
    exact_stats_free(&st);
    free_head(&hd);
}

// The oracle's order on ties: equal masses are taken in column order (the smallest J first), zero
// masses last; checked against an insertion sort of each row, on rows of many exact ties.
static void test_oracle_ties(void **state) {
    (void)state;
    const int B = 4;
    const int64_t N = 4 * 150 + 3, nb = (N + B - 1) / B;
    float *W = calloc((size_t)(nb * nb), sizeof(float));
    uint8_t *o = malloc((size_t)(nb * nb)), *ref = calloc((size_t)(nb * nb), 1);
    int64_t *idx = malloc(sizeof(int64_t) * nb);
    for (double r = 0.3; r <= 1.0; r += 0.35) {
        memset(ref, 0, (size_t)(nb * nb));
        for (int64_t I = 0; I < nb; I++) {
            const int64_t rows = (I + 1) * B < N ? B : N - I * B;
            double sum = 0;  // masses in {0, 1, 2} x a power of two: sums exact, ties exact
            for (int64_t J = 0; J <= I; J++) sum += W[I * nb + J] = (float)((J * 7 + I) % 3);
            const float scale = sum > 0 ? exp2f(ceilf(log2f((float)(sum / rows)))) : 1.f;
            for (int64_t J = 0; J <= I; J++) W[I * nb + J] /= scale;
            for (int64_t J = 0; J <= I; J++) {  // stable insertion sort, heavier first
                int64_t t = J;
                while (t > 0 && W[I * nb + idx[t - 1]] < W[I * nb + J]) idx[t] = idx[t - 1], t--;
                idx[t] = J;
            }
            double got = 0;
            for (int64_t t = 0; t <= I && got < r * rows; t++) ref[I * nb + idx[t]] = 1, got += W[I * nb + idx[t]];
        }
        mask_oracle(o, W, N, B, r);
        assert_memory_equal(o, ref, (size_t)(nb * nb));
    }
    free(W), free(o), free(ref), free(idx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_ties),
        cmocka_unit_test(test_block_vectors_and_threshold_mask),
        cmocka_unit_test(test_budget_mask),
        cmocka_unit_test(test_predicted_sparsity),
        cmocka_unit_test(test_metrics_and_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
