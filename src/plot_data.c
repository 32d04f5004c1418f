#include "plot_data.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static int cmp_exact(const void *a, const void *b) {
    const head_report *x = a, *y = b;
    return (x->exact_sparsity > y->exact_sparsity) - (x->exact_sparsity < y->exact_sparsity);
}

int plot_choose_heads(const head_report *rows, int n, plot_head *out) {
    if (n <= 0) return 0;
    head_report *s = xmalloc((size_t)n * sizeof *s);
    memcpy(s, rows, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_exact);
    int pick[3] = {0, n / 2, n - 1}, k = 0;
    for (int p = 0; p < 3; p++) {
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= out[q].layer == s[pick[p]].layer && out[q].head == s[pick[p]].head;
        if (!dup) out[k++] = (plot_head){s[pick[p]].layer, s[pick[p]].head};
    }
    free(s);
    return k;
}

// A file written under a temporary name and renamed when complete.
typedef struct {
    FILE *f;
    char path[1100], tmp[1200];
} out_file;

static int out_open(out_file *o, const char *dir, const char *name, skel_err *e) {
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld", o->path, (long)getpid());
    o->f = fopen(o->tmp, "w");
    if (!o->f) return skel_fail(e, "%s: cannot create: %s", o->path, strerror(errno));
    return 0;
}
static int out_close(out_file *o, skel_err *e) {
    int bad = ferror(o->f);
    if (fclose(o->f) != 0 || bad) {
        unlink(o->tmp);
        return skel_fail(e, "%s: write failed", o->path);
    }
    if (rename(o->tmp, o->path) != 0) {
        int err = errno;
        unlink(o->tmp);
        return skel_fail(e, "%s: cannot rename into place: %s", o->path, strerror(err));
    }
    return 0;
}

static int write_report(const head_report *rows, int n, const char *dir, skel_err *e) {
    out_file o;
    if (out_open(&o, dir, "report.dat", e)) return -1;
    fprintf(o.f, "# layer head exact threshold block predicted predicted_block mask_density mask_recall "
                 "oracle_density min_rowblock_recall\n");
    for (int k = 0; k < n; k++) {
        const head_report *r = &rows[k];
        fprintf(o.f, "%d %d %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g\n", r->layer, r->head, r->exact_sparsity,
                r->threshold_sparsity, r->block_sparsity, r->predicted_sparsity, r->predicted_block_sparsity,
                r->mask_density, r->mask_recall, r->oracle_density_at_same_recall, r->min_rowblock_recall);
    }
    return out_close(&o, e);
}

// The layers the report holds, ascending, into out (capacity n); returns the count.
static int present_layers(const head_report *rows, int n, int *out) {
    int nl = 0;
    for (int k = 0; k < n; k++) {
        int l = rows[k].layer, at = 0;
        while (at < nl && out[at] < l) at++;
        if (at < nl && out[at] == l) continue;
        memmove(out + at + 1, out + at, (size_t)(nl - at) * sizeof(int));
        out[at] = l;
        nl++;
    }
    return nl;
}

// One block of rows per layer present (a dump may hold layers 0, 14, 29 of 30: the heat map then
// has three rows, not thirty mostly blank ones); `row` numbers them 0.. for the picture.
static int write_heatmap(const head_report *rows, int n, const char *dir, skel_err *e) {
    int *layers = xmalloc((size_t)n * sizeof(int)), nh = 0;
    int nl = present_layers(rows, n, layers);
    for (int k = 0; k < n; k++)
        if (rows[k].head + 1 > nh) nh = rows[k].head + 1;
    double *m = xmalloc((size_t)(nl ? nl : 1) * (nh ? nh : 1) * sizeof(double));
    for (int k = 0; k < nl * nh; k++) m[k] = NAN;
    for (int k = 0; k < n; k++) {
        int r = 0;
        while (layers[r] != rows[k].layer) r++;
        m[r * nh + rows[k].head] = 100 * rows[k].exact_sparsity;
    }
    out_file o;
    int rc = -1;
    if (out_open(&o, dir, "heatmap.dat", e)) goto done;
    fprintf(o.f, "# row layer head exact_sparsity_percent   (one block per layer present; NaN: no such head)\n");
    for (int r = 0; r < nl; r++) {
        for (int h = 0; h < nh; h++) fprintf(o.f, "%d %d %d %.4f\n", r, layers[r], h, m[r * nh + h]);
        fprintf(o.f, "\n");
    }
    rc = out_close(&o, e);
done:
    free(m);
    free(layers);
    return rc;
}

static int write_head(const results_file *R, const plot_head *ph, const char *dir, skel_err *e) {
    results_head H;
    if (results_read_head(R, ph->layer, ph->head, &H, e)) return -1;
    char name[128];
    out_file o;
    int rc = -1;
    // s, v, h: bin maxima keep the spikes (slashes, vertical keys) that a stride would skip.
    snprintf(name, sizeof name, "fig3_%d_%d_svh.dat", ph->layer, ph->head);
    if (out_open(&o, dir, name, e)) goto done;
    int64_t N = H.N, nbin = N < PLOT_MAX_POINTS ? N : PLOT_MAX_POINTS;
    fprintf(o.f, "# index s v h%s\n", nbin < N ? "   (maximum over each bin of indices; index = bin start)" : "");
    for (int64_t b = 0; b < nbin; b++) {
        int64_t lo = b * N / nbin, hi = (b + 1) * N / nbin;
        float s = -INFINITY, v = -INFINITY, h = -INFINITY;
        for (int64_t k = lo; k < hi; k++) {
            if (H.s[k] > s) s = H.s[k];
            if (H.v[k] > v) v = H.v[k];
            if (H.h[k] > h) h = H.h[k];
        }
        fprintf(o.f, "%lld %.6g %.6g %.6g\n", (long long)lo, s, v, h);
    }
    if (out_close(&o, e)) goto done;
    // Mask: the kept fraction of the causal blocks in each of at most PLOT_MASK_CELLS^2 cells,
    // at cell centres in token units.
    snprintf(name, sizeof name, "fig3_%d_%d_mask.dat", ph->layer, ph->head);
    if (out_open(&o, dir, name, e)) goto done;
    int nb = H.nb, C = nb < PLOT_MASK_CELLS ? nb : PLOT_MASK_CELLS, B = R->block;
    fprintf(o.f, "# key query kept_fraction   (%d x %d cells over %d x %d blocks of %d tokens)\n", C, C, nb, nb, B);
    for (int a = 0; a < C; a++) {
        int I0 = (int)((int64_t)a * nb / C), I1 = (int)((int64_t)(a + 1) * nb / C);
        for (int b = 0; b < C; b++) {
            int J0 = (int)((int64_t)b * nb / C), J1 = (int)((int64_t)(b + 1) * nb / C);
            double kept = 0, all = 0;
            for (int I = I0; I < I1; I++)
                for (int J = J0; J < J1 && J <= I; J++) kept += H.mask[(size_t)I * nb + J], all += 1;
            double x = ((double)J0 + J1) / 2.0 * B, y = ((double)I0 + I1) / 2.0 * B;
            if (all > 0) fprintf(o.f, "%.1f %.1f %.4f\n", x, y, kept / all);
            else fprintf(o.f, "%.1f %.1f NaN\n", x, y);
        }
        fprintf(o.f, "\n");
    }
    if (out_close(&o, e)) goto done;
    // z histogram as a density, with the normal of the same mean and variance.
    snprintf(name, sizeof name, "fig4_%d_%d_z.dat", ph->layer, ph->head);
    if (!H.z_hist) {
        skel_fail(e, "%s: /layers/%d/heads/%d/z_hist: missing dataset (needed for Fig. 4)", R->path, ph->layer,
                  ph->head);
        goto done;
    }
    if (!(H.z_hi > H.z_lo) || H.z_bins < 1 || !(H.z_var > 0)) {
        skel_fail(e, "%s: /layers/%d/heads/%d/z_hist: bad attributes lo=%g hi=%g var=%g", R->path, ph->layer,
                  ph->head, H.z_lo, H.z_hi, H.z_var);
        goto done;
    }
    if (out_open(&o, dir, name, e)) goto done;
    double tot = 0, w = (H.z_hi - H.z_lo) / H.z_bins;
    for (int k = 0; k < H.z_bins; k++) tot += H.z_hist[k];
    // Block 0: the histogram from its first to its last non-empty bin. Block 1: the normal density
    // on a fine grid over mean +- 5 sd, so the curve is smooth whatever the bin width.
    int k0 = 0, k1 = H.z_bins - 1;
    while (k0 < k1 && H.z_hist[k0] == 0) k0++;
    while (k1 > k0 && H.z_hist[k1] == 0) k1--;
    fprintf(o.f, "# z density   (mean %.6g, var %.6g, %d bins in [%g, %g])\n", H.z_mean, H.z_var, H.z_bins,
            H.z_lo, H.z_hi);
    for (int k = k0; k <= k1; k++)
        fprintf(o.f, "%.6g %.6g\n", H.z_lo + (k + 0.5) * w, tot > 0 ? H.z_hist[k] / (tot * w) : 0.0);
    fprintf(o.f, "\n\n# z normal_density\n");
    double sd = sqrt(H.z_var);
    for (int k = 0; k <= 400; k++) {
        double z = H.z_mean - 5 * sd + k * (10 * sd / 400), d = z - H.z_mean;
        fprintf(o.f, "%.6g %.6g\n", z, exp(-d * d / (2 * H.z_var)) / sqrt(2 * M_PI * H.z_var));
    }
    if (out_close(&o, e)) goto done;
    rc = 0;
done:
    results_head_free(&H);
    return rc;
}

static int write_params(const results_file *R, const head_report *rows, int n_rows, const plot_head *heads,
                        int n_heads, const char *dir, skel_err *e) {
    out_file o;
    if (out_open(&o, dir, "params.gp", e)) return -1;
    // gnuplot strings in single quotes: a quote inside is doubled.
    fprintf(o.f, "model = '");
    for (const char *c = R->model[0] ? R->model : "(model unknown)"; *c; c++)
        fprintf(o.f, *c == '\'' ? "''" : "%c", *c);
    fprintf(o.f, "'\nn_tokens = %lld\neps = %.6g\nn_heads_total = %d\nheads = '", (long long)R->n_tokens,
            isnan(R->eps) ? 0.0 : R->eps, n_rows);
    for (int k = 0; k < n_heads; k++) fprintf(o.f, "%s%d_%d", k ? " " : "", heads[k].layer, heads[k].head);
    fprintf(o.f, "'\nhead_labels = '");
    for (int k = 0; k < n_heads; k++) fprintf(o.f, "%sL%d/H%d", k ? " " : "", heads[k].layer, heads[k].head);
    fprintf(o.f, "'\nblock = %d\nsink = %d\nlocal = %d\nlayers_present = '", R->block, R->sink, R->local);
    int *layers = xmalloc((size_t)n_rows * sizeof(int));
    int nl = present_layers(rows, n_rows, layers);
    for (int k = 0; k < nl; k++) fprintf(o.f, "%s%d", k ? " " : "", layers[k]);
    free(layers);
    fprintf(o.f, "'\n");
    return out_close(&o, e);
}

// The recall-density sweeps of the chosen heads that have one (skel analyze --sweep):
// sweep_<L>_<H>.dat, one gnuplot index per method in SWEEP_ORDER (columns knob density
// compute_fraction recall min_rowblock_recall), and sweep_params.gp naming those heads.
static const char *const SWEEP_ORDER[] = {"skeleton", "vertical_slash", "xattention", "flexprefill", "lambda",
                                          "trianglemix", "oracle", "oracle_global"};

int plot_write_sweeps(const results_file *R, const plot_head *heads, int n_heads, const char *dir, int *has_sweep,
                      skel_err *e) {
    out_file o;
    char list[PLOT_MAX_HEADS * 24] = "";
    for (int k = 0; k < n_heads; k++) {
        char name[128];
        has_sweep[k] = 0;
        snprintf(name, sizeof name, "/layers/%d/heads/%d/sweep", heads[k].layer, heads[k].head);
        if (H5Lexists(R->file, name, H5P_DEFAULT) <= 0) continue;
        hid_t d = H5Dopen2(R->file, name, H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        sweep_point *pts = xcalloc(n > 0 ? (size_t)n : 1, sizeof(sweep_point));
        hid_t t = results_sweep_type();
        int bad = n < 1 || n > SWEEP_MAX_POINTS || H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, pts) < 0;
        H5Tclose(t);
        H5Sclose(sp);
        H5Dclose(d);
        if (bad) {
            free(pts);
            return skel_fail(e, "%s: %s: cannot read the sweep table", R->path, name);
        }
        snprintf(name, sizeof name, "sweep_%d_%d.dat", heads[k].layer, heads[k].head);
        if (out_open(&o, dir, name, e)) {
            free(pts);
            return -1;
        }
        fprintf(o.f, "# recall-density sweep of layer %d head %d; one index per method:", heads[k].layer, heads[k].head);
        for (size_t m = 0; m < sizeof SWEEP_ORDER / sizeof SWEEP_ORDER[0]; m++) fprintf(o.f, " %s", SWEEP_ORDER[m]);
        fprintf(o.f, "\n# knob density compute_fraction recall min_rowblock_recall\n");
        for (size_t m = 0; m < sizeof SWEEP_ORDER / sizeof SWEEP_ORDER[0]; m++) {
            int any = 0;
            for (hssize_t x = 0; x < n; x++)
                if (!strcmp(pts[x].method, SWEEP_ORDER[m])) {
                    fprintf(o.f, "%.6g %.6f %.6f %.6f %.6f\n", pts[x].knob, pts[x].density, pts[x].compute_fraction,
                            pts[x].recall, pts[x].min_rowblock_recall);
                    any = 1;
                }
            if (!any) fprintf(o.f, "NaN NaN NaN NaN NaN\n");
            fprintf(o.f, "\n\n");
        }
        free(pts);
        if (out_close(&o, e)) return -1;
        has_sweep[k] = 1;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%d_%d", len ? " " : "", heads[k].layer, heads[k].head);
    }
    if (out_open(&o, dir, "sweep_params.gp", e)) return -1;
    fprintf(o.f, "sweep_heads = '%s'\n", list);
    return out_close(&o, e);
}

int plot_write_cost(const char *const *paths, int n_paths, const char *dir, int *has_cost, skel_err *e) {
    *has_cost = 0;
    // per file: N and d from the root, the /methods rows of every analysed head
    static const char *const order[] = {"dense", "skeleton", "vertical_slash", "xattention", "flexprefill",
                                        "lambda", "trianglemix", "oracle"};
    const int nm = (int)(sizeof order / sizeof order[0]);
    double *pflop = xcalloc((size_t)n_paths * nm, sizeof(double));
    int64_t *ns = xcalloc(n_paths, sizeof(int64_t));
    for (int f = 0; f < n_paths; f++) {
        results_file R;
        if (results_open(&R, paths[f], e)) {
            free(pflop), free(ns);
            return -1;
        }
        ns[f] = R.n_tokens;
        long long d = 0;
        hid_t a = H5Aexists(R.file, "head_dim") > 0 ? H5Aopen(R.file, "head_dim", H5P_DEFAULT) : -1;
        if (a >= 0) H5Aread(a, H5T_NATIVE_LLONG, &d), H5Aclose(a);
        if (d <= 0 || H5Lexists(R.file, "/methods", H5P_DEFAULT) <= 0) {  // not from skel analyze: no chart
            results_close(&R);
            free(pflop), free(ns);
            return 0;
        }
        hid_t ds = H5Dopen2(R.file, "/methods", H5P_DEFAULT), sp = H5Dget_space(ds), t = results_methods_type();
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        method_row *rows = xcalloc(n > 0 ? (size_t)n : 1, sizeof(method_row));
        int bad = n > 0 && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0;
        H5Tclose(t), H5Sclose(sp), H5Dclose(ds);
        results_close(&R);
        if (bad) {
            free(rows), free(pflop), free(ns);
            return skel_fail(e, "%s: /methods: cannot read", paths[f]);
        }
        // attention FLOPs of a head: QK^T and PV over the causal pairs kept, 2 flops a product each
        const double dense = 4.0 * (double)d * (double)ns[f] * (double)(ns[f] + 1) / 2 / 1e15;
        for (hssize_t x = 0; x < n; x++) {
            for (int m = 1; m < nm; m++)
                if (!strcmp(rows[x].method, order[m])) pflop[f * nm + m] += rows[x].compute_fraction * dense;
            if (!strcmp(rows[x].method, "skeleton")) pflop[f * nm] += dense;  // one dense per head
        }
        free(rows);
    }
    out_file o;
    if (out_open(&o, dir, "cost.dat", e)) {
        free(pflop), free(ns);
        return -1;
    }
    fprintf(o.f, "# attention PFLOP (QK^T and PV over the kept causal pairs, summed over the analysed heads)\n");
    fprintf(o.f, "# one index per method:");
    for (int m = 0; m < nm; m++) fprintf(o.f, " %s", order[m]);
    fprintf(o.f, "\n# columns: n_tokens pflop\n");
    int *by_n = xmalloc(sizeof(int) * n_paths);  // files in order of context length, for the lines
    for (int f = 0; f < n_paths; f++) {
        int x = f;
        for (; x > 0 && ns[by_n[x - 1]] > ns[f]; x--) by_n[x] = by_n[x - 1];
        by_n[x] = f;
    }
    for (int m = 0; m < nm; m++) {
        for (int t = 0; t < n_paths; t++)
            fprintf(o.f, "%lld %.6g\n", (long long)ns[by_n[t]], pflop[by_n[t] * nm + m]);
        fprintf(o.f, "\n\n");
    }
    free(pflop), free(ns), free(by_n);
    if (out_close(&o, e)) return -1;
    *has_cost = 1;
    return 0;
}

int plot_write_data(const results_file *R, const head_report *rows, int n_rows, const plot_head *heads,
                    int n_heads, const char *dir, skel_err *e) {
    if (n_rows < 1) return skel_fail(e, "%s: /report: no rows", R->path);
    if (write_report(rows, n_rows, dir, e) || write_heatmap(rows, n_rows, dir, e)) return -1;
    for (int k = 0; k < n_heads; k++)
        if (write_head(R, &heads[k], dir, e)) return -1;
    return write_params(R, rows, n_rows, heads, n_heads, dir, e);
}
