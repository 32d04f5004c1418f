// dump.c: reading and writing the Q/K/V dump (SPEC section 1). See dump.h.
#include "dump.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "h5util.h"

const char *rope_layout_name(rope_layout l) { return l == ROPE_INTERLEAVED ? "interleaved" : "half"; }

// HDF5 prints its own error stack by default; we report one line ourselves.
static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// ---------------------------------------------------------------------------- attributes

static int attr_int64(hid_t obj, const char *path, const char *name, int64_t *out, skel_err *e) {
    if (H5Aexists(obj, name) <= 0) return skel_fail(e, "%s: /: missing attribute '%s'", path, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int rc = -1;
    if (n != 1)
        skel_fail(e, "%s: /: attribute '%s' is not a scalar", path, name);
    else if (cls == H5T_INTEGER) {
        long long v;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) *out = v, rc = 0;
        else skel_fail(e, "%s: /: cannot read attribute '%s'", path, name);
    } else if (cls == H5T_FLOAT) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0 && v == floor(v)) *out = (int64_t)v, rc = 0;
        else skel_fail(e, "%s: /: attribute '%s' is not an integer", path, name);
    } else
        skel_fail(e, "%s: /: attribute '%s' is not a number", path, name);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int attr_string(hid_t obj, const char *path, const char *name, char *out, size_t cap, skel_err *e) {
    if (H5Aexists(obj, name) <= 0) return skel_fail(e, "%s: /: missing attribute '%s'", path, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(t) != H5T_STRING) {
        skel_fail(e, "%s: /: attribute '%s' is not a string", path, name);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        char *s = NULL;
        if (H5Aread(a, mt, &s) >= 0 && s) {
            snprintf(out, cap, "%s", s);
            H5free_memory(s);
            rc = 0;
        } else
            skel_fail(e, "%s: /: cannot read attribute '%s'", path, name);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        char *s = xcalloc(n + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        if (H5Aread(a, mt, s) >= 0) {
            snprintf(out, cap, "%s", s);
            rc = 0;
        } else
            skel_fail(e, "%s: /: cannot read attribute '%s'", path, name);
        H5Tclose(mt);
        free(s);
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

// ---------------------------------------------------------------------------- datasets

// Reads a whole 1-D dataset of n elements with memory type mt. Checks the shape.
static int read_1d(hid_t file, const char *path, const char *dset, hid_t mt, int64_t n, void *out,
                   skel_err *e) {
    if (H5Lexists(file, dset, H5P_DEFAULT) <= 0) return skel_fail(e, "%s: %s: missing dataset", path, dset);
    hid_t d = H5Dopen2(file, dset, H5P_DEFAULT);
    if (d < 0) return skel_fail(e, "%s: %s: cannot open dataset", path, dset);
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4] = {0};
    H5Sget_simple_extent_dims(sp, dims, NULL);
    int rc = 0;
    if (rank != 1 || (int64_t)dims[0] != n)
        rc = skel_fail(e, "%s: %s: shape mismatch: expected [%lld], found rank %d [%llu]", path, dset,
                       (long long)n, rank, (unsigned long long)dims[0]);
    else if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = skel_fail(e, "%s: %s: cannot read (truncated or corrupt file?)", path, dset);
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

// Storage type of a q/k/v dataset: "f16", "f32", "f64" or NULL when unsupported.
static const char *float_kind(hid_t t) {
    if (H5Tget_class(t) != H5T_FLOAT) return NULL;
    switch (H5Tget_size(t)) {
    case 2: return "f16";
    case 4: return "f32";
    case 8: return "f64";
    }
    return NULL;
}

static int check_layer_dset(dump *D, int layer, char which, int expect_heads, skel_err *e) {
    char name[64];
    snprintf(name, sizeof name, "/layers/%d/%c", layer, which);
    if (H5Lexists(D->file, name, H5P_DEFAULT) <= 0) return skel_fail(e, "%s: %s: missing dataset", D->path, name);
    hid_t d = H5Dopen2(D->file, name, H5P_DEFAULT);
    if (d < 0) return skel_fail(e, "%s: %s: cannot open dataset", D->path, name);
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t dims[8] = {0};
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank > 0 && rank <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    const char *kind = float_kind(t);
    int rc = 0;
    if (!kind) {
        rc = skel_fail(e, "%s: %s: unsupported dtype (class %d, %zu bytes); expected float16 or float32",
                       D->path, name, (int)H5Tget_class(t), H5Tget_size(t));
    } else if (rank != 3 || (int64_t)dims[0] != expect_heads || (int64_t)dims[1] != D->meta.n_tokens ||
               (int64_t)dims[2] != D->meta.head_dim) {
        rc = skel_fail(e, "%s: %s: shape mismatch: expected [%d, %lld, %d], found [%llu, %llu, %llu] (rank %d)",
                       D->path, name, expect_heads, (long long)D->meta.n_tokens, D->meta.head_dim,
                       (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2], rank);
    } else if (which == 'q') {
        snprintf(D->dtype, sizeof D->dtype, "%s", kind);
    }
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static herr_t collect_layer(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    dump *D = op;
    char *end;
    long v = strtol(name, &end, 10);
    if (*end == '\0' && v >= 0 && D->n_present < DUMP_MAX_LAYERS) D->present[D->n_present++] = (int)v;
    return 0;
}

int dump_open(dump *D, const char *path, skel_err *e) {
    memset(D, 0, sizeof *D);
    D->file = -1;
    quiet_hdf5();
    snprintf(D->path, sizeof D->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) return skel_fail(e, "%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0) return skel_fail(e, "%s: not an HDF5 file (or truncated header)", path);
    D->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (D->file < 0) return skel_fail(e, "%s: cannot open as HDF5 (truncated or corrupt file?)", path);

    dump_meta *m = &D->meta;
    int64_t v;
    char layout[32];
    if (attr_string(D->file, path, "model", m->model, sizeof m->model, e)) goto fail;
#define INT_ATTR(field, name, lo)                                                                         \
    if (attr_int64(D->file, path, name, &v, e)) goto fail;                                                \
    if (v < (lo) || v > INT32_MAX) {                                                                      \
        skel_fail(e, "%s: /: attribute '%s' = %lld is out of range", path, name, (long long)v);           \
        goto fail;                                                                                        \
    }                                                                                                     \
    m->field = v;
    INT_ATTR(n_tokens, "n_tokens", 1)
    INT_ATTR(n_layers, "n_layers", 1)
    INT_ATTR(n_q_heads, "n_q_heads", 1)
    INT_ATTR(n_kv_heads, "n_kv_heads", 1)
    INT_ATTR(head_dim, "head_dim", 2)
    INT_ATTR(format_version, "format_version", 1)
#undef INT_ATTR
    if (attr_string(D->file, path, "rope_layout", layout, sizeof layout, e)) goto fail;
    if (!strcmp(layout, "half")) m->layout = ROPE_HALF;
    else if (!strcmp(layout, "interleaved")) m->layout = ROPE_INTERLEAVED;
    else {
        skel_fail(e, "%s: /: attribute 'rope_layout' is '%s'; expected 'half' or 'interleaved'", path, layout);
        goto fail;
    }
    if (m->head_dim % 2) {
        skel_fail(e, "%s: /: head_dim = %d is odd; RoPE needs an even head dimension", path, m->head_dim);
        goto fail;
    }
    if (m->n_q_heads % m->n_kv_heads) {
        skel_fail(e, "%s: /: n_q_heads = %d is not a multiple of n_kv_heads = %d", path, m->n_q_heads, m->n_kv_heads);
        goto fail;
    }
    if (m->format_version > DUMP_FORMAT_VERSION) {
        skel_fail(e, "%s: /: format_version %d is newer than this tool understands (%d)", path, m->format_version,
                  DUMP_FORMAT_VERSION);
        goto fail;
    }
    int64_t N = m->n_tokens;
    D->inv_freq = xmalloc(sizeof(double) * (m->head_dim / 2));
    if (read_1d(D->file, path, "/rope/inv_freq", H5T_NATIVE_DOUBLE, m->head_dim / 2, D->inv_freq, e)) goto fail;
    for (int k = 0; k < m->head_dim / 2; k++)
        if (!isfinite(D->inv_freq[k]) || D->inv_freq[k] < 0) {
            skel_fail(e, "%s: /rope/inv_freq: element %d is %g; expected a finite frequency >= 0", path, k, D->inv_freq[k]);
            goto fail;
        }
    D->positions = xmalloc(sizeof(int32_t) * N);
    if (read_1d(D->file, path, "/positions", H5T_NATIVE_INT32, N, D->positions, e)) goto fail;
    if (H5Lexists(D->file, "/tokens", H5P_DEFAULT) > 0) {
        D->tokens = xmalloc(sizeof(int32_t) * N);
        if (read_1d(D->file, path, "/tokens", H5T_NATIVE_INT32, N, D->tokens, e)) goto fail;
    }

    D->present = xmalloc(sizeof(int) * DUMP_MAX_LAYERS);
    if (H5Lexists(D->file, "/layers", H5P_DEFAULT) <= 0) {
        skel_fail(e, "%s: /layers: missing group", path);
        goto fail;
    }
    hid_t g = H5Gopen2(D->file, "/layers", H5P_DEFAULT);
    H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, collect_layer, D);
    H5Gclose(g);
    if (D->n_present == 0) {
        skel_fail(e, "%s: /layers: no layers in the dump", path);
        goto fail;
    }
    qsort(D->present, D->n_present, sizeof(int), cmp_int);
    D->has_values = 1;
    for (int i = 0; i < D->n_present; i++) {
        int L = D->present[i];
        if (L >= m->n_layers) {
            skel_fail(e, "%s: /layers/%d: layer index >= n_layers = %d", path, L, m->n_layers);
            goto fail;
        }
        if (check_layer_dset(D, L, 'q', m->n_q_heads, e) || check_layer_dset(D, L, 'k', m->n_kv_heads, e)) goto fail;
        char vname[64];
        snprintf(vname, sizeof vname, "/layers/%d/v", L);
        if (H5Lexists(D->file, vname, H5P_DEFAULT) > 0) {
            if (check_layer_dset(D, L, 'v', m->n_kv_heads, e)) goto fail;
        } else
            D->has_values = 0;
    }
    return 0;
fail:
    dump_close(D);
    return -1;
}

void dump_close(dump *D) {
    if (D->file >= 0) H5Fclose(D->file);
    D->file = -1;
    free(D->inv_freq);
    free(D->positions);
    free(D->tokens);
    free(D->present);
    D->inv_freq = NULL;
    D->positions = NULL;
    D->tokens = NULL;
    D->present = NULL;
}

int dump_has_layer(const dump *D, int layer) {
    for (int i = 0; i < D->n_present; i++)
        if (D->present[i] == layer) return 1;
    return 0;
}

// IEEE half to float, exact for every value including subnormals, Inf and NaN.
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000u | (man << 13);
    else if (exp != 0)
        bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (man == 0)
        bits = sign;
    else {  // subnormal: normalise
        int s = 0;
        while (!(man & 0x400)) man <<= 1, s++;
        bits = sign | ((uint32_t)(113 - s) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Reads head `head` of a (H, N, d) dataset chunked as (1, c, d) with shuffle and/or deflate, by its
// raw chunks: HDF5 only hands over the stored bytes (H5Dread_chunk) and the chunks are inflated and
// unshuffled here in parallel, where HDF5 would do it in one thread (a 32K x 128 float16 head took
// ~68 ms that way, mostly inflate). raw: N d elements of esz bytes, in file order. Returns 1 when
// done, 0 when the layout or the filters are not these (the caller reads through HDF5), -1 when a
// chunk is missing or corrupt.
static int read_head_chunks(hid_t ds, int head, int64_t N, int64_t d, size_t esz, unsigned char *raw) {
    hid_t pl = H5Dget_create_plist(ds);
    int ok = H5Pget_layout(pl) == H5D_CHUNKED;
    hsize_t cd[3] = {0, 0, 0};
    ok = ok && H5Pget_chunk(pl, 3, cd) == 3 && cd[0] == 1 && cd[2] == (hsize_t)d && cd[1] > 0;
    int nf = ok ? H5Pget_nfilters(pl) : 0, shuffle_at = -1, deflate_at = -1;
    for (int f = 0; ok && f < nf; f++) {
        unsigned flags, cdv[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(pl, (unsigned)f, &flags, &ncd, cdv, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && shuffle_at < 0) shuffle_at = f;
        else if (id == H5Z_FILTER_DEFLATE && deflate_at < 0) deflate_at = f;
        else ok = 0;
    }
    H5Pclose(pl);
    if (!ok || nf > 2 || (shuffle_at >= 0 && deflate_at >= 0 && shuffle_at > deflate_at)) return 0;
    const int64_t c = (int64_t)cd[1], nch = (N + c - 1) / c;
    const size_t full = (size_t)c * d * esz;
    unsigned char **buf = xcalloc((size_t)nch, sizeof *buf);
    size_t *len = xcalloc((size_t)nch, sizeof *len);
    uint32_t *fmask = xcalloc((size_t)nch, sizeof *fmask);
    int rc = 1;
    for (int64_t x = 0; x < nch && rc == 1; x++) {  // the stored bytes, in order (HDF5 calls stay serial)
        hsize_t off[3] = {(hsize_t)head, (hsize_t)(x * c), 0}, sz = 0;
        if (H5Dget_chunk_storage_size(ds, off, &sz) < 0 || sz == 0) {
            rc = -1;
            break;
        }
        buf[x] = xmalloc((size_t)sz);
        len[x] = (size_t)sz;
        if (H5Dread_chunk(ds, H5P_DEFAULT, off, &fmask[x], buf[x]) < 0) rc = -1;
    }
    int bad = 0;
    if (rc == 1) {
#pragma omp parallel reduction(| : bad)
        {
            unsigned char *tmp = xmalloc(full), *sh = xmalloc(full);
#pragma omp for schedule(dynamic, 1)
            for (int64_t x = 0; x < nch; x++) {
                // the filters run in reverse on reading; a set bit of the chunk's mask: that filter was skipped
                const unsigned char *src = buf[x];
                size_t n = len[x];
                if (deflate_at >= 0 && !(fmask[x] >> deflate_at & 1)) {
                    uLongf out = (uLongf)full;
                    if (uncompress(tmp, &out, src, (uLong)n) != Z_OK || out != full) {
                        bad = 1;
                        continue;
                    }
                    src = tmp, n = out;
                }
                if (n != full) {
                    bad = 1;
                    continue;
                }
                const int64_t rows = N - x * c < c ? N - x * c : c;
                unsigned char *dst = raw + (size_t)(x * c) * d * esz;
                const size_t used = (size_t)rows * d * esz;
                if (shuffle_at >= 0 && !(fmask[x] >> shuffle_at & 1) && esz > 1) {
                    const size_t ne = full / esz;  // byte plane b holds byte b of every element
                    for (size_t b = 0; b < esz; b++)
                        for (size_t i = 0; i < ne; i++) sh[i * esz + b] = src[b * ne + i];
                    src = sh;
                }
                memcpy(dst, src, used);
            }
            free(tmp), free(sh);
        }
        if (bad) rc = -1;
    }
    for (int64_t x = 0; x < nch; x++) free(buf[x]);
    free(buf), free(len), free(fmask);
    return rc;
}

int dump_read_head(const dump *D, int layer, char which, int head, float *out, skel_err *e) {
    char name[64];
    snprintf(name, sizeof name, "/layers/%d/%c", layer, which);
    int H = which == 'q' ? D->meta.n_q_heads : D->meta.n_kv_heads;
    if (!dump_has_layer(D, layer)) return skel_fail(e, "%s: /layers/%d: layer not present in the dump", D->path, layer);
    if (head < 0 || head >= H) return skel_fail(e, "%s: %s: head %d not present (the dataset has %d heads)", D->path, name, head, H);
    if (H5Lexists(D->file, name, H5P_DEFAULT) <= 0) return skel_fail(e, "%s: %s: missing dataset", D->path, name);
    int64_t N = D->meta.n_tokens, d = D->meta.head_dim;
    hid_t ds = H5Dopen2(D->file, name, H5P_DEFAULT);
    hid_t ft = H5Dget_type(ds), fs = H5Dget_space(ds);
    hsize_t start[3] = {(hsize_t)head, 0, 0}, count[3] = {1, (hsize_t)N, (hsize_t)d};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(3, count, NULL);
    int rc = 0;
    size_t n = (size_t)N * d;
    const int le = H5Tget_order(ft) == H5T_ORDER_LE;
    if (H5Tget_size(ft) == 2) {
        // Read the raw halves and widen them ourselves: HDF5's soft f16 conversion is slow.
        uint16_t *raw = xmalloc(n * sizeof(uint16_t));
        int got = le ? read_head_chunks(ds, head, N, d, 2, (unsigned char *)raw) : 0;
        if (got == 0) {
            hid_t mt = H5Tcopy(ft);  // the file's own half type, in host (little-endian) order
            H5Tset_order(mt, H5T_ORDER_LE);
            got = H5Dread(ds, mt, ms, fs, H5P_DEFAULT, raw) < 0 ? -1 : 1;
            H5Tclose(mt);
        }
        if (got < 0) rc = skel_fail(e, "%s: %s: cannot read head %d (truncated or corrupt file?)", D->path, name, head);
        else
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) out[i] = half_to_float(raw[i]);
        free(raw);
    } else {
        int got = le && H5Tequal(ft, H5T_IEEE_F32LE) > 0 ? read_head_chunks(ds, head, N, d, 4, (unsigned char *)out) : 0;
        if (got == 0) got = H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0 ? -1 : 1;
        if (got < 0) rc = skel_fail(e, "%s: %s: cannot read head %d (truncated or corrupt file?)", D->path, name, head);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(ft);
    H5Dclose(ds);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return skel_fail(e, "%s: %s: head %d has %s at token %zu, dim %zu", D->path, name, head,
                             isnan(out[i]) ? "NaN" : "Inf", i / (size_t)d, i % (size_t)d);
    return 0;
}

// ---------------------------------------------------------------------------- writing

static int put_1d(hid_t file, const char *name, hid_t ft, hid_t mt, int64_t n, const void *data) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(file, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d < 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return rc;
}

// Float to IEEE half, round to nearest even, with overflow to Inf and gradual underflow. Done here
// rather than by HDF5: its 1.10 soft conversion drops the exponent carry when the mantissa rounds
// up (0.49999 becomes 0.25).
static inline uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));  // Inf, NaN
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // rounds past 65504
    if (ax < 0x38800000) {  // subnormal half (or zero): scale into the integer mantissa, round
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)__builtin_nearbyintf(a * 16777216.0f));  // a / 2^-24
    }
    uint32_t h = ((ax - 0x38000000) >> 13), rest = ax & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;  // a carry into the exponent is correct
    return (uint16_t)(sign | h);
}

// IEEE binary16, little endian, as h5py writes numpy float16.
static hid_t make_f16_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    H5Tset_precision(t, 16);
    return t;
}

int dump_writer_create(dump_writer *W, const char *path, const dump_meta *meta, int f16,
                       const double *inv_freq, const int32_t *positions, const int32_t *tokens,
                       const char *text, skel_err *e) {
    memset(W, 0, sizeof *W);
    quiet_hdf5();
    snprintf(W->path, sizeof W->path, "%s", path);
    snprintf(W->tmp_path, sizeof W->tmp_path, "%s.tmp-%d", path, (int)getpid());
    W->meta = *meta;
    W->meta.format_version = DUMP_FORMAT_VERSION;
    W->f16 = f16;
    W->file = H5Fcreate(W->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (W->file < 0) return skel_fail(e, "%s: cannot create output file (%s)", path, strerror(errno));
    h5_attr_put_str(W->file, "model", meta->model);
    h5_attr_put_i64(W->file, "n_tokens", meta->n_tokens);
    h5_attr_put_i64(W->file, "n_layers", meta->n_layers);
    h5_attr_put_i64(W->file, "n_q_heads", meta->n_q_heads);
    h5_attr_put_i64(W->file, "n_kv_heads", meta->n_kv_heads);
    h5_attr_put_i64(W->file, "head_dim", meta->head_dim);
    h5_attr_put_str(W->file, "rope_layout", rope_layout_name(meta->layout));
    h5_attr_put_i64(W->file, "format_version", DUMP_FORMAT_VERSION);
    hid_t g = H5Gcreate2(W->file, "/rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    g = H5Gcreate2(W->file, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    int rc = put_1d(W->file, "/rope/inv_freq", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, meta->head_dim / 2, inv_freq);
    rc |= put_1d(W->file, "/positions", H5T_STD_I32LE, H5T_NATIVE_INT32, meta->n_tokens, positions);
    if (tokens) rc |= put_1d(W->file, "/tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, meta->n_tokens, tokens);
    if (text) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t d = H5Dcreate2(W->file, "/text", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc |= H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) < 0;
        H5Dclose(d);
        H5Sclose(sp);
        H5Tclose(t);
    }
    if (rc) {
        dump_writer_abort(W);
        return skel_fail(e, "%s: cannot write metadata datasets", path);
    }
    return 0;
}

int dump_writer_put(dump_writer *W, int layer, char which, const float *data, skel_err *e) {
    char gname[64], name[80];
    snprintf(gname, sizeof gname, "/layers/%d", layer);
    snprintf(name, sizeof name, "%s/%c", gname, which);
    if (H5Lexists(W->file, gname, H5P_DEFAULT) <= 0) {
        hid_t g = H5Gcreate2(W->file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return skel_fail(e, "%s: %s: cannot create group", W->path, gname);
        H5Gclose(g);
    }
    int64_t N = W->meta.n_tokens, d = W->meta.head_dim;
    int H = which == 'q' ? W->meta.n_q_heads : W->meta.n_kv_heads;
    hsize_t dims[3] = {(hsize_t)H, (hsize_t)N, (hsize_t)d};
    // Chunks along N: one head's rows in pieces of 1024 tokens (or fewer), so a head reads alone.
    hsize_t chunk[3] = {1, (hsize_t)(N < 1024 ? N : 1024), (hsize_t)d};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 1);
    hid_t ft = W->f16 ? make_f16_type() : H5Tcopy(H5T_IEEE_F32LE);
    hid_t ds = H5Dcreate2(W->file, name, ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = 0;
    if (ds < 0)
        rc = skel_fail(e, "%s: %s: cannot create dataset", W->path, name);
    else if (W->f16) {
        size_t n = (size_t)H * N * d;
        uint16_t *half = xmalloc(n * sizeof(uint16_t));
        for (size_t i = 0; i < n; i++) half[i] = float_to_half(data[i]);
        if (H5Dwrite(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, half) < 0)
            rc = skel_fail(e, "%s: %s: cannot write (disk full?)", W->path, name);
        free(half);
    } else if (H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = skel_fail(e, "%s: %s: cannot write (disk full?)", W->path, name);
    if (ds >= 0) H5Dclose(ds);
    H5Tclose(ft);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

int dump_writer_finish(dump_writer *W, skel_err *e) {
    if (H5Fclose(W->file) < 0) {
        W->file = -1;
        unlink(W->tmp_path);
        return skel_fail(e, "%s: cannot finish writing (disk full?)", W->path);
    }
    W->file = -1;
    if (rename(W->tmp_path, W->path) != 0) {
        int err = errno;
        unlink(W->tmp_path);
        return skel_fail(e, "%s: cannot rename the finished file into place: %s", W->path, strerror(err));
    }
    return 0;
}

void dump_writer_abort(dump_writer *W) {
    if (W->file >= 0) H5Fclose(W->file);
    W->file = -1;
    unlink(W->tmp_path);
}
