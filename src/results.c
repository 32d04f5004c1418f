// results.c: writing the results file and the CSV report. See results.h.
#include "results.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

const char *const REPORT_CSV_HEADER =
    "layer,head,kv_head,n_tokens,exact_sparsity,threshold_sparsity,block_sparsity,predicted_sparsity,"
    "predicted_block_sparsity,mask_density,mask_recall,min_rowblock_recall,oracle_density_at_same_recall,"
    "fit_r2,fit_rmse,output_rel_error,time_exact_ms,time_decomp_ms,time_mask_ms";

const char *const METHODS_CSV_HEADER = "layer,head,method,density,compute_fraction,recall,min_rowblock_recall,output_rel_error";

hid_t results_methods_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(method_row));
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, sizeof(((method_row *)0)->method));
    H5Tinsert(t, "layer", HOFFSET(method_row, layer), H5T_NATIVE_INT32);
    H5Tinsert(t, "head", HOFFSET(method_row, head), H5T_NATIVE_INT32);
    H5Tinsert(t, "method", HOFFSET(method_row, method), st);
    H5Tinsert(t, "density", HOFFSET(method_row, density), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "compute_fraction", HOFFSET(method_row, compute_fraction), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "recall", HOFFSET(method_row, recall), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "min_rowblock_recall", HOFFSET(method_row, min_rowblock_recall), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "output_rel_error", HOFFSET(method_row, output_rel_error), H5T_NATIVE_DOUBLE);
    H5Tclose(st);
    return t;
}

void report_csv_row(FILE *f, const head_report *r) {
    fprintf(f, "%d,%d,%d,%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.3f,%.3f\n", r->layer,
            r->head, r->kv_head, (long long)r->n_tokens, r->exact_sparsity, r->threshold_sparsity, r->block_sparsity,
            r->predicted_sparsity, r->predicted_block_sparsity, r->mask_density, r->mask_recall,
            r->min_rowblock_recall, r->oracle_density_at_same_recall, r->fit_r2, r->fit_rmse, r->output_rel_error,
            r->time_exact_ms, r->time_decomp_ms, r->time_mask_ms);
}

static hid_t report_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(head_report));
#define F(name, type) H5Tinsert(t, #name, HOFFSET(head_report, name), type)
    F(layer, H5T_NATIVE_INT32);
    F(head, H5T_NATIVE_INT32);
    F(kv_head, H5T_NATIVE_INT32);
    F(n_tokens, H5T_NATIVE_INT64);
    F(exact_sparsity, H5T_NATIVE_DOUBLE);
    F(threshold_sparsity, H5T_NATIVE_DOUBLE);
    F(block_sparsity, H5T_NATIVE_DOUBLE);
    F(predicted_sparsity, H5T_NATIVE_DOUBLE);
    F(predicted_block_sparsity, H5T_NATIVE_DOUBLE);
    F(mask_density, H5T_NATIVE_DOUBLE);
    F(mask_recall, H5T_NATIVE_DOUBLE);
    F(min_rowblock_recall, H5T_NATIVE_DOUBLE);
    F(oracle_density_at_same_recall, H5T_NATIVE_DOUBLE);
    F(fit_r2, H5T_NATIVE_DOUBLE);
    F(fit_rmse, H5T_NATIVE_DOUBLE);
    F(output_rel_error, H5T_NATIVE_DOUBLE);
    F(time_exact_ms, H5T_NATIVE_DOUBLE);
    F(time_decomp_ms, H5T_NATIVE_DOUBLE);
    F(time_mask_ms, H5T_NATIVE_DOUBLE);
#undef F
    return t;
}

int results_create(results_writer *R, const char *path, const dump *D, const results_params *p, skel_err *e) {
    memset(R, 0, sizeof *R);
    R->file = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(R->path, sizeof R->path, "%s", path);
    snprintf(R->tmp_path, sizeof R->tmp_path, "%s.tmp-%d", path, (int)getpid());
    size_t n = strlen(path);
    if (n > 3 && !strcmp(path + n - 3, ".h5")) snprintf(R->csv_path, sizeof R->csv_path, "%.*s.csv", (int)(n - 3), path);
    else snprintf(R->csv_path, sizeof R->csv_path, "%s.csv", path);
    snprintf(R->csv_tmp, sizeof R->csv_tmp, "%s.tmp-%d", R->csv_path, (int)getpid());
    snprintf(R->mcsv_path, sizeof R->mcsv_path, "%.*s_methods.csv", (int)(strlen(R->csv_path) - 4), R->csv_path);
    snprintf(R->mcsv_tmp, sizeof R->mcsv_tmp, "%s.tmp-%d", R->mcsv_path, (int)getpid());
    R->file = H5Fcreate(R->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (R->file < 0) return skel_fail(e, "%s: cannot create output file (%s)", path, strerror(errno));
    const dump_meta *m = &D->meta;
    h5_attr_put_str(R->file, "model", m->model);
    h5_attr_put_str(R->file, "source", D->path);
    h5_attr_put_i64(R->file, "n_tokens", m->n_tokens);
    h5_attr_put_i64(R->file, "n_layers", m->n_layers);
    h5_attr_put_i64(R->file, "n_q_heads", m->n_q_heads);
    h5_attr_put_i64(R->file, "n_kv_heads", m->n_kv_heads);
    h5_attr_put_i64(R->file, "head_dim", m->head_dim);
    h5_attr_put_str(R->file, "rope_layout", rope_layout_name(m->layout));
    h5_attr_put_i64(R->file, "results_version", RESULTS_VERSION);
    h5_attr_put_i64(R->file, "block", p->block);
    h5_attr_put_i64(R->file, "sink", p->sink);
    h5_attr_put_i64(R->file, "local", p->local);
    h5_attr_put_f64(R->file, "eps", p->eps);
    h5_attr_put_f64(R->file, "budget", p->budget);
    h5_attr_put_f64(R->file, "ridge", p->ridge);
    h5_attr_put_i64(R->file, "samples", p->samples);
    h5_attr_put_i64(R->file, "seed", (long long)p->seed);
    h5_attr_put_i64(R->file, "image_size", p->image_size);
    h5_attr_put_str(R->file, "device", p->device);
    hid_t g = H5Gcreate2(R->file, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    return 0;
}

static int put_array(hid_t g, const char *name, hid_t ft, hid_t mt, int rank, const hsize_t *dims, const void *data) {
    if (rank == 2) return h5_put2d(g, name, ft, mt, dims, data, NULL);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d < 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return rc;
}

// A 2-D array, from its packed form when pk holds one.
static int put_2d(hid_t g, const char *name, hid_t ft, hid_t mt, const hsize_t *dims, const void *data,
                  const results_packed *pk) {
    for (int x = 0; pk && x < pk->n; x++)
        if (pk->src[x] == data) return h5_put2d(g, name, ft, mt, dims, data, &pk->a[x]);
    return h5_put2d(g, name, ft, mt, dims, data, NULL);
}

void results_pack_head(results_packed *pk, const exact_stats *st, const uint8_t *mask, int nmethods,
                       const uint8_t *const *mmasks) {
    memset(pk, 0, sizeof *pk);
    const hsize_t nb = (hsize_t)st->nb, P = (hsize_t)st->P;
    const void *f32[4] = {st->block_mass, st->block_max, st->image_max, st->image_mean};
    for (int x = 0; x < 4; x++) {
        const hsize_t n = x < 2 ? nb : P;
        if (n * n < 4096) continue;  // stored contiguous
        pk->src[pk->n] = f32[x];
        h5_pack2d(&pk->a[pk->n++], f32[x], sizeof(float), n, n);
    }
    if (nb * nb < 4096) return;
    for (int m = -1; m < nmethods && pk->n < RESULTS_MAX_PACKED; m++) {
        const uint8_t *mk = m < 0 ? mask : mmasks[m];
        if (!mk || (m >= 0 && mk == mask)) continue;
        pk->src[pk->n] = mk;
        h5_pack2d(&pk->a[pk->n++], mk, 1, nb, nb);
    }
}

void results_packed_free(results_packed *pk) {
    for (int x = 0; x < pk->n; x++) h5_packed_free(&pk->a[x]);
    pk->n = 0;
}

int results_put_head(results_writer *R, const exact_stats *st, const decomp *dc, const uint8_t *mask,
                     const head_report *rep, int nmethods, const char *const *dset, const uint8_t *const *mmasks,
                     const method_row *mrows, const results_packed *pk, skel_err *e) {
    char name[96];
    snprintf(name, sizeof name, "/layers/%d", rep->layer);
    if (H5Lexists(R->file, name, H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(R->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    snprintf(name, sizeof name, "/layers/%d/heads", rep->layer);
    if (H5Lexists(R->file, name, H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(R->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    snprintf(name, sizeof name, "/layers/%d/heads/%d", rep->layer, rep->head);
    hid_t g = H5Gcreate2(R->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return skel_fail(e, "%s: %s: cannot create group (head analysed twice?)", R->path, name);
    hsize_t n1[1] = {(hsize_t)st->N}, nb2[2] = {(hsize_t)st->nb, (hsize_t)st->nb}, p2[2] = {(hsize_t)st->P, (hsize_t)st->P};
    hsize_t d1[1] = {(hsize_t)dc->d}, zb[1] = {EXACT_ZHIST_BINS};
    int rc = 0;
    rc |= put_array(g, "lse", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n1, st->lse);
    rc |= put_2d(g, "block_mass", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, nb2, st->block_mass, pk);
    rc |= put_2d(g, "block_max", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, nb2, st->block_max, pk);
    rc |= put_2d(g, "image_max", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p2, st->image_max, pk);
    rc |= put_2d(g, "image_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p2, st->image_mean, pk);
    rc |= put_array(g, "s", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n1, dc->s);
    rc |= put_array(g, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n1, dc->v);
    rc |= put_array(g, "h", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n1, dc->h);
    rc |= put_array(g, "alpha", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, dc->alpha);
    rc |= put_array(g, "kappa", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, dc->kappa);
    rc |= put_2d(g, "mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, nb2, mask, pk);
    rc |= put_array(g, "z_hist", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, zb, st->zhist);
    for (int m = 0; m < nmethods; m++)
        if (dset[m]) rc |= put_2d(g, dset[m], H5T_STD_U8LE, H5T_NATIVE_UINT8, nb2, mmasks[m], pk);
    if (!rc) {
        hid_t z = H5Dopen2(g, "z_hist", H5P_DEFAULT);
        h5_attr_put_f64(z, "lo", st->zlo);
        h5_attr_put_f64(z, "hi", st->zhi);
        h5_attr_put_f64(z, "mean", st->zmean);
        h5_attr_put_f64(z, "var", st->zvar);
        h5_attr_put_f64(z, "skew", st->zskew);
        h5_attr_put_f64(z, "kurtosis", st->zkurt);
        H5Dclose(z);
        h5_attr_put_i64(g, "layer", rep->layer);
        h5_attr_put_i64(g, "head", rep->head);
        h5_attr_put_i64(g, "kv_head", rep->kv_head);
        h5_attr_put_i64(g, "n_tokens", rep->n_tokens);
        h5_attr_put_f64(g, "exact_sparsity", rep->exact_sparsity);
        h5_attr_put_f64(g, "threshold_sparsity", rep->threshold_sparsity);
        h5_attr_put_f64(g, "block_sparsity", rep->block_sparsity);
        h5_attr_put_f64(g, "predicted_sparsity", rep->predicted_sparsity);
        h5_attr_put_f64(g, "predicted_block_sparsity", rep->predicted_block_sparsity);
        h5_attr_put_f64(g, "mask_density", rep->mask_density);
        h5_attr_put_f64(g, "mask_recall", rep->mask_recall);
        h5_attr_put_f64(g, "min_rowblock_recall", rep->min_rowblock_recall);
        h5_attr_put_f64(g, "oracle_density_at_same_recall", rep->oracle_density_at_same_recall);
        h5_attr_put_f64(g, "fit_r2", rep->fit_r2);
        h5_attr_put_f64(g, "fit_rmse", rep->fit_rmse);
        h5_attr_put_f64(g, "output_rel_error", rep->output_rel_error);
        h5_attr_put_f64(g, "time_exact_ms", rep->time_exact_ms);
        h5_attr_put_f64(g, "time_decomp_ms", rep->time_decomp_ms);
        h5_attr_put_f64(g, "time_mask_ms", rep->time_mask_ms);
    }
    H5Gclose(g);
    if (rc) return skel_fail(e, "%s: %s: cannot write (disk full?)", R->path, name);
    if (R->nrows == R->cap) {
        R->cap = R->cap ? 2 * R->cap : 64;
        head_report *nr = realloc(R->rows, sizeof(head_report) * R->cap);
        CHECK(nr);
        R->rows = nr;
    }
    R->rows[R->nrows++] = *rep;
    for (int m = 0; m < nmethods; m++) {
        if (R->nmrows == R->mcap) {
            R->mcap = R->mcap ? 2 * R->mcap : 256;
            method_row *nr = realloc(R->mrows, sizeof(method_row) * R->mcap);
            CHECK(nr);
            R->mrows = nr;
        }
        R->mrows[R->nmrows++] = mrows[m];
    }
    return 0;
}

hid_t results_sweep_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(sweep_point));
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, sizeof(((sweep_point *)0)->method));
    H5Tinsert(t, "method", HOFFSET(sweep_point, method), st);
    H5Tinsert(t, "knob", HOFFSET(sweep_point, knob), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "density", HOFFSET(sweep_point, density), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "compute_fraction", HOFFSET(sweep_point, compute_fraction), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "recall", HOFFSET(sweep_point, recall), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "min_rowblock_recall", HOFFSET(sweep_point, min_rowblock_recall), H5T_NATIVE_DOUBLE);
    H5Tclose(st);
    return t;
}

int results_put_sweep(results_writer *R, int layer, int head, const sweep_point *pts, int n, skel_err *e) {
    char name[128];
    snprintf(name, sizeof name, "/layers/%d/heads/%d/sweep", layer, head);
    hid_t t = results_sweep_type();
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(R->file, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int bad = d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, pts) < 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    return bad ? skel_fail(e, "%s: %s: cannot write", R->path, name) : 0;
}

int results_finish(results_writer *R, skel_err *e) {
    hid_t t = report_type();
    hsize_t n[1] = {(hsize_t)R->nrows};
    hid_t sp = H5Screate_simple(1, n, NULL);
    hid_t d = H5Dcreate2(R->file, "/report", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int bad = d < 0 || (R->nrows && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, R->rows) < 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    t = results_methods_type();
    n[0] = (hsize_t)R->nmrows;
    sp = H5Screate_simple(1, n, NULL);
    d = H5Dcreate2(R->file, "/methods", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bad |= d < 0 || (R->nmrows && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, R->mrows) < 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    bad |= H5Fclose(R->file) < 0;
    R->file = -1;
    if (bad) {
        results_abort(R);
        return skel_fail(e, "%s: cannot finish writing (disk full?)", R->path);
    }
    FILE *f = fopen(R->csv_tmp, "w");
    if (!f) {
        int err = errno;
        results_abort(R);
        return skel_fail(e, "%s: cannot write: %s", R->csv_path, strerror(err));
    }
    fprintf(f, "%s\n", REPORT_CSV_HEADER);
    for (int r = 0; r < R->nrows; r++) report_csv_row(f, &R->rows[r]);
    if (fclose(f) != 0) {
        results_abort(R);
        return skel_fail(e, "%s: cannot write (disk full?)", R->csv_path);
    }
    f = fopen(R->mcsv_tmp, "w");
    if (!f) {
        int err = errno;
        results_abort(R);
        return skel_fail(e, "%s: cannot write: %s", R->mcsv_path, strerror(err));
    }
    fprintf(f, "%s\n", METHODS_CSV_HEADER);
    for (int r = 0; r < R->nmrows; r++) {
        const method_row *m = &R->mrows[r];
        fprintf(f, "%d,%d,%s,%.6f,%.6f,%.6f,%.6f,%.6g\n", m->layer, m->head, m->method, m->density, m->compute_fraction,
                m->recall, m->min_rowblock_recall, m->output_rel_error);
    }
    if (fclose(f) != 0) {
        results_abort(R);
        return skel_fail(e, "%s: cannot write (disk full?)", R->mcsv_path);
    }
    if (rename(R->tmp_path, R->path) != 0 || rename(R->csv_tmp, R->csv_path) != 0 ||
        rename(R->mcsv_tmp, R->mcsv_path) != 0) {
        int err = errno;
        results_abort(R);
        return skel_fail(e, "%s: cannot rename the finished file into place: %s", R->path, strerror(err));
    }
    free(R->rows);
    free(R->mrows);
    R->rows = NULL;
    R->mrows = NULL;
    return 0;
}

void results_abort(results_writer *R) {
    if (R->file >= 0) H5Fclose(R->file);
    R->file = -1;
    unlink(R->tmp_path);
    unlink(R->csv_tmp);
    unlink(R->mcsv_tmp);
    free(R->rows);
    free(R->mrows);
    R->rows = NULL;
    R->mrows = NULL;
}
