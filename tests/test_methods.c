// The compared methods' masks against brute force from their definitions: element-level masks
// over the full N x N grid (then "a block is kept when it holds a kept causal element"), and the
// selections recomputed in double precision.
#include <string.h>

#include "exact.h"
#include "methods.h"
#include "sweep.h"
#include "testutil.h"

// Block mask from an element mask (N, N).
static void blocks_of(uint8_t *mask, const uint8_t *el, int64_t N, int B) {
    const int64_t nb = (N + B - 1) / B;
    memset(mask, 0, nb * nb);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j <= i; j++)
            if (el[i * N + j]) mask[(i / B) * nb + j / B] = 1;
}

static void assert_masks_equal(const char *what, const uint8_t *got, const uint8_t *ref, int64_t nb) {
    for (int64_t x = 0; x < nb * nb; x++)
        if (got[x] != ref[x]) {
            fprintf(stderr, "%s: block (%lld, %lld): got %d, expected %d\n", what, (long long)(x / nb),
                    (long long)(x % nb), got[x], ref[x]);
            fail();
        }
}

static void test_lambda_and_trianglemix(void **state) {
    const int64_t N = 1500;
    const int B = 64;
    const int64_t nb = (N + B - 1) / B;
    methods_params p;
    methods_params_default(&p);
    p.lambda_window = 300;
    uint8_t *el = malloc(N * N), *ref = malloc(nb * nb), *got = malloc(nb * nb);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) el[i * N + j] = j <= i && (j < p.lambda_sinks || i - j < p.lambda_window);
    blocks_of(ref, el, N, B);
    method_lambda(got, N, B, &p);
    assert_masks_equal("lambda", got, ref, nb);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            el[i * N + j] = j <= i && (j < p.tri_sinks || i - j < p.tri_local || i >= N - p.tri_last);
    blocks_of(ref, el, N, B);
    method_trianglemix(got, N, B, &p);
    assert_masks_equal("trianglemix", got, ref, nb);
    free(el), free(ref), free(got);
}

static void test_vertical_slash(void **state) {
    const int64_t N = 1000;
    const int d = 32, B = 32;
    const int64_t nb = (N + B - 1) / B;
    ref_head h;
    make_head(&h, N, d, 31);
    methods_params p;
    methods_params_default(&p);
    p.vs_vertical = 50;
    p.vs_slash = 150;
    // reference: column and diagonal sums of the exact softmax of the last 64 rows, in double
    double *vert = calloc(N, sizeof(double)), *slash = calloc(N, sizeof(double));
    for (int64_t i = N - 64; i < N; i++)
        for (int64_t j = 0; j <= i; j++) vert[j] += h.A[i * N + j], slash[i - j] += h.A[i * N + j];
    uint8_t *colsel = calloc(N, 1), *offsel = calloc(N, 1);
    for (int64_t j = 0; j < 30; j++) colsel[j] = 1;
    for (int64_t m = 0; m < 100; m++) offsel[m] = 1;
    for (int pass = 0; pass < 2; pass++) {  // the n best beyond the always-kept ones
        double *x = pass ? slash : vert;
        uint8_t *sel = pass ? offsel : colsel;
        int64_t want = (pass ? p.vs_slash : p.vs_vertical) - (pass ? 100 : 30);
        for (int64_t t = 0; t < want; t++) {
            int64_t best = -1;
            for (int64_t j = 0; j < N; j++)
                if (!sel[j] && (best < 0 || x[j] > x[best])) best = j;
            sel[best] = 1;
        }
    }
    uint8_t *el = malloc(N * N), *ref = malloc(nb * nb), *got = malloc(nb * nb);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) el[i * N + j] = j <= i && (colsel[j] || offsel[i - j]);
    blocks_of(ref, el, N, B);
    method_vertical_slash(got, h.q, h.k, N, d, B, &p);
    assert_masks_equal("vertical-slash", got, ref, nb);
    // the defaults scale with N: the authors' 1000 / 6096 at 128K
    int64_t nv, ns;
    methods_params_default(&p);
    methods_vs_counts(&p, 131072, &nv, &ns);
    assert_int_equal(nv, 1000);
    assert_int_equal(ns, 6096);
    methods_vs_counts(&p, 4096, &nv, &ns);
    assert_int_equal(nv, 31);
    assert_int_equal(ns, 191);
    free(vert), free(slash), free(colsel), free(offsel), free(el), free(ref), free(got);
    free_head(&h);
}

static void test_xattention(void **state) {
    const int64_t N = 2048;
    const int d = 32, B = 64, S = 8, Bx = 128;
    const int64_t nb = N / B, nbx = N / Bx, ns = N / S, per = Bx / S;
    ref_head h;
    make_head(&h, N, d, 41);
    for (int64_t x = 0; x < N * d; x++) h.q[x] *= 4;  // sharper, as real heads are after the 1/S
    methods_params p;
    methods_params_default(&p);
    // reference: strided antidiagonal scores in double, softmax per strided row, block sums
    double *score = calloc(nbx * nbx, sizeof(double)), *row = malloc(sizeof(double) * ns);
    for (int64_t a = 0; a < ns; a++) {
        double mx = -INFINITY, l = 0;
        for (int64_t b = 0; b <= a; b++) {
            double s = 0;
            for (int t = 0; t < S; t++)
                for (int x = 0; x < d; x++) s += (double)h.q[(a * S + S - 1 - t) * d + x] * h.k[(b * S + t) * d + x];
            row[b] = s / (sqrt((double)d) * S);
            mx = fmax(mx, row[b]);
        }
        for (int64_t b = 0; b <= a; b++) l += exp(row[b] - mx);
        for (int64_t b = 0; b <= a; b++) score[(a / per) * nbx + b / per] += exp(row[b] - mx) / l;
    }
    uint8_t *coarse = calloc(nbx * nbx, 1), *ref = calloc(nb * nb, 1), *got = malloc(nb * nb);
    for (int64_t I = 0; I < nbx; I++) {
        double tot = 0, cum = 0;
        for (int64_t J = 0; J <= I; J++) tot += score[I * nbx + J];
        while (cum < p.xa_tau * tot) {
            int64_t best = -1;
            for (int64_t J = 0; J <= I; J++)
                if (!coarse[I * nbx + J] && (best < 0 || score[I * nbx + J] > score[I * nbx + best])) best = J;
            coarse[I * nbx + best] = 1;
            cum += score[I * nbx + best];
        }
        coarse[I * nbx] = coarse[I * nbx + I] = 1;
    }
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) ref[I * nb + J] = coarse[(I / 2) * nbx + J / 2];
    method_xattention(got, h.q, h.k, N, d, B, &p);
    // float scores may reorder two near-equal blocks at the cut: allow one coarse block (4 grid
    // blocks) of difference
    int64_t diff = 0, kept = 0;
    for (int64_t x = 0; x < nb * nb; x++) diff += got[x] != ref[x], kept += ref[x];
    fprintf(stderr, "    xattention: %lld of %lld kept blocks, %lld differ\n", (long long)kept, (long long)(nb * (nb + 1) / 2),
            (long long)diff);
    assert_true(kept > nb && kept < nb * (nb + 1) / 2);  // neither trivial nor dense
    assert_true(diff <= 4);
    free(score), free(row), free(coarse), free(ref), free(got);
    free_head(&h);
}

// FlexPrefill in both of its modes (forced by tau), against a reference written from the
// definition: block-pooled softmax estimates, cumulative coverage, lines of the last block's
// attention.
static void cover(uint8_t *sel, const double *x, int64_t n, double share) {
    double tot = 0, cum = 0;
    for (int64_t i = 0; i < n; i++) tot += x[i], sel[i] = 0;
    while (cum < share * tot) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!sel[i] && (best < 0 || x[i] > x[best])) best = i;
        sel[best] = 1, cum += x[best];
    }
}

static void test_flexprefill(void **state) {
    const int64_t N = 1000;
    const int d = 16, B = 64, Bf = 128;
    const int64_t nb = (N + B - 1) / B, nbf = (N + Bf - 1) / Bf;
    ref_head h;
    make_head(&h, N, d, 61);
    methods_params p;
    methods_params_default(&p);
    uint8_t *got = malloc(nb * nb), *ref = calloc(nb * nb, 1), *el = malloc(N * N);
    // query-aware (tau above any distance): per block row, pooled softmax to coverage gamma
    p.fp_tau = 2;
    assert_int_equal(method_flexprefill(got, h.q, h.k, N, d, B, &p), 1);
    double *qp = malloc(sizeof(double) * d), *kp = malloc(sizeof(double) * nbf * d), *sc = malloc(sizeof(double) * nbf);
    uint8_t *sel = malloc(nbf);
    for (int64_t J = 0; J < nbf; J++) {
        int64_t j1 = (J + 1) * Bf < N ? (J + 1) * Bf : N;
        for (int t = 0; t < d; t++) {
            double s = 0;
            for (int64_t j = J * Bf; j < j1; j++) s += h.k[j * d + t];
            kp[J * d + t] = s / (j1 - J * Bf);
        }
    }
    memset(el, 0, N * N);
    for (int64_t I = 0; I < nbf; I++) {
        int64_t i1 = (I + 1) * Bf < N ? (I + 1) * Bf : N;
        for (int t = 0; t < d; t++) {
            double s = 0;
            for (int64_t i = I * Bf; i < i1; i++) s += h.q[i * d + t];
            qp[t] = s / (i1 - I * Bf);
        }
        double tot = 0;
        for (int64_t J = 0; J <= I; J++) {
            double s = 0;
            for (int t = 0; t < d; t++) s += qp[t] * kp[J * d + t];
            sc[J] = exp(s / sqrt((double)d));
            tot += sc[J];
        }
        for (int64_t J = 0; J <= I; J++) sc[J] /= tot;
        cover(sel, sc, I + 1, p.fp_gamma);
        for (int64_t i = I * Bf; i < i1; i++)
            for (int64_t j = 0; j <= i; j++) el[i * N + j] = sel[j / Bf];
    }
    for (int64_t i = 0; i < N; i++) el[i * N] = 1, el[i * N + i] = 1;  // first column, diagonal
    blocks_of(ref, el, N, B);
    assert_masks_equal("flexprefill, query-aware", got, ref, nb);
    // vertical-slash mode (tau 0): lines of the last 128 queries' attention, to coverage gamma
    p.fp_tau = 0;
    assert_int_equal(method_flexprefill(got, h.q, h.k, N, d, B, &p), 0);
    double *vert = calloc(N, sizeof(double)), *slash = calloc(N, sizeof(double));
    for (int64_t i = N - Bf; i < N; i++)
        for (int64_t j = 0; j <= i; j++) vert[j] += h.A[i * N + j], slash[i - j] += h.A[i * N + j];
    uint8_t *cols = malloc(N), *offs = malloc(N);
    cover(cols, vert, N, p.fp_gamma);
    cover(offs, slash, N, p.fp_gamma);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) el[i * N + j] = j <= i && (cols[j] || offs[i - j] || j == 0 || i == j);
    blocks_of(ref, el, N, B);
    for (int64_t I = 0; I < nb; I++) ref[I * nb + I] = 1;
    assert_masks_equal("flexprefill, vertical-slash", got, ref, nb);
    free(got), free(ref), free(el), free(qp), free(kp), free(sc), free(sel), free(vert), free(slash), free(cols), free(offs);
    free_head(&h);
}

// The global oracle is optimal for mean recall at a block count: at every sweep point of every
// method, the heaviest blocks of the same count keep at least the method's recall.
// methods_lines computes vertical-slash's and FlexPrefill's lines in one pass over the larger row
// set: each against column and diagonal sums of the double-precision attention of its own last rows
// (either set the larger), the selections from them equal to the methods alone, and a sweep given
// them equal to one that computes its own.
static void test_shared_lines(void **state) {
    const int64_t N = 1200;
    const int d = 32, B = 32;
    const int64_t nb = (N + B - 1) / B;
    ref_head h;
    make_head(&h, N, d, 61);
    uint8_t *a = malloc(nb * nb), *b = malloc(nb * nb);
    double *vert = malloc(sizeof(double) * N), *slash = malloc(sizeof(double) * N);
    for (int order = 0; order < 2; order++) {
        methods_params p;
        methods_params_default(&p);
        p.vs_vertical = 60, p.vs_slash = 160;
        p.vs_last_q = order ? 200 : 64;  // inside FlexPrefill's 128 rows, then around them
        p.fp_tau = order ? 0.1 : 1.0;    // 1.0: FlexPrefill takes its vertical-slash branch
        last_lines vs, fp;
        methods_lines(&vs, &fp, h.q, h.k, N, d, &p);
        assert_int_equal(vs.nq, p.vs_last_q);
        assert_int_equal(fp.nq, p.fp_block);
        for (int x = 0; x < 2; x++) {
            const last_lines *l = x ? &fp : &vs;
            memset(vert, 0, sizeof(double) * N), memset(slash, 0, sizeof(double) * N);
            for (int64_t i = N - l->nq; i < N; i++)
                for (int64_t j = 0; j <= i; j++) vert[j] += h.A[i * N + j], slash[i - j] += h.A[i * N + j];
            for (int64_t j = 0; j < N; j++) {  // float scores: ~1e-6 of a line
                assert_true(fabs(l->vert[j] - vert[j]) <= 1e-5 * (1 + vert[j]));
                assert_true(fabs(l->slash[j] - slash[j]) <= 1e-5 * (1 + slash[j]));
            }
        }
        method_vertical_slash(a, h.q, h.k, N, d, B, &p);
        vertical_slash_select(b, &vs, N, B, &p);
        assert_masks_equal("vertical-slash from shared lines", b, a, nb);
        const int qa = method_flexprefill(a, h.q, h.k, N, d, B, &p);
        assert_int_equal(flexprefill_select(b, &fp, h.q, h.k, N, d, B, &p), qa);
        assert_masks_equal("FlexPrefill from shared lines", b, a, nb);
        methods_lines_free(&vs), methods_lines_free(&fp);
    }
    // a sweep given the lines equals one that computes them
    exact_stats st;
    exact_stats_init(&st, N, d, B, 64, 0.8);
    exact_compute(&st, h.q, h.k, NULL, NULL, 0);
    float *s = calloc(N, sizeof(float)), *v = calloc(N, sizeof(float)), *hh = calloc(N, sizeof(float));
    sweep_input in = {.N = N, .d = d, .B = B, .S = 64, .T = 64, .eps = 0.8, .q = h.q, .k = h.k, .W = st.block_mass,
                      .s = s, .v = v, .h = hh};
    methods_params_default(&in.mp);
    sweep_point p1[SWEEP_MAX_POINTS], p2[SWEEP_MAX_POINTS];
    const int n1 = sweep_head(&in, p1);
    last_lines vs, fp;
    methods_lines(&vs, &fp, h.q, h.k, N, d, &in.mp);
    in.vs_lines = &vs, in.fp_lines = &fp;
    assert_int_equal(sweep_head(&in, p2), n1);
    for (int x = 0; x < n1; x++) {
        assert_string_equal(p1[x].method, p2[x].method);
        assert_true(p1[x].density == p2[x].density && p1[x].recall == p2[x].recall);
    }
    methods_lines_free(&vs), methods_lines_free(&fp);
    free(s), free(v), free(hh), free(a), free(b), free(vert), free(slash);
    exact_stats_free(&st);
    free_head(&h);
}

static void test_sweep_dominated_by_global_oracle(void **state) {
    const int64_t N = 1100;
    const int d = 32, B = 32;
    const int64_t nb = (N + B - 1) / B, nc = nb * (nb + 1) / 2;
    ref_head h;
    make_head(&h, N, d, 51);
    exact_stats st;
    exact_stats_init(&st, N, d, B, 64, 0.8);
    exact_compute(&st, h.q, h.k, NULL, NULL, 0);
    trng r = {5};
    float *s = malloc(sizeof(float) * N), *v = malloc(sizeof(float) * N), *hh = malloc(sizeof(float) * N);
    for (int64_t x = 0; x < N; x++) s[x] = (float)trng_normal(&r), v[x] = (float)trng_normal(&r), hh[x] = -8;
    sweep_input in = {.N = N, .d = d, .B = B, .S = 64, .T = 64, .eps = 0.8, .q = h.q, .k = h.k, .W = st.block_mass,
                      .s = s, .v = v, .h = hh};
    methods_params_default(&in.mp);
    sweep_point pts[SWEEP_MAX_POINTS];
    int n = sweep_head(&in, pts);
    assert_true(n > 40);
    double *w = malloc(sizeof(double) * nc);
    int64_t c = 0;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) w[c++] = st.block_mass[I * nb + J];
    for (int64_t a = 0; a < nc; a++)  // descending, by insertion: nc is small
        for (int64_t b = a; b > 0 && w[b] > w[b - 1]; b--) {
            double t = w[b];
            w[b] = w[b - 1], w[b - 1] = t;
        }
    for (int p = 0; p < n; p++) {
        int64_t k = llround(pts[p].density * nc);
        double best = 0;
        for (int64_t x = 0; x < k; x++) best += w[x];
        best /= N;
        if (pts[p].recall > best + 1e-5)
            fprintf(stderr, "%s at knob %g: recall %.6f above the global oracle's %.6f at %lld blocks\n", pts[p].method,
                    pts[p].knob, pts[p].recall, best, (long long)k);
        assert_true(pts[p].recall <= best + 1e-5);
    }
    free(w), free(s), free(v), free(hh);
    exact_stats_free(&st);
    free_head(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lambda_and_trianglemix),
        cmocka_unit_test(test_vertical_slash),
        cmocka_unit_test(test_xattention),
        cmocka_unit_test(test_flexprefill),
        cmocka_unit_test(test_shared_lines),
        cmocka_unit_test(test_sweep_dominated_by_global_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
