// gguf.c: GGUF parsing over a read-only mapping, and dequantisation of ggml block types.
// Block formats follow ggml-common.h (one scale d as f16 per block of 32 weights unless noted).
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------- half precision
float skel_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (ex == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: value = man * 2^-24
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else {
        bits = sign | ((ex + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t skel_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: infinity
    if (ax < 0x38800000u) {                      // below the smallest normal half: subnormal or 0
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);  // units of 2^-24, round to nearest even
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1);  // round to nearest even on the 13 dropped bits
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float skel_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float f16(const uint8_t *p) { return skel_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

// ---------------------------------------------------------------------------- types
typedef struct {
    const char *name;
    int blck;
    size_t size;
} type_info;

static const type_info TYPES[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},       [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},   [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},   [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},   [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},  [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144}, [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210}, [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
};

const char *ggml_type_name(ggml_type t) { return (unsigned)t < GGML_TYPE_COUNT ? TYPES[t].name : NULL; }
int ggml_blck_size(ggml_type t) { return (unsigned)t < GGML_TYPE_COUNT ? TYPES[t].blck : 0; }
size_t ggml_type_size(ggml_type t) { return (unsigned)t < GGML_TYPE_COUNT ? TYPES[t].size : 0; }

int ggml_can_dequantize(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

// ---------------------------------------------------------------------------- dequantisation
// Q4_K packs eight 6-bit (scale, min) pairs into 12 bytes.
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dequant_block(ggml_type t, const uint8_t *b, float *y) {
    switch (t) {
    case GGML_TYPE_Q4_0: {  // {d, qs[16]}: low nibbles are weights 0..15, high nibbles 16..31
        float d = f16(b);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
        break;
    }
    case GGML_TYPE_Q4_1: {  // {d, m, qs[16]}
        float d = f16(b), m = f16(b + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[4 + j] & 0xF) * d + m;
            y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
        break;
    }
    case GGML_TYPE_Q5_0: {  // {d, qh[4], qs[16]}: bit j of qh is the fifth bit of weight j
        float d = f16(b);
        uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        for (int j = 0; j < 16; j++) {
            int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = (float)(((b[6 + j] & 0xF) | h0) - 16) * d;
            y[j + 16] = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
        }
        break;
    }
    case GGML_TYPE_Q5_1: {  // {d, m, qh[4], qs[16]}
        float d = f16(b), m = f16(b + 2);
        uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        for (int j = 0; j < 16; j++) {
            int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = (float)((b[8 + j] & 0xF) | h0) * d + m;
            y[j + 16] = (float)((b[8 + j] >> 4) | h1) * d + m;
        }
        break;
    }
    case GGML_TYPE_Q8_0: {  // {d, qs[32] int8}
        float d = f16(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
        break;
    }
    case GGML_TYPE_Q4_K: {  // 256 weights: {d, dmin, scales[12], qs[128]}, 8 sub-blocks of 32
        float d = f16(b), dmin = f16(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
            int s1, m1, s2, m2;
            scale_min_k4(is, sc, &s1, &m1);
            scale_min_k4(is + 1, sc, &s2, &m2);
            for (int l = 0; l < 32; l++) *y++ = d * (float)s1 * (float)(q[l] & 0xF) - dmin * (float)m1;
            for (int l = 0; l < 32; l++) *y++ = d * (float)s2 * (float)(q[l] >> 4) - dmin * (float)m2;
        }
        break;
    }
    case GGML_TYPE_Q6_K: {  // 256 weights: {ql[128], qh[64], scales[16] int8, d}
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = f16(b + 208);
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
        break;
    }
    default:
        CHECK(0);
    }
}

int ggml_dequantize(ggml_type t, const void *src, float *out, int64_t n) {
    if (!ggml_can_dequantize(t)) return -1;
    const uint8_t *s = src;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(out, s, (size_t)n * 4);
        return 0;
    case GGML_TYPE_F16:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = f16(s + 2 * i);
        return 0;
    case GGML_TYPE_BF16:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = skel_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return 0;
    default:
        break;
    }
    int64_t bs = ggml_blck_size(t), nb = n / bs;
    size_t sz = ggml_type_size(t);
    CHECK(n % bs == 0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; i++) dequant_block(t, s + (size_t)i * sz, out + i * bs);
    return 0;
}

// ---------------------------------------------------------------------------- parsing
typedef struct {
    const uint8_t *p, *end;
    const char *path;
    skel_err *e;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if ((uint64_t)(c->end - c->p) < n)
        return skel_fail(c->e, "%s: truncated file: %s needs %llu bytes, %zu left", c->path, what,
                         (unsigned long long)n, (size_t)(c->end - c->p));
    return 0;
}

#define RD(T, name)                                                      \
    static int rd_##name(cursor *c, T *out, const char *what) {          \
        if (need(c, sizeof(T), what)) return -1;                         \
        memcpy(out, c->p, sizeof(T));                                    \
        c->p += sizeof(T);                                               \
        return 0;                                                        \
    }
RD(uint32_t, u32)
RD(uint64_t, u64)

static int rd_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what) || need(c, n, what)) return -1;
    s->s = (const char *)c->p;
    s->n = n;
    c->p += n;
    return 0;
}

static size_t scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static void read_scalar(gguf_kv *kv, const uint8_t *p) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: kv->v.u = p[0]; break;
    case GGUF_TYPE_INT8: kv->v.i = (int8_t)p[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
    case GGUF_TYPE_UINT64: memcpy(&kv->v.u, p, 8); break;
    case GGUF_TYPE_INT64: memcpy(&kv->v.i, p, 8); break;
    case GGUF_TYPE_FLOAT64: memcpy(&kv->v.f, p, 8); break;
    default: CHECK(0);
    }
}

static int parse_kv(cursor *c, gguf_kv *kv, uint64_t idx) {
    char what[64];
    snprintf(what, sizeof what, "metadata entry %llu", (unsigned long long)idx);
    uint32_t type;
    if (rd_str(c, &kv->key, what) || rd_u32(c, &type, what)) return -1;
    if (type >= GGUF_TYPE_COUNT)
        return skel_fail(c->e, "%s: metadata key '%.*s': unknown value type %u", c->path, (int)kv->key.n,
                         kv->key.s, type);
    kv->type = type;
    if (type == GGUF_TYPE_STRING) return rd_str(c, &kv->v.str, what);
    if (type != GGUF_TYPE_ARRAY) {
        size_t sz = scalar_size(type);
        if (need(c, sz, what)) return -1;
        read_scalar(kv, c->p);
        c->p += sz;
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, what) || rd_u64(c, &n, what)) return -1;
    if (et >= GGUF_TYPE_COUNT || et == GGUF_TYPE_ARRAY)
        return skel_fail(c->e, "%s: metadata key '%.*s': unsupported array element type %u", c->path,
                         (int)kv->key.n, kv->key.s, et);
    kv->v.arr.type = et;
    kv->v.arr.n = n;
    kv->v.arr.data = c->p;
    kv->v.arr.strs = NULL;
    if (et == GGUF_TYPE_STRING) {
        if (n > (uint64_t)(c->end - c->p) / 8) return need(c, n * 8, what);  // each string is >= 8 bytes
        kv->v.arr.strs = xmalloc(n * sizeof(gguf_str));
        for (uint64_t i = 0; i < n; i++)
            if (rd_str(c, &kv->v.arr.strs[i], what)) return -1;
        return 0;
    }
    size_t sz = scalar_size(et);
    if (n > (uint64_t)(c->end - c->p) / sz) return need(c, n * sz, what);
    c->p += n * sz;
    return 0;
}

static int streq(gguf_str s, const char *z) { return strlen(z) == s.n && !memcmp(s.s, z, s.n); }

int gguf_open(gguf_file *g, const char *path, skel_err *e) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return skel_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return skel_fail(e, "%s: not a regular file", path);
    }
    g->size = (size_t)st.st_size;
    if (g->size < 4) {
        close(fd);
        return skel_fail(e, "%s: truncated file: %zu bytes, too short for the GGUF magic", path, g->size);
    }
    void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return skel_fail(e, "%s: mmap failed: %s", path, strerror(errno));
    g->map = m;

    cursor c = {g->map, g->map + g->size, g->path, e};
    if (memcmp(c.p, "GGUF", 4)) {
        skel_fail(e, "%s: bad magic %02x %02x %02x %02x: not a GGUF file (expected \"GGUF\")", path, c.p[0],
                  c.p[1], c.p[2], c.p[3]);
        goto fail;
    }
    c.p += 4;
    if (rd_u32(&c, &g->version, "header")) goto fail;
    if (g->version != 2 && g->version != 3) {
        skel_fail(e, "%s: unsupported GGUF version %u (supported: 2, 3)", path, g->version);
        goto fail;
    }
    if (rd_u64(&c, &g->n_tensors, "header") || rd_u64(&c, &g->n_kv, "header")) goto fail;
    // Each kv is at least 12 bytes and each tensor info at least 24: bound the counts before allocating.
    if (g->n_kv > g->size / 12 || g->n_tensors > g->size / 24) {
        skel_fail(e, "%s: truncated file: header claims %llu metadata entries and %llu tensors", path,
                  (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
        goto fail;
    }
    g->kv = xcalloc(g->n_kv, sizeof(gguf_kv));
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (parse_kv(&c, &g->kv[i], i)) goto fail;

    g->alignment = 32;
    const gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1))) {
            skel_fail(e, "%s: general.alignment must be a power-of-two u32", path);
            goto fail;
        }
        g->alignment = al->v.u;
    }

    g->tensors = xcalloc(g->n_tensors, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        char what[64];
        snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)i);
        uint32_t nd, type;
        if (rd_str(&c, &t->name, what) || rd_u32(&c, &nd, what)) goto fail;
        if (nd < 1 || nd > 4) {
            skel_fail(e, "%s: tensor '%.*s': %u dimensions (1 to 4 supported)", path, (int)t->name.n, t->name.s, nd);
            goto fail;
        }
        t->n_dims = (int)nd;
        t->n_elements = 1;
        for (int k = 0; k < 4; k++) t->ne[k] = 1;
        for (uint32_t k = 0; k < nd; k++) {
            uint64_t ne;
            if (rd_u64(&c, &ne, what)) goto fail;
            if (ne == 0 || ne > ((uint64_t)1 << 40) || (uint64_t)t->n_elements * ne > ((uint64_t)1 << 40)) {
                skel_fail(e, "%s: tensor '%.*s': bad dimension %llu", path, (int)t->name.n, t->name.s,
                          (unsigned long long)ne);
                goto fail;
            }
            t->ne[k] = (int64_t)ne;
            t->n_elements *= (int64_t)ne;
        }
        if (rd_u32(&c, &type, what) || rd_u64(&c, &t->offset, what)) goto fail;
        t->type = type;
        if (type >= GGML_TYPE_COUNT || !TYPES[type].name) {
            skel_fail(e, "%s: tensor '%.*s': unknown ggml type id %u", path, (int)t->name.n, t->name.s, type);
            goto fail;
        }
        if (t->ne[0] % TYPES[type].blck) {
            skel_fail(e, "%s: tensor '%.*s': row of %lld weights is not a multiple of the %s block (%d)", path,
                      (int)t->name.n, t->name.s, (long long)t->ne[0], TYPES[type].name, TYPES[type].blck);
            goto fail;
        }
        t->n_bytes = (size_t)(t->n_elements / TYPES[type].blck) * TYPES[type].size;
    }
    size_t pos = (size_t)(c.p - g->map);
    g->data_offset = (pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment) {
            skel_fail(e, "%s: tensor '%.*s': offset %llu not a multiple of the alignment %llu", path,
                      (int)t->name.n, t->name.s, (unsigned long long)t->offset, (unsigned long long)g->alignment);
            goto fail;
        }
        if (g->data_offset > g->size || t->offset > g->size - g->data_offset ||
            t->n_bytes > g->size - g->data_offset - t->offset) {
            skel_fail(e, "%s: truncated file: tensor '%.*s' (%zu bytes at data offset %llu) ends past the end of "
                      "the file (%zu bytes)", path, (int)t->name.n, t->name.s, t->n_bytes,
                      (unsigned long long)t->offset, g->size);
            goto fail;
        }
        t->data = g->map + g->data_offset + t->offset;
    }
    return 0;
fail:
    gguf_close(g);
    return -1;
}

void gguf_close(gguf_file *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            if (g->kv[i].type == GGUF_TYPE_ARRAY) free(g->kv[i].v.arr.strs);
    free(g->kv);
    free(g->tensors);
    if (g->map) munmap((void *)g->map, g->size);
    g->kv = NULL;
    g->tensors = NULL;
    g->map = NULL;
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (streq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (streq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static int is_unsigned(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}
static int is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

static const gguf_kv *find_or_fail(const gguf_file *g, const char *key, skel_err *e) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) skel_fail(e, "%s: missing metadata key '%s'", g->path, key);
    return kv;
}

int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, skel_err *e) {
    const gguf_kv *kv = find_or_fail(g, key, e);
    if (!kv) return -1;
    if (is_unsigned(kv->type) && kv->v.u <= UINT32_MAX) {
        *out = (uint32_t)kv->v.u;
        return 0;
    }
    if (is_signed(kv->type) && kv->v.i >= 0 && kv->v.i <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)kv->v.i;
        return 0;
    }
    return skel_fail(e, "%s: metadata key '%s': expected a non-negative 32-bit integer", g->path, key);
}

int gguf_get_f32(const gguf_file *g, const char *key, float *out, skel_err *e) {
    const gguf_kv *kv = find_or_fail(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return skel_fail(e, "%s: metadata key '%s': expected a float", g->path, key);
    *out = (float)kv->v.f;
    return 0;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out, skel_err *e) {
    const gguf_kv *kv = find_or_fail(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_BOOL) return skel_fail(e, "%s: metadata key '%s': expected a bool", g->path, key);
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, char *out, size_t cap, skel_err *e) {
    const gguf_kv *kv = find_or_fail(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_STRING) return skel_fail(e, "%s: metadata key '%s': expected a string", g->path, key);
    size_t n = kv->v.str.n < cap - 1 ? kv->v.str.n : cap - 1;
    memcpy(out, kv->v.str.s, n);
    out[n] = 0;
    return 0;
}

int gguf_get_arr(const gguf_file *g, const char *key, gguf_type elem, const gguf_kv **arr, skel_err *e) {
    const gguf_kv *kv = find_or_fail(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_ARRAY || kv->v.arr.type != elem)
        return skel_fail(e, "%s: metadata key '%s': expected an array of type %d", g->path, key, (int)elem);
    *arr = kv;
    return 0;
}

int gguf_tensor_to_f32(const gguf_file *g, const gguf_tensor *t, float *out, skel_err *e) {
    if (ggml_dequantize(t->type, t->data, out, t->n_elements))
        return skel_fail(e, "%s: tensor '%.*s': unsupported quantisation type %s (supported: F32, F16, BF16, Q4_0, "
                         "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K)", g->path, (int)t->name.n, t->name.s,
                         ggml_type_name(t->type));
    return 0;
}
