// gguf_writer.h: a minimal GGUF v3 writer for the tests, so that they build their own model files
// (metadata of every type, tensors of any ggml type given as raw blocks, custom alignment).
#ifndef SKEL_GGUF_WRITER_H
#define SKEL_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

typedef struct {
    uint8_t *b;
    size_t n, cap;
} gw_buf;

static inline void gw_put(gw_buf *g, const void *p, size_t n) {
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 64;
        g->b = realloc(g->b, g->cap);
    }
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static inline void gw_u32(gw_buf *g, uint32_t v) { gw_put(g, &v, 4); }
static inline void gw_u64(gw_buf *g, uint64_t v) { gw_put(g, &v, 8); }
static inline void gw_str(gw_buf *g, const char *s) {
    gw_u64(g, strlen(s));
    gw_put(g, s, strlen(s));
}

typedef struct {
    char name[96];
    uint32_t type;
    int nd;
    uint64_t ne[4];
    uint8_t *data;
    size_t nbytes;
} gw_tensor;

typedef struct {
    gw_buf kv;
    uint64_t n_kv;
    gw_tensor t[128];
    int nt;
    uint32_t alignment;  // 0: the default 32 (no general.alignment key written)
} gw;

static inline void gw_key(gw *w, const char *key, uint32_t type) {
    gw_str(&w->kv, key);
    gw_u32(&w->kv, type);
    w->n_kv++;
}
// Any scalar type: value bytes as given (little-endian host).
static inline void gw_kv_scalar(gw *w, const char *key, gguf_type type, const void *v, size_t size) {
    gw_key(w, key, type);
    gw_put(&w->kv, v, size);
}
static inline void gw_kv_u32(gw *w, const char *key, uint32_t v) { gw_kv_scalar(w, key, GGUF_TYPE_UINT32, &v, 4); }
static inline void gw_kv_f32(gw *w, const char *key, float v) { gw_kv_scalar(w, key, GGUF_TYPE_FLOAT32, &v, 4); }
static inline void gw_kv_bool(gw *w, const char *key, int v) {
    uint8_t b = (uint8_t)v;
    gw_kv_scalar(w, key, GGUF_TYPE_BOOL, &b, 1);
}
static inline void gw_kv_str(gw *w, const char *key, const char *s) {
    gw_key(w, key, GGUF_TYPE_STRING);
    gw_str(&w->kv, s);
}
static inline void gw_kv_arr(gw *w, const char *key, gguf_type elem, const void *data, uint64_t n, size_t esize) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(&w->kv, elem);
    gw_u64(&w->kv, n);
    gw_put(&w->kv, data, n * esize);
}
static inline void gw_kv_arr_str(gw *w, const char *key, const char *const *s, uint64_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(&w->kv, GGUF_TYPE_STRING);
    gw_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(&w->kv, s[i]);
}

// A tensor of ne0 x ne1 (ne1 = 0: 1-D) in type `type` with raw block data.
static inline void gw_add_tensor(gw *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                                 const void *data, size_t nbytes) {
    gw_tensor *t = &w->t[w->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->nd = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->data = malloc(nbytes);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

// Writes the file; returns its size, or 0 on failure. Frees the writer's buffers.
static inline size_t gw_write(gw *w, const char *path) {
    if (w->alignment) gw_kv_u32(w, "general.alignment", w->alignment);
    uint64_t al = w->alignment ? w->alignment : 32;
    gw_buf h = {0};
    gw_put(&h, "GGUF", 4);
    gw_u32(&h, 3);
    gw_u64(&h, (uint64_t)w->nt);
    gw_u64(&h, w->n_kv);
    gw_put(&h, w->kv.b, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        gw_tensor *t = &w->t[i];
        gw_str(&h, t->name);
        gw_u32(&h, (uint32_t)t->nd);
        for (int k = 0; k < t->nd; k++) gw_u64(&h, t->ne[k]);
        gw_u32(&h, t->type);
        gw_u64(&h, off);
        off = (off + t->nbytes + al - 1) / al * al;
    }
    static const uint8_t zero[256] = {0};
    while (h.n % al) gw_put(&h, zero, 1);
    for (int i = 0; i < w->nt; i++) {
        gw_put(&h, w->t[i].data, w->t[i].nbytes);
        while (h.n % al) gw_put(&h, zero, 1);
        free(w->t[i].data);
    }
    FILE *f = fopen(path, "wb");
    size_t n = f && fwrite(h.b, 1, h.n, f) == h.n ? h.n : 0;
    if (f && fclose(f)) n = 0;
    free(h.b);
    free(w->kv.b);
    memset(w, 0, sizeof *w);
    return n;
}

// GPT-2 byte-level symbol of byte b, UTF-8 encoded into out (NUL-terminated).
static inline void gw_byte_symbol(int b, char out[4]) {
    int n = 0, cp = b;
    for (int x = 0; x < 256; x++) {
        int printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
        if (x == b) {
            cp = printable ? x : 256 + n;
            break;
        }
        if (!printable) n++;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

#endif
