// model.h: a Llama-family transformer read from GGUF, run on the CPU in float32.
//
// Per layer (pre-norm):  h = x + Wo attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x))
//                        x' = h + Wdown (silu(Wgate n(h)) * Wup n(h))
// with n() = RMSNorm, GQA causal softmax attention (query head h uses key head h / (Hq / Hkv)),
// scale 1/sqrt(d), logits = Wout n(x) (Wout = the token embeddings when output.weight is absent).
//
// RoPE layouts. llama.cpp's converter permutes the rows of Wq and Wk within each head so that
// ggml's "normal" rope, which rotates adjacent pairs (2k, 2k+1), reproduces the HF model's rotation
// of (k, k + d/2). So in GGUF order the post-RoPE q/k are in the interleaved layout:
//   ROPE_INTERLEAVED: q/k in GGUF row order, pairs (2k, 2k+1)      (the file as it is)
//   ROPE_HALF:        Wq/Wk rows un-permuted at load, pairs (k, k+d/2): the HF checkpoint's order
// Both give identical logits; q/k differ only by a fixed permutation of each head's d coordinates.
// Pair k at position p is rotated by p * inv_freq[k], inv_freq[k] = theta^(-2k/d) / scale_k, with
// scale_k from rope scaling (linear: the factor; rope_freqs.weight: its entry k).
//
// Weights are dequantised to float32 once at load (SmolLM2-135M: about 540 MB). Matrix products go
// through cblas_sgemm; attention is tiled (BQ x BK tiles, online softmax) and never holds N x N.
#ifndef SKEL_MODEL_H
#define SKEL_MODEL_H

#include <stdint.h>

#include "common.h"
#include "dump.h"
#include "gguf.h"
#include "tokenizer.h"

typedef struct {
    char arch[32];
    char name[256];    // general.name, else the file's base name
    int n_layers;
    int dim;           // model width
    int n_heads;       // Hq
    int n_kv_heads;    // Hkv
    int head_dim;      // d
    int ffn_dim;
    int n_vocab;
    int n_ctx_train;   // trained context (informative; longer inputs are allowed)
    float norm_eps;
    double rope_theta;
    rope_layout layout;
    double *inv_freq;  // (d/2) the frequencies actually used
} model_config;

typedef struct {
    float *attn_norm;  // (dim)
    float *wq;         // (Hq d, dim)   rows permuted per head when layout is ROPE_HALF
    float *wk;         // (Hkv d, dim)  idem
    float *wv;         // (Hkv d, dim)
    float *wo;         // (dim, Hq d)
    float *ffn_norm;   // (dim)
    float *w_gate;     // (ffn, dim)
    float *w_up;       // (ffn, dim)
    float *w_down;     // (dim, ffn)
} model_layer;

typedef struct {
    char path[1024];
    model_config c;
    float *tok_embd;     // (vocab, dim)
    float *output_norm;  // (dim)
    float *output;       // (vocab, dim); equals tok_embd when the embeddings are tied
    model_layer *layers; // (n_layers)
    tokenizer tok;
    char weight_types[128];  // the ggml types found in the file, e.g. "F32 Q4_1 Q8_0"
} model;

// Loads path: architecture "llama" only; every tensor dequantised to float32; the tokenizer. Fails
// with one line naming the file and, where it applies, the key or tensor: unknown architecture,
// missing or mis-shaped tensor, unsupported quantisation type, unsupported rope scaling.
int model_load(model *M, const char *path, rope_layout layout, skel_err *e);
void model_free(model *M);

// Called once per layer with that layer's post-RoPE q (Hq, N, d), k (Hkv, N, d) and v (Hkv, N, d);
// the arrays are valid during the call only. A non-zero return stops the run with that error.
typedef int (*model_layer_fn)(void *user, int layer, const float *q, const float *k, const float *v,
                              skel_err *e);

typedef struct {
    const int32_t *positions;  // (N) RoPE positions, NULL for 0..N-1 (the causal mask is by index)
    model_layer_fn on_layer;   // may be NULL
    void *user;
    int last_layer;            // stop after layer last_layer's q/k/v (no head); -1: all layers + head
    float *logits;             // (N, vocab) or NULL
    float *last_logits;        // (vocab) logits of the last token, or NULL
    double *nll;               // (N - 1) -log p(tokens[i+1] | tokens[0..i]), or NULL
    void (*progress)(void *user, int done, int total);  // after each layer; may be NULL
} model_run;

// Runs the N tokens through the model. Token ids must be in [0, vocab).
int model_forward(const model *M, const int32_t *tokens, int64_t N, const model_run *r, skel_err *e);

// Causal softmax attention with GQA, scale 1/sqrt(d), tiled with an online softmax (no N x N):
// out (N, Hq d) token-major, row i of head h = sum_{j<=i} softmax_j(q_i . k_j / sqrt(d)) v_j, from
// q (Hq, N, d), k and v (Hkv, N, d); query head h uses key head h / (Hq / Hkv).
void model_attention(float *out, const float *q, const float *k, const float *v, int64_t N, int Hq, int Hkv,
                     int d);

// Prefill throughput of the model at path: n_tokens fixed pseudo-random tokens (seed 1), one
// warm-up run of 64 tokens, then `repeats` timed runs of n_tokens producing the last token's
// logits; returns the median tokens per second, or a negative value with e filled.
double model_bench_prefill(const char *path, int n_tokens, int repeats, skel_err *e);

#endif
