// gpu_bench (make gpu-bench): the GPU exact pass against PyTorch's scaled_dot_product_attention
// forward (causal, bf16; flash backend, and cuDNN where available) on the same Q/K/V, measured in the
// same run. Not a test.
//
// One head at N = 8K, 32K, 128K, 1M with d = 128, and d = 64 at 32K. FLOP count (as make bench):
// N^2 d per QK^T pass over the causal half; the exact pass makes two passes, 2 N^2 d, and SDPA's
// forward (QK^T and PV) the same 2 N^2 d. Decomposition and mask on the GPU (cuda/decomp.cu) as a
// percentage of SDPA flash time, with the host's (src/decomp.c, src/mask.c) up to 128K for reference.
// XAttention's scores and the output error (O and one mask) per size, for the record. Then
// `analyze --device gpu` end to end on a 32-head layer at 32K (as shipped, one host worker, no
// compared methods), and with --e2e-long on 8 heads at 128K with values.
//
//   build/gpu_bench [--sizes 8192,32768] [--no-e2e] [--e2e-long] [--exact-only] [--no-sdpa] [--out DIR]
// --exact-only: the exact pass and SDPA alone (A/B runs of cuda/exact.cu; the other columns are 0);
// --no-sdpa: without SDPA (a later run in the same call has it).
// Q/K/V: seeded Gaussian rows (z = c q.k with standard deviation ~2, a sparse-ish head), written as
// float16 to DIR (default /tmp) for bench/sdpa_bench.py.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_core.h"
#include "analyze.h"
#include "methods.h"
#include "decomp.h"
#include "exact.h"
#include "gpu.h"
#include "mask.h"
#include "synth.h"

typedef struct {
    int64_t N;
    int d;
    double exact_ms, pass1_ms, pass2_ms, decomp_ms, mask_ms, host_ms;
    double flash_ms, cudnn_ms;
} bench_row;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *x, int n) {
    qsort(x, n, sizeof(double), cmp_d);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// xorshift64* and Box-Muller: fixed seed, the same rows every run.
static double gauss(uint64_t *s) {
    double u[2];
    for (int x = 0; x < 2; x++) {
        *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
        u[x] = ((*s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
    }
    return sqrt(-2 * log(u[0] + 1e-300)) * cos(2 * M_PI * u[1]);
}

static void write_f16(const char *path, const float *x, int64_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    _Float16 *h = malloc(sizeof(_Float16) * n);
    for (int64_t i = 0; i < n; i++) h[i] = (_Float16)x[i];
    CHECK(fwrite(h, sizeof(_Float16), n, f) == (size_t)n);
    fclose(f);
    free(h);
}

static int exact_only, no_sdpa;

static void bench_one(bench_row *r, const char *dir) {
    const int64_t N = r->N;
    const int d = r->d;
    float *q = malloc(sizeof(float) * N * d), *k = malloc(sizeof(float) * N * d), *v = malloc(sizeof(float) * N * d);
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)N ^ ((uint64_t)d << 40);
    const double sd = sqrt(2.0);  // var z = c^2 d sd^4 = 4
    // float16 values, as a float16 dump (`skel dump`'s default) holds them: SDPA reads them from the
    // .f16 files and the exact pass converts to float16 anyway, so every timed kernel sees the same head
    for (int64_t x = 0; x < N * d; x++)
        q[x] = (float)(_Float16)(sd * gauss(&s)), k[x] = (float)(_Float16)(sd * gauss(&s)), v[x] = (float)(_Float16)gauss(&s);
    char path[512];
    snprintf(path, sizeof path, "%s/bench_q_%lld_%d.f16", dir, (long long)N, d);
    write_f16(path, q, N * d);
    snprintf(path, sizeof path, "%s/bench_k_%lld_%d.f16", dir, (long long)N, d);
    write_f16(path, k, N * d);
    snprintf(path, sizeof path, "%s/bench_v_%lld_%d.f16", dir, (long long)N, d);
    write_f16(path, v, N * d);

    skel_err e;
    gpu_exact *G;
    if (gpu_exact_init(&G, N, d, 64, 1024, 0.8, &e)) {
        fprintf(stderr, "gpu_bench: N = %lld: %s\n", (long long)N, e.msg);
        exit(1);
    }
    const int reps = exact_only ? 11 : (N >= (1 << 20) ? 3 : (N >= (1 << 17) ? 5 : 10));
    double tt[16], t1[16], t2[16];
    gpu_exact_times tm;
    CHECK(!gpu_exact_compute(G, NULL, q, k, 1, &tm, &e));  // warm-up
    for (int x = 0; x < reps; x++) {
        CHECK(!gpu_exact_compute(G, NULL, q, k, 0, &tm, &e));
        t1[x] = tm.pass1_ms, t2[x] = tm.pass2_ms, tt[x] = tm.pass1_ms + tm.pass2_ms + tm.finish_ms;
    }
    r->exact_ms = median(tt, reps), r->pass1_ms = median(t1, reps), r->pass2_ms = median(t2, reps);
    // one full head with the results copied back: the sparsities say what the head looks like
    exact_stats st;
    exact_stats_init(&st, N, d, 64, 1024, 0.8);
    CHECK(!gpu_exact_compute(G, &st, q, k, 0, &tm, &e));
    printf("  N=%lld d=%d: exact sparsity %.4f, threshold %.4f, block %.4f (download %.1f ms)\n", (long long)N, d,
           st.exact_sparsity, st.threshold_sparsity, st.block_sparsity, tm.download_ms);
    if (exact_only) {
        gpu_exact_free(G);
        exact_stats_free(&st);
        free(q), free(k), free(v);
        return;
    }
    {  // XAttention's block scores (the compared methods' quadratic step), wall time with the download
        methods_params xp;
        methods_params_default(&xp);
        gpu_methods *GM;
        CHECK(!gpu_methods_init(&GM, N, d, &xp, &e));
        const int64_t nbx = xattention_blocks(N, &xp);
        double *sc = malloc(sizeof(double) * nbx * nbx), tx[16];
        CHECK(!gpu_xattention_scores(GM, G, sc, &e));
        for (int x = 0; x < 3; x++) {
            double a = skel_now();
            CHECK(!gpu_xattention_scores(GM, G, sc, &e));
            tx[x] = 1e3 * (skel_now() - a);
        }
        printf("  N=%lld d=%d: XAttention scores on the GPU %.2f ms (wall, download included)\n", (long long)N, d, median(tx, 3));
        free(sc);
        gpu_methods_free(GM);
    }
    gpu_exact_free(G);

    // decomposition and mask (positions 0..N-1, theta 5e5, "half" layout): on the GPU (device events,
    // median; the host's 2d x 2d solve included, the upload not), and on the host up to 128K for reference
    double *inv_freq = malloc(sizeof(double) * d / 2);
    int32_t *pos = malloc(sizeof(int32_t) * N);
    for (int x = 0; x < d / 2; x++) inv_freq[x] = pow(5e5, -2.0 * x / d);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
    decomp dc;
    decomp_params dp = {.S = 64, .T = 64, .M = 0, .ridge = 1e-3, .seed = 1};
    decomp_init(&dc, N, d, &dp);
    const int64_t nb = st.nb;
    uint8_t *mask = malloc((size_t)(nb * nb));
    mask_params mp = {.B = 64, .S = 64, .T = 64, .eps = 0.8, .budget = 0};
    gpu_decomp *GD;
    if (gpu_decomp_init(&GD, N, d, &dp, 64, &e)) {
        fprintf(stderr, "gpu_bench: N = %lld: %s\n", (long long)N, e.msg);
        exit(1);
    }
    gpu_decomp_times dt;
    double pbs, td[16], tk[16];
    // qk_f16 = 1: the queries and keys are float16 values (as the dump's)
    CHECK(!gpu_decomp_compute(GD, &dc, q, k, 1, 1, inv_freq, pos, ROPE_HALF, &mp, mask, &pbs, &dt, &e));  // warm-up
    for (int x = 0; x < reps; x++) {
        CHECK(!gpu_decomp_compute(GD, &dc, q, k, 1, 1, inv_freq, pos, ROPE_HALF, &mp, mask, &pbs, &dt, &e));
        td[x] = dt.decomp_ms, tk[x] = dt.mask_ms;
    }
    r->decomp_ms = median(td, reps), r->mask_ms = median(tk, reps);
    gpu_decomp_free(GD);
    printf("  N=%lld d=%d: gpu decomposition %.3f ms, mask %.3f ms (upload %.1f ms), fit R^2 %.4f, predicted block sparsity %.4f\n",
           (long long)N, d, r->decomp_ms, r->mask_ms, dt.upload_ms, dc.fit_r2, pbs);
    r->host_ms = NAN;
    if (N <= 131072) {
        double a = skel_now();
        CHECK(!decomp_compute(&dc, q, k, inv_freq, pos, ROPE_HALF, &e));
        mask_skeleton(mask, dc.s, dc.v, dc.h, N, &mp);
        r->host_ms = 1e3 * (skel_now() - a);
    }
    {  // the output error: O, then the skeleton mask against it (wall: q upload, mask upload, both passes)
        gpu_output *GO;
        CHECK(!gpu_output_init(&GO, N, d, 64, &e));
        double err, to[16], dens = 0;
        const uint8_t *mk[1] = {mask};
        for (int64_t I = 0; I < nb; I++)
            for (int64_t J = 0; J <= I; J++) dens += mask[I * nb + J];
        dens /= (double)nb * (nb + 1) / 2;
        CHECK(!gpu_output_error(GO, q, k, v, 1, st.lse, mk, 1, &err, &e));
        for (int x = 0; x < 3; x++) {
            double a = skel_now();
            CHECK(!gpu_output_error(GO, q, k, v, 0, st.lse, mk, 1, &err, &e));
            to[x] = 1e3 * (skel_now() - a);
        }
        printf("  N=%lld d=%d: output error on the GPU: O and one mask (density %.3f, error %.4f) in %.2f ms (wall)\n",
               (long long)N, d, dens, err, median(to, 3));
        gpu_output_free(GO);
    }
    free(mask), free(inv_freq), free(pos);
    decomp_free(&dc);
    exact_stats_free(&st);
    free(q), free(k), free(v);
}

// analyze --device gpu end to end on a synthetic float16 layer of hq query heads (hkv key heads):
// the pipeline as shipped, then (nruns > 1) with one host worker and without the compared methods.
static void e2e_layer(int64_t N, int hq, int hkv, int values, int nruns) {
    const char *dump_p = "/tmp/gpu_bench_layer.h5", *res_p = "/tmp/gpu_bench_layer_results.h5";
    synth_params sp = {.N = N, .layers = 1, .q_heads = hq, .kv_heads = hkv, .d = 128, .theta = 5e5, .seed = 1, .f16 = 1,
                       .values = values};
    skel_err e;
    char line[4096];
    double a = skel_now();
    CHECK(!synth_write(dump_p, &sp, &e));
    double b = skel_now();
    const struct {
        const char *what;
        int workers, methods, gpu_threads;
    } runs[4] = {{"default workers", 0, 1, 0}, {"1 host worker", 1, 1, 0}, {"--no-methods", 0, 0, 0},
                 {"--gpu-threads 2", 0, 1, 2}};
    for (int r = 0; r < nruns; r++) {
        analyze_opts o;
        analyze_opts_default(&o);
        o.quiet = 1;
        o.device = ANALYZE_DEVICE_GPU;
        o.workers = runs[r].workers;
        o.methods = runs[r].methods;
        o.gpu_threads = runs[r].gpu_threads;
        double tt[5];
        o.stage_times = tt;
        double c0 = skel_now();
        if (analyze_run(dump_p, res_p, &o, &e)) {
            printf("gpu_bench: analyze: %s\n", e.msg);
            exit(1);
        }
        double c = skel_now();
        double tex = 0, tdc = 0, tmk = 0;
        FILE *f = fopen("/tmp/gpu_bench_layer_results.csv", "r");
        CHECK(f);
        CHECK(fgets(line, sizeof line, f));
        while (fgets(line, sizeof line, f)) {
            double v[19];
            char *s = line;
            for (int x = 0; x < 19; x++) v[x] = strtod(s, &s), s++;
            tex += v[16], tdc += v[17], tmk += v[18];
        }
        fclose(f);
        printf("\nanalyze --device gpu (%s), %d heads (%d key heads) x %lld tokens, d = 128%s: %.2f s end to end "
               "(exact incl. transfers %.2f s, decomposition %.2f s, mask %.2f s); stage totals, overlapping: "
               "reading %.2f s, device %.2f s, host stage %.2f s, writing %.2f s; synth dump written in %.1f s\n",
               runs[r].what, hq, hkv, (long long)N, values ? ", with values (output errors)" : "", c - c0, tex / 1e3,
               tdc / 1e3, tmk / 1e3, tt[1], tt[2], tt[3], tt[4], b - a);
    }
    unlink(dump_p), unlink(res_p), unlink("/tmp/gpu_bench_layer_results.csv"),
        unlink("/tmp/gpu_bench_layer_results_methods.csv");
}

int main(int argc, char **argv) {
    blas_core_fix(argv);  // the end-to-end runs' host stage on OpenBLAS kernels for this CPU, as skel's
    int64_t sizes[8] = {8192, 32768, 131072, 1048576};
    int dims[8] = {128, 128, 128, 128}, nsizes = 4, e2e = 1, e2e_long = 0;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-e2e")) e2e = 0;
        else if (!strcmp(argv[i], "--exact-only")) exact_only = 1, e2e = 0;
        else if (!strcmp(argv[i], "--no-sdpa")) no_sdpa = 1;
        else if (!strcmp(argv[i], "--e2e-long")) e2e_long = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *p = argv[++i]; *p && nsizes < 8; p += *p == ',') sizes[nsizes] = strtoll(p, &p, 10), dims[nsizes++] = 128;
        } else {
            fprintf(stderr, "usage: gpu_bench [--sizes N,N,...] [--no-e2e] [--e2e-long] [--exact-only] [--no-sdpa] [--out DIR]\n");
            return 2;
        }
    }
    if (nsizes == 4) sizes[4] = 32768, dims[4] = 64, nsizes = 5;  // the default set adds d = 64 at 32K
    char name[256];
    skel_err e;
    if (!gpu_probe(name, sizeof name, &e)) {
        printf("gpu_bench: SKIPPED: %s\n", e.msg);
        return 77;
    }
    printf("gpu_bench on %s, %d host threads\n", name, omp_get_max_threads());
    bench_row rows[8];
    for (int x = 0; x < nsizes; x++) {
        memset(&rows[x], 0, sizeof rows[x]);
        rows[x].N = sizes[x], rows[x].d = dims[x];
        bench_one(&rows[x], dir);
    }
    // PyTorch SDPA on the same rows, one process for all sizes
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "python3 bench/sdpa_bench.py %s", dir);
    for (int x = 0; x < nsizes; x++) n += snprintf(cmd + n, sizeof cmd - n, " %lld:%d", (long long)rows[x].N, rows[x].d);
    fflush(stdout);
    FILE *p = no_sdpa ? NULL : popen(cmd, "r");
    CHECK(p || no_sdpa);
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        long long N;
        int d;
        double fl, cu;
        if (sscanf(line, "sdpa %lld %d %lf %lf", &N, &d, &fl, &cu) == 4) {
            for (int x = 0; x < nsizes; x++)
                if (rows[x].N == N && rows[x].d == d) rows[x].flash_ms = fl, rows[x].cudnn_ms = cu;
        } else {
            fputs(line, stdout);
        }
    }
    if (p) pclose(p);

    printf("\n%8s %4s | %10s %8s %8s %8s | %10s %8s %10s | %8s | %10s %10s %8s | %10s\n", "N", "d", "exact ms", "TFLOP/s",
           "pass1", "pass2", "flash ms", "TFLOP/s", "cudnn ms", "x flash", "decomp ms", "mask ms", "% flash", "host ms");
    for (int x = 0; x < nsizes; x++) {
        const bench_row *r = &rows[x];
        const double fl = 2.0 * (double)r->N * r->N * r->d;  // two causal QK^T passes, or QK^T + PV
        printf("%8lld %4d | %10.3f %8.1f %8.3f %8.3f | %10.3f %8.1f %10.3f | %8.2f | %10.3f %10.3f %8.2f | %10.1f\n",
               (long long)r->N, r->d, r->exact_ms, fl / r->exact_ms * 1e-9, r->pass1_ms, r->pass2_ms, r->flash_ms,
               r->flash_ms > 0 ? fl / r->flash_ms * 1e-9 : NAN, r->cudnn_ms, r->flash_ms > 0 ? r->exact_ms / r->flash_ms : NAN,
               r->decomp_ms, r->mask_ms, r->flash_ms > 0 ? 100 * (r->decomp_ms + r->mask_ms) / r->flash_ms : NAN, r->host_ms);
    }
    fflush(stdout);

    if (e2e) e2e_layer(32768, 32, 8, 0, 4);
    if (e2e_long) e2e_layer(131072, 8, 2, 1, 1);
    return 0;
}
