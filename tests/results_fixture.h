// results_fixture.h: writes a small results file by the schema of src/results.h, from a synthetic
// head whose attention is computed by brute force, row by row, in double:
//   z_ij = s_{i-j} + v_j   (j <= i),   A_ij = exp(z_ij - lse_i),   h_i = -lse_i,
// so log A = s + v + h holds exactly and the recomposition must reproduce the exact image.
// Planted: attention sinks (v large for j < 4), one vertical key column at key_col, one slash at
// offset slash_off, a slow decay with distance. The render and plot tests use it for what real
// `skel analyze` output cannot give: an exact decomposition, a vs_mask, an older results_version,
// and many small files cheaply; the pixel checks also run on synth + analyze output.
#ifndef SKEL_RESULTS_FIXTURE_H
#define SKEL_RESULTS_FIXTURE_H

#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"
#include "render.h"
#include "results.h"

typedef struct {
    int64_t N;
    int block, sink, local, image_size;
    int n_layers, n_heads;
    int with_vs;          // write a vs_mask dataset
    int version;          // results_version attribute
    int key_col, slash_off;  // planted structure of head (0, 0); other heads shift it
    double eps;
} fixture_opts;

static void fixture_default(fixture_opts *o) {
    memset(o, 0, sizeof *o);
    o->N = 2048;
    o->block = 64;
    o->sink = 64;
    o->local = 64;
    o->image_size = 1024;
    o->n_layers = 2;
    o->n_heads = 2;
    o->with_vs = 1;
    o->version = RESULTS_VERSION;
    o->key_col = 1300;
    o->slash_off = 700;
    o->eps = 0.8;
}

// Planted key column and slash offset of (layer, head).
static void fixture_plant(const fixture_opts *o, int layer, int head, int *kc, int *so) {
    *kc = (int)((o->key_col + 97 * (layer * o->n_heads + head)) % o->N);
    *so = (int)((o->slash_off + 131 * (layer * o->n_heads + head)) % (o->N / 2));
    if (*kc < 2 * o->sink) *kc += 2 * o->sink;
    if (*so < 2 * o->local) *so += 2 * o->local;
}

static void fx_attr_i64(hid_t obj, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void fx_attr_f64(hid_t obj, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void fx_attr_str(hid_t obj, const char *name, const char *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &v);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}
static void fx_dset(hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank, int64_t d0, int64_t d1,
                    const void *data) {
    hsize_t dims[2] = {(hsize_t)d0, (hsize_t)d1};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(sp);
}

// Deterministic noise in [-1, 1).
static double fx_noise(uint64_t *st) {
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*st >> 11) / (double)(1ULL << 52) - 1.0;
}

static int fx_cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

// Writes one head's group and fills its report row. Returns 0.
static int fixture_head(hid_t file, const fixture_opts *o, int layer, int head, head_report *rep) {
    const int64_t N = o->N;
    const int B = o->block, nb = (int)((N + B - 1) / B);
    const int P = (int)(o->image_size < N ? o->image_size : N);
    int kc, so;
    fixture_plant(o, layer, head, &kc, &so);
    float *s = calloc(N, sizeof(float)), *v = calloc(N, sizeof(float)), *h = calloc(N, sizeof(float));
    float *lse = calloc(N, sizeof(float));
    uint64_t st = 1234567 + 7919 * (uint64_t)(layer * 100 + head);
    for (int64_t m = 0; m < N; m++) s[m] = (float)(-1.2 * log1p((double)m / 16.0));
    s[so] += 7.0f;
    for (int64_t j = 0; j < N; j++) v[j] = (float)(0.4 * fx_noise(&st));
    for (int j = 0; j < 4; j++) v[j] += 6.0f;
    v[kc] += 7.0f;
    double *W = calloc((size_t)nb * nb, sizeof(double));
    float *X = calloc((size_t)nb * nb, sizeof(float));
    double *isum = calloc((size_t)P * P, sizeof(double)), *icnt = calloc((size_t)P * P, sizeof(double));
    float *imax = calloc((size_t)P * P, sizeof(float));
    const int zb = 64;
    double zlo = -12, zhi = 12, *zh = calloc(zb, sizeof(double)), zs = 0, zs2 = 0, zn = 0;
    double small_elems = 0, exact_small = 0, causal = (double)N * (N + 1) / 2;
    double thr = o->eps / (double)N;
    double *row = malloc(N * sizeof(double));
    for (int64_t i = 0; i < N; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; j++) {
            row[j] = (double)s[i - j] + (double)v[j];
            if (row[j] > mx) mx = row[j];
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; j++) sum += exp(row[j] - mx);
        double l = mx + log(sum);
        lse[i] = (float)l;
        h[i] = (float)-l;
        int64_t pa = i * P / N;
        for (int64_t j = 0; j <= i; j++) {
            double z = row[j], A = exp(z - l);
            size_t bk = (size_t)(i / B) * nb + (size_t)(j / B);
            W[bk] += A;
            if (A > X[bk]) X[bk] = (float)A;
            size_t ck = (size_t)pa * P + (size_t)(j * P / N);
            isum[ck] += A;
            icnt[ck] += 1;
            if (A > imax[ck]) imax[ck] = (float)A;
            int zk = (int)((z - zlo) / (zhi - zlo) * zb);
            if (zk >= 0 && zk < zb) zh[zk] += 1;
            zs += z, zs2 += z * z, zn += 1;
            small_elems += A < thr;
            row[j] = A;
        }
        // Exact sparsity: the most smallest elements whose mass stays below eps.
        qsort(row, (size_t)i + 1, sizeof(double), fx_cmp_double);
        double acc = 0;
        int64_t cnt = 0;
        for (int64_t k = 0; k <= i && acc + row[k] < o->eps; k++) acc += row[k], cnt++;
        exact_small += (double)cnt;
    }
    // Mask: sink column, local band, the planted column's block and the slash's two diagonals.
    uint8_t *mask = calloc((size_t)nb * nb, 1), *vs = calloc((size_t)nb * nb, 1);
    int sinkb = (o->sink + B - 1) / B, localb = (o->local + B - 1) / B, kb = kc / B, sb = so / B;
    for (int I = 0; I < nb; I++)
        for (int J = 0; J <= I; J++) {
            int keep = J < sinkb || I - J <= localb || J == kb || I - J == sb || I - J == sb + 1;
            mask[(size_t)I * nb + J] = (uint8_t)keep;
            vs[(size_t)I * nb + J] = (uint8_t)(J < 1 || I - J <= 1 || J == kb || I - J == sb);
        }
    float *Wf = malloc((size_t)nb * nb * sizeof(float)), *imean = malloc((size_t)P * P * sizeof(float));
    for (size_t k = 0; k < (size_t)nb * nb; k++) Wf[k] = (float)W[k];
    for (size_t k = 0; k < (size_t)P * P; k++) imean[k] = icnt[k] > 0 ? (float)(isum[k] / icnt[k]) : 0.0f;
    double blk_small = 0;
    for (int I = 0; I < nb; I++)
        for (int J = 0; J <= I; J++) blk_small += X[(size_t)I * nb + J] < thr;

    char gp[128];
    snprintf(gp, sizeof gp, "/layers/%d/heads/%d", layer, head);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, gp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    fx_dset(g, "lse", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, N, 0, lse);
    fx_dset(g, "s", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, N, 0, s);
    fx_dset(g, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, N, 0, v);
    fx_dset(g, "h", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, N, 0, h);
    fx_dset(g, "block_mass", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, nb, nb, Wf);
    fx_dset(g, "block_max", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, nb, nb, X);
    fx_dset(g, "image_max", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, P, P, imax);
    fx_dset(g, "image_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, P, P, imean);
    fx_dset(g, "mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, nb, nb, mask);
    if (o->with_vs) fx_dset(g, "vs_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, nb, nb, vs);
    fx_dset(g, "z_hist", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, zb, 0, zh);
    hid_t d = H5Dopen2(g, "z_hist", H5P_DEFAULT);
    double zm = zs / zn, zv = zs2 / zn - zm * zm;
    fx_attr_f64(d, "lo", zlo);
    fx_attr_f64(d, "hi", zhi);
    fx_attr_f64(d, "mean", zm);
    fx_attr_f64(d, "var", zv);
    fx_attr_f64(d, "skew", 0.0);
    fx_attr_f64(d, "kurtosis", 0.0);
    H5Dclose(d);
    H5Gclose(g);

    memset(rep, 0, sizeof *rep);
    rep->layer = layer;
    rep->head = head;
    rep->kv_head = 0;
    rep->n_tokens = N;
    rep->exact_sparsity = exact_small / causal;
    rep->threshold_sparsity = small_elems / causal;
    rep->block_sparsity = blk_small / ((double)nb * (nb + 1) / 2);
    rep->predicted_sparsity = rep->threshold_sparsity * (1 - 0.05 * (head + 1));
    rep->predicted_block_sparsity = rep->block_sparsity * (1 - 0.03 * (layer + 1));
    mask_metrics mm, om;
    mask_evaluate(mask, Wf, N, B, &mm);
    rep->mask_density = mm.density;
    rep->mask_recall = mm.recall;
    rep->min_rowblock_recall = mm.min_rowblock_recall;
    uint8_t *orc = calloc((size_t)nb * nb, 1);
    mask_oracle(orc, Wf, N, B, rep->mask_recall);
    mask_evaluate(orc, Wf, N, B, &om);
    rep->oracle_density_at_same_recall = om.density;
    free(orc);
    rep->fit_r2 = 1.0;
    rep->fit_rmse = 0.0;
    rep->output_rel_error = NAN;
    free(s), free(v), free(h), free(lse), free(W), free(X), free(isum), free(icnt), free(imax), free(zh);
    free(row), free(mask), free(vs), free(Wf), free(imean);
    return 0;
}

// Writes the whole file: root attributes, every head, and /report.
static int fixture_write(const char *path, const fixture_opts *o) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    fx_attr_str(f, "model", "synthetic-fixture");
    fx_attr_i64(f, "n_tokens", o->N);
    fx_attr_i64(f, "n_layers", o->n_layers);
    fx_attr_i64(f, "n_q_heads", o->n_heads);
    fx_attr_i64(f, "n_kv_heads", 1);
    fx_attr_i64(f, "head_dim", 64);
    fx_attr_str(f, "rope_layout", "half");
    fx_attr_i64(f, "block", o->block);
    fx_attr_i64(f, "sink", o->sink);
    fx_attr_i64(f, "local", o->local);
    fx_attr_f64(f, "eps", o->eps);
    fx_attr_i64(f, "image_size", o->image_size);
    fx_attr_i64(f, "results_version", o->version);
    fx_attr_str(f, "source", "tests/results_fixture.h");
    int n = o->n_layers * o->n_heads;
    head_report *rows = calloc((size_t)n, sizeof *rows);
    for (int l = 0; l < o->n_layers; l++)
        for (int hd = 0; hd < o->n_heads; hd++) fixture_head(f, o, l, hd, &rows[l * o->n_heads + hd]);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(head_report));
#define FI(name, ty) H5Tinsert(t, #name, offsetof(head_report, name), ty)
    FI(layer, H5T_NATIVE_INT32);
    FI(head, H5T_NATIVE_INT32);
    FI(kv_head, H5T_NATIVE_INT32);
    FI(n_tokens, H5T_NATIVE_INT64);
    FI(exact_sparsity, H5T_NATIVE_DOUBLE);
    FI(threshold_sparsity, H5T_NATIVE_DOUBLE);
    FI(block_sparsity, H5T_NATIVE_DOUBLE);
    FI(predicted_sparsity, H5T_NATIVE_DOUBLE);
    FI(predicted_block_sparsity, H5T_NATIVE_DOUBLE);
    FI(mask_density, H5T_NATIVE_DOUBLE);
    FI(mask_recall, H5T_NATIVE_DOUBLE);
    FI(min_rowblock_recall, H5T_NATIVE_DOUBLE);
    FI(oracle_density_at_same_recall, H5T_NATIVE_DOUBLE);
    FI(fit_r2, H5T_NATIVE_DOUBLE);
    FI(fit_rmse, H5T_NATIVE_DOUBLE);
    FI(output_rel_error, H5T_NATIVE_DOUBLE);
    FI(time_exact_ms, H5T_NATIVE_DOUBLE);
    FI(time_decomp_ms, H5T_NATIVE_DOUBLE);
    FI(time_mask_ms, H5T_NATIVE_DOUBLE);
#undef FI
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "report", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    free(rows);
    H5Fclose(f);
    return 0;
}

#endif
