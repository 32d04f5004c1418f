// model.c: loading a Llama-family GGUF and the float32 forward pass (see model.h).
//
// Activations are token-major (N, width) for the GEMMs; q/k/v are scattered head-major
// (H, N, d) after RoPE, which is what the layer callback and the attention tiles want.
// Threads: OpenMP only. The GEMMs split their output columns over the threads and the attention
// spreads its tiles; every thread calls single-threaded sgemm on its own part.
#include "model.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "fastmath.h"

#undef I  // <complex.h>, pulled in by OpenBLAS's cblas.h

void openblas_set_num_threads(int);

#define ATT_BQ 128  // query rows per attention tile
#define ATT_BK 128  // keys per attention tile
#define HEAD_ROWS 128  // rows per chunk of the output head (limits the (rows, vocab) logits buffer)

// ---------------------------------------------------------------------------- loading
static const gguf_tensor *want(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, skel_err *e) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) {
        skel_fail(e, "%s: missing tensor '%s'", g->path, name);
        return NULL;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        skel_fail(e, "%s: tensor '%s': shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", g->path, name,
                  (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                  (long long)ne0, (long long)want1);
        return NULL;
    }
    if (!ggml_can_dequantize(t->type)) {
        skel_fail(e, "%s: tensor '%s': unsupported quantisation type %s (supported: F32, F16, BF16, Q4_0, Q4_1, "
                  "Q5_0, Q5_1, Q8_0, Q4_K, Q6_K)", g->path, name, ggml_type_name(t->type));
        return NULL;
    }
    return t;
}

// Dequantises t into a new array; for ROPE_HALF q/k projections (permute_hd > 0) the rows of each
// head are reordered from GGUF's interleaved order to HF's half order:
//   hf row (h, j d/2 + i) = gguf row (h, 2 i + j),  i < d/2, j in {0, 1}.
static float *load_f32(const gguf_file *g, const gguf_tensor *t, int permute_hd, skel_err *e) {
    float *w = xmalloc((size_t)t->n_elements * sizeof(float));
    if (gguf_tensor_to_f32(g, t, w, e)) {
        free(w);
        return NULL;
    }
    if (permute_hd > 0) {
        int64_t cols = t->ne[0], rows = t->ne[1], hd = permute_hd;
        CHECK(rows % hd == 0);
        float *p = xmalloc((size_t)t->n_elements * sizeof(float));
        for (int64_t h = 0; h < rows / hd; h++)
            for (int64_t i = 0; i < hd / 2; i++)
                for (int64_t j = 0; j < 2; j++)
                    memcpy(p + (h * hd + j * hd / 2 + i) * cols, w + (h * hd + 2 * i + j) * cols,
                           (size_t)cols * sizeof(float));
        free(w);
        w = p;
    }
    return w;
}

static int read_config(model_config *c, const gguf_file *g, skel_err *e) {
    char key[128];
    if (gguf_get_str(g, "general.architecture", c->arch, sizeof c->arch, e)) return -1;
    if (strcmp(c->arch, "llama"))
        return skel_fail(e, "%s: general.architecture = '%s': unknown architecture (supported: llama)", g->path,
                         c->arch);
    uint32_t u;
#define GET_U32(field, suffix)                                            \
    snprintf(key, sizeof key, "llama.%s", suffix);                        \
    if (gguf_get_u32(g, key, &u, e)) return -1;                           \
    if (u == 0 || u > (1u << 24))                                         \
        return skel_fail(e, "%s: %s = %u: out of range", g->path, key, u); \
    c->field = (int)u;
    GET_U32(n_layers, "block_count");
    GET_U32(dim, "embedding_length");
    GET_U32(n_heads, "attention.head_count");
    GET_U32(ffn_dim, "feed_forward_length");
    c->n_kv_heads = c->n_heads;
    if (gguf_find(g, "llama.attention.head_count_kv")) { GET_U32(n_kv_heads, "attention.head_count_kv"); }
    c->n_ctx_train = 0;
    if (gguf_find(g, "llama.context_length")) { GET_U32(n_ctx_train, "context_length"); }
    c->head_dim = c->dim / c->n_heads;
    if (gguf_find(g, "llama.attention.key_length")) { GET_U32(head_dim, "attention.key_length"); }
#undef GET_U32
    if (c->n_heads % c->n_kv_heads)
        return skel_fail(e, "%s: llama.attention.head_count = %d is not a multiple of head_count_kv = %d", g->path,
                         c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return skel_fail(e, "%s: head dimension %d is odd", g->path, c->head_dim);
    if (gguf_find(g, "llama.rope.dimension_count")) {
        if (gguf_get_u32(g, "llama.rope.dimension_count", &u, e)) return -1;
        if ((int)u != c->head_dim)
            return skel_fail(e, "%s: llama.rope.dimension_count = %u: partial rotary embedding (head dim %d) is not "
                             "supported", g->path, u, c->head_dim);
    }
    c->norm_eps = 1e-5f;
    if (gguf_find(g, "llama.attention.layer_norm_rms_epsilon") &&
        gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c->norm_eps, e))
        return -1;
    float theta = 10000.0f;
    if (gguf_find(g, "llama.rope.freq_base") && gguf_get_f32(g, "llama.rope.freq_base", &theta, e)) return -1;
    c->rope_theta = theta;

    // Rope scaling: none and linear (positions divided by the factor, i.e. inv_freq / factor).
    double scale = 1.0;
    char type[32] = "none";
    if (gguf_find(g, "llama.rope.scaling.type") &&
        gguf_get_str(g, "llama.rope.scaling.type", type, sizeof type, e))
        return -1;
    if (!strcmp(type, "linear")) {
        float f;
        if (gguf_get_f32(g, "llama.rope.scaling.factor", &f, e)) return -1;
        if (!(f > 0)) return skel_fail(e, "%s: llama.rope.scaling.factor = %g: must be positive", g->path, f);
        scale = f;
    } else if (strcmp(type, "none")) {
        return skel_fail(e, "%s: llama.rope.scaling.type = '%s': unsupported rope scaling (supported: none, linear)",
                         g->path, type);
    }
    if (gguf_find(g, "llama.rope.scale_linear")) {  // older files
        float f;
        if (gguf_get_f32(g, "llama.rope.scale_linear", &f, e)) return -1;
        if (!(f > 0)) return skel_fail(e, "%s: llama.rope.scale_linear = %g: must be positive", g->path, f);
        scale = f;
    }
    int half = c->head_dim / 2;
    c->inv_freq = xmalloc((size_t)half * sizeof(double));
    for (int k = 0; k < half; k++) c->inv_freq[k] = pow(c->rope_theta, -2.0 * k / c->head_dim) / scale;
    const gguf_tensor *rf = gguf_find_tensor(g, "rope_freqs.weight");  // per-pair divisors (Llama 3)
    if (rf) {
        if (rf->type != GGML_TYPE_F32 || rf->n_elements != half)
            return skel_fail(e, "%s: tensor 'rope_freqs.weight': expected %d F32 values", g->path, half);
        const float *f = rf->data;
        for (int k = 0; k < half; k++) c->inv_freq[k] /= f[k];
    }
    return 0;
}

int model_load(model *M, const char *path, rope_layout layout, skel_err *e) {
    memset(M, 0, sizeof *M);
    snprintf(M->path, sizeof M->path, "%s", path);
    gguf_file g;
    if (gguf_open(&g, path, e)) return -1;
    model_config *c = &M->c;
    if (read_config(c, &g, e)) goto fail;
    c->layout = layout;
    if (!gguf_find(&g, "general.name") || gguf_get_str(&g, "general.name", c->name, sizeof c->name, NULL)) {
        const char *b = strrchr(path, '/');
        snprintf(c->name, sizeof c->name, "%s", b ? b + 1 : path);
    }

    // Check every tensor before the (slow) dequantisation.
    const int L = c->n_layers, D = c->dim, hd = c->head_dim, F = c->ffn_dim;
    const int64_t QD = (int64_t)c->n_heads * hd, KD = (int64_t)c->n_kv_heads * hd;
    const gguf_tensor *te = gguf_find_tensor(&g, "token_embd.weight");
    if (!te) {
        skel_fail(e, "%s: missing tensor 'token_embd.weight'", path);
        goto fail;
    }
    c->n_vocab = (int)te->ne[1];
    if (!(te = want(&g, "token_embd.weight", D, c->n_vocab, e))) goto fail;
    const gguf_tensor *on = want(&g, "output_norm.weight", D, 0, e), *ow = NULL;
    if (!on) goto fail;
    if (gguf_find_tensor(&g, "output.weight") && !(ow = want(&g, "output.weight", D, c->n_vocab, e))) goto fail;
    const gguf_tensor *(*lt)[9] = xcalloc((size_t)L, sizeof *lt);
    static const char *names[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                   "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    const int64_t shapes[9][2] = {{D, 0}, {D, QD}, {D, KD}, {D, KD}, {QD, D}, {D, 0}, {D, F}, {D, F}, {F, D}};
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 9; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[k]);
            if (!(lt[l][k] = want(&g, name, shapes[k][0], shapes[k][1], e))) {
                free(lt);
                goto fail;
            }
        }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const char *tn = ggml_type_name(g.tensors[i].type);
        if (!strstr(M->weight_types, tn) && strlen(M->weight_types) + strlen(tn) + 2 < sizeof M->weight_types)
            snprintf(M->weight_types + strlen(M->weight_types), sizeof M->weight_types - strlen(M->weight_types),
                     "%s%s", M->weight_types[0] ? " " : "", tn);
    }

    if (tokenizer_init(&M->tok, &g, e)) {
        free(lt);
        goto fail;
    }
    if (M->tok.n_vocab != c->n_vocab) {
        skel_fail(e, "%s: tokenizer has %d tokens, token_embd.weight %d rows", path, M->tok.n_vocab, c->n_vocab);
        free(lt);
        goto fail;
    }
    int ok = (M->tok_embd = load_f32(&g, te, 0, e)) && (M->output_norm = load_f32(&g, on, 0, e));
    M->output = M->tok_embd;
    if (ok && ow) ok = (M->output = load_f32(&g, ow, 0, e)) != NULL;
    M->layers = xcalloc((size_t)L, sizeof(model_layer));
    int perm = layout == ROPE_HALF ? hd : 0;
    for (int l = 0; ok && l < L; l++) {
        model_layer *y = &M->layers[l];
        float **dst[9] = {&y->attn_norm, &y->wq, &y->wk, &y->wv, &y->wo, &y->ffn_norm, &y->w_gate, &y->w_up, &y->w_down};
        for (int k = 0; ok && k < 9; k++)
            ok = (*dst[k] = load_f32(&g, lt[l][k], (k == 1 || k == 2) ? perm : 0, e)) != NULL;
    }
    free(lt);
    if (!ok) goto fail;
    gguf_close(&g);
    return 0;
fail:
    gguf_close(&g);
    model_free(M);
    return -1;
}

void model_free(model *M) {
    if (M->layers)
        for (int l = 0; l < M->c.n_layers; l++) {
            model_layer *y = &M->layers[l];
            free(y->attn_norm), free(y->wq), free(y->wk), free(y->wv), free(y->wo);
            free(y->ffn_norm), free(y->w_gate), free(y->w_up), free(y->w_down);
        }
    free(M->layers);
    if (M->output != M->tok_embd) free(M->output);
    free(M->tok_embd);
    free(M->output_norm);
    free(M->c.inv_freq);
    if (M->tok.n_vocab) tokenizer_free(&M->tok);
    memset(M, 0, sizeof *M);
}

// ---------------------------------------------------------------------------- building blocks
// y (rows, out) = x (rows, in) W^T + beta y, with W (out, in) row-major. The output columns are
// split over the OpenMP threads, each calling single-threaded sgemm: one thread pool for the whole
// forward pass (OpenBLAS's own threads spinning beside OpenMP's cost 10x on 2 cores).
static void gemm_wt(float *y, const float *x, const float *w, int64_t rows, int64_t in, int64_t out, float beta) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = (out + nt - 1) / nt;
        per = (per + 15) / 16 * 16;  // whole cache lines of y per thread
        int64_t o0 = t * per, o1 = o0 + per < out ? o0 + per : out;
        if (o1 > o0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(o1 - o0), (int)in, 1.0f, x,
                        (int)in, w + o0 * in, (int)in, beta, y + o0, (int)out);
    }
}
static void matmul(float *y, const float *x, const float *w, int64_t rows, int64_t in, int64_t out) {
    gemm_wt(y, x, w, rows, in, out, 0.0f);
}
static void matmul_acc(float *y, const float *x, const float *w, int64_t rows, int64_t in, int64_t out) {
    gemm_wt(y, x, w, rows, in, out, 1.0f);
}

// out (N, D) = x / rms(x) * w, the sum of squares in double.
static void rmsnorm(float *out, const float *x, const float *w, int64_t N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * D;
        double ss = 0;
        for (int j = 0; j < D; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / D + eps));
        for (int j = 0; j < D; j++) out[i * D + j] = xi[j] * r * w[j];
    }
}

// Rotates the H heads of token-major rows x (N, H d) and scatters them head-major into out (H, N, d).
// cs/sn (N, d/2): cos and sin of position * inv_freq, computed in double.
static void rope_scatter(float *out, const float *x, int64_t N, int H, int d, const double *cs, const double *sn,
                         rope_layout layout) {
    int half = d / 2;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++)
        for (int h = 0; h < H; h++) {
            const float *src = x + (i * H + h) * d;
            float *dst = out + ((int64_t)h * N + i) * d;
            for (int k = 0; k < half; k++) {
                int a = layout == ROPE_HALF ? k : 2 * k, b = layout == ROPE_HALF ? k + half : 2 * k + 1;
                double c = cs[i * half + k], s = sn[i * half + k], ya = src[a], yb = src[b];
                dst[a] = (float)(ya * c - yb * s);
                dst[b] = (float)(ya * s + yb * c);
            }
        }
}

// FlashAttention-style: for each (head, BQ-row tile) the key tiles up to the diagonal are visited
// once with a running max m and sum l per row; the tiles go to OpenMP threads, largest first.
void model_attention(float *out, const float *q, const float *k, const float *v, int64_t N, int Hq, int Hkv,
                     int d) {
    openblas_set_num_threads(1);  // each thread runs its own small sgemm
    const int64_t nt = (N + ATT_BQ - 1) / ATT_BQ;
    const int grp = Hq / Hkv;
    const float scale = 1.0f / sqrtf((float)d);
#pragma omp parallel
    {
        float *S = xmalloc((size_t)ATT_BQ * ATT_BK * sizeof(float));  // (BQ, BK) scores, then probabilities
        float *O = xmalloc((size_t)ATT_BQ * d * sizeof(float));       // (BQ, d) unnormalised output
        float m[ATT_BQ], l[ATT_BQ];
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < (int64_t)Hq * nt; w++) {
            // Largest tiles first: tile t has t + 1 key tiles.
            int h = (int)(w % Hq);
            int64_t t = nt - 1 - w / Hq, i0 = t * ATT_BQ, bq = N - i0 < ATT_BQ ? N - i0 : ATT_BQ;
            const float *qh = q + ((int64_t)h * N + i0) * d;
            const float *kh = k + (int64_t)(h / grp) * N * d, *vh = v + (int64_t)(h / grp) * N * d;
            for (int r = 0; r < bq; r++) m[r] = -INFINITY, l[r] = 0;
            memset(O, 0, (size_t)bq * d * sizeof(float));
            for (int64_t j0 = 0; j0 <= i0 + bq - 1; j0 += ATT_BK) {
                int64_t bk = N - j0 < ATT_BK ? N - j0 : ATT_BK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)bk, d, scale, qh, d, kh + j0 * d, d,
                            0.0f, S, ATT_BK);
                for (int r = 0; r < bq; r++) {
                    float *s = S + (int64_t)r * ATT_BK;
                    int64_t jmax = i0 + r - j0 + 1;  // keys j0 .. i0 + r are causal
                    int nk = (int)(jmax < bk ? jmax : bk);
                    if (nk <= 0) {  // row entirely above the diagonal of this tile
                        memset(s, 0, (size_t)bk * sizeof(float));
                        continue;
                    }
                    float mx = m[r], sum = 0;
#pragma omp simd reduction(max : mx)
                    for (int j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
                    float corr = fast_expf(m[r] - mx);  // 0 on the first tile, where m = -inf
#pragma omp simd reduction(+ : sum)
                    for (int j = 0; j < nk; j++) {
                        float p = fast_expf(s[j] - mx);
                        s[j] = p;
                        sum += p;
                    }
                    for (int j = nk; j < bk; j++) s[j] = 0;
                    l[r] = l[r] * corr + sum;
                    m[r] = mx;
                    if (corr != 1.0f)
                        for (int c = 0; c < d; c++) O[r * d + c] *= corr;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bq, d, (int)bk, 1.0f, S, ATT_BK,
                            vh + j0 * d, d, 1.0f, O, d);
            }
            for (int r = 0; r < bq; r++) {
                float inv = 1.0f / l[r];
                float *o = out + (i0 + r) * (int64_t)Hq * d + (int64_t)h * d;
                for (int c = 0; c < d; c++) o[c] = O[r * d + c] * inv;
            }
        }
        free(S);
        free(O);
    }
}

// ---------------------------------------------------------------------------- forward
int model_forward(const model *M, const int32_t *tokens, int64_t N, const model_run *r, skel_err *e) {
    const model_config *c = &M->c;
    const int D = c->dim, Hq = c->n_heads, Hkv = c->n_kv_heads, d = c->head_dim, F = c->ffn_dim, V = c->n_vocab;
    const int64_t QD = (int64_t)Hq * d, KD = (int64_t)Hkv * d;
    if (N < 1) return skel_fail(e, "%s: no tokens to run", M->path);
    for (int64_t i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return skel_fail(e, "%s: token %lld = %d is outside the vocabulary [0, %d)", M->path, (long long)i,
                             tokens[i], V);
    const int last = r->last_layer < 0 ? c->n_layers - 1 : r->last_layer;
    if (last >= c->n_layers)
        return skel_fail(e, "%s: layer %d out of range (model has %d layers)", M->path, last, c->n_layers);
    openblas_set_num_threads(1);  // see gemm_wt

    // cos/sin tables (N, d/2) in double: angles reach 8K radians, where float would lose digits.
    const int half = d / 2;
    double *cs = xmalloc((size_t)N * half * sizeof(double)), *sn = xmalloc((size_t)N * half * sizeof(double));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++)
        for (int k = 0; k < half; k++) {
            double p = r->positions ? (double)r->positions[i] : (double)i;
            sincos(p * c->inv_freq[k], &sn[i * half + k], &cs[i * half + k]);
        }

    // Sizes: N * max(D, QD, 2F) floats per buffer; 64-bit counts.
    float *x = xmalloc((size_t)N * D * sizeof(float));     // (N, D) residual stream
    float *xb = xmalloc((size_t)N * (D > QD ? D : QD) * sizeof(float));  // (N, D) normed / (N, QD) attention out
    float *qt = xmalloc((size_t)N * QD * sizeof(float));   // (N, QD) projections, token-major
    float *kt = xmalloc((size_t)N * KD * sizeof(float));
    float *vt = xmalloc((size_t)N * KD * sizeof(float));
    float *qh = xmalloc((size_t)N * QD * sizeof(float));   // (Hq, N, d) post-RoPE
    float *kh = xmalloc((size_t)N * KD * sizeof(float));   // (Hkv, N, d) post-RoPE
    float *vh = xmalloc((size_t)N * KD * sizeof(float));   // (Hkv, N, d)
    float *att = xmalloc((size_t)N * QD * sizeof(float));  // (N, QD)
    float *g = xmalloc((size_t)N * F * sizeof(float));     // (N, F)
    float *u = xmalloc((size_t)N * F * sizeof(float));     // (N, F)
    int rc = 0;

    for (int64_t i = 0; i < N; i++) memcpy(x + i * D, M->tok_embd + (int64_t)tokens[i] * D, (size_t)D * sizeof(float));
    for (int l = 0; l <= last; l++) {
        const model_layer *y = &M->layers[l];
        rmsnorm(xb, x, y->attn_norm, N, D, c->norm_eps);
        matmul(qt, xb, y->wq, N, D, QD);
        matmul(kt, xb, y->wk, N, D, KD);
        matmul(vt, xb, y->wv, N, D, KD);
        rope_scatter(qh, qt, N, Hq, d, cs, sn, c->layout);
        rope_scatter(kh, kt, N, Hkv, d, cs, sn, c->layout);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < N; i++)
            for (int h = 0; h < Hkv; h++)
                memcpy(vh + ((int64_t)h * N + i) * d, vt + (i * Hkv + h) * d, (size_t)d * sizeof(float));
        if (r->on_layer && r->on_layer(r->user, l, qh, kh, vh, e)) {
            rc = -1;
            break;
        }
        if (l == r->last_layer) {  // nothing after this layer's q/k/v is wanted
            if (r->progress) r->progress(r->user, l + 1, last + 1);
            break;
        }
        model_attention(att, qh, kh, vh, N, Hq, Hkv, d);
        matmul_acc(x, att, y->wo, N, QD, D);
        rmsnorm(xb, x, y->ffn_norm, N, D, c->norm_eps);
        matmul(g, xb, y->w_gate, N, D, F);
        matmul(u, xb, y->w_up, N, D, F);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < N * F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        matmul_acc(x, g, y->w_down, N, F, D);
        if (r->progress) r->progress(r->user, l + 1, last + 1);
    }

    if (rc == 0 && r->last_layer < 0 && (r->logits || r->last_logits || r->nll)) {
        // Rows whose logits are needed: all for logits/nll, else only the last.
        int64_t first = (r->logits || r->nll) ? 0 : N - 1;
        float *buf = r->logits ? NULL : xmalloc((size_t)HEAD_ROWS * V * sizeof(float));
        for (int64_t i0 = first; i0 < N; i0 += HEAD_ROWS) {
            int64_t n = N - i0 < HEAD_ROWS ? N - i0 : HEAD_ROWS;
            float *lg = r->logits ? r->logits + i0 * V : buf;
            rmsnorm(xb, x + i0 * D, M->output_norm, n, D, c->norm_eps);
            matmul(lg, xb, M->output, n, D, V);
            if (r->nll) {
#pragma omp parallel for schedule(static)
                for (int64_t a = 0; a < n; a++) {
                    int64_t i = i0 + a;
                    if (i + 1 >= N) continue;
                    const float *z = lg + a * V;
                    float mx = -INFINITY;
                    for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
                    double s = 0;
                    for (int j = 0; j < V; j++) s += exp((double)z[j] - mx);
                    r->nll[i] = log(s) + mx - z[tokens[i + 1]];
                }
            }
            if (r->last_logits && i0 + n == N) memcpy(r->last_logits, lg + (n - 1) * V, (size_t)V * sizeof(float));
        }
        free(buf);
    }
    free(cs), free(sn), free(x), free(xb), free(qt), free(kt), free(vt);
    free(qh), free(kh), free(vh), free(att), free(g), free(u);
    return rc;
}

// ---------------------------------------------------------------------------- benchmark
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double model_bench_prefill(const char *path, int n_tokens, int repeats, skel_err *e) {
    model M;
    if (n_tokens < 1 || repeats < 1) return skel_fail(e, "model_bench_prefill: n_tokens and repeats must be >= 1");
    if (model_load(&M, path, ROPE_INTERLEAVED, e)) return -1;
    int32_t *tok = xmalloc((size_t)n_tokens * sizeof(int32_t));
    uint64_t s = 1;
    for (int i = 0; i < n_tokens; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)M.c.n_vocab);
    }
    float *lg = xmalloc((size_t)M.c.n_vocab * sizeof(float));
    model_run r = {.last_layer = -1, .last_logits = lg};
    double *t = xmalloc((size_t)repeats * sizeof(double)), res = -1;
    if (model_forward(&M, tok, n_tokens < 64 ? n_tokens : 64, &r, e)) goto done;
    for (int k = 0; k < repeats; k++) {
        double t0 = skel_now();
        if (model_forward(&M, tok, n_tokens, &r, e)) goto done;
        t[k] = skel_now() - t0;
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    res = n_tokens / t[repeats / 2];
done:
    free(t), free(lg), free(tok);
    model_free(&M);
    return res;
}
