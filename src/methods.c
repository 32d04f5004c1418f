// methods.c: see methods.h.
#include "methods.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "fastmath.h"

#undef I  // <complex.h>, pulled in by OpenBLAS's cblas.h

void openblas_set_num_threads(int);

void methods_params_default(methods_params *p) {
    memset(p, 0, sizeof *p);
    p->vs_last_q = 64;
    p->xa_block = 128;
    p->xa_stride = 8;
    p->xa_tau = 0.9;
    p->fp_block = 128;
    p->fp_gamma = 0.9;
    p->fp_tau = 0.1;
    p->lambda_sinks = 4;
    p->lambda_window = 1024;
    p->tri_sinks = 8;
    p->tri_local = 512;
    p->tri_last = 128;
}

void methods_vs_counts(const methods_params *p, int64_t N, int64_t *nv, int64_t *ns) {
    int64_t v = p->vs_vertical ? p->vs_vertical : (int64_t)llround(1000.0 * N / 131072);
    int64_t s = p->vs_slash ? p->vs_slash : (int64_t)llround(6096.0 * N / 131072);
    *nv = v < 30 ? 30 : (v > N ? N : v);
    *ns = s < 100 ? 100 : (s > N ? N : s);
}

// Indices of the n largest of x[0..len), ties to the lower index; sel[i] = 1 for those.
typedef struct {
    double x;
    int64_t i;
} scored;
// A max-heap of scored entries, largest first and ties to the lower index (a total order: popping
// gives exactly the sorted sequence a qsort by that order gave), so that taking the first few of a
// long array costs O(len + taken log len) instead of a full sort.
static inline int scored_before(const scored *u, const scored *v) { return u->x > v->x || (u->x == v->x && u->i < v->i); }
static void scored_sift_down(scored *h, int64_t n, int64_t i) {
    for (;;) {
        const int64_t l = 2 * i + 1;
        int64_t best = i;
        if (l < n && scored_before(&h[l], &h[best])) best = l;
        if (l + 1 < n && scored_before(&h[l + 1], &h[best])) best = l + 1;
        if (best == i) return;
        const scored t = h[i];
        h[i] = h[best], h[best] = t;
        i = best;
    }
}
static void scored_heapify(scored *h, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) scored_sift_down(h, n, i);
}
static scored scored_pop(scored *h, int64_t *n) {
    const scored top = h[0];
    h[0] = h[--*n];
    scored_sift_down(h, *n, 0);
    return top;
}

static void top_n(uint8_t *sel, const double *x, int64_t len, int64_t n) {
    scored *s = xmalloc(sizeof(scored) * (len > 0 ? len : 1));
    for (int64_t i = 0; i < len; i++) s[i].x = x[i], s[i].i = i;
    memset(sel, 0, (size_t)(len > 0 ? len : 0));
    int64_t h = len;
    scored_heapify(s, h);
    for (int64_t t = 0; t < n && h > 0; t++) sel[scored_pop(s, &h).i] = 1;
    free(s);
}

// A method's own block mask (Bc blocks, (nc, nc)) onto the B grid: a grid block is kept when it
// meets a kept coarse block.
static void coarse_to_grid(uint8_t *mask, const uint8_t *coarse, int64_t N, int Bc, int B) {
    const int64_t nb = (N + B - 1) / B, nc = (N + Bc - 1) / Bc;
    memset(mask, 0, (size_t)(nb * nb));
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) {
            int64_t ci0 = I * B / Bc, ci1 = ((I + 1) * B - 1 < N - 1 ? (I + 1) * B - 1 : N - 1) / Bc;
            int64_t cj0 = J * B / Bc, cj1 = ((J + 1) * B - 1 < N - 1 ? (J + 1) * B - 1 : N - 1) / Bc;
            int hit = 0;
            for (int64_t a = ci0; a <= ci1 && !hit; a++)
                for (int64_t b = cj0; b <= cj1 && b <= a && !hit; b++) hit = coarse[a * nc + b];
            mask[I * nb + J] = (uint8_t)hit;
        }
}

// Blocks holding any chosen key column (cols) or any chosen offset i - j (offs), causal only.
static void blocks_from_lines(uint8_t *mask, const uint8_t *cols, const uint8_t *offs, int64_t N, int B) {
    const int64_t nb = (N + B - 1) / B;
    int64_t *pc = xcalloc(N + 1, sizeof(int64_t));  // prefix count of chosen offsets
    for (int64_t m = 0; m < N; m++) pc[m + 1] = pc[m] + (offs ? offs[m] : 0);
    uint8_t *colhit = xcalloc(nb, 1);
    for (int64_t j = 0; j < N; j++)
        if (cols && cols[j]) colhit[j / B] = 1;
    memset(mask, 0, (size_t)(nb * nb));
    for (int64_t I = 0; I < nb; I++) {
        int64_t i0 = I * B, i1 = (I + 1) * B < N ? (I + 1) * B : N;  // rows [i0, i1)
        for (int64_t J = 0; J <= I; J++) {
            int64_t j0 = J * B, j1 = (J + 1) * B < N ? (J + 1) * B : N;
            // offsets present in the block: from max(0, i0 - (j1 - 1)) to i1 - 1 - j0
            int64_t lo = i0 - (j1 - 1) > 0 ? i0 - (j1 - 1) : 0, hi = i1 - 1 - j0;
            int hit = colhit[J] || (hi >= lo && pc[hi + 1] - pc[lo] > 0);
            mask[I * nb + J] = (uint8_t)hit;
        }
    }
    free(pc);
    free(colhit);
}

// Column sums (vert, per key j) and diagonal sums (slash, per offset i - j) of the exact attention
// A_ij = softmax_{j <= i}(c q_i . k_j) of the last nq query rows, and (vert2 non-NULL) the same of
// the last nq2 <= nq rows, added in the same order as alone. Scores come in tiles of nq rows by LC
// keys from single-threaded sgemm, the key tiles spread over threads: one pass for each row's
// maximum and sum, one for the sums of A.
#define LC 1024
static void last_rows_lines(const float *q, const float *k, int64_t N, int d, int64_t nq, double *vert, double *slash,
                            int64_t nq2, double *vert2, double *slash2) {
    const int64_t i0 = N - nq, nch = (N + LC - 1) / LC;
    const float c = 1.f / sqrtf((float)d);
    double *cm = xmalloc(sizeof(double) * nch * nq), *cl = xmalloc(sizeof(double) * nch * nq);
    double *lse = xmalloc(sizeof(double) * nq);
    const int64_t r2 = vert2 ? nq - nq2 : nq;  // rows r >= r2 count in the inner set too
    memset(vert, 0, sizeof(double) * N);
    memset(slash, 0, sizeof(double) * N);
    if (vert2) memset(vert2, 0, sizeof(double) * N), memset(slash2, 0, sizeof(double) * N);
    openblas_set_num_threads(1);
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel
        {
            float *Z = xmalloc(sizeof(float) * nq * LC), *A = xmalloc(sizeof(float) * LC);
            double *sl = pass ? xcalloc(N, sizeof(double)) : NULL;  // this thread's diagonal sums
            double *sl2 = pass && vert2 ? xcalloc(N, sizeof(double)) : NULL;
#pragma omp for schedule(dynamic, 1)
            for (int64_t ch = 0; ch < nch; ch++) {
                int64_t j0 = ch * LC, j1 = j0 + LC < N ? j0 + LC : N;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)(j1 - j0), d, c, q + i0 * d, d,
                            k + j0 * d, d, 0.f, Z, LC);
                for (int64_t r = 0; r < nq; r++) {
                    const float *z = Z + r * LC;
                    int64_t jn = (i0 + r + 1 < j1 ? i0 + r + 1 : j1) - j0;
                    // exponentials by fast_expf (relative 2e-7, vectorised), summed in double
                    if (!pass) {
                        float mx = -INFINITY;
                        double l = 0;
                        for (int64_t j = 0; j < jn; j++) mx = z[j] > mx ? z[j] : mx;
#pragma omp simd reduction(+ : l)
                        for (int64_t j = 0; j < jn; j++) l += fast_expf(z[j] - mx);
                        cm[ch * nq + r] = mx, cl[ch * nq + r] = l;
                        continue;
                    }
                    const double lr = lse[r];
#pragma omp simd
                    for (int64_t j = 0; j < jn; j++) A[j] = fast_expf((float)(z[j] - lr));
                    for (int64_t j = 0; j < jn; j++) {
                        const double a = A[j];
                        vert[j0 + j] += a;  // this tile's columns are this thread's alone
                        sl[i0 + r - (j0 + j)] += a;
                        if (r >= r2) vert2[j0 + j] += a, sl2[i0 + r - (j0 + j)] += a;
                    }
                }
            }
            if (pass) {
#pragma omp critical
                {
                    for (int64_t m = 0; m < N; m++) slash[m] += sl[m];
                    if (sl2)
                        for (int64_t m = 0; m < N; m++) slash2[m] += sl2[m];
                }
            }
            free(Z), free(A);
            free(sl), free(sl2);
        }
        if (!pass)
            for (int64_t r = 0; r < nq; r++) {
                double mx = -INFINITY, l = 0;
                for (int64_t ch = 0; ch < nch; ch++) mx = cm[ch * nq + r] > mx ? cm[ch * nq + r] : mx;
                for (int64_t ch = 0; ch < nch; ch++)
                    if (cl[ch * nq + r] > 0) l += cl[ch * nq + r] * exp(cm[ch * nq + r] - mx);
                lse[r] = mx + log(l);
            }
    }
    free(cm), free(cl), free(lse);
}

static void lines_alloc(last_lines *l, int64_t nq, int64_t N) {
    l->nq = nq, l->vert = xmalloc(sizeof(double) * N), l->slash = xmalloc(sizeof(double) * N);
}

void methods_lines(last_lines *vs, last_lines *fp, const float *q, const float *k, int64_t N, int d,
                   const methods_params *p) {
    const int64_t nvs = p->vs_last_q < N ? p->vs_last_q : N, nfp = p->fp_block < N ? p->fp_block : N;
    lines_alloc(vs, nvs, N), lines_alloc(fp, nfp, N);
    last_lines *big = nvs >= nfp ? vs : fp, *small = nvs >= nfp ? fp : vs;
    last_rows_lines(q, k, N, d, big->nq, big->vert, big->slash, small->nq, small->vert, small->slash);
}

void methods_lines_free(last_lines *l) {
    free(l->vert), free(l->slash);
    l->vert = l->slash = NULL;
}

void method_vertical_slash(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                           const methods_params *p) {
    last_lines l;
    lines_alloc(&l, p->vs_last_q < N ? p->vs_last_q : N, N);
    last_rows_lines(q, k, N, d, l.nq, l.vert, l.slash, 0, NULL, NULL);
    vertical_slash_select(mask, &l, N, B, p);
    methods_lines_free(&l);
}

void vertical_slash_select(uint8_t *mask, const last_lines *vs, int64_t N, int B, const methods_params *p) {
    int64_t nv, ns;
    CHECK(vs->nq == (p->vs_last_q < N ? p->vs_last_q : N));
    methods_vs_counts(p, N, &nv, &ns);
    double *vert = xmalloc(sizeof(double) * N), *slash = xmalloc(sizeof(double) * N);
    memcpy(vert, vs->vert, sizeof(double) * N), memcpy(slash, vs->slash, sizeof(double) * N);
    for (int64_t j = 0; j < 30 && j < N; j++) vert[j] = INFINITY;    // the first 30 keys
    for (int64_t m = 0; m < 100 && m < N; m++) slash[m] = INFINITY;  // the last 100 diagonals
    uint8_t *cols = xmalloc(N), *offs = xmalloc(N);
    top_n(cols, vert, N, nv);
    top_n(offs, slash, N, ns);
    blocks_from_lines(mask, cols, offs, N, B);
    free(vert), free(slash), free(cols), free(offs);
}

// Chooses the fewest entries (largest first) of x[0..len) whose sum reaches share of the total.
static void top_coverage(uint8_t *sel, const double *x, int64_t len, double share) {
    scored *s = xmalloc(sizeof(scored) * (len > 0 ? len : 1));
    double tot = 0;
    for (int64_t i = 0; i < len; i++) s[i].x = x[i], s[i].i = i, tot += x[i];
    memset(sel, 0, (size_t)(len > 0 ? len : 0));
    int64_t h = len;
    scored_heapify(s, h);
    double cum = 0;
    while (h > 0 && cum < share * tot) {
        const scored e = scored_pop(s, &h);
        sel[e.i] = 1, cum += e.x;
    }
    free(s);
}

// Mean of rows [r0, r1) of x (n, d) into out (d).
static void avgpool(double *out, const float *x, int64_t r0, int64_t r1, int d) {
    memset(out, 0, sizeof(double) * d);
    for (int64_t i = r0; i < r1; i++)
        for (int t = 0; t < d; t++) out[t] += x[i * d + t];
    for (int t = 0; t < d; t++) out[t] /= (double)(r1 - r0);
}

int method_flexprefill(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p) {
    last_lines l;
    lines_alloc(&l, p->fp_block < N ? p->fp_block : N, N);
    last_rows_lines(q, k, N, d, l.nq, l.vert, l.slash, 0, NULL, NULL);
    const int r = flexprefill_select(mask, &l, q, k, N, d, B, p);
    methods_lines_free(&l);
    return r;
}

int flexprefill_select(uint8_t *mask, const last_lines *fp, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p) {
    const int Bf = p->fp_block;
    const int64_t nbf = (N + Bf - 1) / Bf, nq = Bf < N ? Bf : N, nb = (N + B - 1) / B;
    CHECK(fp->nq == nq);
    const double *vert = fp->vert, *slash = fp->slash;
    const double c = 1 / sqrt((double)d);
    // pooled keys, and the last queries' attention: per key block (true) and per line
    double *kp = xmalloc(sizeof(double) * nbf * d), *qp = xmalloc(sizeof(double) * d);
    for (int64_t J = 0; J < nbf; J++) avgpool(kp + J * d, k, J * Bf, (J + 1) * Bf < N ? (J + 1) * Bf : N, d);
    double *truth = xcalloc(nbf, sizeof(double));
    for (int64_t j = 0; j < N; j++) truth[j / Bf] += vert[j] / (double)nq;  // the true pooled distribution
    // the estimate for the last query block: softmax over the key blocks it can see
    avgpool(qp, q, N - nq, N, d);
    const int64_t Ilast = (N - 1) / Bf;
    double *est = xcalloc(nbf, sizeof(double)), mx = -INFINITY, l = 0;
    for (int64_t J = 0; J <= Ilast; J++) {
        double s = 0;
        for (int t = 0; t < d; t++) s += qp[t] * kp[J * d + t];
        est[J] = c * s;
        mx = est[J] > mx ? est[J] : mx;
    }
    for (int64_t J = 0; J <= Ilast; J++) l += exp(est[J] - mx);
    for (int64_t J = 0; J <= Ilast; J++) est[J] = exp(est[J] - mx) / l;
    double js = 0;  // Jensen-Shannon divergence in bits; the distance is its square root
    for (int64_t J = 0; J <= Ilast; J++) {
        double m = 0.5 * (truth[J] + est[J]);
        if (truth[J] > 0) js += 0.5 * truth[J] * log2(truth[J] / m);
        if (est[J] > 0) js += 0.5 * est[J] * log2(est[J] / m);
    }
    const int query_aware = sqrt(js > 0 ? js : 0) < p->fp_tau;
    uint8_t *coarse = xcalloc((size_t)(nbf * nbf), 1);
    if (query_aware) {
        // block rows in parallel (each row's arithmetic in the order it had serially: the same mask)
#pragma omp parallel
        {
            double *sc = xmalloc(sizeof(double) * nbf), *qr = xmalloc(sizeof(double) * d);
            uint8_t *sel = xmalloc(nbf);
#pragma omp for schedule(dynamic, 8)
            for (int64_t I = 0; I < nbf; I++) {
                avgpool(qr, q, I * Bf, (I + 1) * Bf < N ? (I + 1) * Bf : N, d);
                double m2 = -INFINITY, l2 = 0;
                for (int64_t J = 0; J <= I; J++) {
                    double s = 0;
                    for (int t = 0; t < d; t++) s += qr[t] * kp[J * d + t];
                    sc[J] = c * s;
                    m2 = sc[J] > m2 ? sc[J] : m2;
                }
                for (int64_t J = 0; J <= I; J++) l2 += (sc[J] = exp(sc[J] - m2));
                for (int64_t J = 0; J <= I; J++) sc[J] /= l2;
                top_coverage(sel, sc, I + 1, p->fp_gamma);
                for (int64_t J = 0; J <= I; J++) coarse[I * nbf + J] = sel[J];
            }
            free(sc), free(qr), free(sel);
        }
        coarse_to_grid(mask, coarse, N, Bf, B);
    } else {
        uint8_t *cols = xmalloc(N), *offs = xmalloc(N);
        top_coverage(cols, vert, N, p->fp_gamma);
        top_coverage(offs, slash, N, p->fp_gamma);
        blocks_from_lines(mask, cols, offs, N, B);
        free(cols), free(offs);
    }
    for (int64_t I = 0; I < nb; I++) mask[I * nb] = mask[I * nb + I] = 1;  // first column, diagonal
    free(kp), free(qp), free(truth), free(est), free(coarse);
    return query_aware;
}

void method_lambda(uint8_t *mask, int64_t N, int B, const methods_params *p) {
    uint8_t *cols = xcalloc(N, 1), *offs = xcalloc(N, 1);
    for (int64_t j = 0; j < p->lambda_sinks && j < N; j++) cols[j] = 1;
    for (int64_t m = 0; m < p->lambda_window && m < N; m++) offs[m] = 1;
    blocks_from_lines(mask, cols, offs, N, B);
    free(cols), free(offs);
}

void method_trianglemix(uint8_t *mask, int64_t N, int B, const methods_params *p) {
    uint8_t *cols = xcalloc(N, 1), *offs = xcalloc(N, 1);
    for (int64_t j = 0; j < p->tri_sinks && j < N; j++) cols[j] = 1;
    for (int64_t m = 0; m < p->tri_local && m < N; m++) offs[m] = 1;
    blocks_from_lines(mask, cols, offs, N, B);
    const int64_t nb = (N + B - 1) / B, first = N - p->tri_last > 0 ? N - p->tri_last : 0;
    for (int64_t I = first / B; I < nb; I++)  // block rows holding any of the last rows: dense
        for (int64_t J = 0; J <= I; J++) mask[I * nb + J] = 1;
    free(cols), free(offs);
}

int64_t xattention_blocks(int64_t N, const methods_params *p) { return (N + p->xa_block - 1) / p->xa_block; }

void xattention_scores(double *score, const float *q, const float *k, int64_t N, int d, const methods_params *p) {
    const int S = p->xa_stride, Bx = p->xa_block;
    const int64_t ns = N / S;  // strided rows: query group a = rows [aS, aS + S) reversed
    const int64_t nbx = (N + Bx - 1) / Bx, per = Bx / S, w = (int64_t)S * d;
    const float c = (float)(1 / (sqrt((double)d) * S));
    // The antidiagonal sum of group (a, b) is the dot product of Qr[a] = (q_{aS+S-1}, ..., q_{aS})
    // and Kr[b] = (k_{bS}, ..., k_{bS+S-1}): one GEMM over the strided rows.
    float *Qr = xmalloc(sizeof(float) * (ns > 0 ? ns : 1) * w), *Kr = xmalloc(sizeof(float) * (ns > 0 ? ns : 1) * w);
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < ns; a++)
        for (int t = 0; t < S; t++) {
            memcpy(Qr + a * w + (int64_t)t * d, q + (a * S + S - 1 - t) * d, sizeof(float) * d);
            memcpy(Kr + a * w + (int64_t)t * d, k + (a * S + t) * d, sizeof(float) * d);
        }
    memset(score, 0, sizeof(double) * nbx * nbx);
    const int64_t RT = 64;  // strided rows per GEMM
    openblas_set_num_threads(1);
#pragma omp parallel
    {
        float *Z = xmalloc(sizeof(float) * RT * (ns > 0 ? ns : 1));
        double *acc = xmalloc(sizeof(double) * nbx);
#pragma omp for schedule(dynamic, 1)
        for (int64_t a0 = 0; a0 < ns; a0 += RT) {
            int64_t a1 = a0 + RT < ns ? a0 + RT : ns, nc = a1;  // keys b < a1 cover every row's b <= a
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(a1 - a0), (int)nc, (int)w, c, Qr + a0 * w,
                        (int)w, Kr, (int)w, 0.f, Z, (int)nc);
            for (int64_t a = a0; a < a1; a++) {
                const float *z = Z + (a - a0) * nc;
                float mx = -INFINITY;
                for (int64_t b = 0; b <= a; b++) mx = z[b] > mx ? z[b] : mx;
                double l = 0;
                for (int64_t b = 0; b <= a; b++) l += exp((double)z[b] - mx);
                memset(acc, 0, sizeof(double) * nbx);
                for (int64_t b = 0; b <= a; b++) acc[b / per] += exp((double)z[b] - mx) / l;
                int64_t I = a / per;
                for (int64_t J = 0; J <= I; J++)
                    if (acc[J] != 0) {
#pragma omp atomic
                        score[I * nbx + J] += acc[J];
                    }
            }
        }
        free(Z);
        free(acc);
    }
    free(Qr);
    free(Kr);
}

void xattention_select(uint8_t *mask, const double *score, int64_t N, int B, const methods_params *p) {
    const int Bx = p->xa_block;
    const int64_t nbx = (N + Bx - 1) / Bx;
    // per block row: the best blocks until their share of the row's score reaches tau
    uint8_t *coarse = xcalloc((size_t)(nbx * nbx), 1);
    scored *s = xmalloc(sizeof(scored) * nbx);
    for (int64_t I = 0; I < nbx; I++) {
        double tot = 0;
        for (int64_t J = 0; J <= I; J++) s[J].x = score[I * nbx + J], s[J].i = J, tot += score[I * nbx + J];
        int64_t h = I + 1;
        scored_heapify(s, h);
        double cum = 0;
        while (h > 0 && (tot <= 0 || cum < p->xa_tau * tot)) {
            const scored e = scored_pop(s, &h);
            coarse[I * nbx + e.i] = 1;
            cum += e.x;
        }
        coarse[I * nbx] = coarse[I * nbx + I] = 1;  // sink column and diagonal
    }
    coarse_to_grid(mask, coarse, N, Bx, B);
    free(coarse), free(s);
}

void method_xattention(uint8_t *mask, const float *q, const float *k, int64_t N, int d, int B,
                       const methods_params *p) {
    const int64_t nbx = xattention_blocks(N, p);
    double *score = xmalloc(sizeof(double) * nbx * nbx);
    xattention_scores(score, q, k, N, d, p);
    xattention_select(mask, score, N, B, p);
    free(score);
}
