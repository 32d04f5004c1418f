// test_model.c: the forward pass against a naive double-precision reference on tiny GGUF models the
// test writes itself (random weights, 2 layers, F32 and quantised tensors, both rope layouts); bad
// input through the command line; and, when data/model and data/text are there, the real model.
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "gguf_writer.h"
#include "model.h"
#include "rope.h"
#include "testutil.h"

#define REAL_GGUF "data/model/SmolLM2-135M-Instruct.Q4_1.gguf"
#define REAL_TEXT "data/text/prideprejudice.txt"
// Perplexity bound on the first 1024 tokens of Pride and Prejudice: measured 18.20 (README); a
// broken RoPE, mask or norm gives hundreds or more, while float/threading noise moves it by ~1e-4.
#define PPL_BOUND 22.0

static char tmpdir[] = "/tmp/skel-test-model-XXXXXX";

// ---------------------------------------------------------------------------- tiny model
enum { T_DIM = 64, T_HQ = 4, T_HKV = 2, T_HD = 16, T_FFN = 96, T_VOCAB = 256, T_LAYERS = 2 };
#define T_THETA 10000.0
#define T_EPS 1e-5

typedef struct {
    double *w[T_LAYERS][9];  // reference weights in GGUF row order, (out, in) row-major
    double *embd, *out_norm;
} tiny_ref;

// Random weights of type t, written as blocks built from their integer parts, so that the exact
// reference values are known without the library's dequantisation.
static void make_tensor(gw *w, trng *r, const char *name, ggml_type t, int in, int out, double scale, double bias,
                        double **ref) {
    int64_t n = (int64_t)in * (out ? out : 1);
    double *v = malloc((size_t)n * sizeof(double));
    uint8_t *buf = malloc((size_t)n * 4 + 64);
    size_t nb = 0;
    if (t == GGML_TYPE_F32) {
        for (int64_t i = 0; i < n; i++) {
            float f = (float)(bias + scale * trng_normal(r));
            v[i] = f;
            memcpy(buf + 4 * i, &f, 4);
        }
        nb = (size_t)n * 4;
    } else if (t == GGML_TYPE_F16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = skel_f32_to_f16((float)(bias + scale * trng_normal(r)));
            v[i] = skel_f16_to_f32(h);
            memcpy(buf + 2 * i, &h, 2);
        }
        nb = (size_t)n * 2;
    } else if (t == GGML_TYPE_Q8_0) {
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t d = skel_f32_to_f16((float)(scale / 40 * (0.5 + trng_uniform(r))));
            memcpy(buf + nb, &d, 2);
            for (int j = 0; j < 32; j++) {
                int8_t q = (int8_t)(trng_uniform(r) * 255 - 127);
                buf[nb + 2 + j] = (uint8_t)q;
                v[b * 32 + j] = (double)skel_f16_to_f32(d) * q;
            }
            nb += 34;
        }
    } else if (t == GGML_TYPE_Q4_1) {
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t d = skel_f32_to_f16((float)(scale / 4 * (0.5 + trng_uniform(r))));
            uint16_t m = skel_f32_to_f16((float)(-7.5 * skel_f16_to_f32(d) + scale * 0.2 * trng_normal(r)));
            memcpy(buf + nb, &d, 2);
            memcpy(buf + nb + 2, &m, 2);
            int q[32];
            for (int j = 0; j < 32; j++) q[j] = (int)(trng_uniform(r) * 16) & 15;
            for (int j = 0; j < 16; j++) buf[nb + 4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
            for (int j = 0; j < 32; j++) v[b * 32 + j] = (double)skel_f16_to_f32(d) * q[j] + skel_f16_to_f32(m);
            nb += 20;
        }
    } else {
        CHECK(0);
    }
    gw_add_tensor(w, name, t, (uint64_t)in, (uint64_t)out, buf, nb);
    free(buf);
    if (ref) *ref = v;
    else free(v);
}

static void tiny_tokenizer(gw *w) {
    char sym[256][4];
    const char *toks[256];
    for (int b = 0; b < 256; b++) gw_byte_symbol(b, sym[b]), toks[b] = sym[b];
    gw_kv_str(w, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(w, "tokenizer.ggml.pre", "smollm");
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 256);
    const char *merges[1] = {"a b"};
    gw_kv_arr_str(w, "tokenizer.ggml.merges", merges, 0);
}

// quant = 0: every matrix F32; 1: a mix of Q8_0, Q4_1, F16 and F32. arch: general.architecture.
// bad_type: if not -1, the type id written for blk.0.attn_q (with matching byte size for Q8_1).
static void write_tiny(const char *path, int quant, const char *arch, int bad_type, tiny_ref *ref) {
    gw w = {0};
    trng r = {12345};
    gw_kv_str(&w, "general.architecture", arch);
    gw_kv_str(&w, "general.name", "tiny");
    gw_kv_u32(&w, "llama.block_count", T_LAYERS);
    gw_kv_u32(&w, "llama.embedding_length", T_DIM);
    gw_kv_u32(&w, "llama.feed_forward_length", T_FFN);
    gw_kv_u32(&w, "llama.attention.head_count", T_HQ);
    gw_kv_u32(&w, "llama.attention.head_count_kv", T_HKV);
    gw_kv_u32(&w, "llama.rope.dimension_count", T_HD);
    gw_kv_u32(&w, "llama.context_length", 512);
    gw_kv_f32(&w, "llama.rope.freq_base", (float)T_THETA);
    gw_kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", (float)T_EPS);
    tiny_tokenizer(&w);
    ggml_type mt[9] = {GGML_TYPE_F32, GGML_TYPE_Q8_0, GGML_TYPE_Q4_1, GGML_TYPE_F16, GGML_TYPE_Q8_0,
                       GGML_TYPE_F32, GGML_TYPE_Q4_1, GGML_TYPE_F32,  GGML_TYPE_Q8_0};
    static const char *names[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                   "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    const int shp[9][2] = {{T_DIM, 0}, {T_DIM, T_HQ * T_HD}, {T_DIM, T_HKV * T_HD}, {T_DIM, T_HKV * T_HD},
                           {T_HQ * T_HD, T_DIM}, {T_DIM, 0}, {T_DIM, T_FFN}, {T_DIM, T_FFN}, {T_FFN, T_DIM}};
    make_tensor(&w, &r, "token_embd.weight", quant ? GGML_TYPE_Q8_0 : GGML_TYPE_F32, T_DIM, T_VOCAB, 1.0, 0,
                ref ? &ref->embd : NULL);
    make_tensor(&w, &r, "output_norm.weight", GGML_TYPE_F32, T_DIM, 0, 0.1, 1.0, ref ? &ref->out_norm : NULL);
    for (int l = 0; l < T_LAYERS; l++)
        for (int k = 0; k < 9; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[k]);
            int norm = shp[k][1] == 0;
            ggml_type t = norm ? GGML_TYPE_F32 : quant ? mt[k] : GGML_TYPE_F32;
            double scale = norm ? 0.1 : 1.0 / sqrt(shp[k][0]);
            if (l == 0 && k == 1 && bad_type >= 0) {
                uint8_t blocks[T_DIM / 32 * 36 * T_HQ * T_HD] = {0};  // Q8_1: 36 bytes per 32 weights
                gw_add_tensor(&w, name, (uint32_t)bad_type, shp[k][0], shp[k][1], blocks, sizeof blocks);
                continue;
            }
            make_tensor(&w, &r, name, t, shp[k][0], shp[k][1], scale, norm ? 1.0 : 0, ref ? &ref->w[l][k] : NULL);
        }
    assert_true(gw_write(&w, path) > 0);
}

static void tiny_ref_free(tiny_ref *ref) {
    for (int l = 0; l < T_LAYERS; l++)
        for (int k = 0; k < 9; k++) free(ref->w[l][k]);
    free(ref->embd), free(ref->out_norm);
}

// Naive reference, double precision, straight from the definitions (model.h). q/k rows are in GGUF
// order; for the half layout the reference un-permutes them per head as HF stores them, and rotates
// (k, k + d/2) pairs. Outputs: q_ref (L, Hq, N, d), k_ref (L, Hkv, N, d), logits (N, V).
static void reference(const tiny_ref *R, const int32_t *tok, int N, rope_layout layout, double *q_ref,
                      double *k_ref, double *logits) {
    const int D = T_DIM, d = T_HD, QD = T_HQ * T_HD, KD = T_HKV * T_HD;
    double *x = calloc((size_t)N * D, sizeof(double)), *h = malloc((size_t)N * D * sizeof(double));
    double *q = malloc((size_t)N * QD * sizeof(double)), *k = malloc((size_t)N * KD * sizeof(double));
    double *v = malloc((size_t)N * KD * sizeof(double)), *o = malloc((size_t)N * QD * sizeof(double));
    double *g = malloc((size_t)N * T_FFN * sizeof(double));
    for (int i = 0; i < N; i++)
        for (int c = 0; c < D; c++) x[i * D + c] = R->embd[tok[i] * D + c];
#define NORM(dst, src, wn)                                                    \
    for (int i = 0; i < N; i++) {                                             \
        double ss = 0;                                                        \
        for (int c = 0; c < D; c++) ss += src[i * D + c] * src[i * D + c];    \
        double rr = 1 / sqrt(ss / D + T_EPS);                                 \
        for (int c = 0; c < D; c++) dst[i * D + c] = src[i * D + c] * rr * wn[c]; \
    }
#define MATVEC(dst, src, W, in, out)                                          \
    for (int i = 0; i < N; i++)                                               \
        for (int a = 0; a < out; a++) {                                       \
            double s = 0;                                                     \
            for (int b = 0; b < in; b++) s += W[(int64_t)a * in + b] * src[i * in + b]; \
            dst[i * out + a] = s;                                             \
        }
    for (int l = 0; l < T_LAYERS; l++) {
        double *const *W = R->w[l];
        NORM(h, x, W[0]);
        MATVEC(q, h, W[1], D, QD);
        MATVEC(k, h, W[2], D, KD);
        MATVEC(v, h, W[3], D, KD);
        // RoPE: GGUF rows pair (2m, 2m+1); HF rows (after un-permuting) pair (m, m + d/2). Both
        // rotate by angle i * theta^(-2m/d).
        for (int which = 0; which < 2; which++) {
            double *a = which ? k : q, *out = which ? k_ref : q_ref;
            int H = which ? T_HKV : T_HQ;
            for (int i = 0; i < N; i++)
                for (int hh = 0; hh < H; hh++) {
                    double *row = a + (i * H + hh) * d, tmp[T_HD];
                    for (int m = 0; m < d / 2; m++) {
                        double ang = i * pow(T_THETA, -2.0 * m / d), c = cos(ang), s = sin(ang);
                        int ia = layout == ROPE_HALF ? m : 2 * m, ib = layout == ROPE_HALF ? m + d / 2 : 2 * m + 1;
                        // In HF order, coordinate (j d/2 + m) is GGUF coordinate (2m + j).
                        double ya = row[2 * m], yb = row[2 * m + 1];
                        tmp[ia] = ya * c - yb * s;
                        tmp[ib] = ya * s + yb * c;
                    }
                    memcpy(row, tmp, sizeof tmp);
                    for (int c = 0; c < d; c++)
                        out[(((int64_t)l * H + hh) * N + i) * d + c] = row[c];
                }
        }
        for (int hh = 0; hh < T_HQ; hh++) {
            int kvh = hh / (T_HQ / T_HKV);
            for (int i = 0; i < N; i++) {
                double sc[512], mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int c = 0; c < d; c++) s += q[(i * T_HQ + hh) * d + c] * k[(j * T_HKV + kvh) * d + c];
                    sc[j] = s / sqrt(d);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= i; j++) sum += sc[j] = exp(sc[j] - mx);
                for (int c = 0; c < d; c++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) acc += sc[j] * v[(j * T_HKV + kvh) * d + c];
                    o[(i * T_HQ + hh) * d + c] = acc / sum;
                }
            }
        }
        MATVEC(h, o, W[4], QD, D);
        for (int64_t i = 0; i < (int64_t)N * D; i++) x[i] += h[i];
        NORM(h, x, W[5]);
        double *u = malloc((size_t)N * T_FFN * sizeof(double));
        MATVEC(g, h, W[6], D, T_FFN);
        MATVEC(u, h, W[7], D, T_FFN);
        for (int64_t i = 0; i < (int64_t)N * T_FFN; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        MATVEC(h, g, W[8], T_FFN, D);
        for (int64_t i = 0; i < (int64_t)N * D; i++) x[i] += h[i];
        free(u);
    }
    NORM(h, x, R->out_norm);
    MATVEC(logits, h, R->embd, D, T_VOCAB);
#undef NORM
#undef MATVEC
    free(x), free(h), free(q), free(k), free(v), free(o), free(g);
}

typedef struct {
    int N;
    double *q, *k;  // (L, H, N, d)
} capture;

static int capture_layer(void *user, int layer, const float *q, const float *k, const float *v, skel_err *e) {
    capture *c = user;
    for (int64_t i = 0; i < (int64_t)T_HQ * c->N * T_HD; i++) c->q[layer * (int64_t)T_HQ * c->N * T_HD + i] = q[i];
    for (int64_t i = 0; i < (int64_t)T_HKV * c->N * T_HD; i++) c->k[layer * (int64_t)T_HKV * c->N * T_HD + i] = k[i];
    return 0;
}

static void check_tiny(int quant, rope_layout layout) {
    char path[256];
    snprintf(path, sizeof path, "%s/tiny%d.gguf", tmpdir, quant);
    tiny_ref R = {0};
    write_tiny(path, quant, "llama", -1, &R);
    model M;
    skel_err e = {{0}};
    if (model_load(&M, path, layout, &e)) fprintf(stderr, "%s\n", e.msg), fail();
    // 300 tokens: three attention tiles of 128 rows, the last one partial.
    const int N = 300;
    int32_t tok[300];
    trng r = {7};
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(trng_uniform(&r) * T_VOCAB);
    size_t nq = (size_t)T_LAYERS * T_HQ * N * T_HD, nk = (size_t)T_LAYERS * T_HKV * N * T_HD;
    capture cap = {N, malloc(nq * sizeof(double)), malloc(nk * sizeof(double))};
    float *lg = malloc((size_t)N * T_VOCAB * sizeof(float));
    model_run run = {.on_layer = capture_layer, .user = &cap, .last_layer = -1, .logits = lg};
    assert_int_equal(model_forward(&M, tok, N, &run, &e), 0);
    double *qr = malloc(nq * sizeof(double)), *kr = malloc(nk * sizeof(double));
    double *lr = malloc((size_t)N * T_VOCAB * sizeof(double)), *lgd = malloc((size_t)N * T_VOCAB * sizeof(double));
    reference(&R, tok, N, layout, qr, kr, lr);
    for (int64_t i = 0; i < (int64_t)N * T_VOCAB; i++) lgd[i] = lg[i];
    // float32 against double: each value is a few sums of <= 300 terms of size ~1 (6e-8 relative
    // rounding each), two layers deep: 1e-4 absolute + 1e-4 relative holds with a wide margin
    // while a wrong pair, angle or head mapping gives errors of order 1.
    assert_close("q post-RoPE", cap.q, qr, nq, 1e-4, 1e-4);
    assert_close("k post-RoPE", cap.k, kr, nk, 1e-4, 1e-4);
    assert_close("logits", lgd, lr, (size_t)N * T_VOCAB, 1e-4, 1e-4);
    // The recorded frequencies are theta^(-2k/d).
    for (int k = 0; k < T_HD / 2; k++) assert_near("inv_freq", M.c.inv_freq[k], pow(T_THETA, -2.0 * k / T_HD), 1e-15);
    free(cap.q), free(cap.k), free(lg), free(qr), free(kr), free(lr), free(lgd);
    tiny_ref_free(&R);
    model_free(&M);
}

static void test_tiny_f32_interleaved(void **state) { check_tiny(0, ROPE_INTERLEAVED); }
static void test_tiny_f32_half(void **state) { check_tiny(0, ROPE_HALF); }
static void test_tiny_quant_interleaved(void **state) { check_tiny(1, ROPE_INTERLEAVED); }
static void test_tiny_quant_half(void **state) { check_tiny(1, ROPE_HALF); }

// ---------------------------------------------------------------------------- command line
// Runs cmd (stdout discarded); returns the exit status and the stderr text in err.
static int run_cmd(const char *cmd, char *err, size_t cap) {
    char full[4096], ef[300];
    snprintf(ef, sizeof ef, "%s/stderr.txt", tmpdir);
    snprintf(full, sizeof full, "%s >/dev/null 2>%s", cmd, ef);
    int st = system(full);
    FILE *f = fopen(ef, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    err[n] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *skel_bin(void) {
    const char *s = getenv("SKEL");
    return s ? s : "bin/skel";
}

static void expect_cli_error(const char *args, const char *what) {
    char cmd[2048], err[4096];
    snprintf(cmd, sizeof cmd, "%s %s", skel_bin(), args);
    int rc = run_cmd(cmd, err, sizeof err);
    char *nl = strchr(err, '\n');
    if (rc == 0 || !strstr(err, what) || !nl || nl[1]) {
        fprintf(stderr, "'%s': exit %d, stderr '%s': expected a non-zero exit and one line with '%s'\n", cmd, rc, err,
                what);
        fail();
    }
}

static void test_cli_bad_input(void **state) {
    if (access(skel_bin(), X_OK)) skip();
    char good[256], bad[256], text[256], args[1024];
    snprintf(good, sizeof good, "%s/cli.gguf", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir);
    snprintf(text, sizeof text, "%s/short.txt", tmpdir);
    write_tiny(good, 1, "llama", -1, NULL);
    FILE *f = fopen(text, "w");
    fputs("a short text of a few tokens\n", f);
    fclose(f);
    // Truncated copy of a good file.
    FILE *in = fopen(good, "rb"), *out = fopen(bad, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, out);
    fclose(in), fclose(out);
    snprintf(args, sizeof args, "dump --model %s --text %s --n-tokens 4 -o %s/o.h5", bad, text, tmpdir);
    expect_cli_error(args, "truncated file");
    // Wrong magic.
    in = fopen(good, "rb"), out = fopen(bad, "wb");
    fwrite("GGJT", 1, 4, out);
    fseek(in, 4, SEEK_SET);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in), fclose(out);
    expect_cli_error(args, "bad magic");
    write_tiny(bad, 1, "gpt9", -1, NULL);
    expect_cli_error(args, "unknown architecture");
    write_tiny(bad, 1, "llama", GGML_TYPE_Q8_1, NULL);
    expect_cli_error(args, "unsupported quantisation type Q8_1");
    snprintf(args, sizeof args, "dump --model %s --text %s --n-tokens 4 --layers 0,2-3 -o %s/o.h5", good, text, tmpdir);
    expect_cli_error(args, "out of range");
    snprintf(args, sizeof args, "dump --model %s --text %s --n-tokens 1000 -o %s/o.h5", good, text, tmpdir);
    expect_cli_error(args, "fewer than --n-tokens 1000");
    char toks[256];
    snprintf(toks, sizeof toks, "%s/bad_tokens.txt", tmpdir);
    f = fopen(toks, "w");
    fputs("5 17\n99999\n", f);
    fclose(f);
    snprintf(args, sizeof args, "dump --model %s --tokens %s --n-tokens 3 -o %s/o.h5", good, toks, tmpdir);
    expect_cli_error(args, "token 2: '99999' is not a token id in [0, 256)");
    snprintf(args, sizeof args, "perplexity --model %s/missing.gguf --text %s", tmpdir, text);
    expect_cli_error(args, "cannot open");
    snprintf(args, sizeof args, "%s/o.h5", tmpdir);
    assert_int_equal(access(args, F_OK), -1);  // no output left behind by the failed runs
    // --help lists every flag.
    snprintf(args, sizeof args, "%s dump --help", skel_bin());
    FILE *p = popen(args, "r");
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    assert_int_equal(pclose(p), 0);
    const char *flags[] = {"--model", "--text", "--tokens", "--n-tokens", "--layers", "--values", "--dtype",
                           "--rope-layout", "-o", "--quiet", "default"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) assert_non_null(strstr(buf, flags[i]));
}

// A small dump of the tiny model, written and read back through dump.h: shapes and values.
static void test_cli_dump_tiny(void **state) {
    if (access(skel_bin(), X_OK)) skip();
    char good[256], text[256], outp[256], cmd[2048], err[4096];
    snprintf(good, sizeof good, "%s/cli.gguf", tmpdir);
    snprintf(text, sizeof text, "%s/t.txt", tmpdir);
    snprintf(outp, sizeof outp, "%s/tiny.h5", tmpdir);
    write_tiny(good, 1, "llama", -1, NULL);
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 40; i++) fputs("The tiny model reads 12 words, twice.\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s dump --model %s --text %s --n-tokens 200 --layers 1 --values --dtype f32 -o %s --quiet",
             skel_bin(), good, text, outp);
    if (run_cmd(cmd, err, sizeof err)) fprintf(stderr, "%s\n", err), fail();
    dump D;
    skel_err e = {{0}};
    if (dump_open(&D, outp, &e)) fprintf(stderr, "%s\n", e.msg), fail();
    assert_int_equal(D.meta.n_tokens, 200);
    assert_int_equal(D.meta.n_layers, T_LAYERS);
    assert_int_equal(D.meta.n_q_heads, T_HQ);
    assert_int_equal(D.meta.n_kv_heads, T_HKV);
    assert_int_equal(D.meta.head_dim, T_HD);
    assert_int_equal(D.meta.layout, ROPE_INTERLEAVED);
    assert_int_equal(D.n_present, 1);
    assert_int_equal(D.present[0], 1);
    assert_true(D.has_values);
    assert_non_null(D.tokens);
    for (int i = 0; i < 200; i++) assert_int_equal(D.positions[i], i);
    assert_true(fabs(D.inv_freq[1] - pow(T_THETA, -2.0 / T_HD)) < 1e-15);
    dump_close(&D);
}

// ---------------------------------------------------------------------------- the real model
static int have_real(int need_text) {
    if (access(REAL_GGUF, R_OK)) {
        print_message("skipped: %s not found (make model; needs network)\n", REAL_GGUF);
        return 0;
    }
    if (need_text && access(REAL_TEXT, R_OK)) {
        print_message("skipped: %s not found (make corpus; needs network)\n", REAL_TEXT);
        return 0;
    }
    if (access(skel_bin(), X_OK)) {
        print_message("skipped: %s not built\n", skel_bin());
        return 0;
    }
    return 1;
}

static void test_real_generate(void **state) {
    if (!have_real(0)) skip();
    char cmd[1024], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt 'The capital of France is' -n 20", skel_bin(), REAL_GGUF);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    assert_int_equal(pclose(p), 0);
    print_message("generate: %s", out);
    assert_non_null(strstr(out, "The capital of France is"));
    assert_non_null(strstr(out + strlen("The capital of France is"), "Paris"));
}

static void test_real_perplexity(void **state) {
    if (!have_real(1)) skip();
    char cmd[1024], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "%s perplexity --model %s --text %s --n-tokens 1024", skel_bin(), REAL_GGUF, REAL_TEXT);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    assert_int_equal(pclose(p), 0);
    double ppl = 0;
    assert_int_equal(sscanf(out, "perplexity %lf", &ppl), 1);
    print_message("perplexity on the first 1024 tokens of Pride and Prejudice: %.4f (bound %.1f)\n", ppl, PPL_BOUND);
    assert_true(ppl > 1 && ppl < PPL_BOUND);
}

typedef struct {
    int n_layers;
    float *k0;  // (L, Hkv, d) keys of the single token
} k_capture;

static int capture_k(void *user, int layer, const float *q, const float *k, const float *v, skel_err *e) {
    k_capture *c = user;
    memcpy(c->k0 + (int64_t)layer * 3 * 64, k, 3 * 64 * sizeof(float));
    return 0;
}

// 512 tokens of Austen, all layers, f16: shapes, finite values (dump_read_head rejects NaN/Inf),
// and k at position 0 equal to the un-rotated key: the same token run alone at position 100, its k
// rotated back by 100 with the dump's own inv_freq and rope_layout, must give row 0 of the dump.
static void test_real_dump(void **state) {
    if (!have_real(1)) skip();
    char cmd[1024], err[4096], outp[256];
    snprintf(outp, sizeof outp, "%s/real.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "%s dump --model %s --text %s --n-tokens 512 -o %s --quiet", skel_bin(), REAL_GGUF,
             REAL_TEXT, outp);
    if (run_cmd(cmd, err, sizeof err)) fprintf(stderr, "%s\n", err), fail();
    dump D;
    skel_err e = {{0}};
    if (dump_open(&D, outp, &e)) fprintf(stderr, "%s\n", e.msg), fail();
    assert_int_equal(D.meta.n_tokens, 512);
    assert_int_equal(D.meta.n_layers, 30);
    assert_int_equal(D.meta.n_q_heads, 9);
    assert_int_equal(D.meta.n_kv_heads, 3);
    assert_int_equal(D.meta.head_dim, 64);
    assert_int_equal(D.meta.layout, ROPE_INTERLEAVED);
    assert_int_equal(D.n_present, 30);
    assert_string_equal(D.dtype, "f16");
    assert_true(fabs(D.inv_freq[1] - pow(1e5, -2.0 / 64)) < 1e-12);
    float *head = malloc(512 * 64 * sizeof(float));
    for (int l = 0; l < 30; l++) {
        for (int h = 0; h < 9; h++)
            if (dump_read_head(&D, l, 'q', h, head, &e)) fprintf(stderr, "%s\n", e.msg), fail();
        for (int h = 0; h < 3; h++)
            if (dump_read_head(&D, l, 'k', h, head, &e)) fprintf(stderr, "%s\n", e.msg), fail();
    }
    model M;
    assert_int_equal(model_load(&M, REAL_GGUF, ROPE_INTERLEAVED, &e), 0);
    k_capture c = {30, malloc(30 * 3 * 64 * sizeof(float))};
    int32_t pos = 100;
    model_run run = {.positions = &pos, .on_layer = capture_k, .user = &c, .last_layer = 29};
    assert_int_equal(model_forward(&M, D.tokens, 1, &run, &e), 0);
    float un[64];
    double got[64], want[64];
    for (int l = 0; l < 30; l++)
        for (int h = 0; h < 3; h++) {
            assert_int_equal(dump_read_head(&D, l, 'k', h, head, &e), 0);
            rope_unapply(un, c.k0 + ((int64_t)l * 3 + h) * 64, 1, 64, D.inv_freq, &pos, D.meta.layout);
            for (int x = 0; x < 64; x++) got[x] = head[x], want[x] = un[x];
            // f16 storage: relative rounding 2^-11 ~ 5e-4; keys reach ~15 in magnitude.
            assert_close("k at position 0 vs un-rotated k", got, want, 64, 2e-3, 1e-3);
        }
    free(c.k0), free(head);
    model_free(&M);
    dump_close(&D);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return perror("mkdtemp"), 1;
    setenv("OMP_WAIT_POLICY", "passive", 0);  // for the skel child processes (see cmd_model.c)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_f32_interleaved),
        cmocka_unit_test(test_tiny_f32_half),
        cmocka_unit_test(test_tiny_quant_interleaved),
        cmocka_unit_test(test_tiny_quant_half),
        cmocka_unit_test(test_cli_bad_input),
        cmocka_unit_test(test_cli_dump_tiny),
        cmocka_unit_test(test_real_generate),
        cmocka_unit_test(test_real_perplexity),
        cmocka_unit_test(test_real_dump),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) rc = rc ? rc : 1;
    return rc;
}
