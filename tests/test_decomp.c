// The decomposition (SPEC section 3): RoPE, the prefix-sum statistics, Lambda and the ridge solve
// against direct double-precision computations, and the whole decomposition on heads whose
// interior structure is known exactly.
#include <lapacke.h>
#include <string.h>

#include "decomp.h"
#include "rope.h"
#include "testutil.h"

#define ROPE_ATOL 1e-5   // float32 storage of rotated values of size ~3
#define STAT_RTOL 1e-6   // mu, sigma^2: double sums of float inputs
#define FIT_ATOL 2e-3    // planted heads: the linear model is exact up to the ridge bias (lambda ~ 1e-3)
#define LASTROW_ATOL 2e-3  // zeta makes the last row's normaliser exact: only the fit error remains
// Away from the last row nu_i relies on the log-normal mean exp(sigma^2/2) of the interior; with
// a Gaussian interior of variance ~0.3 and n_i >= 200 elements its relative error is about
// sqrt((e^0.3 - 1) / 200) = 0.04 at most (observed: about 0.01).
#define NU_ATOL 0.05

static double *std_freq(int d, double theta) {
    double *f = malloc(sizeof(double) * d / 2);
    for (int x = 0; x < d / 2; x++) f[x] = pow(theta, -2.0 * x / d);
    return f;
}

static void test_rope_both_layouts(void **state) {
    const int64_t N = 37;
    const int d = 16;
    double *freq = std_freq(d, 1e4);
    int32_t pos[37];
    for (int i = 0; i < N; i++) pos[i] = 3 * i + 1;  // positions need not be 0..N-1
    trng r = {7};
    float *u = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d), *back = malloc(sizeof(float) * N * d);
    for (int64_t x = 0; x < N * d; x++) u[x] = (float)trng_normal(&r);
    for (int layout = 0; layout < 2; layout++) {
        rope_apply(k, u, N, d, freq, pos, (rope_layout)layout);
        // forward rotation written out as complex multiplication
        double *ref = malloc(sizeof(double) * N * d), *got = malloc(sizeof(double) * N * d);
        for (int64_t j = 0; j < N; j++)
            for (int x = 0; x < d / 2; x++) {
                int a = layout == ROPE_HALF ? x : 2 * x, b = layout == ROPE_HALF ? x + d / 2 : 2 * x + 1;
                double th = pos[j] * freq[x];
                ref[j * d + a] = u[j * d + a] * cos(th) - u[j * d + b] * sin(th);
                ref[j * d + b] = u[j * d + a] * sin(th) + u[j * d + b] * cos(th);
            }
        for (int64_t x = 0; x < N * d; x++) got[x] = k[x];
        assert_close("rope_apply", got, ref, N * d, ROPE_ATOL, 0);
        rope_unapply(back, k, N, d, freq, pos, (rope_layout)layout);
        for (int64_t x = 0; x < N * d; x++) got[x] = back[x], ref[x] = u[x];
        assert_close("rope_unapply(rope_apply(u))", got, ref, N * d, ROPE_ATOL, 0);
        free(ref), free(got);
    }
    free(u), free(k), free(back), free(freq);
}

static void test_rope_mean_closed_form(void **state) {
    const int d = 32;
    double *freq = std_freq(d, 5e5);
    freq[d / 2 - 1] = 0;  // a zero frequency must give mean 1 for cos, 0 for sin
    double got[32], ref[32];
    int64_t cases[][2] = {{0, 1}, {5, 17}, {64, 1000}, {64, 100000}};
    for (int t = 0; t < 4; t++) {
        int64_t m0 = cases[t][0], n = cases[t][1];
        decomp_rope_mean(got, freq, d, m0, n);
        memset(ref, 0, sizeof ref);
        for (int64_t m = m0; m < m0 + n; m++)
            for (int x = 0; x < d / 2; x++) ref[x] += cos(m * freq[x]) / n, ref[x + d / 2] += sin(m * freq[x]) / n;
        assert_close("rope mean", got, ref, d, 1e-9, 0);
    }
    free(freq);
}

static void test_ridge_against_dgels(void **state) {
    const int64_t m = 400;
    const int n = 24;
    trng r = {11};
    double *A = malloc(sizeof(double) * m * n), *b = malloc(sizeof(double) * m);
    for (int64_t x = 0; x < m * n; x++) A[x] = trng_normal(&r);
    for (int64_t i = 0; i < m; i++) A[i * n + 5] = A[i * n + 4];  // rank deficient, as the real problem is
    for (int64_t i = 0; i < m; i++) b[i] = trng_normal(&r) + A[i * n + 1];
    for (int t = 0; t < 2; t++) {
        double eps_r = t ? 1e-1 : 1e-3, x[24];
        assert_int_equal(ridge_solve(A, b, m, n, eps_r, x), 0);
        // direct least squares on the augmented system [A; lambda I] x = [b; 0]
        double fro = 0;
        for (int64_t i = 0; i < m * n; i++) fro += A[i] * A[i];
        double lam = eps_r * sqrt(fro) / 2;
        double *Aa = calloc((m + n) * n, sizeof(double)), *ba = calloc(m + n, sizeof(double));
        memcpy(Aa, A, sizeof(double) * m * n);
        memcpy(ba, b, sizeof(double) * m);
        for (int c = 0; c < n; c++) Aa[(m + c) * n + c] = lam;
        assert_int_equal(LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', (int)(m + n), n, 1, Aa, n, ba, 1), 0);
        assert_close("ridge x", x, ba, n, 1e-8, 1e-6);
        free(Aa), free(ba);
    }
    free(A), free(b);
}

// Direct statistics of one row's interior.
static void direct_row(const float *q, const float *k, int64_t i, int d, int S, int T, double *mu, double *var,
                       double *loglam) {
    double c = 1 / sqrt((double)d), s1 = 0, s2 = 0, lam = 0;
    int64_t n = i - T - S + 1;
    for (int64_t j = S; j <= i - T; j++) {
        double z = 0;
        for (int x = 0; x < d; x++) z += (double)q[i * d + x] * k[j * d + x];
        z *= c;
        s1 += z, s2 += z * z;
    }
    *mu = s1 / n;
    *var = s2 / n - *mu * *mu;
    for (int64_t j = 0; j <= i; j++) {
        if (j >= S && j <= i - T) continue;
        double z = 0;
        for (int x = 0; x < d; x++) z += (double)q[i * d + x] * k[j * d + x];
        lam += exp(c * z - *mu);
    }
    *loglam = log(lam);
}

static void test_row_statistics(void **state) {
    const int64_t N = 700;  // not a multiple of the 256-row chunks
    const int d = 32, S = 16, T = 24;
    trng r = {3};
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d);
    for (int64_t x = 0; x < N * d; x++) q[x] = (float)(trng_normal(&r) + 0.7), k[x] = (float)(0.5 * trng_normal(&r) + 0.2);
    double *freq = std_freq(d, 1e4);
    int32_t *pos = malloc(sizeof(int32_t) * N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
    decomp D;
    decomp_params prm = {.S = S, .T = T, .M = 0, .ridge = 1e-3, .seed = 1};
    decomp_init(&D, N, d, &prm);
    skel_err e;
    assert_int_equal(decomp_compute(&D, q, k, freq, pos, ROPE_HALF, &e), 0);
    int64_t n = N - S - T;
    double *gm = malloc(sizeof(double) * n), *rm = malloc(sizeof(double) * n);
    double *gv = malloc(sizeof(double) * n), *rv = malloc(sizeof(double) * n);
    double *gl = malloc(sizeof(double) * n), *rl = malloc(sizeof(double) * n);
    for (int64_t i = S + T; i < N; i++) {
        int64_t t = i - S - T;
        direct_row(q, k, i, d, S, T, &rm[t], &rv[t], &rl[t]);
        gm[t] = D.mu[i], gv[t] = D.sigma2[i], gl[t] = D.log_lambda[i];
    }
    assert_close("mu", gm, rm, n, 1e-9, STAT_RTOL);
    assert_close("sigma^2", gv, rv, n, 1e-9, STAT_RTOL);
    assert_close("log Lambda", gl, rl, n, 1e-9, STAT_RTOL);
    // rows without an interior: mu is the mean over all keys and nu = lse - mu exactly
    for (int64_t i = 0; i < S + T - 1; i++) {
        double c = 1 / sqrt((double)d), zs[64], mean = 0, mx = -INFINITY, l = 0;
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int x = 0; x < d; x++) s += (double)q[i * d + x] * k[j * d + x];
            zs[j] = c * s, mean += zs[j] / (i + 1), mx = fmax(mx, zs[j]);
        }
        for (int64_t j = 0; j <= i; j++) l += exp(zs[j] - mx);
        assert_near("mu, no interior", D.mu[i], mean, 1e-6 * (1 + fabs(mean)));
        assert_near("nu = lse - mu, no interior", D.nu[i], mx + log(l) - mean, 1e-5);
        assert_near("h = -nu, no interior", D.h[i], -D.nu[i], 1e-5);
    }
    free(gm), free(rm), free(gv), free(rv), free(gl), free(rl);
    decomp_free(&D);
    free(q), free(k), free(freq), free(pos);
}

// A head whose interior satisfies z_ij = F(i - j) + G(j) exactly, with F in the RoPE span: every
// query is the same un-RoPE'd vector p, keys are u0 plus a random part carried by a pair of zero
// frequency, which RoPE leaves unrotated. The model of SPEC section 3 is then exact.
static void check_planted(rope_layout layout, int d, uint64_t seed) {
    const int64_t N = 1200;
    const int S = 16, T = 16;
    trng r = {seed};
    double *freq = std_freq(d, 1e4);
    freq[d / 2 - 1] = 0;
    int32_t *pos = malloc(sizeof(int32_t) * N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
    float *p = malloc(sizeof(float) * N * d), *u = malloc(sizeof(float) * N * d);
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d);
    float p0[64], u0[64];
    const double sc = sqrt((double)d);
    for (int x = 0; x < d; x++) p0[x] = (float)trng_normal(&r), u0[x] = (float)(trng_normal(&r) * 0.35);
    int ga = rope_pair_a(layout, d, d / 2 - 1), gb = rope_pair_b(layout, d, d / 2 - 1);
    p0[ga] = (float)sc, p0[gb] = 0, u0[ga] = u0[gb] = 0;
    for (int64_t i = 0; i < N; i++)
        for (int x = 0; x < d; x++) {
            p[i * d + x] = p0[x];
            u[i * d + x] = u0[x];
        }
    for (int64_t j = 0; j < N; j++) u[j * d + ga] = (float)(0.55 * trng_normal(&r));  // G(j) = 0.55 N(0,1)
    rope_apply(q, p, N, d, freq, pos, layout);
    rope_apply(k, u, N, d, freq, pos, layout);

    decomp D;
    decomp_params prm = {.S = S, .T = T, .M = 0, .ridge = 1e-3, .seed = seed};
    decomp_init(&D, N, d, &prm);
    skel_err e;
    assert_int_equal(decomp_compute(&D, q, k, freq, pos, layout, &e), 0);
    assert_true(D.fit_r2 > 0.9999);

    // exact z and lse in double
    const double c = 1 / sqrt((double)d);
    double *z = malloc(sizeof(double) * N);
    double worst_fit = 0, worst_nu = 0, worst_last = 0;
    for (int64_t i = S + T; i < N; i++) {
        double mx = -INFINITY, l = 0;
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int x = 0; x < d; x++) s += (double)q[i * d + x] * k[j * d + x];
            z[j] = c * s;
            mx = z[j] > mx ? z[j] : mx;
        }
        for (int64_t j = 0; j <= i; j++) l += exp(z[j] - mx);
        double lse = mx + log(l);
        int64_t n = i - S - T + 1;
        double delta_eps = -D.h[i] - D.nu[i];  // h_i = -delta_i - eps_i - nu_i
        for (int64_t j = S; j <= i - T; j++) {
            double model = D.s[i - j] + D.v[j];
            double fit_err = fabs(model - delta_eps - (z[j] - D.mu[i]));
            double loga_err = fabs(model + D.h[i] - (z[j] - lse));
            worst_fit = fit_err > worst_fit ? fit_err : worst_fit;
            if (n >= 200) worst_nu = loga_err > worst_nu ? loga_err : worst_nu;
            if (i == N - 1) worst_last = loga_err > worst_last ? loga_err : worst_last;
        }
    }
    fprintf(stderr, "    planted d=%d %s: R^2 %.6f, fit %.2e, log A %.3f (n_i >= 200), last row %.2e\n", d,
            rope_layout_name(layout), D.fit_r2, worst_fit, worst_nu, worst_last);
    assert_near("interior fit z - mu", worst_fit, 0, FIT_ATOL);
    assert_near("log A on the last row", worst_last, 0, LASTROW_ATOL);
    assert_near("log A on the interior", worst_nu, 0, NU_ATOL);
    decomp_free(&D);
    free(z), free(p), free(u), free(q), free(k), free(freq), free(pos);
}

static void test_planted_half(void **state) { check_planted(ROPE_HALF, 32, 5); }
static void test_planted_interleaved(void **state) { check_planted(ROPE_INTERLEAVED, 64, 6); }

static void test_too_short(void **state) {
    decomp D;
    decomp_params prm = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
    decomp_init(&D, 129, 8, &prm);
    float q[129 * 8] = {0}, k[129 * 8] = {0};
    double f[4] = {1, .1, .01, .001};
    int32_t pos[129] = {0};
    skel_err e;
    assert_int_equal(decomp_compute(&D, q, k, f, pos, ROPE_HALF, &e), -1);
    assert_non_null(strstr(e.msg, "too small"));
    decomp_free(&D);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_both_layouts),    cmocka_unit_test(test_rope_mean_closed_form),
        cmocka_unit_test(test_ridge_against_dgels),  cmocka_unit_test(test_row_statistics),
        cmocka_unit_test(test_planted_half),         cmocka_unit_test(test_planted_interleaved),
        cmocka_unit_test(test_too_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
