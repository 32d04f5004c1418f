// rdb.c: a small reader of R's XDR serialization format (R Internals, "Serialization formats"),
// enough for lazy-load databases of data: vectors, pairlists, symbols, references.
#include "rdb.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

// ---------------------------------------------------------------------------- R objects
enum {
    R_SYMSXP = 1, R_LISTSXP = 2, R_CHARSXP = 9, R_LGLSXP = 10, R_INTSXP = 13, R_REALSXP = 14,
    R_CPLXSXP = 15, R_STRSXP = 16, R_VECSXP = 19, R_EXPRSXP = 20, R_RAWSXP = 24,
    R_NILVALUE = 254, R_REFSXP = 255, R_GLOBALENV = 253, R_EMPTYENV = 242, R_BASEENV = 241,
    R_MISSINGARG = 251, R_UNBOUNDVALUE = 252, R_BASENAMESPACE = 250,
};

typedef struct robj robj;
struct robj {
    int type;
    int64_t n;        // vector length
    char **s;         // STRSXP: (n) strings, NULL for NA; CHARSXP/SYMSXP: s[0]
    int64_t *slen;    // (n) byte lengths
    int32_t *iv;      // INTSXP, LGLSXP
    robj **el;        // VECSXP, EXPRSXP: (n) elements
    robj *attr;       // pairlist or NULL
    robj *tag, *car, *cdr;  // LISTSXP
};

typedef struct {
    const unsigned char *p, *end;
    const char *path;
    skel_err *e;
    robj **refs;  // symbols, in order of appearance (REFSXP indexes them from 1)
    int nrefs, cap;
    int depth;
} rreader;

static void robj_free(robj *o) {
    if (!o || o->type == R_SYMSXP) return;  // symbols live in the reference table
    if (o->s)
        for (int64_t i = 0; i < (o->type == R_STRSXP ? o->n : 1); i++) free(o->s[i]);
    free(o->s), free(o->slen), free(o->iv);
    if (o->el)
        for (int64_t i = 0; i < o->n; i++) robj_free(o->el[i]);
    free(o->el);
    robj_free(o->attr), robj_free(o->tag), robj_free(o->car), robj_free(o->cdr);
    free(o);
}

static int rd_int(rreader *r, int32_t *v) {
    *v = 0;
    if (r->end - r->p < 4) return skel_fail(r->e, "%s: truncated R serialization", r->path);
    *v = (int32_t)((uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3]);
    r->p += 4;
    return 0;
}

static int rd_len(rreader *r, int64_t *n) {
    int32_t a = 0, b = 0;
    if (rd_int(r, &a)) return -1;
    if (a >= 0) return *n = a, 0;
    if (a != -1 || rd_int(r, &a) || rd_int(r, &b)) return skel_fail(r->e, "%s: bad vector length", r->path);
    *n = (int64_t)a << 32 | (uint32_t)b;
    return 0;
}

static int need(rreader *r, int64_t n) {
    if (n < 0 || r->end - r->p < n) return skel_fail(r->e, "%s: truncated R serialization", r->path);
    return 0;
}

static robj *rd_item(rreader *r);

static robj *rd_charsxp_body(rreader *r, robj *o) {
    int32_t len;
    if (rd_int(r, &len)) return NULL;
    o->s = xcalloc(1, sizeof(char *));
    o->slen = xcalloc(1, sizeof(int64_t));
    if (len == -1) return o;  // NA_STRING
    if (need(r, len)) return NULL;
    o->s[0] = xmalloc((size_t)len + 1);
    memcpy(o->s[0], r->p, (size_t)len);
    o->s[0][len] = 0;
    o->slen[0] = len;
    r->p += len;
    return o;
}

static robj *rd_item(rreader *r) {
    int32_t flags;
    if (rd_int(r, &flags)) return NULL;
    if (++r->depth > 10000) {
        skel_fail(r->e, "%s: R serialization nested too deeply", r->path);
        return NULL;
    }
    int type = flags & 0xFF, has_attr = flags & (1 << 9), has_tag = flags & (1 << 10);
    robj *o = xcalloc(1, sizeof(robj)), *res = NULL;
    o->type = type;
    switch (type) {
    case R_NILVALUE: case R_GLOBALENV: case R_EMPTYENV: case R_BASEENV: case R_MISSINGARG: case R_UNBOUNDVALUE:
    case R_BASENAMESPACE:
        res = o;
        break;
    case R_REFSXP: {
        int32_t idx = flags >> 8;
        if (idx == 0 && rd_int(r, &idx)) break;
        if (idx < 1 || idx > r->nrefs) {
            skel_fail(r->e, "%s: R reference %d out of range", r->path, idx);
            break;
        }
        free(o);
        r->depth--;
        return r->refs[idx - 1];
    }
    case R_SYMSXP: {
        robj *c = rd_item(r);
        if (!c || c->type != R_CHARSXP) {
            if (c) skel_fail(r->e, "%s: R symbol without a name", r->path), robj_free(c);
            break;
        }
        o->s = c->s, o->slen = c->slen;
        c->s = NULL, c->slen = NULL;
        robj_free(c);
        if (r->nrefs == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 64;
            r->refs = realloc(r->refs, (size_t)r->cap * sizeof(robj *));
            CHECK(r->refs);
        }
        r->refs[r->nrefs++] = o;
        r->depth--;
        return o;
    }
    case R_LISTSXP:
        if (has_attr && !(o->attr = rd_item(r))) break;
        if (has_tag && !(o->tag = rd_item(r))) break;
        if (!(o->car = rd_item(r)) || !(o->cdr = rd_item(r))) break;
        res = o;
        break;
    case R_CHARSXP:
        res = rd_charsxp_body(r, o);
        break;
    case R_LGLSXP: case R_INTSXP: case R_REALSXP: case R_CPLXSXP: case R_RAWSXP: {
        int64_t esz = type == R_REALSXP ? 8 : type == R_CPLXSXP ? 16 : type == R_RAWSXP ? 1 : 4;
        if (rd_len(r, &o->n) || need(r, o->n * esz)) break;
        if (type == R_LGLSXP || type == R_INTSXP) {
            o->iv = xmalloc((size_t)o->n * sizeof(int32_t));
            for (int64_t i = 0; i < o->n; i++) rd_int(r, &o->iv[i]);
        } else {
            r->p += o->n * esz;  // numbers are not needed here
        }
        res = o;
        break;
    }
    case R_STRSXP: {
        if (rd_len(r, &o->n) || need(r, o->n * 8)) break;
        o->s = xcalloc((size_t)o->n, sizeof(char *));
        o->slen = xcalloc((size_t)o->n, sizeof(int64_t));
        int ok = 1;
        for (int64_t i = 0; ok && i < o->n; i++) {
            robj *c = rd_item(r);
            if (!c || c->type != R_CHARSXP) {
                if (c) skel_fail(r->e, "%s: character vector element %lld is not a string", r->path, (long long)i);
                robj_free(c);
                ok = 0;
                break;
            }
            o->s[i] = c->s[0], o->slen[i] = c->slen[0];
            c->s[0] = NULL;
            robj_free(c);
        }
        if (ok) res = o;
        break;
    }
    case R_VECSXP: case R_EXPRSXP: {
        if (rd_len(r, &o->n) || need(r, o->n * 4)) break;
        o->el = xcalloc((size_t)o->n, sizeof(robj *));
        int ok = 1;
        for (int64_t i = 0; ok && i < o->n; i++) ok = (o->el[i] = rd_item(r)) != NULL;
        if (ok) res = o;
        break;
    }
    default:
        skel_fail(r->e, "%s: R object type %d is not supported by this reader", r->path, type);
        break;
    }
    // Vectors carry their attributes after the data.
    if (res && type != R_LISTSXP && type < 240 && has_attr && !(o->attr = rd_item(r))) res = NULL;
    if (!res) robj_free(o);
    r->depth--;
    return res;
}

// Unserializes buf (n bytes). The reference table (symbols) goes into *refs for the caller to free.
static robj *unserialize(const unsigned char *buf, size_t n, const char *path, rreader *r, skel_err *e) {
    memset(r, 0, sizeof *r);
    r->p = buf, r->end = buf + n, r->path = path, r->e = e;
    if (n < 2 || memcmp(buf, "X\n", 2)) {
        skel_fail(e, "%s: not an XDR R serialization (only format 'X' is supported)", path);
        return NULL;
    }
    r->p += 2;
    int32_t version, w, m;
    if (rd_int(r, &version) || rd_int(r, &w) || rd_int(r, &m)) return NULL;
    if (version == 3) {
        int32_t nelen;
        if (rd_int(r, &nelen) || need(r, nelen)) return NULL;
        r->p += nelen;
    } else if (version != 2) {
        skel_fail(e, "%s: R serialization version %d (supported: 2, 3)", path, version);
        return NULL;
    }
    return rd_item(r);
}

static void reader_free(rreader *r) {
    for (int i = 0; i < r->nrefs; i++) {
        robj *s = r->refs[i];
        free(s->s[0]), free(s->s), free(s->slen), free(s);
    }
    free(r->refs);
}

// Attribute `name` of o, or NULL.
static robj *attr_get(const robj *o, const char *name) {
    for (robj *a = o->attr; a && a->type == R_LISTSXP; a = a->cdr)
        if (a->tag && a->tag->type == R_SYMSXP && a->tag->s[0] && !strcmp(a->tag->s[0], name)) return a->car;
    return NULL;
}

// Element `name` of a named list, or NULL.
static robj *list_get(const robj *o, const char *name) {
    robj *nm = attr_get(o, "names");
    if (!nm || nm->type != R_STRSXP || o->type != R_VECSXP) return NULL;
    for (int64_t i = 0; i < nm->n && i < o->n; i++)
        if (nm->s[i] && !strcmp(nm->s[i], name)) return o->el[i];
    return NULL;
}

// ---------------------------------------------------------------------------- files
static unsigned char *slurp(const char *path, size_t *n, skel_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        skel_fail(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    unsigned char *b = xmalloc(sz > 0 ? (size_t)sz : 1);
    if (sz < 0 || fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f), free(b);
        skel_fail(e, "%s: read error", path);
        return NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

// Inflates a zlib (wbits 15) or gzip (wbits 31) stream of known or unknown output size.
static unsigned char *inflate_all(const unsigned char *in, size_t n, int wbits, size_t hint, size_t *out_n,
                                  const char *path, skel_err *e) {
    size_t cap = hint ? hint : 4 * n + 1024;
    unsigned char *out = xmalloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, wbits) != Z_OK) {
        free(out);
        skel_fail(e, "%s: zlib init failed", path);
        return NULL;
    }
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    int rc;
    do {
        if (z.total_out == cap) {
            cap *= 2;
            out = realloc(out, cap);
            CHECK(out);
        }
        z.next_out = out + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        rc = inflate(&z, Z_NO_FLUSH);
    } while (rc == Z_OK);
    *out_n = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        skel_fail(e, "%s: bad compressed stream (zlib error %d)", path, rc);
        return NULL;
    }
    return out;
}

int rdb_read(const char *rdb_path, const char *rdx_path, rdb_object **out, int *n_out, skel_err *e) {
    size_t nx, nb, nidx;
    unsigned char *x = slurp(rdx_path, &nx, e), *db = NULL, *idx = NULL;
    if (!x) return -1;
    int rc = -1, n = 0;
    rdb_object *objs = NULL;
    rreader r;
    robj *root = NULL;
    if (!(idx = inflate_all(x, nx, 31, 0, &nidx, rdx_path, e))) goto done;
    if (!(root = unserialize(idx, nidx, rdx_path, &r, e))) {
        reader_free(&r);
        goto done;
    }
    robj *vars = list_get(root, "variables"), *names = vars ? attr_get(vars, "names") : NULL;
    if (!vars || !names || names->type != R_STRSXP || names->n != vars->n) {
        skel_fail(e, "%s: no named 'variables' list: not a lazy-load index", rdx_path);
        goto free_root;
    }
    if (!(db = slurp(rdb_path, &nb, e))) goto free_root;
    objs = xcalloc((size_t)vars->n, sizeof(rdb_object));
    n = (int)vars->n;
    for (int64_t i = 0; i < vars->n; i++) {
        rdb_object *o = &objs[i];
        snprintf(o->name, sizeof o->name, "%s", names->s[i] ? names->s[i] : "NA");
        robj *ol = vars->el[i];
        if (ol->type != R_INTSXP || ol->n != 2 || ol->iv[0] < 0 || ol->iv[1] < 4 ||
            (size_t)ol->iv[0] + (size_t)ol->iv[1] > nb) {
            skel_fail(e, "%s: object '%s': bad (offset, length) in %s", rdb_path, o->name, rdx_path);
            goto free_root;
        }
        const unsigned char *rec = db + ol->iv[0];
        size_t raw_len = (size_t)rec[0] << 24 | (size_t)rec[1] << 16 | (size_t)rec[2] << 8 | rec[3], ns;
        char what[512];
        snprintf(what, sizeof what, "%s: object '%s'", rdb_path, o->name);
        unsigned char *ser = inflate_all(rec + 4, (size_t)ol->iv[1] - 4, 15, raw_len + 1, &ns, what, e);
        if (!ser) goto free_root;
        rreader r2;
        robj *v = unserialize(ser, ns, what, &r2, e);
        if (v && v->type == R_STRSXP) {
            size_t total = 0;
            for (int64_t k = 0; k < v->n; k++) total += v->s[k] ? (size_t)v->slen[k] + 1 : 0;
            o->text = xmalloc(total + 1);
            for (int64_t k = 0; k < v->n; k++)
                if (v->s[k]) {
                    if (o->len) o->text[o->len++] = '\n';
                    memcpy(o->text + o->len, v->s[k], (size_t)v->slen[k]);
                    o->len += (size_t)v->slen[k];
                }
            o->text[o->len] = 0;
        }
        robj_free(v);
        reader_free(&r2);
        free(ser);
        if (!v) goto free_root;
    }
    rc = 0;
free_root:
    robj_free(root);
    reader_free(&r);
done:
    free(x), free(db), free(idx);
    if (rc) {
        rdb_free(objs, n);
        objs = NULL, n = 0;
    }
    *out = objs;
    *n_out = n;
    return rc;
}

void rdb_free(rdb_object *objs, int n) {
    for (int i = 0; objs && i < n; i++) free(objs[i].text);
    free(objs);
}

// ---------------------------------------------------------------------------- Gutenberg
static int starts_with_ci(const char *s, const char *end, const char *pre) {
    for (; *pre; pre++, s++)
        if (s >= end || (*s | 0x20) != (*pre | 0x20)) return 0;
    return 1;
}

size_t gutenberg_strip(char *t, size_t len) {
    size_t w = 0, i = 0;
    if (len >= 3 && !memcmp(t, "\xEF\xBB\xBF", 3)) i = 3;
    for (; i < len; i++)
        if (!(t[i] == '\r' && i + 1 < len && t[i + 1] == '\n')) t[w++] = t[i];
    len = w;
    t[len] = 0;
    char *end = t + len, *begin = t, *stop = end;
    for (char *line = t; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *next = nl ? nl + 1 : end;
        if (begin == t && starts_with_ci(line, end, "*** START OF")) {
            begin = next;
            // A "Produced by ..." paragraph right after the marker is transcriber credit, not text.
            char *p = begin;
            while (p < end && *p == '\n') p++;
            if (starts_with_ci(p, end, "Produced by")) {
                char *q = strstr(p, "\n\n");
                begin = q ? q + 2 : begin;
            }
            next = begin;
        } else if (begin != t && (starts_with_ci(line, end, "*** END OF") ||
                                  starts_with_ci(line, end, "End of Project Gutenberg") ||
                                  starts_with_ci(line, end, "End of the Project Gutenberg"))) {
            stop = line;
            break;
        }
        line = next;
    }
    while (begin < stop && (*begin == '\n' || *begin == ' ')) begin++;
    while (stop > begin && (stop[-1] == '\n' || stop[-1] == ' ')) stop--;
    size_t n = (size_t)(stop - begin);
    memmove(t, begin, n);
    t[n] = '\n';  // one final newline
    if (n) n++;
    t[n] = 0;
    return n;
}
