// analyze.c: see analyze.h.
#include "analyze.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "decomp.h"
#include "dump.h"
#include "exact.h"
#include "gpu.h"
#include "mask.h"
#include "methods.h"
#include "results.h"
#include "sweep.h"

void analyze_opts_default(analyze_opts *o) {
    memset(o, 0, sizeof *o);
    o->block = 64;
    o->sink = 64;
    o->local = 64;
    o->eps = 0.8;
    o->ridge = 1e-3;
    o->seed = 1;
    o->image_size = 1024;
    o->methods = 1;
    methods_params_default(&o->mp);
}

int analyze_check_opts(const analyze_opts *o, skel_err *e) {
    if (o->block < 16 || o->block > 256 || (o->block & (o->block - 1)))
        return skel_fail(e, "--block %d: must be a power of two in [16, 256]", o->block);
    if (!(o->eps > 0 && o->eps <= 1)) return skel_fail(e, "--eps %g: must be in (0, 1]", o->eps);
    if (!(o->budget >= 0 && o->budget <= 1)) return skel_fail(e, "--budget %g: must be in (0, 1]", o->budget);
    if (o->sink < 0 || o->local < 1) return skel_fail(e, "--sink %d / --local %d: need sink >= 0 and local >= 1", o->sink, o->local);
    if (o->samples < 0) return skel_fail(e, "--samples %d: must be positive", o->samples);
    if (o->image_size < 16 || o->image_size > 8192) return skel_fail(e, "--image %d: must be in [16, 8192]", o->image_size);
    if (o->threads < 0) return skel_fail(e, "--threads %d: must be positive", o->threads);
    if (!(o->ridge > 0)) return skel_fail(e, "--ridge %g: must be positive", o->ridge);
    return 0;
}

// The methods of the /methods table, in the order their masks are measured, and where each mask is
// stored (the skeleton's is the head's "mask" dataset).
#define N_MEASURED 6  // masks measured in the exact pass: the skeleton and the compared methods
static const char *const METHOD_NAMES[N_MEASURED + 1] = {"skeleton", "vertical_slash", "xattention", "flexprefill",
                                                         "lambda", "trianglemix", "oracle"};
static const char *const MASK_DSETS[N_MEASURED + 1] = {NULL, "vs_mask", "xattention_mask", "flexprefill_mask",
                                                       "lambda_mask", "trianglemix_mask", "oracle_mask"};

static void fmt_time(char *buf, size_t n, double s) {
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%02d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

int analyze_run(const char *dump_path, const char *out_path, const analyze_opts *o, skel_err *e) {
    if (analyze_check_opts(o, e)) return -1;
    if (o->threads > 0) omp_set_num_threads(o->threads);
    dump D;
    if (dump_open(&D, dump_path, e)) return -1;
    const dump_meta *m = &D.meta;
    const int64_t N = m->n_tokens;
    const int d = m->head_dim, group = m->n_q_heads / m->n_kv_heads;
    if (N < (int64_t)o->sink + o->local + 2) {
        skel_fail(e, "%s: n_tokens = %lld is too small for --sink %d + --local %d (needs at least %d)", dump_path,
                  (long long)N, o->sink, o->local, o->sink + o->local + 2);
        goto fail_dump;
    }
    // selections
    int nl = o->layers ? o->n_layers : D.n_present, nh = o->heads ? o->n_heads : m->n_q_heads;
    for (int a = 0; a < nl; a++) {
        int L = o->layers ? o->layers[a] : D.present[a];
        if (!dump_has_layer(&D, L)) {
            skel_fail(e, "%s: /layers/%d: layer not present in the dump", dump_path, L);
            goto fail_dump;
        }
    }
    for (int b = 0; b < nh; b++) {
        int h = o->heads ? o->heads[b] : b;
        if (h < 0 || h >= m->n_q_heads) {
            skel_fail(e, "%s: head %d not present (the dump has %d query heads)", dump_path, h, m->n_q_heads);
            goto fail_dump;
        }
    }

    // device: --device gpu must get one; auto takes it when usable and the shape is supported
    int use_gpu = 0;
    if (o->device != ANALYZE_DEVICE_CPU) {
        skel_err ge;
        char name[256];
        use_gpu = gpu_probe(name, sizeof name, &ge) && gpu_exact_supported(d, o->block, &ge);
        if (!use_gpu && o->device == ANALYZE_DEVICE_GPU) {
            skel_fail(e, "--device gpu: %s", ge.msg);
            goto fail_dump;
        }
        if (use_gpu && !o->quiet) fprintf(stderr, "analyze: exact statistics, decomposition and mask on %s\n", name);
    }
    gpu_exact *G = NULL;
    gpu_decomp *GD = NULL;
    if (use_gpu && gpu_exact_init(&G, N, d, o->block, o->image_size, o->eps, e)) goto fail_dump;
    if (use_gpu) {
        decomp_params dp = {.S = o->sink, .T = o->local, .M = o->samples, .ridge = o->ridge, .seed = o->seed};
        if (gpu_decomp_init(&GD, N, d, &dp, o->block, e)) {
            gpu_exact_free(G);
            goto fail_dump;
        }
    }

    results_params rp = {.block = o->block, .sink = o->sink, .local = o->local, .samples = o->samples ? o->samples : 80 * d,
                         .image_size = o->image_size, .eps = o->eps, .budget = o->budget, .ridge = o->ridge,
                         .seed = o->seed, .device = use_gpu ? "gpu" : "cpu"};
    results_writer R;
    if (results_create(&R, out_path, &D, &rp, e)) {
        gpu_exact_free(G);
        gpu_decomp_free(GD);
        goto fail_dump;
    }

    float *q = xmalloc(sizeof(float) * N * d), *k = xmalloc(sizeof(float) * N * d);
    float *vbuf = D.has_values ? xmalloc(sizeof(float) * N * d) : NULL;
    const int64_t nb = (N + o->block - 1) / o->block;
    uint8_t *mask = xmalloc((size_t)(nb * nb)), *oracle = xmalloc((size_t)(nb * nb));
    uint8_t *mmask[N_MEASURED] = {mask};  // the skeleton, then the compared methods
    for (int x = 1; x < N_MEASURED; x++) mmask[x] = xmalloc((size_t)(nb * nb));
    const int progress = !o->quiet && isatty(2);
    const int total = nl * nh;
    const double t_start = skel_now();
    int done = 0;
    for (int a = 0; a < nl; a++) {
        int L = o->layers ? o->layers[a] : D.present[a];
        int loaded_kv = -1, loaded_v = -1, k_changed = 1, dk_changed = 1;  // keys new to the exact pass / the decomposition
        for (int b = 0; b < nh; b++) {
            int h = o->heads ? o->heads[b] : b, kvh = h / group;
            if (progress) {
                char el[16], eta[16];
                double t = skel_now() - t_start;
                fmt_time(el, sizeof el, t);
                fmt_time(eta, sizeof eta, done ? t / done * (total - done) : 0);
                fprintf(stderr, "\r[%d/%d] layer %d head %d  elapsed %s  ETA %s   ", done + 1, total, L, h, el,
                        done ? eta : "--:--:--");
            }
            if (dump_read_head(&D, L, 'q', h, q, e)) goto fail_all;
            if (kvh != loaded_kv) {  // GQA: a key head serves `group` query heads
                if (dump_read_head(&D, L, 'k', kvh, k, e)) goto fail_all;
                loaded_kv = kvh;
                k_changed = dk_changed = 1;
            }
            if (D.has_values && kvh != loaded_v) {
                if (dump_read_head(&D, L, 'v', kvh, vbuf, e)) goto fail_all;
                loaded_v = kvh;
            }
            head_report rep = {.layer = L, .head = h, .kv_head = kvh, .n_tokens = N, .output_rel_error = NAN};
            // The decomposition and its mask come first: with values, the exact pass also measures
            // the output error of that mask.
            double t0 = skel_now();
            decomp dc;
            decomp_params dp = {.S = o->sink, .T = o->local, .M = o->samples, .ridge = o->ridge, .seed = o->seed};
            decomp_init(&dc, N, d, &dp);
            mask_params mp = {.B = o->block, .S = o->sink, .T = o->local, .eps = o->eps, .budget = o->budget};
            double t1, t2;
            if (GD) {  // decomposition and threshold mask on the device; budget selection on the host
                gpu_decomp_times dt;
                if (gpu_decomp_compute(GD, &dc, q, k, dk_changed, D.inv_freq, D.positions, m->layout, &mp,
                                       o->budget > 0 ? NULL : mask, &rep.predicted_block_sparsity, &dt, e)) {
                    char msg[sizeof e->msg];
                    snprintf(msg, sizeof msg, "%s", e->msg);
                    skel_fail(e, "%s: /layers/%d head %d: %s", dump_path, L, h, msg);
                    decomp_free(&dc);
                    goto fail_all;
                }
                dk_changed = 0;
                const double tb = skel_now();
                if (o->budget > 0) rep.predicted_block_sparsity = mask_skeleton(mask, dc.s, dc.v, dc.h, N, &mp);
                t2 = skel_now();
                t1 = o->budget > 0 ? tb : t2 - 1e-3 * dt.mask_ms;  // the device's mask time out of the call
            } else {
                if (decomp_compute(&dc, q, k, D.inv_freq, D.positions, m->layout, e)) {
                    char msg[sizeof e->msg];
                    snprintf(msg, sizeof msg, "%s", e->msg);
                    skel_fail(e, "%s: /layers/%d head %d: %s", dump_path, L, h, msg);
                    decomp_free(&dc);
                    goto fail_all;
                }
                t1 = skel_now();
                rep.predicted_block_sparsity = mask_skeleton(mask, dc.s, dc.v, dc.h, N, &mp);
                t2 = skel_now();
            }
            // the compared methods' masks (SPEC section 7), on the same grid
            int nm = 1;
            if (o->methods) {
                method_vertical_slash(mmask[1], q, k, N, d, o->block, &o->mp);
                method_xattention(mmask[2], q, k, N, d, o->block, &o->mp);
                method_flexprefill(mmask[3], q, k, N, d, o->block, &o->mp);
                method_lambda(mmask[4], N, o->block, &o->mp);
                method_trianglemix(mmask[5], N, o->block, &o->mp);
                nm = N_MEASURED;
            }
            double t3 = skel_now();
            exact_stats st;
            exact_stats_init(&st, N, d, o->block, o->image_size, o->eps);
            if (G) {  // the GPU pass measures no output error (yet): those stay NaN
                if (gpu_exact_compute(G, &st, q, k, k_changed, NULL, e)) {
                    char msg[sizeof e->msg];
                    snprintf(msg, sizeof msg, "%s", e->msg);
                    skel_fail(e, "%s: /layers/%d head %d: %s", dump_path, L, h, msg);
                    exact_stats_free(&st);
                    decomp_free(&dc);
                    goto fail_all;
                }
                k_changed = 0;
                for (int x = 0; x < EXACT_MAX_MASKS; x++) st.output_rel_error[x] = NAN;
            } else {
                exact_compute(&st, q, k, D.has_values ? vbuf : NULL, (const uint8_t *const *)mmask,
                              D.has_values ? nm : 0);
            }
            double t4 = skel_now();
            rep.output_rel_error = st.output_rel_error[0];
            rep.predicted_sparsity = mask_predict_sparsity(dc.s, dc.v, dc.h, N, o->eps, NULL, NULL);
            mask_metrics mm, om;
            mask_evaluate(mask, st.block_mass, N, o->block, &mm);
            mask_oracle(oracle, st.block_mass, N, o->block, mm.recall);
            mask_evaluate(oracle, st.block_mass, N, o->block, &om);
            rep.exact_sparsity = st.exact_sparsity;
            rep.threshold_sparsity = st.threshold_sparsity;
            rep.block_sparsity = st.block_sparsity;
            rep.mask_density = mm.density;
            rep.mask_recall = mm.recall;
            rep.min_rowblock_recall = mm.min_rowblock_recall;
            rep.oracle_density_at_same_recall = om.density;
            rep.fit_r2 = dc.fit_r2;
            rep.fit_rmse = dc.fit_rmse;
            rep.time_decomp_ms = 1e3 * (t1 - t0);
            rep.time_mask_ms = 1e3 * (t2 - t1);
            rep.time_exact_ms = 1e3 * (t4 - t3);
            method_row mrows[N_MEASURED + 1];
            const char *dsets[N_MEASURED + 1];
            const uint8_t *mptr[N_MEASURED + 1];
            for (int x = 0; x <= nm; x++) {  // nm measured masks, then the oracle
                const uint8_t *mk = x < nm ? mmask[x] : oracle;
                mask_metrics me;
                mask_evaluate(mk, st.block_mass, N, o->block, &me);
                method_row *row = &mrows[x];
                memset(row, 0, sizeof *row);
                row->layer = L, row->head = h;
                snprintf(row->method, sizeof row->method, "%s", METHOD_NAMES[x < nm ? x : N_MEASURED]);
                row->density = me.density;
                row->compute_fraction = me.compute_fraction;
                row->recall = me.recall;
                row->min_rowblock_recall = me.min_rowblock_recall;
                row->output_rel_error = x < nm ? st.output_rel_error[x] : NAN;
                dsets[x] = MASK_DSETS[x < nm ? x : N_MEASURED];
                mptr[x] = mk;
            }
            int rc = results_put_head(&R, &st, &dc, mask, &rep, nm + 1, dsets, mptr, mrows, e);
            if (!rc && o->sweep) {
                sweep_input si = {.N = N, .d = d, .B = o->block, .S = o->sink, .T = o->local, .eps = o->eps, .q = q,
                                  .k = k, .W = st.block_mass, .s = dc.s, .v = dc.v, .h = dc.h, .mp = o->mp};
                sweep_point pts[SWEEP_MAX_POINTS];
                int np = sweep_head(&si, pts);
                rc = results_put_sweep(&R, L, h, pts, np, e);
            }
            exact_stats_free(&st);
            decomp_free(&dc);
            if (rc) goto fail_all;
            done++;
        }
    }
    if (progress) {
        char el[16];
        fmt_time(el, sizeof el, skel_now() - t_start);
        fprintf(stderr, "\r[%d/%d] done in %s%30s\n", done, total, el, "");
    }
    free(q), free(k), free(vbuf), free(mask), free(oracle);
    for (int x = 1; x < N_MEASURED; x++) free(mmask[x]);
    gpu_exact_free(G);
    gpu_decomp_free(GD);
    dump_close(&D);
    return results_finish(&R, e);
fail_all:
    if (progress) fprintf(stderr, "\n");
    free(q), free(k), free(vbuf), free(mask), free(oracle);
    for (int x = 1; x < N_MEASURED; x++) free(mmask[x]);
    gpu_exact_free(G);
    gpu_decomp_free(GD);
    results_abort(&R);
fail_dump:
    dump_close(&D);
    return -1;
}
