// decomp.c: SPEC section 3. See decomp.h.
#include "decomp.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "rope.h"

#undef I  // <complex.h>, pulled in by OpenBLAS's cblas.h

void openblas_set_num_threads(int);

void decomp_init(decomp *D, int64_t N, int d, const decomp_params *prm) {
    memset(D, 0, sizeof *D);
    D->N = N;
    D->d = d;
    D->prm = *prm;
    if (D->prm.M <= 0) D->prm.M = 80 * d;
    D->s = xmalloc(sizeof(float) * N);
    D->v = xmalloc(sizeof(float) * N);
    D->h = xmalloc(sizeof(float) * N);
    D->alpha = xcalloc(d, sizeof(double));
    D->kappa = xcalloc(d, sizeof(double));
    D->mu = xcalloc(N, sizeof(double));
    D->sigma2 = xcalloc(N, sizeof(double));
    D->log_lambda = xcalloc(N, sizeof(double));
    D->nu = xcalloc(N, sizeof(double));
}

void decomp_free(decomp *D) {
    free(D->s), free(D->v), free(D->h), free(D->alpha), free(D->kappa);
    free(D->mu), free(D->sigma2), free(D->log_lambda), free(D->nu);
    memset(D, 0, sizeof *D);
}

static inline double dotf(const float *a, const float *b, int d) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int x = 0; x < d; x++) s += a[x] * b[x];
    return s;
}

void decomp_rope_mean(double *rbar, const double *inv_freq, int d, int64_t m0, int64_t n) {
    // sum_{m=m0}^{m0+n-1} e^{i m w} = e^{i (m0 + (n-1)/2) w} sin(n w / 2) / sin(w / 2)
    for (int x = 0; x < d / 2; x++) {
        double w = inv_freq[x], sw = sin(w / 2), mag;
        mag = fabs(sw) < 1e-300 ? (double)n : sin(n * w / 2) / sw;
        double ph = (m0 + (n - 1) / 2.0) * w;
        rbar[x] = cos(ph) * mag / n;
        rbar[x + d / 2] = sin(ph) * mag / n;
    }
}

// splitmix64: the sampling generator (seeded, platform independent).
static inline uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int ridge_solve_normal(double *G, double *x, int n, double eps_r) {
    double fro2 = 0;
    for (int c = 0; c < n; c++) fro2 += G[(size_t)c * n + c];  // trace(A^T A) = ||A||_F^2
    double lam = eps_r * sqrt(fro2) / 2;
    for (int c = 0; c < n; c++) G[(size_t)c * n + c] += lam * lam;
    int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, 1, G, n, x, 1);
    return info == 0 ? 0 : -1;
}

int ridge_solve(const double *A, const double *b, int64_t m, int n, double eps_r, double *x) {
    double *G = xcalloc((size_t)n * n, sizeof(double));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, (int)m, 1.0, A, n, 0.0, G, n);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, n, 1.0, A, n, b, 1, 0.0, x, 1);
    int rc = ridge_solve_normal(G, x, n, eps_r);
    free(G);
    return rc;
}

uint64_t decomp_draw_samples(int64_t *I, int64_t *J, int64_t ns, int64_t N, int S, int T, uint64_t seed) {
    const int64_t span = N - S - T;
    uint64_t st = seed ^ 0x5ca1ab1e0ddba11ULL;
    for (int64_t t = 0; t < ns; t++) {
        int64_t X = 1 + (int64_t)(splitmix(&st) % (uint64_t)span), Y = 1 + (int64_t)(splitmix(&st) % (uint64_t)span);
        I[t] = S + T - 1 + (X > Y ? X : Y);
        J[t] = S - 1 + (X < Y ? X : Y);
    }
    return st;
}


typedef struct {
    int64_t I, J;
    int64_t idx;  // position in the sample arrays
} sample;

static int cmp_sample(const void *a, const void *b) {
    const sample *x = a, *y = b;
    return (x->I > y->I) - (x->I < y->I);
}

// sigma_i^2 for every row with an interior, by chunks of C rows: the interior Gram matrix
// G = sum_{S <= j < i0 - T} k_j k_j^T of everything before the chunk (kept up to date), plus the
// in-chunk part as a small GEMM of squared dot products.
static void row_variances(decomp *D, const float *q, const float *k) {
    const int64_t N = D->N;
    const int d = D->d, S = D->prm.S, T = D->prm.T, C = 256;
    const double c2 = 1.0 / d;
    double *G = xcalloc((size_t)d * d, sizeof(double));
    double *Qc = xmalloc(sizeof(double) * C * d), *Kc = xmalloc(sizeof(double) * C * d);
    double *Y = xmalloc(sizeof(double) * C * d), *Z = xmalloc(sizeof(double) * C * C);
    for (int64_t i0 = S + T; i0 < N; i0 += C) {  // row S + T is the first with an interior
        int64_t i1 = i0 + C < N ? i0 + C : N, nr = i1 - i0;
        int64_t j0 = i0 - T, nc = nr;  // keys j in [j0, j0 + nc) enter the interior in this chunk
        for (int64_t r = 0; r < nr * d; r++) Qc[r] = q[i0 * d + r], Kc[r] = k[j0 * d + r];
        // Y = Qc G: the part of sum (q_i . k_j)^2 over keys before the chunk
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)nr, d, 1.0, G, d, Qc, d, 0.0, Y, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nc, d, 1.0, Qc, d, Kc, d, 0.0, Z, (int)nc);
        for (int64_t r = 0; r < nr; r++) {
            int64_t i = i0 + r, n = decomp_n_interior(i, S, T);
            double pre = 0, in = 0;
            for (int x = 0; x < d; x++) pre += Y[r * d + x] * Qc[r * d + x];
            for (int64_t cc = 0; cc <= r; cc++) in += Z[r * nc + cc] * Z[r * nc + cc];  // j = j0 + cc <= i - T
            double ez2 = c2 * (pre + in) / n;
            double var = ez2 - D->mu[i] * D->mu[i];
            D->sigma2[i] = var > 0 ? var : 0;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)nc, 1.0, Kc, d, 1.0, G, d);
    }
    free(G), free(Qc), free(Kc), free(Y), free(Z);
}

int decomp_compute(decomp *D, const float *q, const float *k, const double *inv_freq, const int32_t *pos,
                   rope_layout layout, skel_err *e) {
    const int64_t N = D->N;
    const int d = D->d, S = D->prm.S, T = D->prm.T, M = D->prm.M;
    const double c = 1.0 / sqrt((double)d);
    if (N < (int64_t)S + T + 2)
        return skel_fail(e, "N = %lld tokens is too small for sink %d + local %d (needs at least %d)", (long long)N, S,
                         T, S + T + 2);
    openblas_set_num_threads(omp_get_max_threads());

    float *u = xmalloc(sizeof(float) * N * d);
    rope_unapply(u, k, N, d, inv_freq, pos, layout);

    // ---------------------------------------------------------------- mu: interior means
    {
        double *ks = xcalloc(d, sizeof(double));
        int64_t next = S;  // next key to enter the running sum
        for (int64_t i = S + T; i < N; i++) {
            for (; next <= i - T; next++)
                for (int x = 0; x < d; x++) ks[x] += k[next * d + x];
            double s = 0;
            for (int x = 0; x < d; x++) s += q[i * d + x] * ks[x];
            D->mu[i] = c * s / decomp_n_interior(i, S, T);
        }
        free(ks);
    }
    row_variances(D, q, k);

    // ---------------------------------------------------------------- Lambda-shape and short rows
#pragma omp parallel
    {
        double *z = xmalloc(sizeof(double) * (S + T));  // one row's Lambda-shape: sinks, then its last T keys
#pragma omp for schedule(dynamic, 256)
        for (int64_t i = 0; i < N; i++) {
            if (decomp_n_interior(i, S, T) < 1) {
                // No interior (i + 1 < S + T keys): the normaliser is exact over all of them.
                double mx = -INFINITY, sum = 0, l = 0;
                for (int64_t j = 0; j <= i; j++) z[j] = c * dotf(q + i * d, k + j * d, d), sum += z[j];
                D->mu[i] = sum / (i + 1);
                for (int64_t j = 0; j <= i; j++) mx = z[j] - D->mu[i] > mx ? z[j] - D->mu[i] : mx;
                for (int64_t j = 0; j <= i; j++) l += exp(z[j] - D->mu[i] - mx);
                D->log_lambda[i] = D->nu[i] = mx + log(l);
                D->sigma2[i] = 0;
                continue;
            }
            double mx = -INFINITY, l = 0;
            for (int64_t t = 0; t < S + T; t++) {
                int64_t j = t < S ? t : i - T + 1 + (t - S);
                z[t] = c * dotf(q + i * d, k + j * d, d) - D->mu[i];
                mx = z[t] > mx ? z[t] : mx;
            }
            for (int64_t t = 0; t < S + T; t++) l += exp(z[t] - mx);
            D->log_lambda[i] = mx + log(l);
        }
        free(z);
    }

    // ---------------------------------------------------------------- zeta: the last row's interior
    {
        const int64_t i = N - 1, n = decomp_n_interior(i, S, T);
        double mx = -INFINITY, l = 0;
        double *z = xmalloc(sizeof(double) * n);
#pragma omp parallel for reduction(max : mx)
        for (int64_t t = 0; t < n; t++) {
            z[t] = c * dotf(q + i * d, k + (S + t) * d, d);
            mx = z[t] > mx ? z[t] : mx;
        }
        for (int64_t t = 0; t < n; t++) l += exp(z[t] - mx);
        free(z);
        D->zeta = D->mu[i] + D->sigma2[i] / 2 - (mx + log(l / n));
    }

    // ---------------------------------------------------------------- samples and the ridge fit
    // 2M pairs: the first M fit, the second M are held out for R^2 and RMSE.
    const int64_t ns = 2 * (int64_t)M, w = 2 * d;
    sample *smp = xmalloc(sizeof(sample) * ns);
    {
        int64_t *sI = xmalloc(sizeof(int64_t) * ns), *sJ = xmalloc(sizeof(int64_t) * ns);
        decomp_draw_samples(sI, sJ, ns, N, S, T, D->prm.seed);
        for (int64_t t = 0; t < ns; t++) smp[t].I = sI[t], smp[t].J = sJ[t], smp[t].idx = t;
        free(sI), free(sJ);
    }
    double *A = xmalloc(sizeof(double) * ns * w), *b = xmalloc(sizeof(double) * ns);
    {
        // ubar_I by one sweep over the samples sorted by row
        sample *sorted = xmalloc(sizeof(sample) * ns);
        memcpy(sorted, smp, sizeof(sample) * ns);
        qsort(sorted, ns, sizeof(sample), cmp_sample);
        double *us = xcalloc(d, sizeof(double));
        int64_t next = S;
        for (int64_t t = 0; t < ns; t++) {
            const sample *p = &sorted[t];
            for (; next <= p->I - T; next++)
                for (int x = 0; x < d; x++) us[x] += u[next * d + x];
            int64_t n = decomp_n_interior(p->I, S, T);
            double *a = A + p->idx * w;
            for (int x = 0; x < d; x++) a[d + x] = u[p->J * d + x] - us[x] / n;
        }
        free(us);
        free(sorted);
        // the rest of each row apart (the same arithmetic, in parallel: ~4M sines and cosines at M = 80 d,
        // which one thread took most of this function's time on)
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < ns; t++) {
            const sample *p = &smp[t];
            int64_t n = decomp_n_interior(p->I, S, T);
            double *a = A + p->idx * w;
            decomp_rope_mean(a, inv_freq, d, T, n);  // rbar_I: offsets T .. I - S
            for (int x = 0; x < d / 2; x++) {
                double sn, cs;
                sincos((double)(p->I - p->J) * inv_freq[x], &sn, &cs);
                a[x] = cs - a[x];
                a[x + d / 2] = sn - a[x + d / 2];
            }
            b[p->idx] = c * dotf(q + p->I * d, k + p->J * d, d) - D->mu[p->I];
        }
    }
    double x[512];
    CHECK(w <= 512);
    if (ridge_solve(A, b, M, w, D->prm.ridge, x)) {
        free(A), free(b), free(smp), free(u);
        return skel_fail(e, "ridge normal equations are not positive definite (degenerate head?)");
    }
    memcpy(D->alpha, x, sizeof(double) * d);
    memcpy(D->kappa, x + d, sizeof(double) * d);
    {
        double sb = 0, sbb = 0, sr = 0;
        for (int64_t t = M; t < ns; t++) {
            double pred = 0;
            for (int y = 0; y < w; y++) pred += A[t * w + y] * x[y];
            double r = b[t] - pred;
            sr += r * r, sb += b[t], sbb += b[t] * b[t];
        }
        double var = sbb - sb * sb / M;
        D->fit_rmse = sqrt(sr / M);
        D->fit_r2 = var > 0 ? 1 - sr / var : 0;
    }
    free(A), free(b), free(smp);

    // ---------------------------------------------------------------- s, v, delta, eps, h
    const int64_t nlast = decomp_n_interior(N - 1, S, T);
    double rbarN[512], ubarN_kappa = 0;
    decomp_rope_mean(rbarN, inv_freq, d, T, nlast);
    double rbarN_alpha = 0;
    for (int x = 0; x < d; x++) rbarN_alpha += rbarN[x] * D->alpha[x];
    double *uk = xmalloc(sizeof(double) * N);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int x = 0; x < d; x++) s += u[j * d + x] * D->kappa[x];
        uk[j] = s;
    }
    for (int64_t j = S; j <= N - 1 - T; j++) ubarN_kappa += uk[j];
    ubarN_kappa /= nlast;
    // s_m: r_m alpha by a rotation recurrence, re-anchored every 256 offsets with exact sincos.
#pragma omp parallel for schedule(static)
    for (int64_t m0 = 0; m0 < N; m0 += 256) {
        int64_t m1 = m0 + 256 < N ? m0 + 256 : N;
        double acc[256] = {0};
        for (int x = 0; x < d / 2; x++) {
            double sn, cs, ds, dc;
            sincos((double)m0 * inv_freq[x], &sn, &cs);
            sincos(inv_freq[x], &ds, &dc);
            for (int64_t m = m0; m < m1; m++) {
                acc[m - m0] += D->alpha[x] * cs + D->alpha[x + d / 2] * sn;
                double ncs = cs * dc - sn * ds;
                sn = sn * dc + cs * ds;
                cs = ncs;
            }
        }
        for (int64_t m = m0; m < m1; m++) D->s[m] = (float)(acc[m - m0] - rbarN_alpha);
    }
    for (int64_t j = 0; j < N; j++) D->v[j] = (float)(uk[j] - ubarN_kappa);
    // delta_i = mean of s over offsets T .. i - S; eps_i = mean of v over keys S .. i - T.
    double *ps = xmalloc(sizeof(double) * (N + 1)), *pv = xmalloc(sizeof(double) * (N + 1));
    ps[0] = pv[0] = 0;
    for (int64_t m = 0; m < N; m++) ps[m + 1] = ps[m] + (double)D->s[m], pv[m + 1] = pv[m] + (uk[m] - ubarN_kappa);
    for (int64_t i = 0; i < N; i++) {
        int64_t n = decomp_n_interior(i, S, T);
        if (n < 1) {
            D->h[i] = (float)(-D->nu[i]);
            continue;
        }
        double delta = (ps[i - S + 1] - ps[T]) / n, epsi = (pv[i - T + 1] - pv[S]) / n;
        double a = D->log_lambda[i], bterm = log((double)n) + D->sigma2[i] / 2 - D->zeta;
        double hi = a > bterm ? a : bterm, lo = a > bterm ? bterm : a;
        D->nu[i] = hi + log1p(exp(lo - hi));
        D->h[i] = (float)(-delta - epsi - D->nu[i]);
    }
    free(ps), free(pv), free(uk), free(u);
    return 0;
}
