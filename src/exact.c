// exact.c: the two streaming passes of SPEC section 2. See exact.h.
#include "exact.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "fastmath.h"
#include "mask.h"

#undef I  // <complex.h>, pulled in by OpenBLAS's cblas.h

void openblas_set_num_threads(int);  // OpenBLAS: each of our threads runs its own small GEMMs

#define BR_MAX 256  // rows per tile at most (the largest block size)
#define BC 256  // columns per tile: a multiple of every allowed block size

void exact_stats_init(exact_stats *st, int64_t N, int d, int B, int image_size, double eps) {
    memset(st, 0, sizeof *st);
    st->N = N;
    st->d = d;
    st->B = B;
    st->nb = (N + B - 1) / B;
    st->P = (int)(N < image_size ? N : image_size);
    st->eps = eps;
    st->lse = xmalloc(sizeof(float) * N);
    st->block_mass = xcalloc((size_t)(st->nb * st->nb), sizeof(float));
    st->block_max = xcalloc((size_t)(st->nb * st->nb), sizeof(float));
    st->image_max = xcalloc((size_t)st->P * st->P, sizeof(float));
    st->image_mean = xcalloc((size_t)st->P * st->P, sizeof(float));
}

void exact_stats_free(exact_stats *st) {
    free(st->lse);
    free(st->block_mass);
    free(st->block_max);
    free(st->image_max);
    free(st->image_mean);
    memset(st, 0, sizeof *st);
}

static int64_t tri_F(int64_t x, int64_t w) {  // sum_{t<=x} clamp(t, 0, w)
    if (x <= 0) return 0;
    if (x <= w) return x * (x + 1) / 2;
    return w * (w + 1) / 2 + (x - w) * w;
}
int64_t causal_pairs(int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (r1 <= r0 || c1 <= c0) return 0;
    int64_t w = c1 - c0;
    return tri_F(r1 - c0, w) - tri_F(r0 - c0, w);
}

// Keys repacked for the AVX-512 tile kernel: panels of 32 keys, each (d, 32) contiguous, zero
// padded past N. One pass over K per head replaces the per-tile packing a BLAS call does.
#define KP 32
static float *pack_keys(const float *k, int64_t N, int d) {
    int64_t np = (N + KP - 1) / KP;
    float *p = xcalloc((size_t)(np * KP * d), sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < np; b++)
        for (int64_t t = 0; t < KP && b * KP + t < N; t++)
            for (int x = 0; x < d; x++) p[(b * d + x) * KP + t] = k[(b * KP + t) * d + x];
    return p;
}

// S (rows r0..r1, cols c0..c1; c0 a multiple of 32) = c Q K^T, leading dimension BC. Blocks of
// 8 rows x 32 keys keep 16 accumulators in zmm registers; each step loads 2 key vectors and
// broadcasts 8 query elements.
__attribute__((target("avx512f"))) static void qk_tile_avx512(float *S, const float *q, const float *kp, int d,
                                                               float c, int64_t r0, int64_t r1, int64_t c0,
                                                               int64_t c1) {
    const __m512 cv = _mm512_set1_ps(c);
    for (int64_t js = c0; js < c1; js += KP) {
        const float *P = kp + (js / KP) * d * KP;
        int64_t nc = c1 - js < KP ? c1 - js : KP;
        __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
        __mmask16 m1 = nc >= 32 ? 0xffff : nc > 16 ? (__mmask16)((1u << (nc - 16)) - 1) : 0;
        for (int64_t i = r0; i < r1; i += 8) {
            const float *qr[8];
            for (int r = 0; r < 8; r++) qr[r] = q + (i + r < r1 ? i + r : r1 - 1) * d;
            __m512 acc[8][2];
            for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int x = 0; x < d; x++) {
                __m512 b0 = _mm512_loadu_ps(P + x * KP), b1 = _mm512_loadu_ps(P + x * KP + 16);
                for (int r = 0; r < 8; r++) {
                    __m512 a = _mm512_set1_ps(qr[r][x]);
                    acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                }
            }
            for (int r = 0; r < 8 && i + r < r1; r++) {
                float *o = S + (i + r - r0) * BC + (js - c0);
                _mm512_mask_storeu_ps(o, m0, _mm512_mul_ps(acc[r][0], cv));
                if (m1) _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(acc[r][1], cv));
            }
        }
    }
}

// z tile through the AVX-512 kernel when the CPU has it (kp != NULL), else single-threaded sgemm.
static void qk_tile(float *S, const float *q, const float *k, const float *kp, int d, float c, int64_t r0,
                    int64_t r1, int64_t c0, int64_t c1) {
    if (kp) {
        qk_tile_avx512(S, q, kp, d, c, r0, r1, c0, c1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)(c1 - c0), d, c, q + r0 * d, d,
                k + c0 * d, d, 0.f, S, BC);
}

// Output error of block masks, one (row tile, column tile): O += A V; for each mask, the kept
// elements of A (per block) go into O'_m and their mass into den_m (O'_m is renormalised per row at
// the tile's end). Am is scratch of A's size.
static void output_tile(float *A, float *Am, float *Ot, float *Op, double *den, const float *v,
                        const uint8_t *const *masks, int nmasks, int64_t nb, int B, int d, int64_t r0, int64_t r1,
                        int64_t c0, int64_t c1) {
    const int nr = (int)(r1 - r0), nc = (int)(c1 - c0);
    for (int64_t i = r0; i < r1; i++) {  // clear what lies past the diagonal: the GEMM reads it
        int64_t jn = (i + 1 < c1 ? i + 1 : c1) - c0;
        if (jn < nc) memset(A + (i - r0) * BC + (jn > 0 ? jn : 0), 0, sizeof(float) * (nc - (jn > 0 ? jn : 0)));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, nc, 1.f, A, BC, v + c0 * d, d, 1.f, Ot, d);
    for (int mi = 0; mi < nmasks; mi++) {
        for (int64_t i = r0; i < r1; i++) {
            const float *Ar = A + (i - r0) * BC;
            float *Mr = Am + (i - r0) * BC;
            const uint8_t *mrow = masks[mi] + (i / B) * nb;
            double kept = 0;
            for (int64_t j0 = 0; j0 < nc; j0 += B) {
                int64_t j1 = j0 + B < nc ? j0 + B : nc;
                if (mrow[(c0 + j0) / B]) {
                    for (int64_t j = j0; j < j1; j++) kept += Ar[j], Mr[j] = Ar[j];
                } else
                    memset(Mr + j0, 0, sizeof(float) * (j1 - j0));
            }
            den[mi * BR_MAX + (i - r0)] += kept;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, nc, 1.f, Am, BC, v + c0 * d, d, 1.f,
                    Op + (size_t)mi * BR_MAX * d, d);
    }
}

// Adds the column sums and maxima of one pixel row (pr) over columns [c0, c1) into its cells,
// run by run, and clears them.
static void flush_cells(double *isum, float *imax, float *colsum, float *colmax, const int32_t *cellof, int64_t P,
                        int64_t pr, int64_t c0, int64_t c1) {
    if (pr < 0) return;
    double *srow = isum + pr * P;
    float *mrow = imax + pr * P;
    int32_t cur = cellof[c0];
    float s = 0, m = 0;
    for (int64_t j = 0; j < c1 - c0; j++) {
        int32_t pc = cellof[c0 + j];
        if (pc != cur) {
            srow[cur] += s;
            mrow[cur] = m > mrow[cur] ? m : mrow[cur];
            s = m = 0;
            cur = pc;
        }
        s += colsum[j];
        m = colmax[j] > m ? colmax[j] : m;
        colsum[j] = colmax[j] = 0;
    }
    srow[cur] += s;
    mrow[cur] = m > mrow[cur] ? m : mrow[cur];
}

void exact_compute(exact_stats *st, const float *q, const float *k, const float *v, const uint8_t *const *masks,
                   int nmasks) {
    const int64_t N = st->N, nb = st->nb, P = st->P;
    const int d = st->d, B = st->B;
    const int BR = B >= 64 ? B : 64;  // rows per tile: whole block rows
    const int64_t ntiles = (N + BR - 1) / BR;
    const float c = 1.f / sqrtf((float)d);
    openblas_set_num_threads(1);
    CHECK(nmasks >= 0 && nmasks <= EXACT_MAX_MASKS && (nmasks == 0 || v));
    if (!masks) nmasks = 0;
    __builtin_cpu_init();
    float *kp = __builtin_cpu_supports("avx512f") && !getenv("SKEL_NO_AVX512") ? pack_keys(k, N, d) : NULL;

    // ------------------------------------------------------------------ pass 1: lse, z range
    double zmin = INFINITY, zmax = -INFINITY, zsum = 0;
#pragma omp parallel reduction(min : zmin) reduction(max : zmax) reduction(+ : zsum)
    {
        float *S = xmalloc(sizeof(float) * BR * BC);
        double *m = xmalloc(sizeof(double) * BR), *l = xmalloc(sizeof(double) * BR);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = ntiles - 1; t >= 0; t--) {  // longest rows first
            int64_t r0 = t * BR, r1 = r0 + BR < N ? r0 + BR : N;
            for (int r = 0; r < BR; r++) m[r] = -INFINITY, l[r] = 0;
            for (int64_t c0 = 0; c0 < r1; c0 += BC) {
                int64_t c1 = c0 + BC < r1 ? c0 + BC : r1;
                qk_tile(S, q, k, kp, d, c, r0, r1, c0, c1);
                for (int64_t i = r0; i < r1; i++) {
                    int64_t jn = (i + 1 < c1 ? i + 1 : c1) - c0;
                    if (jn <= 0) continue;
                    const float *z = S + (i - r0) * BC;
                    float mx = -INFINITY, mn = INFINITY, sm = 0;
#pragma omp simd reduction(max : mx) reduction(min : mn) reduction(+ : sm)
                    for (int64_t j = 0; j < jn; j++) {
                        mx = z[j] > mx ? z[j] : mx;
                        mn = z[j] < mn ? z[j] : mn;
                        sm += z[j];
                    }
                    int r = (int)(i - r0);
                    if (mx > m[r]) {
                        l[r] *= exp(m[r] - mx);
                        m[r] = mx;
                    }
                    const float mr = (float)m[r];
                    float acc = 0;
#pragma omp simd reduction(+ : acc)
                    for (int64_t j = 0; j < jn; j++) acc += fast_expf(z[j] - mr);
                    l[r] += acc;
                    if (mn < zmin) zmin = mn;
                    if (mx > zmax) zmax = mx;
                    zsum += sm;
                }
            }
            for (int64_t i = r0; i < r1; i++) st->lse[i] = (float)(m[i - r0] + log(l[i - r0]));
        }
        free(S);
        free(m);
        free(l);
    }
    const double npairs = (double)N * (double)(N + 1) / 2;
    const double zc = zsum / npairs;  // centre for the moments
    if (zmax <= zmin) zmax = zmin + 1;  // a constant head: one non-empty bin
    st->zlo = zmin;
    st->zhi = zmax;
    const float zlo = (float)zmin, binw_inv = (float)(EXACT_ROW_BINS / (zmax - zmin) * (1 - 1e-6));

    // ------------------------------------------------------------------ pass 2: everything else
    const float logthr = (float)log(st->eps / (double)N);
    int64_t *rowcell = xmalloc(sizeof(int64_t) * (P + 1));
    for (int64_t a = 0; a <= P; a++) rowcell[a] = exact_cell_start(a, N, P);
    int32_t *cellof = xmalloc(sizeof(int32_t) * N);  // the pixel cell of each row / column
    for (int64_t a = 0; a < P; a++)
        for (int64_t i = rowcell[a]; i < rowcell[a + 1]; i++) cellof[i] = (int32_t)a;
    int64_t below_thr = 0, dropped = 0;
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0, norm2 = 0, err2[EXACT_MAX_MASKS] = {0};
    uint64_t *finehist = xcalloc(EXACT_ROW_BINS, sizeof(uint64_t));
    double *img_sum = xcalloc((size_t)P * P, sizeof(double));
    const double eps = st->eps;
#pragma omp parallel reduction(+ : below_thr, dropped, m1, m2, m3, m4, norm2)
    {
        float *S = xmalloc(sizeof(float) * BR * BC);
        float *A = xcalloc((size_t)BR * BC, sizeof(float));  // the tile of A_ij, row r at A + r BC
        // with values: O = A V and O' = (A masked) V / (kept mass), rows of this tile
        float *Ot = v ? xcalloc((size_t)BR * d, sizeof(float)) : NULL;
        float *Op = v ? xcalloc((size_t)nmasks * BR_MAX * d, sizeof(float)) : NULL;
        float *Am = v ? xcalloc((size_t)BR * BC, sizeof(float)) : NULL;
        double *den = v ? xcalloc((size_t)nmasks * BR_MAX, sizeof(double)) : NULL;
        double e2[EXACT_MAX_MASKS] = {0}, o2 = 0;
        int32_t *bins = xmalloc(sizeof(int32_t) * BC);
        float *colsum = xcalloc(BC, sizeof(float)), *colmax = xcalloc(BC, sizeof(float));
        uint32_t *hc = xcalloc((size_t)BR * EXACT_ROW_BINS, sizeof(uint32_t));
        float *hm = xcalloc((size_t)BR * EXACT_ROW_BINS, sizeof(float));
        const int nbr = BR / B;
        double *Wl = xmalloc(sizeof(double) * nbr * nb);
        float *Xl = xmalloc(sizeof(float) * nbr * nb);
        uint64_t *fh = xcalloc(EXACT_ROW_BINS, sizeof(uint64_t));
        double *isum = xcalloc((size_t)P * P, sizeof(double));
        float *imax = xcalloc((size_t)P * P, sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = ntiles - 1; t >= 0; t--) {
            int64_t r0 = t * BR, r1 = r0 + BR < N ? r0 + BR : N;
            memset(Wl, 0, sizeof(double) * nbr * nb);
            memset(Xl, 0, sizeof(float) * nbr * nb);
            for (int64_t c0 = 0; c0 < r1; c0 += BC) {
                int64_t c1 = c0 + BC < r1 ? c0 + BC : r1;
                qk_tile(S, q, k, kp, d, c, r0, r1, c0, c1);
                int64_t cur_pr = -1;
                for (int64_t i = r0; i < r1; i++) {
                    int64_t jn = (i + 1 < c1 ? i + 1 : c1) - c0;
                    if (jn <= 0) continue;
                    const int r = (int)(i - r0);
                    const float *z = S + (int64_t)r * BC;
                    float *const Ar = A + (int64_t)r * BC;
                    const float li = st->lse[i], thr = li + logthr, zcf = (float)zc;
                    int cnt = 0;
                    float s1 = 0, s2 = 0, s3 = 0, s4 = 0;
#pragma omp simd reduction(+ : cnt, s1, s2, s3, s4)
                    for (int64_t j = 0; j < jn; j++) {
                        Ar[j] = fast_expf(z[j] - li);
                        cnt += z[j] < thr;
                        float y = z[j] - zcf, y2 = y * y;
                        s1 += y, s2 += y2, s3 += y2 * y, s4 += y2 * y2;
                    }
                    below_thr += cnt;
                    m1 += s1, m2 += s2, m3 += s3, m4 += s4;
                    uint32_t *rc = hc + (int64_t)r * EXACT_ROW_BINS;
                    float *rm = hm + (int64_t)r * EXACT_ROW_BINS;
                    // bin indices vectorised, then the scatter
#pragma omp simd
                    for (int64_t j = 0; j < jn; j++) {
                        int b = (int)((z[j] - zlo) * binw_inv);
                        bins[j] = b < 0 ? 0 : (b >= EXACT_ROW_BINS ? EXACT_ROW_BINS - 1 : b);
                    }
                    for (int64_t j = 0; j < jn; j++) {
                        rc[bins[j]]++;
                        rm[bins[j]] += Ar[j];
                    }
                    // block mass and max: segments of B columns
                    const int64_t bi = i / B - r0 / B;
                    for (int64_t j0 = 0; j0 < jn; j0 += B) {
                        int64_t j1 = j0 + B < jn ? j0 + B : jn;
                        float s = 0, mx = 0;
#pragma omp simd reduction(+ : s) reduction(max : mx)
                        for (int64_t j = j0; j < j1; j++) s += Ar[j], mx = Ar[j] > mx ? Ar[j] : mx;
                        int64_t J = (c0 + j0) / B;
                        Wl[bi * nb + J] += s;
                        if (mx > Xl[bi * nb + J]) Xl[bi * nb + J] = mx;
                    }
                    // pooled images: column sums over the rows of the current pixel row, all
                    // vertical vector work; reduced into cells once per pixel row (flush_cells)
                    if (cellof[i] != cur_pr) {
                        flush_cells(isum, imax, colsum, colmax, cellof, P, cur_pr, c0, c1);
                        cur_pr = cellof[i];
                    }
#pragma omp simd
                    for (int64_t j = 0; j < jn; j++) {
                        colsum[j] += Ar[j];
                        colmax[j] = Ar[j] > colmax[j] ? Ar[j] : colmax[j];
                    }
                }
                flush_cells(isum, imax, colsum, colmax, cellof, P, cur_pr, c0, c1);
                cur_pr = -1;
                if (v) output_tile(A, Am, Ot, Op, den, v, masks, nmasks, nb, B, d, r0, r1, c0, c1);
            }
            if (v)
                for (int64_t i = r0; i < r1; i++) {
                    const int r = (int)(i - r0);
                    for (int x = 0; x < d; x++) o2 += (double)Ot[r * d + x] * Ot[r * d + x];
                    for (int mi = 0; mi < nmasks; mi++) {
                        float *op = Op + ((size_t)mi * BR_MAX + r) * d;
                        double dn = den[mi * BR_MAX + r];
                        for (int x = 0; x < d; x++) {
                            double y = Ot[r * d + x] - (dn > 0 ? op[x] / dn : 0);
                            e2[mi] += y * y;
                        }
                        memset(op, 0, sizeof(float) * d);
                        den[mi * BR_MAX + r] = 0;
                    }
                    memset(Ot + r * d, 0, sizeof(float) * d);
                }
            // exact sparsity per row from its histogram, then clear the row's histogram
            for (int64_t i = r0; i < r1; i++) {
                const int r = (int)(i - r0);
                uint32_t *rc = hc + (int64_t)r * EXACT_ROW_BINS;
                float *rm = hm + (int64_t)r * EXACT_ROW_BINS;
                double cm = 0;
                int64_t cc = 0;
                for (int b = 0; b < EXACT_ROW_BINS; b++) {
                    if (!rc[b]) continue;
                    if (cm + rm[b] < eps) {
                        cm += rm[b];
                        cc += rc[b];
                        continue;
                    }
                    // the boundary bin: its elements taken as equal, count those that still fit
                    double avg = rm[b] / rc[b];
                    double fit = avg > 0 ? ceil((eps - cm) / avg) - 1 : rc[b];
                    if (fit < 0) fit = 0;
                    if (fit > rc[b]) fit = rc[b];
                    cc += (int64_t)fit;
                    break;
                }
                dropped += cc;
                for (int b = 0; b < EXACT_ROW_BINS; b++) fh[b] += rc[b];
                memset(rc, 0, sizeof(uint32_t) * EXACT_ROW_BINS);
                memset(rm, 0, sizeof(float) * EXACT_ROW_BINS);
            }
            for (int bi = 0; bi < nbr && r0 / B + bi < nb; bi++) {
                int64_t I = r0 / B + bi;
                for (int64_t J = 0; J <= I; J++) {
                    st->block_mass[I * nb + J] = (float)Wl[bi * nb + J];
                    st->block_max[I * nb + J] = Xl[bi * nb + J];
                }
            }
        }
        norm2 += o2;
#pragma omp critical
        {
            for (int mi = 0; mi < nmasks; mi++) err2[mi] += e2[mi];
            for (int b = 0; b < EXACT_ROW_BINS; b++) finehist[b] += fh[b];
            for (int64_t x = 0; x < P * P; x++) {
                img_sum[x] += isum[x];
                if (imax[x] > st->image_max[x]) st->image_max[x] = imax[x];
            }
        }
        free(S), free(A), free(Am), free(Ot), free(Op), free(den), free(bins), free(colsum), free(colmax), free(hc), free(hm), free(Wl), free(Xl), free(fh), free(isum), free(imax);
    }

    for (int mi = 0; mi < EXACT_MAX_MASKS; mi++)
        st->output_rel_error[mi] = v && mi < nmasks ? sqrt(err2[mi] / norm2) : NAN;
    st->threshold_sparsity = below_thr / npairs;
    st->exact_sparsity = dropped / npairs;
    int64_t nblocks = nb * (nb + 1) / 2, sparse_blocks = 0;
    const double thr = st->eps / (double)N;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) sparse_blocks += st->block_max[I * nb + J] < thr;
    st->block_sparsity = (double)sparse_blocks / nblocks;
    for (int64_t a = 0; a < P; a++)
        for (int64_t b = 0; b <= a; b++) {
            int64_t n = causal_pairs(rowcell[a], rowcell[a + 1], rowcell[b], rowcell[b + 1]);
            st->image_mean[a * P + b] = n ? (float)(img_sum[a * P + b] / n) : 0.f;
        }
    const int per = EXACT_ROW_BINS / EXACT_ZHIST_BINS;
    for (int b = 0; b < EXACT_ZHIST_BINS; b++) {
        uint64_t s = 0;
        for (int x = 0; x < per; x++) s += finehist[b * per + x];
        st->zhist[b] = (double)s;
    }
    double mu1 = m1 / npairs, e2 = m2 / npairs, e3 = m3 / npairs, e4 = m4 / npairs;
    double var = e2 - mu1 * mu1;
    st->zmean = zc + mu1;
    st->zvar = var;
    double c3 = e3 - 3 * mu1 * e2 + 2 * mu1 * mu1 * mu1;
    double c4 = e4 - 4 * mu1 * e3 + 6 * mu1 * mu1 * e2 - 3 * mu1 * mu1 * mu1 * mu1;
    st->zskew = var > 0 ? c3 / pow(var, 1.5) : 0;
    st->zkurt = var > 0 ? c4 / (var * var) - 3 : 0;
    free(kp);
    free(rowcell);
    free(cellof);
    free(finehist);
    free(img_sum);
}
