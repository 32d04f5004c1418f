#include "render.h"

#include "mask.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define LOG10E 0.43429448190325182765  // log10(x) = ln(x) * LOG10E

void render_opts_default(render_opts *o) {
    memset(o, 0, sizeof *o);
    o->size = 1024;
    o->pool = RENDER_POOL_MAX;
    o->cmap = COLORMAP_VIRIDIS;
    o->thumb = 384;
}

// ---------------------------------------------------------------------------- pixel cells
// Element range of pixel index a out of S over n elements: [lo, hi), never empty.
static inline void cell_range(int a, int S, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)a * n / S;
    *hi = (int64_t)(a + 1) * n / S;
    if (*hi <= *lo) *hi = *lo + 1;
}

// ---------------------------------------------------------------------------- range queries
// Sparse table for O(1) range maxima of x (n): level k holds maxima of windows of 2^k.
typedef struct {
    int64_t n;
    int levels;
    float *t;  // (levels, n)
} range_max;

static void range_max_init(range_max *rm, const float *x, int64_t n) {
    rm->n = n;
    rm->levels = 1;
    while (((int64_t)1 << rm->levels) <= n) rm->levels++;
    rm->t = xmalloc((size_t)rm->levels * n * sizeof(float));
    memcpy(rm->t, x, (size_t)n * sizeof(float));
    for (int k = 1; k < rm->levels; k++) {
        const float *p = rm->t + (size_t)(k - 1) * n;
        float *q = rm->t + (size_t)k * n;
        int64_t half = (int64_t)1 << (k - 1);
        for (int64_t i = 0; i + 2 * half <= n; i++) q[i] = p[i] > p[i + half] ? p[i] : p[i + half];
    }
}
static void range_max_free(range_max *rm) { free(rm->t); }

// max of x[lo..hi), hi > lo.
static inline float range_max_query(const range_max *rm, int64_t lo, int64_t hi) {
    int64_t len = hi - lo;
    int k = 63 - __builtin_clzll((unsigned long long)len);
    const float *p = rm->t + (size_t)k * rm->n;
    float a = p[lo], b = p[hi - ((int64_t)1 << k)];
    return a > b ? a : b;
}

// Prefix sums for weighted sums of E_k = exp(x_k - shift): S0[k] = sum_{l<k} E_l,
// S1[k] = sum_{l<k} l E_l, in double. shift = max x keeps every E_k <= 1.
typedef struct {
    double shift;
    double *s0, *s1;  // (n + 1)
} lin_prefix;

static void lin_prefix_init(lin_prefix *lp, const float *x, int64_t n) {
    float mx = x[0];
    for (int64_t k = 1; k < n; k++)
        if (x[k] > mx) mx = x[k];
    lp->shift = mx;
    lp->s0 = xmalloc((size_t)(n + 1) * sizeof(double));
    lp->s1 = xmalloc((size_t)(n + 1) * sizeof(double));
    lp->s0[0] = lp->s1[0] = 0;
    for (int64_t k = 0; k < n; k++) {
        double ek = exp((double)x[k] - lp->shift);
        lp->s0[k + 1] = lp->s0[k] + ek;
        lp->s1[k + 1] = lp->s1[k] + (double)k * ek;
    }
}
static void lin_prefix_free(lin_prefix *lp) {
    free(lp->s0);
    free(lp->s1);
}
// sum over k in [lo, hi) of (a + b k) E_k.
static inline double lin_sum(const lin_prefix *lp, int64_t lo, int64_t hi, double a, double b) {
    if (hi <= lo) return 0;
    return a * (lp->s0[hi] - lp->s0[lo]) + b * (lp->s1[hi] - lp->s1[lo]);
}

// ---------------------------------------------------------------------------- grids
void render_grid_exact(const results_head *H, int S, render_pool pool, float *out) {
    const int P = H->P;
    const int64_t N = H->N;
    const float *img = pool == RENDER_POOL_MEAN && H->image_mean ? H->image_mean : H->image_max;
    const int mean = pool == RENDER_POOL_MEAN && H->image_mean;
#pragma omp parallel for schedule(dynamic, 8)
    for (int a = 0; a < S; a++) {
        int64_t r0, r1, p0, p1;
        cell_range(a, S, N, &r0, &r1);
        cell_range(a, S, P, &p0, &p1);
        for (int b = 0; b < S; b++) {
            int64_t c0, c1, q0, q1;
            cell_range(b, S, N, &c0, &c1);
            float *o = &out[(size_t)a * S + b];
            if (c0 > r1 - 1) {
                *o = NAN;
                continue;
            }
            cell_range(b, S, P, &q0, &q1);
            double best = 0, sum = 0, wsum = 0;
            for (int64_t pa = p0; pa < p1; pa++)
                for (int64_t pb = q0; pb < q1 && pb <= pa; pb++) {
                    double x = img[(size_t)pa * P + pb];
                    if (mean) {
                        int64_t cr0, cr1, cc0, cc1;
                        cell_range((int)pa, P, N, &cr0, &cr1);
                        cell_range((int)pb, P, N, &cc0, &cc1);
                        double w = (double)causal_pairs(cr0, cr1, cc0, cc1);
                        sum += w * x;
                        wsum += w;
                    } else if (x > best)
                        best = x;
                }
            double val = mean ? (wsum > 0 ? sum / wsum : 0) : best;
            // A zero (underflowed) cell is drawn at the bottom of any range.
            *o = val > 0 ? (float)log10(val) : -INFINITY;
        }
    }
}

// Panels (b)-(d) share this walk: for each causal pixel, `pix` returns the pooled ln value.
typedef enum { VEC_S, VEC_V, VEC_H } vec_kind;

static double pooled_vec(vec_kind kind, const range_max *rm, const lin_prefix *lp, render_pool pool,
                         int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    int64_t lo, hi;
    // (lo, hi): the index range of the vector touched by the cell's causal pairs.
    if (kind == VEC_S) {
        lo = r0 - c1 + 1 > 0 ? r0 - c1 + 1 : 0;
        hi = r1 - c0;
    } else if (kind == VEC_V) {
        lo = c0;
        hi = c1 < r1 ? c1 : r1;
    } else {
        lo = r0 > c0 ? r0 : c0;
        hi = r1;
    }
    CHECK(hi > lo);
    if (pool == RENDER_POOL_MAX) return range_max_query(rm, lo, hi);
    // Mean over the cell's causal pairs: each index k counts as often as pairs map to it; that
    // count is piecewise linear in k, with the break points listed per kind.
    int64_t br[4] = {lo, hi, hi, hi};
    if (kind == VEC_S) {
        br[1] = r1 - c1;  // min(r1, c1 + m) switches to r1
        br[2] = r0 - c0;  // max(r0, c0 + m) switches to c0 + m
    } else if (kind == VEC_V) {
        br[1] = r0;  // count r1 - max(r0, j) switches from r1 - r0 to r1 - j
    } else {
        br[1] = c1 - 1;  // count min(i + 1, c1) - c0 switches to c1 - c0
    }
    for (int k = 1; k < 3; k++) {
        if (br[k] < lo) br[k] = lo;
        if (br[k] > hi) br[k] = hi;
    }
    if (br[1] > br[2]) {
        int64_t t = br[1];
        br[1] = br[2];
        br[2] = t;
    }
    double total = 0;
    for (int k = 0; k < 3; k++) {
        int64_t p = br[k], q = br[k + 1];
        if (q <= p) continue;
        double a = 0, b = 0;  // count(k) = a + b k on [p, q)
        if (kind == VEC_S) {
            if (c1 + p < r1) a += c1, b += 1;
            else a += r1;
            if (c0 + p < r0) a -= r0;
            else a -= c0, b -= 1;
        } else if (kind == VEC_V) {
            if (p < r0) a = r1 - r0;
            else a = r1, b = -1;
        } else {
            if (p < c1 - 1) a = 1 - c0, b = 1;
            else a = c1 - c0;
        }
        total += lin_sum(lp, p, q, a, b);
    }
    double n = (double)causal_pairs(r0, r1, c0, c1);
    return total > 0 ? log(total / n) + lp->shift : -INFINITY;
}

static void grid_vec(const results_head *H, vec_kind kind, int S, render_pool pool, float *out) {
    const float *x = kind == VEC_S ? H->s : kind == VEC_V ? H->v : H->h;
    const int64_t N = H->N;
    range_max rm = {0};
    lin_prefix lp = {0};
    if (pool == RENDER_POOL_MAX) range_max_init(&rm, x, N);
    else lin_prefix_init(&lp, x, N);
#pragma omp parallel for schedule(dynamic, 8)
    for (int a = 0; a < S; a++) {
        int64_t r0, r1;
        cell_range(a, S, N, &r0, &r1);
        for (int b = 0; b < S; b++) {
            int64_t c0, c1;
            cell_range(b, S, N, &c0, &c1);
            float *o = &out[(size_t)a * S + b];
            if (c0 > r1 - 1) *o = NAN;
            else *o = (float)(pooled_vec(kind, &rm, &lp, pool, r0, r1, c0, c1) * LOG10E);
        }
    }
    if (pool == RENDER_POOL_MAX) range_max_free(&rm);
    else lin_prefix_free(&lp);
}

void render_grid_s(const results_head *H, int S, render_pool pool, float *out) { grid_vec(H, VEC_S, S, pool, out); }
void render_grid_v(const results_head *H, int S, render_pool pool, float *out) { grid_vec(H, VEC_V, S, pool, out); }
void render_grid_h(const results_head *H, int S, render_pool pool, float *out) { grid_vec(H, VEC_H, S, pool, out); }

// 1 when every causal pair of the cell (rows from r0, columns [c0, c1)) is in the interior:
// j >= sink and i - j >= local.
static inline int cell_interior(int64_t r0, int64_t c1, int64_t c0, int sink, int local) {
    int64_t min_off = r0 - c1 + 1 > 0 ? r0 - c1 + 1 : 0;
    return c0 >= sink && min_off >= local;
}

int render_pixel_interior(int64_t N, int S, int sink, int local, int a, int b) {
    int64_t r0, r1, c0, c1;
    cell_range(a, S, N, &r0, &r1);
    cell_range(b, S, N, &c0, &c1);
    return cell_interior(r0, c1, c0, sink, local);
}

void render_grid_recomposed(const results_head *H, int sink, int local, int S, render_pool pool,
                            const float *exact, float *out) {
    const int64_t N = H->N;
    const float *s = H->s, *v = H->v, *h = H->h;
#pragma omp parallel for schedule(dynamic, 4)
    for (int a = 0; a < S; a++) {
        int64_t r0, r1;
        cell_range(a, S, N, &r0, &r1);
        for (int b = 0; b < S; b++) {
            int64_t c0, c1;
            cell_range(b, S, N, &c0, &c1);
            float *o = &out[(size_t)a * S + b];
            if (c0 > r1 - 1) {
                *o = NAN;
                continue;
            }
            if (!cell_interior(r0, c1, c0, sink, local)) {  // the pixel touches the exact Lambda-shape
                *o = exact[(size_t)a * S + b];
                continue;
            }
            int64_t rows = r1 - r0, k = rows < RENDER_RECOMP_ROWS ? rows : RENDER_RECOMP_ROWS;
            double best = -INFINITY, sum = 0, cnt = 0;
            for (int64_t t = 0; t < k; t++) {
                int64_t i = r0 + t * rows / k;
                int64_t jend = c1 < i + 1 ? c1 : i + 1;
                for (int64_t j = c0; j < jend; j++) {
                    double z = (double)s[i - j] + (double)v[j] + (double)h[i];
                    if (pool == RENDER_POOL_MAX) {
                        if (z > best) best = z;
                    } else {
                        sum += exp(z);
                        cnt += 1;
                    }
                }
            }
            double lnv = pool == RENDER_POOL_MAX ? best : (sum > 0 ? log(sum / cnt) : -INFINITY);
            *o = (float)(lnv * LOG10E);
        }
    }
}

// ---------------------------------------------------------------------------- colour
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void render_auto_range(const float *grid, int S, double *lo, double *hi) {
    size_t n = 0, tot = (size_t)S * S;
    float *vals = xmalloc(tot * sizeof(float));
    for (size_t k = 0; k < tot; k++)
        if (isfinite(grid[k])) vals[n++] = grid[k];
    if (n == 0) {
        *lo = -1;
        *hi = 0;
        free(vals);
        return;
    }
    qsort(vals, n, sizeof(float), cmp_float);
    *hi = vals[n - 1];
    *lo = vals[(size_t)(0.01 * (double)(n - 1))];
    if (*lo < *hi - 12) *lo = *hi - 12;
    if (*lo > *hi - 1) *lo = *hi - 1;
    free(vals);
}

void render_auto_range_interior(const float *grid, int64_t N, int S, int sink, int local, double *lo,
                                double *hi) {
    float *g = xmalloc((size_t)S * S * sizeof(float));
    size_t n = 0;
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            int in = render_pixel_interior(N, S, sink, local, a, b);
            g[(size_t)a * S + b] = in ? grid[(size_t)a * S + b] : NAN;
            n += in && isfinite(grid[(size_t)a * S + b]);
        }
    render_auto_range(n ? g : grid, S, lo, hi);
    free(g);
}

void render_color_grid(const float *grid, int S, colormap_id cmap, double lo, double hi, image *im) {
    image_init(im, S, S, RENDER_BLANK);
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            float g = grid[(size_t)a * S + b];
            if (isnan(g)) continue;
            uint8_t c[3];
            colormap_map(cmap, g == -INFINITY ? 0.0 : (g - lo) / (hi - lo), c);
            image_set(im, b, a, RGB8(c[0], c[1], c[2]));
        }
}

// ---------------------------------------------------------------------------- masks
// Block index under the centre of pixel a.
static inline int pixel_block(int a, int S, int64_t N, int B) {
    return (int)(((2 * (int64_t)a + 1) * N / (2 * (int64_t)S)) / B);
}

void render_mask_image(const uint8_t *mask, int64_t N, int B, int nb, int S, image *im) {
    image_init(im, S, S, RENDER_BLANK);
    for (int a = 0; a < S; a++) {
        int I = pixel_block(a, S, N, B);
        for (int b = 0; b < S; b++) {
            int J = pixel_block(b, S, N, B);
            if (J > I) continue;
            image_set(im, b, a, mask[(size_t)I * nb + J] ? RENDER_KEPT : RENDER_DROPPED);
        }
    }
}

void render_overlay_image(const uint8_t *mask, const uint8_t *needed, int64_t N, int B, int nb, int S,
                          image *im) {
    image_init(im, S, S, RENDER_BLANK);
    for (int a = 0; a < S; a++) {
        int I = pixel_block(a, S, N, B);
        for (int b = 0; b < S; b++) {
            int J = pixel_block(b, S, N, B);
            if (J > I) continue;
            size_t k = (size_t)I * nb + J;
            rgb8 c = mask[k] ? (needed[k] ? RENDER_KEPT_NEEDED : RENDER_KEPT_UNNEEDED)
                             : (needed[k] ? RENDER_DROPPED_NEEDED : RENDER_DROPPED_UNNEEDED);
            image_set(im, b, a, c);
        }
    }
}
