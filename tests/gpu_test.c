// gpu_test: every GPU output against the CPU reference (src/exact.c) on synthetic dumps with planted
// structure: N in {1000, 4096, 16384}, d in {64, 128}, float16 and float32 dumps, a GQA layout
// (4 query heads on 2 key heads; heads 0 and 1 share keys, so the GPU reuses them), block sizes and
// pooled-image paths of both kinds. Also: a sort-based exact sparsity in double precision, the
// masks, the decomposition and the skeleton mask (cuda/decomp.cu against src/decomp.c and src/mask.c),
// the out-of-memory message, and `analyze --device gpu` end to end.
//
//   build/gpu_test            the full set (a minute on the GPU machine)
//   build/gpu_test --quick    N <= 4096 only (for compute-sanitizer)
// Exits 0 when all pass, 1 on a failure, 77 when no GPU is usable (skipped).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "decomp.h"
#include "dump.h"
#include "exact.h"
#include "gpu.h"
#include "mask.h"
#include "methods.h"
#include "synth.h"

// ---------------------------------------------------------------------------- tolerances
// The GPU multiplies float16 copies of q and k (fp32 accumulate). A float16 dump is exact in
// float16, so z differs from the CPU's sgemm only by float32 accumulation order (~1e-6 relative);
// a float32 dump is rounded to float16 (relative 2^-11 per element), which moves z_ij by at most
// Z_ROUND * c |q_i| |k_j| (both operands rounded). A = exp(z - lse) then moves by a relative
// exp(2 dz) - 1, and so do block sums and maxima of A.
#define Z_ROUND (2.0 * 0x1p-11)
#define F32_ATOL 2e-5       // float32 arithmetic on z ~ 20 in base-2 units and the SFU's ex2/lg2 (2^-22)
// The tensor cores sum q . k's d products in float32 (truncating): ~1e-6 of |z| where the products
// do not cancel (8.7e-7 measured on a head whose products are all >= 0, z ~ 29); as lse's rtol.
#define Z_RTOL 1e-6
#define MASS_ATOL 1e-6      // block sums of float32 terms: a few ulps of the block's mass (<= 64)
#define MASS_RTOL_F16 1e-4  // f16 dumps: float32 sums in another order plus ex2.approx (2^-22)
// Sparsities: the requirement, 0.1 percentage points of the CPU; the sort-based value (double
// precision, exact) within the SPEC's 0.2 points.
#define SPARSITY_PP 1e-3
#define SPARSITY_TRUTH_PP 2e-3
// Masks: the oracle mask made from the GPU's block mass agrees with the CPU's on >= 99.9% of blocks.
#define MASK_AGREE 0.999
// z histogram: elements within dz of a bin edge change bins; a normalised L1 distance.
#define ZHIST_L1_F16 1e-4
// z moments: relative (mean, var) and absolute (skew, excess kurtosis).
#define MOM_RTOL_F16 1e-5
#define SHAPE_ATOL_F16 1e-4

// Decomposition (SPEC section 3): the GPU forms the in-chunk and Lambda-shape products with float32
// GEMMs and the prefix Grams in float32 (scanned in double) where the CPU uses double GEMMs; z_ij
// and the row moments then differ by float32 rounding of d-term dot products (~1e-6 relative of
// |z| ~ 10).
#define DEC_ATOL 1e-4       // mu, log Lambda: a few float32 ulps of z ~ 10-30
#define DEC_RTOL 1e-5
#define SIG_RTOL 1e-4       // sigma^2 = E z^2 - mu^2 loses digits to the cancellation when |mu| >> sigma
// s, v, h come out of the ridge solve, which amplifies the float32-order differences of its targets
// (~1e-7 relative) by its condition number; measured on the H100: at most 1e-5 on these heads.
#define SVH_ATOL 2e-4
#define SVH_RTOL 1e-4
// XAttention's block scores (sums of at most per^2 = 256 softmax probabilities): float16 dumps give
// the GPU the same inputs, so only the GEMM's summation order (float32, S d = 1024 or 512 terms,
// relative ~1e-6 of z) and double sums in another order differ; float32 dumps are rounded to
// float16 on the GPU (2^-11 relative per input), which moves z by ~1e-3 and a probability by as much.
#define XA_ATOL 1e-6
#define XA_RTOL_F16 1e-4
#define XA_RTOL_F32 2e-2
#define FIT_ATOL 1e-3
// Output error: the GPU rounds each A_ij to float16 (2^-11 relative) before P V, in the same way for
// O and for O', so the kept part cancels as on the CPU; what differs is rounding noise of ~1e-4 of
// ||O|| spread over d and the rows, small beside the errors measured (1e-2 .. 1).
#define OUT_ATOL 1e-3
#define OUT_RTOL 2e-2       // R^2 and RMSE of the held-out sample

static int failures = 0, checks = 0;

// |got - ref| <= atol_i + rtol |ref| for every element (atol per element when atolv is not NULL); NaN
// or a one-sided Inf fails. Prints the worst element (by excess over its tolerance) either way.
static void check_close(const char *what, const float *got, const float *ref, int64_t n, double atol,
                        const double *atolv, double rtol) {
    int64_t worst = -1;
    double worst_excess = -INFINITY, max_err = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        double tol = (atolv ? atolv[i] : atol) + rtol * fabs(r), err = fabs(g - r);
        double excess = (isnan(g) || isnan(r) || isinf(g) != isinf(r)) ? INFINITY : err - tol;
        if (err > max_err && !isnan(err)) max_err = err;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    checks++;
    int bad = worst >= 0 && worst_excess > 0;
    failures += bad;
    printf("    %-6s %-12s max|err| %.3g  worst #%lld got %.7g ref %.7g (tol %.3g)\n", bad ? "FAIL" : "ok", what, max_err,
           (long long)worst, worst >= 0 ? got[worst] : 0., worst >= 0 ? ref[worst] : 0.,
           worst >= 0 ? (atolv ? atolv[worst] : atol) + rtol * fabs(ref[worst]) : 0.);
}

static void check_near(const char *what, double got, double ref, double tol) {
    int bad = !(fabs(got - ref) <= tol);
    checks++;
    failures += bad;
    printf("    %-6s %-12s got %.7g ref %.7g |diff| %.3g (tol %.3g)\n", bad ? "FAIL" : "ok", what, got, ref, fabs(got - ref), tol);
}

// Sort-based exact sparsity (SPEC eq. 1) in double precision: the truth both methods approximate.
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double sparsity_by_sort(const float *q, const float *k, int64_t N, int d, double eps) {
    const double c = 1 / sqrt((double)d);
    int64_t dropped = 0;
#pragma omp parallel reduction(+ : dropped)
    {
        double *row = malloc(sizeof(double) * N);
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < N; i++) {
            double mx = -INFINITY, l = 0;
            for (int64_t j = 0; j <= i; j++) {
                double s = 0;
                for (int x = 0; x < d; x++) s += (double)q[i * d + x] * k[j * d + x];
                row[j] = c * s;
                mx = row[j] > mx ? row[j] : mx;
            }
            for (int64_t j = 0; j <= i; j++) l += exp(row[j] - mx);
            for (int64_t j = 0; j <= i; j++) row[j] = exp(row[j] - mx) / l;
            qsort(row, i + 1, sizeof(double), cmp_d);
            double cum = 0;
            for (int64_t j = 0; j <= i && cum + row[j] < eps; j++) cum += row[j], dropped++;
        }
        free(row);
    }
    return dropped / ((double)N * (N + 1) / 2);
}

static double norm(const float *x, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

// One head: CPU and GPU exact statistics, the masks, and the sort-based truth.
static void check_head(gpu_exact *G, const float *q, const float *k, int k_changed, int64_t N, int d, int B,
                       int image, int f16, int with_truth) {
    const double eps = 0.8, c = 1 / sqrt((double)d);
    exact_stats cpu, gpu;
    exact_stats_init(&cpu, N, d, B, image, eps);
    exact_stats_init(&gpu, N, d, B, image, eps);
    double t0 = skel_now();
    exact_compute(&cpu, q, k, NULL, NULL, 0);
    double t1 = skel_now();
    gpu_exact_times tm;
    skel_err e;
    if (gpu_exact_compute(G, &gpu, q, k, k_changed, &tm, &e)) {
        printf("    FAIL   gpu_exact_compute: %s\n", e.msg);
        failures++;
        goto out;
    }
    printf("    (cpu %.1f ms; gpu pass 1 %.3f ms, pass 2 %.3f ms, finish %.3f ms)\n", 1e3 * (t1 - t0), tm.pass1_ms,
           tm.pass2_ms, tm.finish_ms);
    const int64_t nb = cpu.nb, P = cpu.P;
    // the largest |dz| float16 rounding can cause, per row and overall
    double kmax = 0, dzmax = 0;
    for (int64_t j = 0; j < N; j++) kmax = fmax(kmax, norm(k + j * d, d));
    double *lse_atol = malloc(sizeof(double) * N);
    for (int64_t i = 0; i < N; i++) {
        double dz = f16 ? 0 : Z_ROUND * c * norm(q + i * d, d) * kmax;
        lse_atol[i] = F32_ATOL + dz;
        dzmax = fmax(dzmax, dz);
    }
    const double a_rtol = f16 ? MASS_RTOL_F16 : expm1(2 * dzmax) + MASS_RTOL_F16;
    check_close("lse", gpu.lse, cpu.lse, N, 0, lse_atol, Z_RTOL);
    check_close("block_mass", gpu.block_mass, cpu.block_mass, nb * nb, MASS_ATOL, NULL, a_rtol);
    check_close("block_max", gpu.block_max, cpu.block_max, nb * nb, MASS_ATOL, NULL, a_rtol);
    check_close("image_max", gpu.image_max, cpu.image_max, P * P, MASS_ATOL, NULL, a_rtol);
    check_close("image_mean", gpu.image_mean, cpu.image_mean, P * P, MASS_ATOL, NULL, a_rtol);
    check_near("thr_sparsity", gpu.threshold_sparsity, cpu.threshold_sparsity, SPARSITY_PP);
    check_near("blk_sparsity", gpu.block_sparsity, cpu.block_sparsity, SPARSITY_PP);
    check_near("exact_spars", gpu.exact_sparsity, cpu.exact_sparsity, SPARSITY_PP);
    if (with_truth) {
        double truth = sparsity_by_sort(q, k, N, d, eps);
        check_near("exact~sort", gpu.exact_sparsity, truth, SPARSITY_TRUTH_PP);
        printf("           (cpu - sort = %+.5f, gpu - sort = %+.5f)\n", cpu.exact_sparsity - truth, gpu.exact_sparsity - truth);
    }
    // z range, moments and histogram. For float32 dumps everything moves with dz: the range ends by
    // up to dzmax, the moments by a relative ~2 dzmax / |z|, bins by dzmax / (bin width).
    const double binw = (cpu.zhi - cpu.zlo) / EXACT_ZHIST_BINS;
    check_near("zlo", gpu.zlo, cpu.zlo, F32_ATOL + dzmax + Z_RTOL * fabs(cpu.zlo));
    check_near("zhi", gpu.zhi, cpu.zhi, F32_ATOL + dzmax + Z_RTOL * fabs(cpu.zhi));
    const double mom_rtol = f16 ? MOM_RTOL_F16 : 2 * dzmax / (fabs(cpu.zmean) + sqrt(cpu.zvar)) + MOM_RTOL_F16;
    check_near("zmean", gpu.zmean, cpu.zmean, mom_rtol * (fabs(cpu.zmean) + sqrt(cpu.zvar)));
    check_near("zvar", gpu.zvar, cpu.zvar, 2 * mom_rtol * cpu.zvar);
    check_near("zskew", gpu.zskew, cpu.zskew, f16 ? SHAPE_ATOL_F16 : 10 * mom_rtol);
    check_near("zkurt", gpu.zkurt, cpu.zkurt, f16 ? SHAPE_ATOL_F16 : 20 * mom_rtol);
    double l1 = 0, tot = 0;
    for (int b = 0; b < EXACT_ZHIST_BINS; b++) l1 += fabs(gpu.zhist[b] - cpu.zhist[b]), tot += cpu.zhist[b];
    check_near("zhist_L1", l1 / tot, 0, f16 ? ZHIST_L1_F16 : ZHIST_L1_F16 + 4 * dzmax / binw);
    check_near("zhist_total", tot, (double)N * (N + 1) / 2, 0.5);
    // masks from the block mass: the oracle at the CPU mask's recall, and the recall of a fixed mask
    {
        uint8_t *mc = malloc(nb * nb), *mg = malloc(nb * nb), *fixed = malloc(nb * nb);
        for (int64_t I = 0; I < nb; I++)
            for (int64_t J = 0; J < nb; J++) fixed[I * nb + J] = J <= I && (J < 2 || I - J < 4 || (I * 7 + J * 3) % 5 == 0);
        mask_metrics fc, fg;
        mask_evaluate(fixed, cpu.block_mass, N, B, &fc);
        mask_evaluate(fixed, gpu.block_mass, N, B, &fg);
        check_near("mask_recall", fg.recall, fc.recall, f16 ? 1e-5 : a_rtol);
        mask_oracle(mc, cpu.block_mass, N, B, 0.95);
        mask_oracle(mg, gpu.block_mass, N, B, 0.95);
        int64_t agree = 0;
        for (int64_t x = 0; x < nb * nb; x++) agree += mc[x] == mg[x];
        double frac = (double)agree / (nb * nb);
        checks++;
        failures += frac < MASK_AGREE;
        printf("    %-6s %-12s %.5f of %lld blocks agree (need %.3f)\n", frac < MASK_AGREE ? "FAIL" : "ok", "oracle_mask", frac,
               (long long)(nb * nb), MASK_AGREE);
        free(mc), free(mg), free(fixed);
    }
    free(lse_atol);
out:
    exact_stats_free(&cpu);
    exact_stats_free(&gpu);
}

static void check_close_d(const char *what, const double *got, const double *ref, int64_t n, double atol, double rtol) {
    float *g = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) g[i] = (float)got[i], r[i] = (float)ref[i];
    check_close(what, g, r, n, atol, NULL, rtol);
    free(g), free(r);
}

// The decomposition and the threshold mask, GPU against decomp_compute and mask_skeleton.
static void check_decomp(gpu_decomp *GD, const dump *D, const float *q, const float *k, int k_changed, int64_t N,
                         int d, int B) {
    decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
    decomp cpu, gpu;
    decomp_init(&cpu, N, d, &dp);
    decomp_init(&gpu, N, d, &dp);
    skel_err e;
    double t0 = skel_now();
    CHECK(!decomp_compute(&cpu, q, k, D->inv_freq, D->positions, D->meta.layout, &e));
    const int64_t nb = (N + B - 1) / B;
    uint8_t *mc = malloc(nb * nb), *mg = malloc(nb * nb);
    mask_params mp = {.B = B, .S = 64, .T = 64, .eps = 0.8, .budget = 0};
    const double pbs_c = mask_skeleton(mc, cpu.s, cpu.v, cpu.h, N, &mp);
    double t1 = skel_now(), pbs_g = -1;
    gpu_decomp_times tm;
    const int qk_f16 = !strcmp(D->dtype, "f16");  // f16 dumps: rows_kernel<.., F16>, the keys unsplit
    if (gpu_decomp_compute(GD, &gpu, q, k, k_changed, qk_f16, D->inv_freq, D->positions, D->meta.layout, &mp, mg, &pbs_g, &tm, &e)) {
        printf("    FAIL   gpu_decomp_compute: %s\n", e.msg);
        failures++;
        goto out;
    }
    printf("    (decomposition + mask: cpu %.1f ms; gpu %.3f ms + mask %.3f ms, upload %.3f ms)\n", 1e3 * (t1 - t0),
           tm.decomp_ms, tm.mask_ms, tm.upload_ms);
    check_close_d("mu", gpu.mu, cpu.mu, N, DEC_ATOL, DEC_RTOL);
    check_close_d("sigma2", gpu.sigma2, cpu.sigma2, N, DEC_ATOL, SIG_RTOL);
    check_close_d("log_lambda", gpu.log_lambda, cpu.log_lambda, N, DEC_ATOL, DEC_RTOL);
    check_close_d("nu", gpu.nu, cpu.nu, N, SVH_ATOL, SVH_RTOL);
    check_close_d("alpha", gpu.alpha, cpu.alpha, d, SVH_ATOL, 10 * SVH_RTOL);
    check_close_d("kappa", gpu.kappa, cpu.kappa, d, SVH_ATOL, 10 * SVH_RTOL);
    check_close("s", gpu.s, cpu.s, N, SVH_ATOL, NULL, SVH_RTOL);
    check_close("v", gpu.v, cpu.v, N, SVH_ATOL, NULL, SVH_RTOL);
    check_close("h", gpu.h, cpu.h, N, SVH_ATOL, NULL, SVH_RTOL);
    check_near("zeta", gpu.zeta, cpu.zeta, SVH_ATOL);
    check_near("fit_r2", gpu.fit_r2, cpu.fit_r2, FIT_ATOL);
    check_near("fit_rmse", gpu.fit_rmse, cpu.fit_rmse, FIT_ATOL);
    check_near("pred_blk_sp", pbs_g, pbs_c, SPARSITY_PP);
    {
        int64_t agree = 0;
        for (int64_t x = 0; x < nb * nb; x++) agree += mc[x] == mg[x];
        double frac = (double)agree / (nb * nb);
        checks++;
        failures += frac < MASK_AGREE;
        printf("    %-6s %-12s %.5f of %lld blocks agree (need %.3f)\n", frac < MASK_AGREE ? "FAIL" : "ok", "skel_mask",
               frac, (long long)(nb * nb), MASK_AGREE);
    }
    // budget mode: the device's radix selection against mask_skeleton's quickselect on the same
    // s, v, h (the GPU's): the same kept set, block for block, and the same count as asked for
    for (int r = 0; r < 3; r++) {
        const double rho[3] = {0.05, 0.3, 0.9};
        mask_params bp = mp;
        bp.budget = rho[r];
        decomp g2;
        decomp_init(&g2, N, d, &dp);
        double pb = -1;
        if (gpu_decomp_compute(GD, &g2, q, k, 0, qk_f16, D->inv_freq, D->positions, D->meta.layout, &bp, mg, &pb, &tm, &e)) {
            printf("    FAIL   gpu_decomp_compute (budget): %s\n", e.msg);
            failures++;
            decomp_free(&g2);
            break;
        }
        mask_skeleton(mc, g2.s, g2.v, g2.h, N, &bp);
        int64_t diff = 0, kept = 0;
        for (int64_t x = 0; x < nb * nb; x++) diff += mc[x] != mg[x], kept += mg[x];
        checks++;
        failures += diff != 0;
        printf("    %-6s budget %.2f  %lld blocks differ from mask_skeleton; kept %lld of %lld causal (budget mode on the GPU: %.3f ms)\n",
               diff ? "FAIL" : "ok", rho[r], (long long)diff, (long long)kept, (long long)(nb * (nb + 1) / 2), tm.mask_ms);
        decomp_free(&g2);
    }
out:
    free(mc), free(mg);
    decomp_free(&cpu);
    decomp_free(&gpu);
}

// XAttention's scores on the GPU (from the float16 q, k the exact pass holds) against the CPU's
// xattention_scores, and the masks selected from each.
static void check_xattention(gpu_methods *GM, gpu_exact *G, const float *q, const float *k, int64_t N, int d, int B,
                             int f16) {
    methods_params mp;
    methods_params_default(&mp);
    const int64_t nbx = xattention_blocks(N, &mp), nb = (N + B - 1) / B;
    double *sc = malloc(sizeof(double) * nbx * nbx), *sg = malloc(sizeof(double) * nbx * nbx);
    skel_err e;
    checks++;
    if (gpu_xattention_scores(GM, G, sg, &e)) {
        printf("    FAIL   gpu_xattention_scores: %s\n", e.msg);
        failures++;
        free(sc), free(sg);
        return;
    }
    xattention_scores(sc, q, k, N, d, &mp);
    check_close_d("xa_score", sg, sc, nbx * nbx, XA_ATOL, f16 ? XA_RTOL_F16 : XA_RTOL_F32);
    uint8_t *mc = malloc((size_t)(nb * nb)), *mg = malloc((size_t)(nb * nb));
    xattention_select(mc, sc, N, B, &mp);
    xattention_select(mg, sg, N, B, &mp);
    int64_t same = 0, tot = 0;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) same += mc[I * nb + J] == mg[I * nb + J], tot++;
    const double agree = (double)same / (double)tot;
    checks++;
    const int bad = f16 && agree < MASK_AGREE;  // float32 dumps: reported (inputs rounded to float16)
    failures += bad;
    printf("    %-6s xa_mask      %.5f of %lld causal blocks agree%s\n", bad ? "FAIL" : "ok", agree, (long long)tot,
           f16 ? "" : " (float32 dump: reported)");
    free(sc), free(sg), free(mc), free(mg);
}

static void run_dump(int64_t N, int d, int f16, int B, int image, int with_truth) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/gpu_test_%d_%lld_%d_%d.h5", (int)getpid(), (long long)N, d, f16);
    synth_params sp = {.N = N, .layers = 1, .q_heads = 4, .kv_heads = 2, .d = d, .theta = 5e5, .seed = 7, .f16 = f16};
    skel_err e;
    if (synth_write(path, &sp, &e)) {
        printf("FAIL synth_write: %s\n", e.msg);
        failures++;
        return;
    }
    dump D;
    if (dump_open(&D, path, &e)) {
        printf("FAIL dump_open: %s\n", e.msg);
        failures++;
        return;
    }
    gpu_exact *G;
    if (gpu_exact_init(&G, N, d, B, image, 0.8, &e)) {
        printf("FAIL gpu_exact_init: %s\n", e.msg);
        failures++;
        dump_close(&D);
        return;
    }
    gpu_decomp *GD;
    decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
    if (gpu_decomp_init(&GD, N, d, &dp, B, &e)) {
        printf("FAIL gpu_decomp_init: %s\n", e.msg);
        failures++;
        gpu_exact_free(G);
        dump_close(&D);
        return;
    }
    gpu_methods *GM;
    methods_params mp;
    methods_params_default(&mp);
    if (gpu_methods_init(&GM, N, d, &mp, &e)) {
        printf("FAIL gpu_methods_init: %s\n", e.msg);
        failures++;
        GM = NULL;
    }
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d);
    const int heads[] = {0, 1, 3};  // 0 and 1 share key head 0: the second reuses the GPU's keys
    int loaded = -1;
    for (int x = 0; x < 3; x++) {
        int h = heads[x], kvh = h / 2;
        printf("  N=%lld d=%d %s B=%d image=%d head %d (kv %d)\n", (long long)N, d, f16 ? "f16" : "f32", B, image, h, kvh);
        CHECK(!dump_read_head(&D, 0, 'q', h, q, &e));
        int changed = kvh != loaded;
        if (changed) {
            CHECK(!dump_read_head(&D, 0, 'k', kvh, k, &e));
            loaded = kvh;
        }
        check_head(G, q, k, changed, N, d, B, image, f16, with_truth && x != 1);
        if (GM && x != 1) check_xattention(GM, G, q, k, N, d, B, f16);
        check_decomp(GD, &D, q, k, changed, N, d, B);
    }
    gpu_methods_free(GM);
    free(q), free(k);
    gpu_exact_free(G);
    gpu_decomp_free(GD);
    dump_close(&D);
    unlink(path);
}

// Heads made from a synthetic one that stress the z range and the moments: every component made
// non-negative (every causal product >= 0, so the z range has no negative end: pass 1's min cannot
// come from a negative product), the keys made non-positive (every product <= 0: no positive end),
// and the queries scaled by 4 (exact in float16; z spread over 4x the range, sharper rows, larger
// moments).
static void run_special_heads(int64_t N, int d) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/gpu_test_sp_%d_%lld_%d.h5", (int)getpid(), (long long)N, d);
    synth_params sp = {.N = N, .layers = 1, .q_heads = 1, .kv_heads = 1, .d = d, .theta = 5e5, .seed = 5, .f16 = 1};
    skel_err e;
    dump D;
    gpu_exact *G;
    if (synth_write(path, &sp, &e) || dump_open(&D, path, &e)) {
        printf("FAIL special heads: %s\n", e.msg);
        failures++;
        return;
    }
    if (gpu_exact_init(&G, N, d, 64, 1024, 0.8, &e)) {
        printf("FAIL gpu_exact_init: %s\n", e.msg);
        failures++;
        dump_close(&D);
        return;
    }
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d);
    CHECK(!dump_read_head(&D, 0, 'q', 0, q, &e));
    CHECK(!dump_read_head(&D, 0, 'k', 0, k, &e));
    for (int64_t x = 0; x < N * d; x++) q[x] = fabsf(q[x]), k[x] = fabsf(k[x]);
    printf("  N=%lld d=%d f16 special head: |q|, |k| (every product >= 0)\n", (long long)N, d);
    check_head(G, q, k, 1, N, d, 64, 1024, 1, 0);
    CHECK(!dump_read_head(&D, 0, 'q', 0, q, &e));
    CHECK(!dump_read_head(&D, 0, 'k', 0, k, &e));
    for (int64_t x = 0; x < N * d; x++) q[x] *= 4;
    printf("  N=%lld d=%d f16 special head: |q|, -|k| (every product <= 0)\n", (long long)N, d);
    for (int64_t x = 0; x < N * d; x++) k[x] = -k[x];
    check_head(G, q, k, 1, N, d, 64, 1024, 1, 0);
    CHECK(!dump_read_head(&D, 0, 'q', 0, q, &e));
    CHECK(!dump_read_head(&D, 0, 'k', 0, k, &e));
    printf("  N=%lld d=%d f16 special head: 4 q\n", (long long)N, d);
    check_head(G, q, k, 1, N, d, 64, 1024, 1, 0);
    free(q), free(k);
    gpu_exact_free(G);
    dump_close(&D);
    unlink(path);
}

// The output error with values on the GPU (gpu_output_error) against exact_compute's, for masks
// with known answers (every causal block: 0) and real ones (Lambda-shape, TriangleMix, a
// pseudo-random half of the blocks with the diagonal, the skeleton's).
static void check_output(int64_t N, int d, int B) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/gpu_test_out_%d_%lld_%d.h5", (int)getpid(), (long long)N, d);
    synth_params sp = {.N = N, .layers = 1, .q_heads = 2, .kv_heads = 1, .d = d, .theta = 5e5, .seed = 11, .f16 = 1, .values = 1};
    skel_err e;
    dump D;
    CHECK(!synth_write(path, &sp, &e));
    CHECK(!dump_open(&D, path, &e));
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d), *v = malloc(sizeof(float) * N * d);
    CHECK(!dump_read_head(&D, 0, 'q', 1, q, &e) && !dump_read_head(&D, 0, 'k', 0, k, &e) && !dump_read_head(&D, 0, 'v', 0, v, &e));
    const int64_t nb = (N + B - 1) / B;
    enum { NM = 5 };
    uint8_t *m[NM];
    for (int x = 0; x < NM; x++) m[x] = calloc((size_t)(nb * nb), 1);
    methods_params mp;
    methods_params_default(&mp);
    mp.lambda_window = 256;
    mp.tri_local = 256;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) {
            m[0][I * nb + J] = 1;
            m[3][I * nb + J] = J == I || ((I * 2654435761u + J * 40503u) >> 7) % 2 == 0;
        }
    method_lambda(m[1], N, B, &mp);
    method_trianglemix(m[2], N, B, &mp);
    decomp dc;
    decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
    decomp_init(&dc, N, d, &dp);
    CHECK(!decomp_compute(&dc, q, k, D.inv_freq, D.positions, D.meta.layout, &e));
    mask_params mk = {.B = B, .S = 64, .T = 64, .eps = 0.8, .budget = 0};
    mask_skeleton(m[4], dc.s, dc.v, dc.h, N, &mk);
    exact_stats st;
    exact_stats_init(&st, N, d, B, 256, 0.8);
    exact_compute(&st, q, k, v, (const uint8_t *const *)m, NM);
    gpu_output *G;
    double err[NM];
    checks++;
    if (gpu_output_init(&G, N, d, B, &e) || gpu_output_error(G, q, k, v, 1, st.lse, (const uint8_t *const *)m, NM, err, &e)) {
        printf("    FAIL   gpu_output_error: %s\n", e.msg);
        failures++;
    } else {
        const char *names[NM] = {"all causal", "lambda", "trianglemix", "half", "skeleton"};
        printf("  output error N=%lld d=%d B=%d:\n", (long long)N, d, B);
        for (int x = 0; x < NM; x++) {
            char what[64];
            snprintf(what, sizeof what, "out_err %s", names[x]);
            check_near(what, err[x], st.output_rel_error[x], OUT_ATOL + OUT_RTOL * st.output_rel_error[x]);
        }
        // the same head again with the keys and values kept on the device: the same errors, up to the
        // order of the double atomic sums over warps
        double again[NM], worst = 0;
        CHECK(!gpu_output_error(G, q, k, v, 0, st.lse, (const uint8_t *const *)m, NM, again, &e));
        for (int x = 0; x < NM; x++) worst = fmax(worst, fabs(again[x] - err[x]) / fmax(err[x], 1e-6));
        checks++;
        failures += !(worst <= 1e-9);
        printf("    %-6s out_err with k, v kept: relative difference %.2g (tol 1e-9)\n", worst <= 1e-9 ? "ok" : "FAIL", worst);
    }
    gpu_output_free(G);
    exact_stats_free(&st);
    decomp_free(&dc);
    for (int x = 0; x < NM; x++) free(m[x]);
    free(q), free(k), free(v);
    dump_close(&D);
    unlink(path);
}

// The one-line out-of-memory error: a head far larger than the card.
static void check_oom(void) {
    gpu_exact *G;
    skel_err e;
    int rc = gpu_exact_init(&G, (int64_t)1 << 23, 128, 64, 1024, 0.8, &e);  // (2^17 blocks)^2 x 8 B = 128 GiB
    int ok = rc != 0 && strstr(e.msg, "needs") && strstr(e.msg, "free");
    checks++;
    failures += !ok;
    printf("  %-6s out of memory: %s\n", ok ? "ok" : "FAIL", rc ? e.msg : "(no error)");
    if (!rc) gpu_exact_free(G);
}

// analyze --device gpu end to end against --device cpu: the report rows agree.
static void check_analyze(void) {
    const char *dump_p = "/tmp/gpu_test_analyze.h5", *rc_p = "/tmp/gpu_test_cpu.h5", *rg_p = "/tmp/gpu_test_gpu.h5";
    synth_params sp = {.N = 4096, .layers = 1, .q_heads = 4, .kv_heads = 2, .d = 128, .theta = 5e5, .seed = 9, .f16 = 1,
                       .values = 1};
    skel_err e;
    CHECK(!synth_write(dump_p, &sp, &e));
    analyze_opts o;
    analyze_opts_default(&o);
    o.quiet = 1;
    o.device = ANALYZE_DEVICE_CPU;
    int r1 = analyze_run(dump_p, rc_p, &o, &e);
    o.device = ANALYZE_DEVICE_GPU;
    o.gpu_threads = 2;  // two device threads on one GPU: the pipeline's concurrent device stages
    int r2 = r1 ? -1 : analyze_run(dump_p, rg_p, &o, &e);
    checks++;
    if (r1 || r2) {
        failures++;
        printf("  FAIL   analyze: %s\n", e.msg);
        return;
    }
    // compare the CSVs column by column (timings excepted)
    FILE *a = fopen("/tmp/gpu_test_cpu.csv", "r"), *b = fopen("/tmp/gpu_test_gpu.csv", "r");
    CHECK(a && b);
    char la[4096], lb[4096];
    int rows = 0, bad = 0;
    CHECK(fgets(la, sizeof la, a) && fgets(lb, sizeof lb, b));
    while (fgets(la, sizeof la, a) && fgets(lb, sizeof lb, b)) {
        double va[19], vb[19];
        char *pa = la, *pb = lb;
        for (int x = 0; x < 19; x++) va[x] = strtod(pa, &pa), vb[x] = strtod(pb, &pb), pa++, pb++;
        for (int x = 0; x < 16; x++)  // layer .. output_rel_error; sparsities and recalls within 0.1 points
            if (!(fabs(va[x] - vb[x]) <= (x == 15 ? OUT_ATOL + OUT_RTOL * fabs(va[x]) : SPARSITY_PP)) &&
                !(isnan(va[x]) && isnan(vb[x]))) {
                bad++;
                printf("  FAIL   analyze: row %d column %d: cpu %g gpu %g\n", rows, x, va[x], vb[x]);
            }
        rows++;
    }
    fclose(a), fclose(b);
    failures += bad || rows != 4;
    printf("  %-6s analyze --device gpu: %d report rows agree with --device cpu (exact time cpu vs gpu in the CSVs)\n",
           bad || rows != 4 ? "FAIL" : "ok", rows);
    // the methods table (XAttention's scores come from the GPU): density, compute fraction, recall
    // and worst row-block recall within 0.1 points, the output error as above
    a = fopen("/tmp/gpu_test_cpu_methods.csv", "r"), b = fopen("/tmp/gpu_test_gpu_methods.csv", "r");
    CHECK(a && b);
    int mrows = 0, mbad = 0;
    CHECK(fgets(la, sizeof la, a) && fgets(lb, sizeof lb, b));
    while (fgets(la, sizeof la, a) && fgets(lb, sizeof lb, b)) {
        char *pa = strchr(strchr(la, ',') + 1, ','), *pb = strchr(strchr(lb, ',') + 1, ',');  // after layer, head
        char *ca = strchr(pa + 1, ','), *cb = strchr(pb + 1, ',');                             // after the method
        if (ca - pa != cb - pb || strncmp(pa, pb, (size_t)(ca - pa))) {
            mbad++;
            continue;
        }
        pa = ca + 1, pb = cb + 1;
        for (int x = 0; x < 5; x++) {  // and the output error (NaN for the oracle on both)
            double va = strtod(pa, &pa), vb = strtod(pb, &pb);
            pa++, pb++;
            if (!(fabs(va - vb) <= (x == 4 ? OUT_ATOL + OUT_RTOL * fabs(va) : SPARSITY_PP)) && !(isnan(va) && isnan(vb))) {
                mbad++;
                printf("  FAIL   analyze methods row %d column %d: cpu %g gpu %g\n", mrows, x, va, vb);
            }
        }
        mrows++;
    }
    fclose(a), fclose(b);
    checks++;
    failures += mbad || mrows != 4 * 7;
    printf("  %-6s analyze --device gpu: %d methods rows agree with --device cpu\n", mbad || mrows != 28 ? "FAIL" : "ok",
           mrows);
    unlink("/tmp/gpu_test_cpu_methods.csv"), unlink("/tmp/gpu_test_gpu_methods.csv");
    unlink(dump_p), unlink(rc_p), unlink(rg_p), unlink("/tmp/gpu_test_cpu.csv"), unlink("/tmp/gpu_test_gpu.csv");
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    char name[256];
    skel_err e;
    if (!gpu_probe(name, sizeof name, &e)) {
        printf("gpu_test: SKIPPED: %s\n", e.msg);
        return 77;
    }
    printf("gpu_test on %s (%d CPU threads for the reference)%s\n", name, omp_get_max_threads(), quick ? ", quick" : "");
    const int64_t Ns[] = {1000, 4096, 16384};
    for (int a = 0; a < 3; a++) {
        if (quick && Ns[a] > 4096) continue;
        for (int d = 64; d <= 128; d *= 2)
            for (int f16 = 0; f16 <= 1; f16++) run_dump(Ns[a], d, f16, 64, 1024, Ns[a] <= 4096 || d == 128);
    }
    // other block sizes (several block columns per warp; blocks spanning CTAs) and pooled images
    // made from whole blocks (N / P a multiple of B)
    run_dump(4096, 128, 1, 32, 1024, 0);
    run_dump(4096, 64, 0, 128, 32, 0);
    run_dump(1000, 64, 0, 16, 1024, 0);  // nb = 63: the mask's rows not a multiple of mask_kernel's 4-block stores
    if (!quick) run_dump(16384, 128, 1, 64, 256, 0);
    run_special_heads(2048, 128);
    run_special_heads(1000, 64);
    check_output(1000, 64, 64);
    check_output(4096, 128, 64);
    check_output(4096, 128, 32);
    if (!quick) check_output(16384, 128, 128);
    check_oom();
    check_analyze();
    printf("gpu_test: %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}
