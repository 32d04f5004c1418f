// tokenizer.c: GPT-2 byte-level BPE: pre-tokeniser on code points, merges by rank.
#include "tokenizer.h"

#include <string.h>

#include "unicode_tables.h"

// ---------------------------------------------------------------------------- unicode
enum { CAT_OTHER = 0, CAT_L = 1, CAT_N = 2, CAT_SPACE = 3 };

static int in_ranges(unsigned cp, const unsigned (*r)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

// White_Space property (what \s matches in the Unicode-aware regex engines the reference uses).
static int is_space(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

static int category(unsigned cp) {
    if (cp < 0x80) {  // fast path
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CAT_L;
        if (cp >= '0' && cp <= '9') return CAT_N;
        return is_space(cp) ? CAT_SPACE : CAT_OTHER;
    }
    if (is_space(cp)) return CAT_SPACE;
    if (in_ranges(cp, UNI_L, sizeof UNI_L / sizeof UNI_L[0])) return CAT_L;
    if (in_ranges(cp, UNI_N, sizeof UNI_N / sizeof UNI_N[0])) return CAT_N;
    return CAT_OTHER;
}

// Decodes one UTF-8 sequence at s (n bytes left); returns its length. Invalid bytes come back one
// at a time as code point 0xFFFFFFFF (category "other").
static int utf8_next(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    if (len == 0 || (size_t)len > n) goto bad;
    unsigned v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        v = v << 6 | (s[i] & 0x3F);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xFFFFFFFFu;
    return 1;
}

static int utf8_put(unsigned cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to 256 + k in order.
static void byte_to_cp(unsigned table[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        table[b] = printable ? (unsigned)b : (unsigned)(256 + n++);
    }
}

// ---------------------------------------------------------------------------- hash tables
static uint64_t hash_bytes(const char *s, size_t n) {  // FNV-1a
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33, x *= 0xff51afd7ed558ccdULL, x ^= x >> 33;
    return x;
}

static int32_t vocab_lookup(const tokenizer *t, const char *s, size_t n) {
    uint64_t m = t->vocab_cap - 1;
    for (uint64_t i = hash_bytes(s, n) & m;; i = (i + 1) & m) {
        int32_t id = t->vocab_slot[i];
        if (id < 0) return -1;
        if ((size_t)t->text_len[id] == n && !memcmp(t->text[id], s, n)) return id;
    }
}

static uint64_t merge_find(const tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b, m = t->merge_cap - 1;
    for (uint64_t i = hash_u64(key) & m;; i = (i + 1) & m) {
        if (t->merge_key[i] == key) return i;
        if (t->merge_key[i] == UINT64_MAX) return UINT64_MAX;
    }
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

// ---------------------------------------------------------------------------- init
static const char *PRE_GPT2[] = {"gpt2", "mpt", "olmo", "jais", NULL};
static const char *PRE_DIGITS[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva", NULL};

static int in_list(const char *s, const char **list) {
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

int tokenizer_init(tokenizer *t, const gguf_file *g, skel_err *e) {
    memset(t, 0, sizeof *t);
    char model[64], pre[64] = "gpt2";
    if (gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model, e)) return -1;
    if (strcmp(model, "gpt2"))
        return skel_fail(e, "%s: tokenizer.ggml.model = '%s': only the byte-level BPE tokenizer 'gpt2' is supported",
                         g->path, model);
    if (gguf_find(g, "tokenizer.ggml.pre") && gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre, e)) return -1;
    if (in_list(pre, PRE_GPT2)) t->pre = TOKENIZER_PRE_GPT2;
    else if (in_list(pre, PRE_DIGITS)) t->pre = TOKENIZER_PRE_DIGITS;
    else return skel_fail(e, "%s: tokenizer.ggml.pre = '%s': unsupported pre-tokenizer", g->path, pre);

    const gguf_kv *toks, *merges, *types = NULL;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, e)) return -1;
    if (gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, e)) return -1;
    if (gguf_find(g, "tokenizer.ggml.token_type") &&
        gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, e))
        return -1;
    if (toks->v.arr.n == 0 || toks->v.arr.n > INT32_MAX / 2)
        return skel_fail(e, "%s: tokenizer.ggml.tokens: bad vocabulary size %llu", g->path,
                         (unsigned long long)toks->v.arr.n);
    if (types && types->v.arr.n != toks->v.arr.n)
        return skel_fail(e, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", g->path,
                         (unsigned long long)types->v.arr.n, (unsigned long long)toks->v.arr.n);
    int n = t->n_vocab = (int)toks->v.arr.n;
    t->text = xcalloc((size_t)n, sizeof(char *));
    t->text_len = xcalloc((size_t)n, sizeof(int));
    t->type = xcalloc((size_t)n, sizeof(int32_t));
    t->bytes = xcalloc((size_t)n, sizeof(char *));
    t->bytes_len = xcalloc((size_t)n, sizeof(int));
    t->vocab_cap = pow2_at_least(2 * (uint64_t)n);
    t->vocab_slot = xmalloc(t->vocab_cap * sizeof(int32_t));
    memset(t->vocab_slot, 0xff, t->vocab_cap * sizeof(int32_t));

    unsigned b2c[256];
    int c2b[512];  // inverse of bytes_to_unicode: every image is below 512
    byte_to_cp(b2c);
    for (int i = 0; i < 512; i++) c2b[i] = -1;
    for (int b = 0; b < 256; b++) c2b[b2c[b]] = b;

    for (int id = 0; id < n; id++) {
        gguf_str s = toks->v.arr.strs[id];
        t->text[id] = xmalloc(s.n + 1);
        memcpy(t->text[id], s.s, s.n);
        t->text[id][s.n] = 0;
        t->text_len[id] = (int)s.n;
        if (types) memcpy(&t->type[id], (const char *)types->v.arr.data + 4 * (size_t)id, 4);
        else t->type[id] = 1;
        if (vocab_lookup(t, s.s, s.n) < 0) {  // on duplicates the first id wins, as in llama.cpp
            uint64_t m = t->vocab_cap - 1, i = hash_bytes(s.s, s.n) & m;
            while (t->vocab_slot[i] >= 0) i = (i + 1) & m;
            t->vocab_slot[i] = id;
        }
        // Decoded bytes: each code point of a normal token is one byte; control tokens print nothing,
        // user-defined tokens are literal text.
        t->bytes[id] = xmalloc(s.n + 1);
        int nb = 0;
        if (t->type[id] == 4) {
            memcpy(t->bytes[id], s.s, s.n);
            nb = (int)s.n;
        } else if (t->type[id] != 3) {
            for (size_t k = 0; k < s.n;) {
                unsigned cp;
                int l = utf8_next((const unsigned char *)s.s + k, s.n - k, &cp);
                if (cp < 512 && c2b[cp] >= 0) t->bytes[id][nb++] = (char)c2b[cp];
                else memcpy(t->bytes[id] + nb, s.s + k, (size_t)l), nb += l;  // not byte-level: keep as is
                k += (size_t)l;
            }
        }
        t->bytes[id][nb] = 0;
        t->bytes_len[id] = nb;
    }
    int n_bytes = 0;
    for (int b = 0; b < 256; b++) {
        char u[4];
        int l = utf8_put(b2c[b], u);
        t->byte_tok[b] = vocab_lookup(t, u, (size_t)l);
        n_bytes += t->byte_tok[b] >= 0;
    }
    if (n_bytes < 188)  // the printable bytes at least: otherwise this is not a byte-level vocabulary
        return skel_fail(e, "%s: tokenizer.ggml.tokens: only %d of 256 byte tokens: not a byte-level vocabulary",
                         g->path, n_bytes), tokenizer_free(t), -1;

    uint64_t nm = merges->v.arr.n;
    t->merge_cap = pow2_at_least(2 * nm + 2);
    t->merge_key = xmalloc(t->merge_cap * sizeof(uint64_t));
    memset(t->merge_key, 0xff, t->merge_cap * sizeof(uint64_t));
    t->merge_rank = xmalloc(t->merge_cap * sizeof(int32_t));
    t->merge_out = xmalloc(t->merge_cap * sizeof(int32_t));
    char *buf = NULL;
    size_t buf_cap = 0;
    for (uint64_t r = 0; r < nm; r++) {
        gguf_str s = merges->v.arr.strs[r];
        const char *sp = memchr(s.s, ' ', s.n);
        if (!sp || sp == s.s || sp == s.s + s.n - 1) {
            free(buf);
            skel_fail(e, "%s: tokenizer.ggml.merges[%llu] = '%.*s': expected two tokens separated by a space",
                      g->path, (unsigned long long)r, (int)s.n, s.s);
            return tokenizer_free(t), -1;
        }
        size_t la = (size_t)(sp - s.s), lb = s.n - la - 1;
        int32_t a = vocab_lookup(t, s.s, la), b = vocab_lookup(t, sp + 1, lb);
        if (la + lb > buf_cap) buf_cap = 2 * (la + lb), free(buf), buf = xmalloc(buf_cap);
        memcpy(buf, s.s, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t out = vocab_lookup(t, buf, la + lb);
        if (a < 0 || b < 0 || out < 0) {
            free(buf);
            skel_fail(e, "%s: tokenizer.ggml.merges[%llu] = '%.*s': a part or the result is not in the vocabulary",
                      g->path, (unsigned long long)r, (int)s.n, s.s);
            return tokenizer_free(t), -1;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b, m = t->merge_cap - 1;
        uint64_t i = hash_u64(key) & m;
        while (t->merge_key[i] != UINT64_MAX && t->merge_key[i] != key) i = (i + 1) & m;
        if (t->merge_key[i] == key) continue;  // a repeated merge keeps its first (lowest) rank
        t->merge_key[i] = key;
        t->merge_rank[i] = (int32_t)r;
        t->merge_out[i] = out;
    }
    free(buf);

    uint32_t v;
    t->bos = t->eos = -1;
    if (gguf_find(g, "tokenizer.ggml.bos_token_id") && !gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v, NULL) &&
        v < (uint32_t)n)
        t->bos = (int)v;
    if (gguf_find(g, "tokenizer.ggml.eos_token_id") && !gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v, NULL) &&
        v < (uint32_t)n)
        t->eos = (int)v;
    int ab = 0;
    if (gguf_find(g, "tokenizer.ggml.add_bos_token") && !gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &ab, NULL))
        t->add_bos = ab;
    return 0;
}

void tokenizer_free(tokenizer *t) {
    for (int i = 0; i < t->n_vocab; i++) {
        if (t->text) free(t->text[i]);
        if (t->bytes) free(t->bytes[i]);
    }
    free(t->text), free(t->text_len), free(t->type), free(t->bytes), free(t->bytes_len);
    free(t->vocab_slot), free(t->merge_key), free(t->merge_rank), free(t->merge_out);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------- encoding
typedef struct {
    int32_t *v;
    int64_t n, cap;
} ivec;

static void ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 1024;
        a->v = realloc(a->v, (size_t)a->cap * sizeof(int32_t));
        CHECK(a->v);
    }
    a->v[a->n++] = x;
}

// BPE on one pre-token (bytes s[0..n)): start from one symbol per byte, merge the adjacent pair
// of lowest rank (leftmost on ties) until no pair is in the merge table. Bytes without a token
// (SmolLM2 lacks a few control characters) are dropped, as HF tokenizers does without an unk token.
static void bpe_word(const tokenizer *t, const unsigned char *s, size_t n, int32_t *sym, ivec *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_tok[s[i]] >= 0) sym[m++] = t->byte_tok[s[i]];
    while (m > 1) {
        int32_t best_rank = INT32_MAX, best_out = -1;
        size_t best = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            uint64_t h = merge_find(t, sym[i], sym[i + 1]);
            if (h != UINT64_MAX && t->merge_rank[h] < best_rank)
                best_rank = t->merge_rank[h], best_out = t->merge_out[h], best = i;
        }
        if (best_out < 0) break;
        sym[best] = best_out;
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof(int32_t));
        m--;
    }
    for (size_t i = 0; i < m; i++) ivec_push(out, sym[i]);
}

// Splits cps [b, e) by the GPT-2 pattern; each match [p, q) is passed to BPE. The lookahead of
// \s+(?!\S) sees only this piece, as in the reference implementations.
static void split_gpt2(const tokenizer *t, const char *text, const size_t *off, const unsigned *cp,
                       const unsigned char *cat, int64_t b, int64_t e, int32_t *sym, ivec *out) {
    int64_t p = b;
#define CAT(i) ((i) < e ? cat[i] : 255)
    while (p < e) {
        int64_t q = p;
        unsigned c = cp[p];
        unsigned c1 = p + 1 < e ? cp[p + 1] : 0, c2 = p + 2 < e ? cp[p + 2] : 0;
        if (c == '\'' && (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')) {
            q = p + 2;
        } else if (c == '\'' && ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))) {
            q = p + 3;
        } else {
            int k = c == ' ' ? CAT(p + 1) : cat[p];
            int64_t s = p + (c == ' ' && k != 255 && k != CAT_SPACE);
            if (k == CAT_L || k == CAT_N) {
                q = s;
                while (CAT(q) == k) q++;
            } else if (k == CAT_OTHER) {
                q = s;
                while (CAT(q) == CAT_OTHER) q++;
            } else {
                int64_t ws = 0;
                while (CAT(p + ws) == CAT_SPACE) ws++;
                if (ws > 1 && p + ws < e) q = p + ws - 1;  // \s+(?!\S): leave the last one to the next word
                else if (ws > 0) q = p + ws;
                else q = p + 1;
            }
        }
        bpe_word(t, (const unsigned char *)text + off[p], off[q] - off[p], sym, out);
        p = q;
    }
#undef CAT
}

void tokenizer_encode(const tokenizer *t, const char *text, size_t len, int32_t **out, int64_t *n) {
    // Code points with their byte offsets; off has one extra entry for the end.
    unsigned *cp = xmalloc((len + 1) * sizeof(unsigned));
    unsigned char *cat = xmalloc(len + 1);
    size_t *off = xmalloc((len + 1) * sizeof(size_t));
    int64_t ncp = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_next((const unsigned char *)text + i, len - i, &cp[ncp]);
        cat[ncp] = cp[ncp] == 0xFFFFFFFFu ? CAT_OTHER : (unsigned char)category(cp[ncp]);
        off[ncp++] = i;
        i += (size_t)l;
    }
    off[ncp] = len;
    int32_t *sym = xmalloc((len + 1) * sizeof(int32_t));
    ivec o = {0};
    int64_t b = 0;
    for (int64_t i = 0; i <= ncp; i++) {
        // "Digits first" variants: every \p{N} code point is a piece of its own.
        if (i == ncp || (t->pre == TOKENIZER_PRE_DIGITS && cat[i] == CAT_N)) {
            split_gpt2(t, text, off, cp, cat, b, i, sym, &o);
            if (i < ncp) split_gpt2(t, text, off, cp, cat, i, i + 1, sym, &o);
            b = i + 1;
        }
    }
    free(cp), free(cat), free(off), free(sym);
    *out = o.v ? o.v : xmalloc(sizeof(int32_t));
    *n = o.n;
}

const char *tokenizer_piece(const tokenizer *t, int32_t id, int *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->bytes_len[id];
    return t->bytes[id];
}

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int64_t n, size_t *len) {
    size_t total = 0;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) total += (size_t)t->bytes_len[ids[i]];
    char *s = xmalloc(total + 1), *p = s;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) memcpy(p, t->bytes[ids[i]], (size_t)t->bytes_len[ids[i]]), p += t->bytes_len[ids[i]];
    *p = 0;
    if (len) *len = total;
    return s;
}
