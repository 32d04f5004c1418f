// sweep.c: see sweep.h.
#include "sweep.h"

#include <math.h>
#include <string.h>

#include "mask.h"

typedef struct {
    float w;
    int64_t x;
} wblock;

static int cmp_wblock_desc(const void *a, const void *b) {
    float x = ((const wblock *)a)->w, y = ((const wblock *)b)->w;
    return (x < y) - (x > y);
}

static void add(sweep_point *pts, int *n, const char *name, double knob, const uint8_t *mask, const sweep_input *in) {
    if (*n >= SWEEP_MAX_POINTS) return;
    mask_metrics m;
    mask_evaluate(mask, in->W, in->N, in->B, &m);
    sweep_point *p = &pts[(*n)++];
    memset(p, 0, sizeof *p);
    snprintf(p->method, sizeof p->method, "%s", name);
    p->knob = knob;
    p->density = m.density;
    p->compute_fraction = m.compute_fraction;
    p->recall = m.recall;
    p->min_rowblock_recall = m.min_rowblock_recall;
}

int sweep_head(const sweep_input *in, sweep_point *pts) {
    const int64_t N = in->N, nb = (N + in->B - 1) / in->B;
    uint8_t *mask = xmalloc((size_t)(nb * nb));
    int n = 0;
    static const double rho[] = {0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9};
    for (size_t t = 0; t < sizeof rho / sizeof rho[0]; t++) {
        mask_params p = {.B = in->B, .S = in->S, .T = in->T, .eps = in->eps, .budget = rho[t]};
        mask_skeleton(mask, in->s, in->v, in->h, N, &p);
        add(pts, &n, "skeleton", rho[t], mask, in);
    }
    // the lines of vertical-slash and FlexPrefill do not depend on the counts or the coverage
    last_lines own_vs = {0}, own_fp = {0};
    const last_lines *vs = in->vs_lines, *fp = in->fp_lines;
    if (!vs || !fp) {
        methods_lines(&own_vs, &own_fp, in->q, in->k, N, in->d, &in->mp);
        vs = &own_vs, fp = &own_fp;
    }
    int64_t nv0, ns0;
    methods_vs_counts(&in->mp, N, &nv0, &ns0);
    static const double scale[] = {0.125, 0.25, 0.5, 1, 2, 4, 8, 16};
    for (size_t t = 0; t < sizeof scale / sizeof scale[0]; t++) {
        methods_params mp = in->mp;
        mp.vs_vertical = (int64_t)fmax(1, nv0 * scale[t]);
        mp.vs_slash = (int64_t)fmax(1, ns0 * scale[t]);
        vertical_slash_select(mask, vs, N, in->B, &mp);
        add(pts, &n, "vertical_slash", scale[t], mask, in);
    }
    // XAttention's scores do not depend on tau: computed once (or given), selected per tau
    static const double tau[] = {0.5, 0.7, 0.8, 0.9, 0.95, 0.99};
    const int64_t nbx = xattention_blocks(N, &in->mp);
    const double *xs = in->xa_score;
    double *own = NULL;
    if (!xs) {
        xs = own = xmalloc(sizeof(double) * nbx * nbx);
        xattention_scores(own, in->q, in->k, N, in->d, &in->mp);
    }
    for (size_t t = 0; t < sizeof tau / sizeof tau[0]; t++) {
        methods_params mp = in->mp;
        mp.xa_tau = tau[t];
        xattention_select(mask, xs, N, in->B, &mp);
        add(pts, &n, "xattention", tau[t], mask, in);
    }
    free(own);
    static const double gamma[] = {0.5, 0.7, 0.8, 0.9, 0.95, 0.99};
    for (size_t t = 0; t < sizeof gamma / sizeof gamma[0]; t++) {
        methods_params mp = in->mp;
        mp.fp_gamma = gamma[t];
        flexprefill_select(mask, fp, in->q, in->k, N, in->d, in->B, &mp);
        add(pts, &n, "flexprefill", gamma[t], mask, in);
    }
    for (int64_t w = 64; w < 2 * N; w *= 2) {
        methods_params mp = in->mp;
        mp.lambda_window = (int)(w < N ? w : N);
        method_lambda(mask, N, in->B, &mp);
        add(pts, &n, "lambda", (double)mp.lambda_window, mask, in);
        mp.tri_local = mp.lambda_window;
        method_trianglemix(mask, N, in->B, &mp);
        add(pts, &n, "trianglemix", (double)mp.tri_local, mask, in);
        if (w >= N) break;
    }
    static const double rec[] = {0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999};
    for (size_t t = 0; t < sizeof rec / sizeof rec[0]; t++) {
        mask_oracle(mask, in->W, N, in->B, rec[t]);
        add(pts, &n, "oracle", rec[t], mask, in);
    }
    // the global oracle: the heaviest blocks of the head, at the densities of the budget sweep
    const int64_t nc = nb * (nb + 1) / 2;
    wblock *all = xmalloc(sizeof(wblock) * nc);
    int64_t c = 0;
    for (int64_t I = 0; I < nb; I++)
        for (int64_t J = 0; J <= I; J++) all[c].w = in->W[I * nb + J], all[c].x = I * nb + J, c++;
    qsort(all, nc, sizeof(wblock), cmp_wblock_desc);
    for (size_t t = 0; t < sizeof rho / sizeof rho[0]; t++) {
        int64_t keep = (int64_t)ceil(rho[t] * nc);
        memset(mask, 0, (size_t)(nb * nb));
        for (int64_t x = 0; x < keep && x < nc; x++) mask[all[x].x] = 1;
        add(pts, &n, "oracle_global", rho[t], mask, in);
    }
    free(all);
    free(mask);
    if (vs == &own_vs) methods_lines_free(&own_vs), methods_lines_free(&own_fp);
    return n;
}
