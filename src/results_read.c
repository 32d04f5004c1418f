#include "results_read.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

// ---------------------------------------------------------------------------- attributes
static int attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

static int attr_i64(hid_t obj, const char *name, int64_t *out) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, out) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

static int attr_f64(hid_t obj, const char *name, double *out) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

// Fixed- or variable-length string attribute into out (truncated to cap - 1).
static int attr_str(hid_t obj, const char *name, char *out, size_t cap) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(out, cap, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(ft);
            char *buf = xcalloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            if (H5Aread(a, mt, buf) >= 0) {
                snprintf(out, cap, "%s", buf);
                rc = 0;
            }
            H5Tclose(mt);
            free(buf);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

// ---------------------------------------------------------------------------- open
int results_open(results_file *R, const char *path, skel_err *e) {
    memset(R, 0, sizeof *R);
    R->file = -1;
    snprintf(R->path, sizeof R->path, "%s", path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);  // errors are reported through skel_err, not stderr
    FILE *probe = fopen(path, "rb");
    if (!probe) return skel_fail(e, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) return skel_fail(e, "%s: not an HDF5 file", path);
    R->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (R->file < 0) return skel_fail(e, "%s: HDF5 cannot open the file", path);
    hid_t root = R->file;
    int64_t v;
    if (!attr_exists(root, "results_version") || attr_i64(root, "results_version", &v) < 0) {
        results_close(R);
        return skel_fail(e, "%s: /: no results_version attribute (not a results file from skel analyze?)",
                         path);
    }
    R->results_version = (int)v;
    if (v < RESULTS_VERSION) {
        results_close(R);
        return skel_fail(e, "%s: /: results_version %lld is older than this skel's %d; re-run skel analyze",
                         path, (long long)v, RESULTS_VERSION);
    }
    if (v > RESULTS_VERSION) {
        results_close(R);
        return skel_fail(e, "%s: /: results_version %lld is newer than this skel's %d; update skel", path,
                         (long long)v, RESULTS_VERSION);
    }
    static const char *need[] = {"n_tokens", "block", "sink", "local"};
    int64_t vals[4];
    for (int k = 0; k < 4; k++)
        if (!attr_exists(root, need[k]) || attr_i64(root, need[k], &vals[k]) < 0) {
            results_close(R);
            return skel_fail(e, "%s: /: missing integer attribute %s", path, need[k]);
        }
    R->n_tokens = vals[0];
    R->block = (int)vals[1];
    R->sink = (int)vals[2];
    R->local = (int)vals[3];
    if (R->n_tokens < 1 || R->block < 1 || R->sink < 0 || R->local < 0) {
        results_close(R);
        return skel_fail(e, "%s: /: bad attributes n_tokens=%lld block=%d sink=%d local=%d", path,
                         (long long)R->n_tokens, R->block, R->sink, R->local);
    }
    int64_t t;
    R->image_size = attr_exists(root, "image_size") && attr_i64(root, "image_size", &t) == 0 ? (int)t : 1024;
    R->n_layers = attr_exists(root, "n_layers") && attr_i64(root, "n_layers", &t) == 0 ? (int)t : 0;
    R->n_q_heads = attr_exists(root, "n_q_heads") && attr_i64(root, "n_q_heads", &t) == 0 ? (int)t : 0;
    R->eps = NAN;
    if (attr_exists(root, "eps")) attr_f64(root, "eps", &R->eps);
    if (attr_exists(root, "model")) attr_str(root, "model", R->model, sizeof R->model);
    return 0;
}

void results_close(results_file *R) {
    if (R->file >= 0) H5Fclose(R->file);
    R->file = -1;
}

int results_has_head(const results_file *R, int layer, int head) {
    char p[128];
    snprintf(p, sizeof p, "/layers/%d", layer);
    if (H5Lexists(R->file, "/layers", H5P_DEFAULT) <= 0 || H5Lexists(R->file, p, H5P_DEFAULT) <= 0) return 0;
    snprintf(p, sizeof p, "/layers/%d/heads", layer);
    if (H5Lexists(R->file, p, H5P_DEFAULT) <= 0) return 0;
    snprintf(p, sizeof p, "/layers/%d/heads/%d", layer, head);
    return H5Lexists(R->file, p, H5P_DEFAULT) > 0;
}

// ---------------------------------------------------------------------------- datasets
// Appends the names of the links in group `path` to buf (space separated), for error messages.
static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    char *buf = data;
    size_t n = strlen(buf);
    if (n + strlen(name) + 2 < 256) snprintf(buf + n, 256 - n, "%s%s", n ? " " : "", name);
    return 0;
}
static void list_group(hid_t file, const char *path, char buf[256]) {
    buf[0] = 0;
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return;
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0) return;
    hsize_t idx = 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, buf);
    H5Gclose(g);
}

// Reads dataset `name` of group g, whose path is gpath, into a new buffer of memory type mt,
// checking its rank and dims (a dim of 0 in `want` is read back into it).
static int read_dset(const results_file *R, hid_t g, const char *gpath, const char *name, hid_t mt,
                     size_t elem, int rank, hsize_t *want, void **out, skel_err *e) {
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return skel_fail(e, "%s: %s/%s: missing dataset", R->path, gpath, name);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return skel_fail(e, "%s: %s/%s: cannot open dataset", R->path, gpath, name);
    hid_t sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4] = {0};
    if (r != rank) {
        H5Sclose(sp);
        H5Dclose(d);
        return skel_fail(e, "%s: %s/%s: rank %d, expected %d", R->path, gpath, name, r, rank);
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    size_t count = 1;
    for (int k = 0; k < rank; k++) {
        if (want[k] == 0) want[k] = dims[k];
        if (dims[k] != want[k]) {
            H5Dclose(d);
            return skel_fail(e, "%s: %s/%s: dimension %d is %llu, expected %llu", R->path, gpath, name, k,
                             (unsigned long long)dims[k], (unsigned long long)want[k]);
        }
        count *= dims[k];
    }
    void *buf = xmalloc(count * elem);
    if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        H5Dclose(d);
        return skel_fail(e, "%s: %s/%s: read failed (type not convertible or file truncated)", R->path, gpath,
                         name);
    }
    H5Dclose(d);
    *out = buf;
    return 0;
}

static int check_finite(const results_file *R, const char *gpath, const char *name, const float *x, size_t n,
                        skel_err *e) {
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return skel_fail(e, "%s: %s/%s: non-finite value %g at element %zu", R->path, gpath, name, x[k], k);
    return 0;
}

int results_read_head(const results_file *R, int layer, int head, results_head *H, skel_err *e) {
    memset(H, 0, sizeof *H);
    H->layer = layer;
    H->head = head;
    char gpath[128];
    snprintf(gpath, sizeof gpath, "/layers/%d/heads/%d", layer, head);
    if (!results_has_head(R, layer, head)) {
        char layers[256], heads[256], lp[64];
        list_group(R->file, "/layers", layers);
        snprintf(lp, sizeof lp, "/layers/%d/heads", layer);
        list_group(R->file, lp, heads);
        if (heads[0])
            return skel_fail(e, "%s: %s: no such head (layer %d holds heads: %s)", R->path, gpath, layer, heads);
        return skel_fail(e, "%s: %s: no such head (the file holds layers: %s)", R->path, gpath,
                         layers[0] ? layers : "none");
    }
    hid_t g = H5Gopen2(R->file, gpath, H5P_DEFAULT);
    if (g < 0) return skel_fail(e, "%s: %s: cannot open group", R->path, gpath);
    int rc = -1;
    hsize_t dn[1] = {0};
    if (read_dset(R, g, gpath, "lse", H5T_NATIVE_FLOAT, sizeof(float), 1, dn, (void **)&H->lse, e)) goto done;
    H->N = (int64_t)dn[0];
    if (H->N != R->n_tokens) {
        skel_fail(e, "%s: %s/lse: length %lld, but the file's n_tokens is %lld", R->path, gpath, (long long)H->N,
                  (long long)R->n_tokens);
        goto done;
    }
    H->nb = (int)((H->N + R->block - 1) / R->block);
    H->P = (int)(R->image_size < H->N ? R->image_size : H->N);
    hsize_t dvec[1] = {(hsize_t)H->N}, dblk[2] = {(hsize_t)H->nb, (hsize_t)H->nb},
            dimg[2] = {(hsize_t)H->P, (hsize_t)H->P};
    const char *vec_names[3] = {"s", "v", "h"};
    float **vec_out[3] = {&H->s, &H->v, &H->h};
    for (int k = 0; k < 3; k++) {
        dvec[0] = (hsize_t)H->N;
        if (read_dset(R, g, gpath, vec_names[k], H5T_NATIVE_FLOAT, sizeof(float), 1, dvec, (void **)vec_out[k], e))
            goto done;
        if (check_finite(R, gpath, vec_names[k], *vec_out[k], (size_t)H->N, e)) goto done;
    }
    if (read_dset(R, g, gpath, "block_mass", H5T_NATIVE_FLOAT, sizeof(float), 2, dblk, (void **)&H->block_mass, e))
        goto done;
    if (read_dset(R, g, gpath, "block_max", H5T_NATIVE_FLOAT, sizeof(float), 2, dblk, (void **)&H->block_max, e))
        goto done;
    if (read_dset(R, g, gpath, "mask", H5T_NATIVE_UINT8, 1, 2, dblk, (void **)&H->mask, e)) goto done;
    if (read_dset(R, g, gpath, "image_max", H5T_NATIVE_FLOAT, sizeof(float), 2, dimg, (void **)&H->image_max, e))
        goto done;
    size_t nimg = (size_t)H->P * H->P, nblk = (size_t)H->nb * H->nb;
    if (check_finite(R, gpath, "image_max", H->image_max, nimg, e)) goto done;
    if (check_finite(R, gpath, "block_mass", H->block_mass, nblk, e)) goto done;
    if (H5Lexists(g, "image_mean", H5P_DEFAULT) > 0) {
        if (read_dset(R, g, gpath, "image_mean", H5T_NATIVE_FLOAT, sizeof(float), 2, dimg, (void **)&H->image_mean,
                      e))
            goto done;
        if (check_finite(R, gpath, "image_mean", H->image_mean, nimg, e)) goto done;
    }
    if (H5Lexists(g, "vs_mask", H5P_DEFAULT) > 0 &&
        read_dset(R, g, gpath, "vs_mask", H5T_NATIVE_UINT8, 1, 2, dblk, (void **)&H->vs_mask, e))
        goto done;
    if (H5Lexists(g, "z_hist", H5P_DEFAULT) > 0) {
        hsize_t dz[1] = {0};
        if (read_dset(R, g, gpath, "z_hist", H5T_NATIVE_DOUBLE, sizeof(double), 1, dz, (void **)&H->z_hist, e))
            goto done;
        H->z_bins = (int)dz[0];
        hid_t d = H5Dopen2(g, "z_hist", H5P_DEFAULT);
        static const char *names[4] = {"lo", "hi", "mean", "var"};
        double *dst[4] = {&H->z_lo, &H->z_hi, &H->z_mean, &H->z_var};
        for (int k = 0; k < 4; k++)
            if (!attr_exists(d, names[k]) || attr_f64(d, names[k], dst[k]) < 0) {
                H5Dclose(d);
                skel_fail(e, "%s: %s/z_hist: missing attribute %s", R->path, gpath, names[k]);
                goto done;
            }
        H5Dclose(d);
    }
    rc = 0;
done:
    H5Gclose(g);
    if (rc) results_head_free(H);
    return rc;
}

void results_head_free(results_head *H) {
    free(H->lse);
    free(H->block_mass);
    free(H->block_max);
    free(H->image_max);
    free(H->image_mean);
    free(H->s);
    free(H->v);
    free(H->h);
    free(H->mask);
    free(H->vs_mask);
    free(H->z_hist);
    memset(H, 0, sizeof *H);
}

// ---------------------------------------------------------------------------- report
int results_read_report(const results_file *R, head_report **rows, int *n, skel_err *e) {
    *rows = NULL;
    *n = 0;
    if (H5Lexists(R->file, "/report", H5P_DEFAULT) <= 0)
        return skel_fail(e, "%s: /report: missing dataset", R->path);
    hid_t d = H5Dopen2(R->file, "/report", H5P_DEFAULT);
    hid_t ft = H5Dget_type(d);
    if (H5Tget_class(ft) != H5T_COMPOUND) {
        H5Tclose(ft);
        H5Dclose(d);
        return skel_fail(e, "%s: /report: not a compound table", R->path);
    }
#define I32(f) {#f, offsetof(head_report, f), 0}
#define I64(f) {#f, offsetof(head_report, f), 1}
#define F64(f) {#f, offsetof(head_report, f), 2}
    static const struct {
        const char *name;
        size_t off;
        int kind;
    } fields[] = {I32(layer), I32(head), I32(kv_head), I64(n_tokens), F64(exact_sparsity),
                  F64(threshold_sparsity), F64(block_sparsity), F64(predicted_sparsity),
                  F64(predicted_block_sparsity), F64(mask_density), F64(mask_recall), F64(min_rowblock_recall),
                  F64(oracle_density_at_same_recall), F64(fit_r2), F64(fit_rmse), F64(output_rel_error),
                  F64(time_exact_ms), F64(time_decomp_ms), F64(time_mask_ms)};
#undef I32
#undef I64
#undef F64
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(head_report));
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if (H5Tget_member_index(ft, fields[k].name) < 0) {
            H5Tclose(mt);
            H5Tclose(ft);
            H5Dclose(d);
            return skel_fail(e, "%s: /report: missing field %s", R->path, fields[k].name);
        }
        hid_t t = fields[k].kind == 0 ? H5T_NATIVE_INT32 : fields[k].kind == 1 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
        H5Tinsert(mt, fields[k].name, fields[k].off, t);
    }
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    head_report *buf = xcalloc(cnt > 0 ? (size_t)cnt : 1, sizeof *buf);
    herr_t st = cnt > 0 ? H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    H5Tclose(mt);
    H5Tclose(ft);
    H5Dclose(d);
    if (st < 0) {
        free(buf);
        return skel_fail(e, "%s: /report: read failed", R->path);
    }
    *rows = buf;
    *n = (int)cnt;
    return 0;
}
