// Exact statistics (SPEC section 2) against a brute-force double-precision reference that holds
// the whole N x N matrix, on heads small enough for that (N not a multiple of the block).
#include <string.h>

#include "exact.h"
#include "mask.h"
#include "testutil.h"

// Tolerances. The fast path computes z in float32 (sgemm, d <= 128 terms of size ~1, so |dz| ~
// 1e-6) and exp with a 2e-7 relative error: A_ij agrees to ~1e-5 relative.
#define LSE_ATOL 2e-5  // max |dz| for z of order 10 in float32
#define LSE_RTOL 2e-7  // float32 rounding of lse itself
#define MASS_RTOL 1e-4      // block sums of up to B*B float terms
#define MASS_ATOL 1e-7
#define SPARSITY_EXACT_PP 0.002  // SPEC: the histogram method within 0.2 percentage points

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check_head(int64_t N, int d, int B, int image, double eps, uint64_t seed) {
    ref_head h;
    make_head(&h, N, d, seed);
    exact_stats st;
    exact_stats_init(&st, N, d, B, image, eps);
    exact_compute(&st, h.q, h.k, NULL, NULL, 0);
    const int64_t nb = st.nb, P = st.P;
    assert_int_equal(nb, (N + B - 1) / B);

    double *got = malloc(sizeof(double) * (N > nb * nb ? N : nb * nb)), *ref = calloc(nb * nb, sizeof(double));
    for (int64_t i = 0; i < N; i++) got[i] = st.lse[i];
    assert_close("lse", got, h.lse, N, LSE_ATOL, LSE_RTOL);

    // block mass and max
    double *refx = calloc(nb * nb, sizeof(double));
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j <= i; j++) {
            int64_t I = i / B, J = j / B;
            ref[I * nb + J] += h.A[i * N + j];
            if (h.A[i * N + j] > refx[I * nb + J]) refx[I * nb + J] = h.A[i * N + j];
        }
    for (int64_t x = 0; x < nb * nb; x++) got[x] = st.block_mass[x];
    assert_close("block_mass", got, ref, nb * nb, MASS_ATOL, MASS_RTOL);
    for (int64_t x = 0; x < nb * nb; x++) got[x] = st.block_max[x];
    assert_close("block_max", got, refx, nb * nb, MASS_ATOL, MASS_RTOL);

    // threshold, block and exact sparsity
    double thr = eps / N, npairs = N * (N + 1) / 2.0;
    int64_t below = 0, dropped = 0, sparse_blocks = 0;
    double *row = malloc(sizeof(double) * N);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j <= i; j++) below += h.A[i * N + j] < thr, row[j] = h.A[i * N + j];
        qsort(row, i + 1, sizeof(double), cmp_double);
        double cum = 0;
        for (int64_t j = 0; j <= i && cum + row[j] < eps; j++) cum += row[j], dropped++;
    }
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) sparse_blocks += refx[I * nb + J] < thr;
    // Elements within float rounding of the threshold may fall either way: allow 0.05% of pairs.
    assert_near("threshold_sparsity", st.threshold_sparsity, below / npairs, 5e-4);
    assert_near("block_sparsity", st.block_sparsity, sparse_blocks / (nb * (nb + 1) / 2.0), 1e-12);
    assert_near("exact_sparsity", st.exact_sparsity, dropped / npairs, SPARSITY_EXACT_PP);
    assert_true(st.exact_sparsity > 0.05);  // the planted heads are not trivially dense

    // z moments and histogram total
    double s1 = 0, s2 = 0, zlo = INFINITY, zhi = -INFINITY;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j <= i; j++) {
            double z = h.z[i * N + j];
            s1 += z, s2 += z * z;
            zlo = z < zlo ? z : zlo, zhi = z > zhi ? z : zhi;
        }
    double mean = s1 / npairs, var = s2 / npairs - mean * mean;
    assert_near("zmean", st.zmean, mean, 1e-4 * (1 + fabs(mean)));
    assert_near("zvar", st.zvar, var, 1e-4 * var);
    assert_near("zlo", st.zlo, zlo, 1e-4 * (1 + fabs(zlo)));
    assert_near("zhi", st.zhi, zhi, 1e-4 * (1 + fabs(zhi)));
    double tot = 0;
    for (int b = 0; b < EXACT_ZHIST_BINS; b++) tot += st.zhist[b];
    assert_near("zhist total", tot, npairs, 0.5);

    // pooled images against direct pooling of the reference
    double *im = calloc(P * P, sizeof(double)), *imean = calloc(P * P, sizeof(double));
    double *gm = malloc(sizeof(double) * P * P), *gmean = malloc(sizeof(double) * P * P);
    for (int64_t a = 0; a < P; a++)
        for (int64_t b = 0; b <= a; b++) {
            double mx = 0, s = 0;
            int64_t n = 0;
            for (int64_t i = exact_cell_start(a, N, P); i < exact_cell_start(a + 1, N, P); i++)
                for (int64_t j = exact_cell_start(b, N, P); j < exact_cell_start(b + 1, N, P) && j <= i; j++)
                    mx = h.A[i * N + j] > mx ? h.A[i * N + j] : mx, s += h.A[i * N + j], n++;
            im[a * P + b] = mx;
            imean[a * P + b] = n ? s / n : 0;
        }
    for (int64_t x = 0; x < P * P; x++) gm[x] = st.image_max[x], gmean[x] = st.image_mean[x];
    assert_close("image_max", gm, im, P * P, MASS_ATOL, MASS_RTOL);
    assert_close("image_mean", gmean, imean, P * P, MASS_ATOL, MASS_RTOL);

    free(im), free(imean), free(gm), free(gmean), free(row), free(refx), free(got), free(ref);
    exact_stats_free(&st);
    free_head(&h);
}

// The output error of block masks against O = A V and O' = softmax over the kept blocks only,
// both in double from the reference matrix; two masks measured in one pass.
static double ref_output_error(const ref_head *h, const float *v, const uint8_t *mask, int64_t nb, int B, int d) {
    const int64_t N = h->N;
    double err2 = 0, norm2 = 0;
    for (int64_t i = 0; i < N; i++) {
        double kept = 0;
        for (int64_t j = 0; j <= i; j++) kept += mask[(i / B) * nb + j / B] ? h->A[i * N + j] : 0;
        for (int x = 0; x < d; x++) {
            double o = 0, op = 0;
            for (int64_t j = 0; j <= i; j++) {
                o += h->A[i * N + j] * v[j * d + x];
                if (mask[(i / B) * nb + j / B]) op += h->A[i * N + j] * v[j * d + x];
            }
            op /= kept;
            err2 += (o - op) * (o - op), norm2 += o * o;
        }
    }
    return sqrt(err2 / norm2);
}

static void test_output_error(void **state) {
    const int64_t N = 600;
    const int d = 32, B = 16;
    ref_head h;
    make_head(&h, N, d, 8);
    const int64_t nb = (N + B - 1) / B;
    trng r = {99};
    float *v = malloc(sizeof(float) * N * d);
    for (int64_t x = 0; x < N * d; x++) v[x] = (float)trng_normal(&r);
    uint8_t *m1 = malloc(nb * nb), *m2 = malloc(nb * nb);
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J < nb; J++) {
            m1[I * nb + J] = J <= I && (J == I || J == 0 || trng_uniform(&r) < 0.3);
            m2[I * nb + J] = J <= I && (J == I || trng_uniform(&r) < 0.6);
        }
    const uint8_t *masks[2] = {m1, m2};
    exact_stats st;
    exact_stats_init(&st, N, d, B, 64, 0.8);
    exact_compute(&st, h.q, h.k, v, masks, 2);
    for (int mi = 0; mi < 2; mi++) {
        double ref = ref_output_error(&h, v, masks[mi], nb, B, d);
        fprintf(stderr, "    mask %d: output error %.6f (reference %.6f)\n", mi, st.output_rel_error[mi], ref);
        assert_true(ref > 0.01);  // the mask drops real mass
        assert_near("output_rel_error", st.output_rel_error[mi], ref, MASS_RTOL * ref + 1e-6);
    }
    assert_true(isnan(st.output_rel_error[2]));
    exact_stats st2;  // without values the error is not defined
    exact_stats_init(&st2, N, d, B, 64, 0.8);
    exact_compute(&st2, h.q, h.k, NULL, NULL, 0);
    assert_true(isnan(st2.output_rel_error[0]));
    exact_stats_free(&st), exact_stats_free(&st2);
    free(v), free(m1), free(m2);
    free_head(&h);
}

static void test_causal_pairs(void **state) {
    for (int64_t r0 = 0; r0 < 12; r0++)
        for (int64_t r1 = r0; r1 < 14; r1++)
            for (int64_t c0 = 0; c0 < 12; c0++)
                for (int64_t c1 = c0; c1 < 14; c1++) {
                    int64_t n = 0;
                    for (int64_t i = r0; i < r1; i++)
                        for (int64_t j = c0; j < c1; j++) n += j <= i;
                    assert_int_equal(causal_pairs(r0, r1, c0, c1), n);
                }
}

static void test_exact_b64_d64(void **state) { check_head(1000, 64, 64, 128, 0.8, 1); }
static void test_exact_b16_d32(void **state) { check_head(517, 32, 16, 100, 0.5, 2); }
static void test_exact_b256_d128(void **state) { check_head(700, 128, 256, 1024, 0.8, 3); }
static void test_exact_eps_small(void **state) { check_head(333, 16, 32, 333, 0.05, 4); }
// wide pixel cells (N / P >= 32): several column tiles per pixel cell
static void test_exact_wide_cells(void **state) { check_head(1100, 32, 64, 32, 0.8, 5); }
// the portable QK^T path (single-threaded sgemm), used where the CPU lacks AVX-512
static void test_exact_sgemm_path(void **state) {
    setenv("SKEL_NO_AVX512", "1", 1);
    check_head(777, 64, 64, 256, 0.8, 6);
    unsetenv("SKEL_NO_AVX512");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_causal_pairs),
        cmocka_unit_test(test_output_error),
        cmocka_unit_test(test_exact_b64_d64),
        cmocka_unit_test(test_exact_b16_d32),
        cmocka_unit_test(test_exact_b256_d128),
        cmocka_unit_test(test_exact_eps_small),
        cmocka_unit_test(test_exact_wide_cells),
        cmocka_unit_test(test_exact_sgemm_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
