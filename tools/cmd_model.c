// skel dump / perplexity / generate: run a GGUF Llama-family model (src/model.h) on a text.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "dump.h"
#include "model.h"

// ---------------------------------------------------------------------------- helpers
// The forward pass opens a few hundred OpenMP parallel regions. With libgomp's default (spinning)
// wait policy, a machine whose cores are shared with other work loses up to half its speed to
// threads spinning while a sibling is descheduled (measured 2x on the 2-core build machine). libgomp
// reads OMP_WAIT_POLICY only at start-up, so when it is unset the command re-executes itself once
// with it set to passive. Setting OMP_WAIT_POLICY yourself (to anything) skips this.
static void prefer_passive_wait(int argc, char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    char **a = xcalloc((size_t)argc + 2, sizeof(char *));
    a[0] = "skel";
    for (int i = 0; i < argc; i++) a[i + 1] = argv[i];
    execv("/proc/self/exe", a);
    free(a);  // exec failed: carry on with the default policy
}

static char *read_file(const char *path, size_t *len, skel_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        skel_fail(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = xmalloc(cap + 1);
    for (size_t k; (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
            CHECK(b);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        skel_fail(e, "%s: read error", path);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

// Whitespace- or comma-separated token ids.
static int read_token_file(const char *path, int n_vocab, int32_t **out, int64_t *n, skel_err *e) {
    size_t len;
    char *s = read_file(path, &len, e);
    if (!s) return -1;
    int64_t cap = 1024, k = 0;
    int32_t *t = xmalloc((size_t)cap * sizeof(int32_t));
    for (char *p = s;;) {
        while (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= n_vocab) {
            int tl = (int)strcspn(p, " ,\t\r\n");
            skel_fail(e, "%s: token %lld: '%.*s' is not a token id in [0, %d)", path, (long long)k, tl < 20 ? tl : 20,
                      p, n_vocab);
            free(s), free(t);
            return -1;
        }
        if (k == cap) {
            cap *= 2;
            t = realloc(t, (size_t)cap * sizeof(int32_t));
            CHECK(t);
        }
        t[k++] = (int32_t)v;
        p = end;
    }
    free(s);
    *out = t;
    *n = k;
    return 0;
}

// Parses "0,5-7" into a 0/1 mask of n_layers; fails naming the first bad entry.
static int parse_layers(const char *spec, int n_layers, unsigned char *mask, skel_err *e) {
    memset(mask, 0, (size_t)n_layers);
    const char *p = spec;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p) return skel_fail(e, "--layers '%s': expected a list like 0,5-7", spec);
        b = a;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q) return skel_fail(e, "--layers '%s': expected a list like 0,5-7", spec);
        }
        if (*end && *end != ',') return skel_fail(e, "--layers '%s': expected a list like 0,5-7", spec);
        if (a < 0 || b >= n_layers || a > b)
            return skel_fail(e, "--layers '%s': layer range %ld-%ld out of range (the model has %d layers, 0-%d)", spec,
                             a, b, n_layers, n_layers - 1);
        for (long l = a; l <= b; l++) mask[l] = 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

typedef struct {
    int on;
    double t0;
    const char *what;
} progress;

static void progress_cb(void *user, int done, int total) {
    progress *pg = user;
    if (!pg->on) return;
    int w = 30, f = (int)((double)w * done / total);
    fprintf(stderr, "\r%s [", pg->what);
    for (int i = 0; i < w; i++) fputc(i < f ? '#' : '.', stderr);
    fprintf(stderr, "] layer %d/%d  %.1fs", done, total, skel_now() - pg->t0);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "skel: %s '%s': expected an integer in [%ld, %ld]\n", flag, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static const char *base_name(const char *path, char *buf, size_t cap) {
    const char *b = strrchr(path, '/');
    snprintf(buf, cap, "%s", b ? b + 1 : path);
    size_t n = strlen(buf);
    if (n > 5 && !strcmp(buf + n - 5, ".gguf")) buf[n - 5] = 0;
    return buf;
}

// Tokens of --text or --tokens, cut to n (n <= 0: all). Fails when fewer than n.
static int load_input(const model *M, const char *text_path, const char *tok_path, int64_t n, int32_t **tok,
                      int64_t *ntok, skel_err *e) {
    int64_t have;
    if (text_path) {
        size_t len;
        char *s = read_file(text_path, &len, e);
        if (!s) return -1;
        tokenizer_encode(&M->tok, s, len, tok, &have);
        free(s);
    } else if (read_token_file(tok_path, M->c.n_vocab, tok, &have, e)) {
        return -1;
    }
    const char *src = text_path ? text_path : tok_path;
    if (have == 0 || (n > 0 && have < n)) {
        free(*tok);
        *tok = NULL;
        if (have == 0) return skel_fail(e, "%s: no tokens", src);
        return skel_fail(e, "%s: the text has only %lld tokens, fewer than --n-tokens %lld", src, (long long)have,
                         (long long)n);
    }
    *ntok = n > 0 ? n : have;
    return 0;
}

// ---------------------------------------------------------------------------- dump
static void dump_usage(FILE *f) {
    fprintf(f,
            "usage: skel dump --model M.gguf (--text FILE | --tokens FILE) --n-tokens N -o dump.h5 [options]\n"
            "Runs the model on the first N tokens and writes post-RoPE q/k (and v) per layer (SPEC section 1).\n"
            "  --model FILE         GGUF model, architecture llama (required)\n"
            "  --text FILE          text to tokenise with the model's tokenizer\n"
            "  --tokens FILE        token ids, separated by whitespace or commas (instead of --text)\n"
            "  --n-tokens N         number of tokens to run (required); the input must have at least N\n"
            "  --layers LIST        layers to write, e.g. 0,5-7 (default: all)\n"
            "  --values             also write v (default: q and k only)\n"
            "  --dtype f16|f32      storage type of q/k/v (default: f16)\n"
            "  --rope-layout L      interleaved: q/k in GGUF order, pairs (2k, 2k+1); half: HF order, pairs\n"
            "                       (k, k+d/2). Same attention either way (default: interleaved)\n"
            "  -o, --output FILE    output HDF5 file (required)\n"
            "  --quiet              no progress bar (it is shown only when stderr is a terminal)\n"
            "  -h, --help           this text\n");
}

typedef struct {
    dump_writer *W;
    const unsigned char *mask;
    int values;
    progress pg;
} dump_ctx;

static int dump_layer(void *user, int layer, const float *q, const float *k, const float *v, skel_err *e) {
    dump_ctx *c = user;
    if (!c->mask[layer]) return 0;
    if (dump_writer_put(c->W, layer, 'q', q, e) || dump_writer_put(c->W, layer, 'k', k, e)) return -1;
    if (c->values && dump_writer_put(c->W, layer, 'v', v, e)) return -1;
    return 0;
}

static void dump_progress(void *user, int done, int total) { progress_cb(&((dump_ctx *)user)->pg, done, total); }

int cmd_dump(int argc, char **argv) {
    prefer_passive_wait(argc, argv);
    const char *model_path = NULL, *text = NULL, *tokens = NULL, *layers = NULL, *out = NULL, *dtype = "f16";
    rope_layout layout = ROPE_INTERLEAVED;
    long n = -1;
    int values = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return dump_usage(stdout), 0;
        else if (!strcmp(a, "--values")) values = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!has) return fprintf(stderr, "skel dump: %s needs a value (skel dump --help)\n", a), 2;
        else if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--text")) text = argv[++i];
        else if (!strcmp(a, "--tokens")) tokens = argv[++i];
        else if (!strcmp(a, "--layers")) layers = argv[++i];
        else if (!strcmp(a, "--dtype")) dtype = argv[++i];
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = argv[++i];
        else if (!strcmp(a, "--n-tokens")) {
            if (parse_int("--n-tokens", argv[++i], 1, 1L << 30, &n)) return 2;
        } else if (!strcmp(a, "--rope-layout")) {
            const char *l = argv[++i];
            if (!strcmp(l, "interleaved")) layout = ROPE_INTERLEAVED;
            else if (!strcmp(l, "half")) layout = ROPE_HALF;
            else return fprintf(stderr, "skel dump: --rope-layout '%s': expected interleaved or half\n", l), 2;
        } else return fprintf(stderr, "skel dump: unknown option '%s' (skel dump --help)\n", a), 2;
    }
    if (!model_path || !out || n < 0 || !text == !tokens) {
        fprintf(stderr, "skel dump: needs --model, exactly one of --text/--tokens, --n-tokens and -o (skel dump --help)\n");
        return 2;
    }
    if (strcmp(dtype, "f16") && strcmp(dtype, "f32"))
        return fprintf(stderr, "skel dump: --dtype '%s': expected f16 or f32\n", dtype), 2;

    skel_err e = {{0}};
    model M;
    if (model_load(&M, model_path, layout, &e)) return fprintf(stderr, "skel dump: %s\n", e.msg), 1;
    unsigned char *mask = xmalloc((size_t)M.c.n_layers);
    int32_t *tok = NULL;
    int64_t N = 0;
    int rc = 1, last = -1;
    char *txt = NULL;
    if (layers ? parse_layers(layers, M.c.n_layers, mask, &e) : (memset(mask, 1, (size_t)M.c.n_layers), 0)) goto done;
    for (int l = 0; l < M.c.n_layers; l++)
        if (mask[l]) last = l;
    if (last < 0) {
        skel_fail(&e, "--layers '%s': no layer selected", layers);
        goto done;
    }
    if (load_input(&M, text, tokens, n, &tok, &N, &e)) goto done;
    txt = tokenizer_decode(&M.tok, tok, N, NULL);

    dump_meta meta = {0};
    base_name(model_path, meta.model, sizeof meta.model);
    meta.n_tokens = N;
    meta.n_layers = M.c.n_layers;
    meta.n_q_heads = M.c.n_heads;
    meta.n_kv_heads = M.c.n_kv_heads;
    meta.head_dim = M.c.head_dim;
    meta.layout = layout;
    meta.format_version = DUMP_FORMAT_VERSION;
    int32_t *pos = xmalloc((size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
    dump_writer W;
    if (dump_writer_create(&W, out, &meta, !strcmp(dtype, "f16"), M.c.inv_freq, pos, tok, txt, &e)) {
        free(pos);
        goto done;
    }
    free(pos);
    dump_ctx ctx = {&W, mask, values, {isatty(2) && !quiet, skel_now(), "dump"}};
    model_run r = {.on_layer = dump_layer, .user = &ctx, .last_layer = last, .progress = dump_progress};
    if (model_forward(&M, tok, N, &r, &e)) {
        dump_writer_abort(&W);
        goto done;
    }
    if (dump_writer_finish(&W, &e)) goto done;
    if (!quiet)
        fprintf(stderr, "skel dump: wrote %s: %lld tokens, layers %s, %s%s, %.1fs\n", out, (long long)N,
                layers ? layers : "all", dtype, values ? ", with v" : "", skel_now() - ctx.pg.t0);
    rc = 0;
done:
    if (rc) fprintf(stderr, "skel dump: %s\n", e.msg);
    free(mask), free(tok), free(txt);
    model_free(&M);
    return rc;
}

// ---------------------------------------------------------------------------- perplexity
static void ppl_usage(FILE *f) {
    fprintf(f,
            "usage: skel perplexity --model M.gguf --text FILE [--n-tokens N] [--time]\n"
            "Perplexity exp(mean NLL) of the first N tokens, over the N-1 next-token predictions, one window.\n"
            "  --model FILE      GGUF model (required)\n"
            "  --text FILE       text (required)\n"
            "  --n-tokens N      tokens to score (default: 1024); the text must have at least N\n"
            "  --time            also print the forward pass's time and tokens/s\n"
            "  --quiet           no progress bar\n"
            "  -h, --help        this text\n");
}

int cmd_perplexity(int argc, char **argv) {
    prefer_passive_wait(argc, argv);
    const char *model_path = NULL, *text = NULL;
    long n = 1024;
    int timing = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return ppl_usage(stdout), 0;
        else if (!strcmp(a, "--time")) timing = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (i + 1 >= argc) return fprintf(stderr, "skel perplexity: %s needs a value\n", a), 2;
        else if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--text")) text = argv[++i];
        else if (!strcmp(a, "--n-tokens")) {
            if (parse_int("--n-tokens", argv[++i], 2, 1L << 30, &n)) return 2;
        } else return fprintf(stderr, "skel perplexity: unknown option '%s' (skel perplexity --help)\n", a), 2;
    }
    if (!model_path || !text)
        return fprintf(stderr, "skel perplexity: needs --model and --text (skel perplexity --help)\n"), 2;
    skel_err e = {{0}};
    model M;
    if (model_load(&M, model_path, ROPE_INTERLEAVED, &e)) return fprintf(stderr, "skel perplexity: %s\n", e.msg), 1;
    int32_t *tok = NULL;
    int64_t N;
    int rc = 1;
    double *nll = NULL;
    if (load_input(&M, text, NULL, n, &tok, &N, &e)) goto done;
    nll = xmalloc((size_t)N * sizeof(double));
    progress pg = {isatty(2) && !quiet, skel_now(), "perplexity"};
    model_run r = {.last_layer = -1, .nll = nll, .progress = progress_cb, .user = &pg};
    double t0 = skel_now();
    if (model_forward(&M, tok, N, &r, &e)) goto done;
    double dt = skel_now() - t0, s = 0;
    for (int64_t i = 0; i + 1 < N; i++) s += nll[i];
    s /= (double)(N - 1);
    printf("perplexity %.4f  (mean NLL %.4f nats over %lld predictions, %lld tokens of %s)\n", exp(s), s,
           (long long)(N - 1), (long long)N, text);
    if (timing) printf("forward pass %.2f s, %.1f tokens/s\n", dt, (double)N / dt);
    rc = 0;
done:
    if (rc) fprintf(stderr, "skel perplexity: %s\n", e.msg);
    free(tok), free(nll);
    model_free(&M);
    return rc;
}

// ---------------------------------------------------------------------------- generate
static void gen_usage(FILE *f) {
    fprintf(f,
            "usage: skel generate --model M.gguf --prompt TEXT [-n 20]\n"
            "Greedy continuation of the prompt (no chat template), printed after the prompt. Each step reruns\n"
            "the whole sequence (no KV cache): fine for short checks, not for long generations.\n"
            "  --model FILE      GGUF model (required)\n"
            "  --prompt TEXT     prompt (required)\n"
            "  -n N              tokens to generate (default: 20); stops early at end-of-sequence\n"
            "  -h, --help        this text\n");
}

int cmd_generate(int argc, char **argv) {
    prefer_passive_wait(argc, argv);
    const char *model_path = NULL, *prompt = NULL;
    long n = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return gen_usage(stdout), 0;
        else if (i + 1 >= argc) return fprintf(stderr, "skel generate: %s needs a value\n", a), 2;
        else if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--prompt")) prompt = argv[++i];
        else if (!strcmp(a, "-n")) {
            if (parse_int("-n", argv[++i], 0, 100000, &n)) return 2;
        } else return fprintf(stderr, "skel generate: unknown option '%s' (skel generate --help)\n", a), 2;
    }
    if (!model_path || !prompt) return fprintf(stderr, "skel generate: needs --model and --prompt\n"), 2;
    skel_err e = {{0}};
    model M;
    if (model_load(&M, model_path, ROPE_INTERLEAVED, &e)) return fprintf(stderr, "skel generate: %s\n", e.msg), 1;
    int32_t *p;
    int64_t np;
    tokenizer_encode(&M.tok, prompt, strlen(prompt), &p, &np);
    int64_t bos = M.tok.add_bos && M.tok.bos >= 0;
    int32_t *tok = xmalloc((size_t)(bos + np + n + 1) * sizeof(int32_t));
    if (bos) tok[0] = M.tok.bos;
    memcpy(tok + bos, p, (size_t)np * sizeof(int32_t));
    free(p);
    int64_t N = bos + np;
    int rc = 0;
    if (N == 0) {
        fprintf(stderr, "skel generate: the prompt is empty\n");
        rc = 1;
        goto done;
    }
    float *lg = xmalloc((size_t)M.c.n_vocab * sizeof(float));
    fputs(prompt, stdout);
    for (long s = 0; s < n; s++) {
        model_run r = {.last_layer = -1, .last_logits = lg};
        if (model_forward(&M, tok, N, &r, &e)) {
            fprintf(stderr, "skel generate: %s\n", e.msg);
            rc = 1;
            break;
        }
        int best = 0;
        for (int j = 1; j < M.c.n_vocab; j++)
            if (lg[j] > lg[best]) best = j;
        if (best == M.tok.eos) break;
        tok[N++] = best;
        int len;
        const char *piece = tokenizer_piece(&M.tok, best, &len);
        fwrite(piece, 1, (size_t)len, stdout);
        fflush(stdout);
    }
    fputc('\n', stdout);
    free(lg);
done:
    free(tok);
    model_free(&M);
    return rc;
}
