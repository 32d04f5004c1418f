// mask.c: SPEC section 4 and the mask metrics of section 2. See mask.h.
#include "mask.h"

#include <math.h>
#include <string.h>

void mask_block_vectors(const float *s, const float *v, const float *h, int64_t N, int B, float *sB, float *vB,
                        float *hB) {
    const int64_t nb = (N + B - 1) / B;
    float *Mb = xmalloc(sizeof(float) * nb);
    for (int64_t b = 0; b < nb; b++) {
        float ms = -INFINITY, mv = -INFINITY, mh = -INFINITY;
        for (int64_t x = b * B; x < (b + 1) * B && x < N; x++) {
            ms = s[x] > ms ? s[x] : ms;
            mv = v[x] > mv ? v[x] : mv;
            mh = h[x] > mh ? h[x] : mh;
        }
        Mb[b] = ms, vB[b] = mv, hB[b] = mh;
    }
    sB[0] = Mb[0];
    for (int64_t b = 1; b < nb; b++) sB[b] = 0.5f * (Mb[b - 1] + Mb[b]);
    free(Mb);
}

// k-th largest (0-based) of x[0..n), reordering x: Hoare quickselect.
static float select_desc(float *x, int64_t n, int64_t kth) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = x[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] > pivot) i++;
            while (x[j] < pivot) j--;
            if (i <= j) {
                float t = x[i];
                x[i] = x[j], x[j] = t;
                i++, j--;
            }
        }
        if (kth <= j) hi = j;
        else if (kth >= i) lo = i;
        else return x[kth];
    }
    return x[kth];
}

double mask_skeleton(uint8_t *mask, const float *s, const float *v, const float *h, int64_t N,
                     const mask_params *p) {
    const int B = p->B;
    const int64_t nb = (N + B - 1) / B, ncausal = nb * (nb + 1) / 2;
    const int64_t sink_cols = (p->S + B - 1) / B, band = (p->T + B - 1) / B;
    float *sB = xmalloc(sizeof(float) * nb), *vB = xmalloc(sizeof(float) * nb), *hB = xmalloc(sizeof(float) * nb);
    mask_block_vectors(s, v, h, N, B, sB, vB, hB);
    const float tauB = (float)log(p->eps * B / (double)N);
    memset(mask, 0, (size_t)(nb * nb));
    int64_t below = 0, forced = 0;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) {
            float sc = sB[I - J] + vB[J] + hB[I];
            below += sc < tauB;
            int f = J < sink_cols || I - J <= band;
            forced += f;
            if (f || (p->budget <= 0 && sc >= tauB)) mask[I * nb + J] = 1;
        }
    if (p->budget > 0) {
        // Budget mode: after the forced blocks, the best-scoring others until rho of the causal
        // blocks are kept. Ties at the cut are broken in row-major order.
        int64_t want = (int64_t)ceil(p->budget * ncausal) - forced;
        int64_t nfree = ncausal - forced;
        if (want > 0 && nfree > 0) {
            if (want > nfree) want = nfree;
            float *sc = xmalloc(sizeof(float) * nfree);
            int64_t n = 0;
            for (int64_t I = 0; I < nb; I++)
                for (int64_t J = 0; J <= I; J++)
                    if (!mask[I * nb + J]) sc[n++] = sB[I - J] + vB[J] + hB[I];
            float cut = select_desc(sc, nfree, want - 1);
            int64_t above = 0;
            for (int64_t t = 0; t < nfree; t++) above += sc[t] > cut;
            int64_t ties = want - above;
            for (int64_t I = 0; I < nb; I++)
                for (int64_t J = 0; J <= I; J++) {
                    if (mask[I * nb + J]) continue;
                    float x = sB[I - J] + vB[J] + hB[I];
                    if (x > cut || (x == cut && ties-- > 0)) mask[I * nb + J] = 2;  // 2: chosen by budget
                }
            for (int64_t x = 0; x < nb * nb; x++) mask[x] = mask[x] != 0;
            free(sc);
        }
    }
    free(sB), free(vB), free(hB);
    return (double)below / ncausal;
}

double mask_predict_sparsity(const float *s, const float *v, const float *h, int64_t N, double eps,
                             double *mean, double *var) {
    // Sums over j <= i: s pairs with offsets m (N - m times), v_j with rows i >= j (N - j times),
    // h_i with keys j <= i (i + 1 times); the cross terms reduce to prefix sums:
    //   sum s_{i-j} v_j = sum_m s_m Pv[N-1-m],  sum s_{i-j} h_i = sum_m s_m Sh[m],
    //   sum v_j h_i = sum_i h_i Pv[i],  with Pv[x] = sum_{j<=x} v_j and Sh[m] = sum_{i>=m} h_i.
    double *Pv = xmalloc(sizeof(double) * N), *Sh = xmalloc(sizeof(double) * (N + 1));
    double acc = 0;
    for (int64_t x = 0; x < N; x++) acc += v[x], Pv[x] = acc;
    Sh[N] = 0;
    for (int64_t x = N - 1; x >= 0; x--) Sh[x] = Sh[x + 1] + h[x];
    double s1 = 0, s2 = 0;
    for (int64_t x = 0; x < N; x++) {
        double sm = s[x], vx = v[x], hx = h[x];
        s1 += sm * (N - x) + vx * (N - x) + hx * (x + 1);
        s2 += sm * sm * (N - x) + vx * vx * (N - x) + hx * hx * (x + 1);
        s2 += 2 * sm * Pv[N - 1 - x] + 2 * sm * Sh[x] + 2 * hx * Pv[x];
    }
    free(Pv), free(Sh);
    double np = (double)N * (N + 1) / 2, m = s1 / np, vr = s2 / np - m * m;
    if (vr < 0) vr = 0;
    if (mean) *mean = m;
    if (var) *var = vr;
    double tau = log(eps / (double)N);
    if (vr == 0) return tau > m ? 1.0 : 0.0;
    return 0.5 * erfc(-(tau - m) / sqrt(2 * vr));
}

void mask_evaluate(const uint8_t *mask, const float *W, int64_t N, int B, mask_metrics *out) {
    const int64_t nb = (N + B - 1) / B;
    // per block row in parallel, then summed in row order: the same result for any thread count
    double *rowm = xmalloc(sizeof(double) * nb);
    int64_t kept = 0, kept_pairs = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : kept, kept_pairs)
    for (int64_t I = 0; I < nb; I++) {
        int64_t r0 = I * B, r1 = r0 + B < N ? r0 + B : N;
        double row = 0;
        for (int64_t J = 0; J <= I; J++)
            if (mask[I * nb + J]) {
                row += W[I * nb + J];
                kept++;
                kept_pairs += causal_pairs(r0, r1, J * B, (J + 1) * B < N ? (J + 1) * B : N);
            }
        rowm[I] = row;
    }
    double kept_mass = 0, worst = INFINITY;
    for (int64_t I = 0; I < nb; I++) {
        const int64_t r0 = I * B, r1 = r0 + B < N ? r0 + B : N;
        kept_mass += rowm[I];
        const double rec = rowm[I] / (double)(r1 - r0);
        worst = rec < worst ? rec : worst;
    }
    free(rowm);
    out->recall = kept_mass / (double)N;
    out->min_rowblock_recall = worst;
    out->density = (double)kept / (double)(nb * (nb + 1) / 2);
    out->compute_fraction = (double)kept_pairs / ((double)N * (N + 1) / 2);
}

// The oracle's order as one integer: a larger mass first (a mass >= 0 orders by its float bits),
// then the smaller column. A total order, so that the kept set does not depend on how a sort
// treats ties (glibc's qsort kept equal masses in column order: the same set as this).
static inline uint64_t wj_key(float w, int64_t J) {
    uint32_t b;
    memcpy(&b, &w, 4);
    if (!(w > 0.f)) b = 0;
    return (uint64_t)b << 32 | (uint32_t)(0xffffffffu - (uint32_t)J);
}
static void key_sift_down(uint64_t *h, int64_t n, int64_t i) {
    for (;;) {
        const int64_t l = 2 * i + 1;
        int64_t best = i;
        if (l < n && h[l] > h[best]) best = l;
        if (l + 1 < n && h[l + 1] > h[best]) best = l + 1;
        if (best == i) return;
        const uint64_t t = h[i];
        h[i] = h[best], h[best] = t;
        i = best;
    }
}

void mask_oracle(uint8_t *mask, const float *W, int64_t N, int B, double r) {
    const int64_t nb = (N + B - 1) / B;
    memset(mask, 0, (size_t)(nb * nb));
#pragma omp parallel
    {
        uint64_t *h = xmalloc(sizeof(uint64_t) * nb);
#pragma omp for schedule(dynamic, 16)
        for (int64_t I = 0; I < nb; I++) {  // rows are independent
            int64_t rows = (I + 1) * B < N ? B : N - I * B;
            // the row's blocks in the oracle's order from a heap, only as many as the recall needs
            // (a sparse row keeps a few of its I + 1 blocks; a full sort cost O(I log I) each)
            int64_t n = I + 1;
            for (int64_t J = 0; J < n; J++) h[J] = wj_key(W[I * nb + J], J);
            for (int64_t x = n / 2 - 1; x >= 0; x--) key_sift_down(h, n, x);
            double need = r * rows, got = 0;
            while (n > 0 && got < need) {
                const int64_t J = 0xffffffffu - (uint32_t)h[0];
                mask[I * nb + J] = 1;
                got += W[I * nb + J];
                h[0] = h[--n];
                key_sift_down(h, n, 0);
            }
        }
        free(h);
    }
}
