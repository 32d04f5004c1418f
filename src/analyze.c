// analyze.c: see analyze.h.
#include "analyze.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
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
    if (o->workers < 0) return skel_fail(e, "--workers %d: must be positive", o->workers);
    if (o->gpus < 0 || o->gpu_threads < 0) return skel_fail(e, "--gpus %d / --gpu-threads %d: must be positive", o->gpus, o->gpu_threads);
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

// ---------------------------------------------------------------------------- the pipeline
//
// One head is one job, in a ring of `nslots` slots. Four kinds of thread work on them:
//   reader:  q (and k, v when the key head changes) from the dump, ahead of the device stage, so
//            the next head streams in while the current one computes;
//   device:  one thread per GPU (times --gpu-threads; on the CPU path just the calling thread),
//            claiming heads in order: the decomposition and its mask and the exact pass, on the GPU
//            also XAttention's scores; on the CPU also the compared methods, whose masks the exact
//            pass measures. On the GPU path with values, later, each mask's output error;
//   workers: the host stage, in any order: the compared methods (GPU path), predicted sparsity, the
//            mask metrics, the oracle, the sweep, and compressing the 2-D arrays;
//   writer:  the results file, in head order, and the progress line.
// Every HDF5 call (dump reads, results writes) holds h5_mu: the library is not thread-safe. The
// results do not depend on the number of workers (tests/test_cli.c checks it).

// A job's states, in the order it passes them (JOB_RUN while a device thread holds it, before
// JOB_DEVICE and before JOB_DONE); JOB_OUTPUT only on the GPU path with values, where the output error
// of every mask (the compared methods' come from the host stage) is measured on the device last.
enum { JOB_FREE, JOB_READ, JOB_DEVICE, JOB_HOST, JOB_OUTPUT, JOB_DONE, JOB_RUN /* on a device thread */ };

typedef struct kvbuf {
    float *k, *v;  // (N, d) each; v NULL without values
    int L, kvh;
    int refs;      // under mu
} kvbuf;

typedef struct {
    int state;  // under mu
    int64_t n;  // the head's place in the run
    int L, h, kvh;
    float *q;   // (N, d), owned by the slot
    kvbuf *kv;
    decomp dc;
    exact_stats st;
    int have_dc, have_st;
    uint8_t *mmask[N_MEASURED], *oracle;  // (nb, nb) each, owned by the slot
    double *xa_score;                     // XAttention's block scores (nbx, nbx), or NULL without methods or sweep
    int xa_have;                          // xa_score holds this head's (from the GPU, or the host's methods)
    last_lines vs_lines, fp_lines;        // vertical-slash's and FlexPrefill's lines, for the sweep too
    int lines_have;
    int nm;
    head_report rep;
    method_row mrows[N_MEASURED + 1];
    const char *dsets[N_MEASURED + 1];
    const uint8_t *mptr[N_MEASURED + 1];
    sweep_point pts[SWEEP_MAX_POINTS];
    int np;
    results_packed pk;  // the 2-D arrays, compressed by the worker for the writer
} job;

// One device thread: its GPU, the GPU objects it owns (all NULL on the CPU path), and what it last
// left on the device (keys and values are kept between the query heads of a group).
typedef struct {
    int gpu;
    gpu_exact *G;
    gpu_decomp *GD;
    gpu_methods *GM;
    gpu_output *GO;  // the output error on the device (GPU path with values), or NULL
    int last_L, last_kvh, out_L, out_kvh;
} devctx;

typedef struct {
    // fixed for the run
    const analyze_opts *o;
    const char *dump_path;
    dump *D;
    results_writer *R;
    int64_t N;
    int d, group, nb, nh, total, nslots, nworkers, worker_threads, use_gpu;
    devctx *dev;  // (ndev) device threads: the calling thread runs dev[0]
    int ndev, has_output;  // has_output: the output stage runs on the device (GPU path with values)
    job *slots;
    double t_start;
    int progress;
    // shared state, under mu
    pthread_mutex_t mu, h5_mu;
    pthread_cond_t cv;
    int stop, failed, device_done;
    int64_t claimed1, done1, claimed2;  // device stages claimed and finished, output stages claimed
    skel_err err;
    double t_read, t_device, t_host, t_write;  // seconds spent in each stage, summed over heads
} pipeline;

static void add_time(pipeline *P, double *acc, double t0) {
    const double t = skel_now() - t0;
    pthread_mutex_lock(&P->mu);
    *acc += t;
    pthread_mutex_unlock(&P->mu);
}

static void head_at(const pipeline *P, int64_t n, int *L, int *h) {
    const analyze_opts *o = P->o;
    const int a = (int)(n / P->nh), b = (int)(n % P->nh);
    *L = o->layers ? o->layers[a] : P->D->present[a];
    *h = o->heads ? o->heads[b] : b;
}

// Records the first failure and stops every thread.
static void pipe_fail(pipeline *P, const skel_err *e) {
    pthread_mutex_lock(&P->mu);
    if (!P->failed) P->failed = 1, P->err = *e;
    P->stop = 1;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static void kv_release(kvbuf *kv) {  // under mu
    if (kv && --kv->refs == 0) free(kv->k), free(kv->v), free(kv);
}

// Waits until slot s is in `state` (returns 1) or the run stops (returns 0).
static int wait_state(pipeline *P, job *j, int state) {
    pthread_mutex_lock(&P->mu);
    while (!P->stop && j->state != state) pthread_cond_wait(&P->cv, &P->mu);
    int ok = !P->stop;
    pthread_mutex_unlock(&P->mu);
    return ok;
}

static void set_state(pipeline *P, job *j, int state) {
    pthread_mutex_lock(&P->mu);
    j->state = state;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static int read_head(pipeline *P, int L, char which, int h, float *out, skel_err *e) {
    pthread_mutex_lock(&P->h5_mu);
    int rc = dump_read_head(P->D, L, which, h, out, e);
    pthread_mutex_unlock(&P->h5_mu);
    return rc;
}

static void *reader_main(void *arg) {
    pipeline *P = arg;
    const size_t nd = (size_t)P->N * P->d;
    kvbuf *cur = NULL;  // the reader's own reference to the newest key head
    skel_err e;
    for (int64_t n = 0; n < P->total; n++) {
        job *j = &P->slots[n % P->nslots];
        if (!wait_state(P, j, JOB_FREE)) break;
        int L, h;
        head_at(P, n, &L, &h);
        const int kvh = h / P->group;
        const double t0 = skel_now();
        if (!cur || cur->L != L || cur->kvh != kvh) {  // GQA: a key head serves `group` query heads
            kvbuf *kv = xcalloc(1, sizeof *kv);
            kv->L = L, kv->kvh = kvh, kv->refs = 1;
            kv->k = xmalloc(sizeof(float) * nd);
            if (P->D->has_values) kv->v = xmalloc(sizeof(float) * nd);
            if (read_head(P, L, 'k', kvh, kv->k, &e) || (kv->v && read_head(P, L, 'v', kvh, kv->v, &e))) {
                free(kv->k), free(kv->v), free(kv);
                pipe_fail(P, &e);
                break;
            }
            pthread_mutex_lock(&P->mu);
            kv_release(cur);
            pthread_mutex_unlock(&P->mu);
            cur = kv;
        }
        if (read_head(P, L, 'q', h, j->q, &e)) {
            pipe_fail(P, &e);
            break;
        }
        add_time(P, &P->t_read, t0);
        pthread_mutex_lock(&P->mu);
        j->n = n, j->L = L, j->h = h, j->kvh = kvh;
        j->kv = cur, cur->refs++;
        j->state = JOB_READ;
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
    }
    pthread_mutex_lock(&P->mu);
    kv_release(cur);
    pthread_mutex_unlock(&P->mu);
    return NULL;
}

// The compared methods' masks (SPEC section 7), on the same grid.
static void run_methods(const pipeline *P, job *j) {
    const analyze_opts *o = P->o;
    j->nm = 1;
    if (!o->methods) return;
    const float *q = j->q, *k = j->kv->k;
    methods_lines(&j->vs_lines, &j->fp_lines, q, k, P->N, P->d, &o->mp);
    j->lines_have = 1;
    vertical_slash_select(j->mmask[1], &j->vs_lines, P->N, o->block, &o->mp);
    if (!j->xa_have) xattention_scores(j->xa_score, q, k, P->N, P->d, &o->mp), j->xa_have = 1;  // else from the GPU
    xattention_select(j->mmask[2], j->xa_score, P->N, o->block, &o->mp);
    flexprefill_select(j->mmask[3], &j->fp_lines, q, k, P->N, P->d, o->block, &o->mp);
    method_lambda(j->mmask[4], P->N, o->block, &o->mp);
    method_trianglemix(j->mmask[5], P->N, o->block, &o->mp);
    j->nm = N_MEASURED;
}

// The device stage of one job (the calling thread, in head order). k_changed: the job's keys differ
// from the last job's (the GPU keeps its converted keys otherwise).
static int device_stage(pipeline *P, devctx *c, job *j, int k_changed, skel_err *e) {
    const analyze_opts *o = P->o;
    const dump *D = P->D;
    const int64_t N = P->N;
    const int d = P->d;
    const float *q = j->q, *k = j->kv->k;
    uint8_t *mask = j->mmask[0];
    head_report *rep = &j->rep;
    memset(rep, 0, sizeof *rep);
    rep->layer = j->L, rep->head = j->h, rep->kv_head = j->kvh, rep->n_tokens = N, rep->output_rel_error = NAN;
    char msg[sizeof e->msg];
    // The decomposition and its mask come first: with values, the CPU's exact pass also measures
    // the output error of that mask and of the compared methods'.
    double t0 = skel_now();
    decomp_params dp = {.S = o->sink, .T = o->local, .M = o->samples, .ridge = o->ridge, .seed = o->seed};
    decomp_init(&j->dc, N, d, &dp);
    j->have_dc = 1;
    mask_params mp = {.B = o->block, .S = o->sink, .T = o->local, .eps = o->eps, .budget = o->budget};
    double t1, t2;
    if (c->GD) {  // decomposition and mask (threshold or budget mode) on the device
        gpu_decomp_times dt;
        const int qk_f16 = !strcmp(D->dtype, "f16");  // the queries and keys are float16 values
        if (gpu_decomp_compute(c->GD, &j->dc, q, k, k_changed, qk_f16, D->inv_freq, D->positions, D->meta.layout, &mp,
                               mask, &rep->predicted_block_sparsity, &dt, e))
            goto fail;
        t2 = skel_now();
        t1 = t2 - 1e-3 * dt.mask_ms;  // the device's mask time out of the call
    } else {
        if (decomp_compute(&j->dc, q, k, D->inv_freq, D->positions, D->meta.layout, e)) goto fail;
        t1 = skel_now();
        rep->predicted_block_sparsity = mask_skeleton(mask, j->dc.s, j->dc.v, j->dc.h, N, &mp);
        t2 = skel_now();
    }
    if (!c->G) run_methods(P, j);
    double t3 = skel_now();
    exact_stats_init(&j->st, N, d, o->block, o->image_size, o->eps);
    j->have_st = 1;
    if (c->G) {  // with values, the output error comes after the host stage (output_stage)
        if (gpu_exact_compute(c->G, &j->st, q, k, k_changed, NULL, e)) goto fail;
        for (int x = 0; x < EXACT_MAX_MASKS; x++) j->st.output_rel_error[x] = NAN;
        // XAttention's quadratic scoring, on the float16 q and k the exact pass left on the device
        if (c->GM) {
            if (gpu_xattention_scores(c->GM, c->G, j->xa_score, e)) goto fail;
            j->xa_have = 1;
        }
    } else {
        exact_compute(&j->st, q, k, j->kv->v, (const uint8_t *const *)j->mmask, j->kv->v ? j->nm : 0);
    }
    double t4 = skel_now();
    rep->time_decomp_ms = 1e3 * (t1 - t0);
    rep->time_mask_ms = 1e3 * (t2 - t1);
    rep->time_exact_ms = 1e3 * (t4 - t3);
    return 0;
fail:
    snprintf(msg, sizeof msg, "%s", e->msg);
    return skel_fail(e, "%s: /layers/%d head %d: %s", P->dump_path, j->L, j->h, msg);
}

// The host stage of one job (a worker, any order): everything derived from W and the decomposition.
static void host_stage(const pipeline *P, job *j) {
    const analyze_opts *o = P->o;
    const int64_t N = P->N;
    if (P->use_gpu) run_methods(P, j);
    head_report *rep = &j->rep;
    const exact_stats *st = &j->st;
    const decomp *dc = &j->dc;
    rep->output_rel_error = st->output_rel_error[0];
    rep->predicted_sparsity = mask_predict_sparsity(dc->s, dc->v, dc->h, N, o->eps, NULL, NULL);
    mask_metrics mm, om;
    mask_evaluate(j->mmask[0], st->block_mass, N, o->block, &mm);
    mask_oracle(j->oracle, st->block_mass, N, o->block, mm.recall);
    mask_evaluate(j->oracle, st->block_mass, N, o->block, &om);
    rep->exact_sparsity = st->exact_sparsity;
    rep->threshold_sparsity = st->threshold_sparsity;
    rep->block_sparsity = st->block_sparsity;
    rep->mask_density = mm.density;
    rep->mask_recall = mm.recall;
    rep->min_rowblock_recall = mm.min_rowblock_recall;
    rep->oracle_density_at_same_recall = om.density;
    rep->fit_r2 = dc->fit_r2;
    rep->fit_rmse = dc->fit_rmse;
    for (int x = 0; x <= j->nm; x++) {  // nm measured masks, then the oracle
        const uint8_t *mk = x < j->nm ? j->mmask[x] : j->oracle;
        mask_metrics me;
        mask_evaluate(mk, st->block_mass, N, o->block, &me);
        method_row *row = &j->mrows[x];
        memset(row, 0, sizeof *row);
        row->layer = j->L, row->head = j->h;
        snprintf(row->method, sizeof row->method, "%s", METHOD_NAMES[x < j->nm ? x : N_MEASURED]);
        row->density = me.density;
        row->compute_fraction = me.compute_fraction;
        row->recall = me.recall;
        row->min_rowblock_recall = me.min_rowblock_recall;
        row->output_rel_error = x < j->nm ? st->output_rel_error[x] : NAN;
        j->dsets[x] = MASK_DSETS[x < j->nm ? x : N_MEASURED];
        j->mptr[x] = mk;
    }
    results_pack_head(&j->pk, st, j->mmask[0], j->nm + 1, j->mptr);
    j->np = 0;
    if (o->sweep) {
        sweep_input si = {.N = N, .d = P->d, .B = o->block, .S = o->sink, .T = o->local, .eps = o->eps,
                          .q = j->q, .k = j->kv->k, .W = st->block_mass, .s = dc->s, .v = dc->v, .h = dc->h,
                          .mp = o->mp, .xa_score = j->xa_have ? j->xa_score : NULL,
                          .vs_lines = j->lines_have ? &j->vs_lines : NULL,
                          .fp_lines = j->lines_have ? &j->fp_lines : NULL};
        j->np = sweep_head(&si, j->pts);
    }
}

static void *worker_main(void *arg) {
    pipeline *P = arg;
    omp_set_num_threads(P->worker_threads);  // this thread's OpenMP teams (the methods, the sweep)
    for (;;) {
        job *j = NULL;
        pthread_mutex_lock(&P->mu);
        for (;;) {
            if (P->stop) break;
            int64_t best = -1;
            for (int s = 0; s < P->nslots; s++)  // the oldest job waiting for the host stage
                if (P->slots[s].state == JOB_DEVICE && (best < 0 || P->slots[s].n < P->slots[best].n)) best = s;
            if (best >= 0) {
                j = &P->slots[best];
                j->state = JOB_HOST;
                break;
            }
            if (P->device_done) break;
            pthread_cond_wait(&P->cv, &P->mu);
        }
        pthread_mutex_unlock(&P->mu);
        if (!j) return NULL;
        const double t0 = skel_now();
        host_stage(P, j);
        add_time(P, &P->t_host, t0);
        set_state(P, j, P->has_output ? JOB_OUTPUT : JOB_DONE);
    }
}

static void release_job(pipeline *P, job *j) {
    if (j->have_st) exact_stats_free(&j->st);
    if (j->have_dc) decomp_free(&j->dc);
    j->have_st = j->have_dc = 0;
    j->xa_have = 0;
    if (j->lines_have) methods_lines_free(&j->vs_lines), methods_lines_free(&j->fp_lines);
    j->lines_have = 0;
    results_packed_free(&j->pk);
    pthread_mutex_lock(&P->mu);
    kv_release(j->kv);
    j->kv = NULL;
    j->state = JOB_FREE;
    pthread_cond_broadcast(&P->cv);
    pthread_mutex_unlock(&P->mu);
}

static void *writer_main(void *arg) {
    pipeline *P = arg;
    skel_err e;
    for (int64_t n = 0; n < P->total; n++) {
        job *j = &P->slots[n % P->nslots];
        if (!wait_state(P, j, JOB_DONE)) break;
        const double t0 = skel_now();
        pthread_mutex_lock(&P->h5_mu);
        int rc = results_put_head(P->R, &j->st, &j->dc, j->mmask[0], &j->rep, j->nm + 1, j->dsets, j->mptr,
                                  j->mrows, &j->pk, &e);
        if (!rc && P->o->sweep) rc = results_put_sweep(P->R, j->L, j->h, j->pts, j->np, &e);
        pthread_mutex_unlock(&P->h5_mu);
        if (rc) {
            pipe_fail(P, &e);
            break;
        }
        add_time(P, &P->t_write, t0);
        if (P->progress) {
            char el[16], eta[16];
            const double t = skel_now() - P->t_start;
            fmt_time(el, sizeof el, t);
            fmt_time(eta, sizeof eta, t / (n + 1) * (P->total - n - 1));
            fprintf(stderr, "\r[%lld/%d] layer %d head %d  elapsed %s  ETA %s   ", (long long)n + 1, P->total, j->L,
                    j->h, el, eta);
        }
        release_job(P, j);
    }
    return NULL;
}

// The output error of every mask of a job on the device (after its host stage made the compared
// methods' masks), into the report and the methods table.
static int output_stage(pipeline *P, devctx *c, job *j, int kv_changed, skel_err *e) {
    double err[N_MEASURED + 1];
    if (gpu_output_error(c->GO, j->q, j->kv->k, j->kv->v, kv_changed, j->st.lse, j->mptr, j->nm, err, e)) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        return skel_fail(e, "%s: /layers/%d head %d: %s", P->dump_path, j->L, j->h, msg);
    }
    for (int x = 0; x < j->nm; x++) j->st.output_rel_error[x] = err[x], j->mrows[x].output_rel_error = err[x];
    j->rep.output_rel_error = err[0];
    return 0;
}

// A device thread's work: device stages, claimed in head order, and on the GPU path with values the
// output stages of jobs whose host stage is done, oldest first. Several device threads (several
// GPUs, or --gpu-threads) take jobs as they come; the writer restores head order.
static void device_loop(pipeline *P, devctx *c) {
    skel_err e;
    for (;;) {
        job *j = NULL;
        int stage = 0;
        pthread_mutex_lock(&P->mu);
        for (;;) {
            if (P->stop) break;
            int64_t best = -1;
            for (int s = 0; P->has_output && s < P->nslots; s++)
                if (P->slots[s].state == JOB_OUTPUT && (best < 0 || P->slots[s].n < P->slots[best].n)) best = s;
            if (best >= 0) {
                j = &P->slots[best], stage = 2;
                P->claimed2++;
                break;
            }
            if (P->claimed1 < P->total && P->slots[P->claimed1 % P->nslots].state == JOB_READ) {
                j = &P->slots[P->claimed1 % P->nslots], stage = 1;
                P->claimed1++;
                break;
            }
            if (P->claimed1 == P->total && (!P->has_output || P->claimed2 == P->total)) break;  // nothing left
            pthread_cond_wait(&P->cv, &P->mu);
        }
        if (j) j->state = JOB_RUN;
        pthread_mutex_unlock(&P->mu);
        if (!j) break;
        const double t0 = skel_now();
        if (stage == 1) {
            const int k_changed = j->L != c->last_L || j->kvh != c->last_kvh;
            c->last_L = j->L, c->last_kvh = j->kvh;
            if (device_stage(P, c, j, k_changed, &e)) {
                pipe_fail(P, &e);
                break;
            }
            add_time(P, &P->t_device, t0);
            pthread_mutex_lock(&P->mu);
            j->state = JOB_DEVICE;
            if (++P->done1 == P->total) P->device_done = 1;  // idle workers may leave
            pthread_cond_broadcast(&P->cv);
            pthread_mutex_unlock(&P->mu);
        } else {
            const int kv_changed = j->L != c->out_L || j->kvh != c->out_kvh;
            c->out_L = j->L, c->out_kvh = j->kvh;
            if (output_stage(P, c, j, kv_changed, &e)) {
                pipe_fail(P, &e);
                break;
            }
            add_time(P, &P->t_device, t0);
            set_state(P, j, JOB_DONE);
        }
    }
}

typedef struct {
    pipeline *P;
    devctx *c;
} device_arg;

static void *device_main(void *arg) {
    device_arg *a = arg;
    skel_err e;
    if (a->P->use_gpu && gpu_set_device(a->c->gpu, &e)) pipe_fail(a->P, &e);
    else device_loop(a->P, a->c);
    return NULL;
}

static void devctx_free(devctx *c) {
    if (c->G || c->GD || c->GM || c->GO) {
        skel_err e;
        gpu_set_device(c->gpu, &e);
    }
    gpu_exact_free(c->G);
    gpu_decomp_free(c->GD);
    gpu_methods_free(c->GM);
    gpu_output_free(c->GO);
    memset(c, 0, sizeof *c);
}

// Host memory of one job in flight, to bound how many fit.
static double job_bytes(int64_t N, int d, int B, int image_size, int has_values) {
    const double nb = (double)((N + B - 1) / B), P = (double)(N < image_size ? N : image_size);
    return 4.0 * N * d * (2 + has_values) + nb * nb * (8 + N_MEASURED + 1) + 20 * P * P + 64.0 * N;
}

int analyze_run(const char *dump_path, const char *out_path, const analyze_opts *o, skel_err *e) {
    if (analyze_check_opts(o, e)) return -1;
    if (o->threads > 0) omp_set_num_threads(o->threads);
    dump D;
    if (dump_open(&D, dump_path, e)) return -1;
    const dump_meta *m = &D.meta;
    const int64_t N = m->n_tokens;
    const int d = m->head_dim;
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
    // device threads: on the GPU path --gpu-threads per GPU over --gpus GPUs (default all), each with
    // its own buffers; on the CPU path one, with none
    const int ngpu = use_gpu ? gpu_device_count() : 0;
    const int use_gpus = !use_gpu ? 0 : o->gpus > 0 && o->gpus < ngpu ? o->gpus : ngpu;
    const int ndev = use_gpu ? use_gpus * (o->gpu_threads > 0 ? o->gpu_threads : 1) : 1;
    devctx *dev = xcalloc((size_t)ndev, sizeof(devctx));
    for (int x = 0; x < ndev; x++) {
        devctx *c = &dev[x];
        c->gpu = use_gpus ? x % use_gpus : 0;
        c->last_L = c->last_kvh = c->out_L = c->out_kvh = -1;
        if (!use_gpu) continue;
        decomp_params dp = {.S = o->sink, .T = o->local, .M = o->samples, .ridge = o->ridge, .seed = o->seed};
        if (gpu_set_device(c->gpu, e) || gpu_exact_init(&c->G, N, d, o->block, o->image_size, o->eps, e) ||
            gpu_decomp_init(&c->GD, N, d, &dp, o->block, e) ||
            ((o->methods || o->sweep) && gpu_methods_init(&c->GM, N, d, &o->mp, e)) ||
            (D.has_values && gpu_output_init(&c->GO, N, d, o->block, e))) {
            for (int y = 0; y <= x; y++) devctx_free(&dev[y]);
            free(dev);
            goto fail_dump;
        }
    }
    if (use_gpu && !o->quiet && ndev > 1) fprintf(stderr, "analyze: %d device threads on %d GPU(s)\n", ndev, use_gpus);

    results_params rp = {.block = o->block, .sink = o->sink, .local = o->local, .samples = o->samples ? o->samples : 80 * d,
                         .image_size = o->image_size, .eps = o->eps, .budget = o->budget, .ridge = o->ridge,
                         .seed = o->seed, .device = use_gpu ? "gpu" : "cpu"};
    results_writer R;
    if (results_create(&R, out_path, &D, &rp, e)) {
        for (int x = 0; x < ndev; x++) devctx_free(&dev[x]);
        free(dev);
        goto fail_dump;
    }

    // How many heads are in flight: the workers plus the reader's, the device's and the writer's
    // heads, within a third of physical memory.
    const int cores = omp_get_max_threads();
    pipeline P = {.o = o, .dump_path = dump_path, .D = &D, .R = &R, .N = N, .d = d,
                  .group = m->n_q_heads / m->n_kv_heads, .nh = nh, .total = nl * nh, .use_gpu = use_gpu,
                  .dev = dev, .ndev = ndev, .has_output = use_gpu && D.has_values, .progress = !o->quiet && isatty(2)};
    P.nb = (int)((N + o->block - 1) / o->block);
    P.nworkers = o->workers > 0 ? o->workers : (cores / 4 < 1 ? 1 : cores / 4 > 8 ? 8 : cores / 4);
    P.worker_threads = cores / P.nworkers < 1 ? 1 : cores / P.nworkers;
    const double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 3;
    const int64_t nbx = xattention_blocks(N, &o->mp);
    const int want_xa = o->methods || o->sweep;
    const double jb = job_bytes(N, d, o->block, o->image_size, D.has_values) + (want_xa ? 8.0 * nbx * nbx : 0);
    int fit = (int)(mem / jb);
    P.nslots = P.nworkers + 2 + ndev;
    if (P.nslots > fit) P.nslots = fit < 1 ? 1 : fit;
    if (P.nslots > P.total) P.nslots = P.total;
    P.slots = xcalloc((size_t)P.nslots, sizeof(job));
    for (int s = 0; s < P.nslots; s++) {
        job *j = &P.slots[s];
        j->q = xmalloc(sizeof(float) * N * d);
        for (int x = 0; x < N_MEASURED; x++) j->mmask[x] = xmalloc((size_t)P.nb * P.nb);
        j->oracle = xmalloc((size_t)P.nb * P.nb);
        if (want_xa) j->xa_score = xmalloc(sizeof(double) * nbx * nbx);
    }
    pthread_mutex_init(&P.mu, NULL);
    pthread_mutex_init(&P.h5_mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    P.t_start = skel_now();

    pthread_t reader, writer, *workers = xmalloc(sizeof(pthread_t) * P.nworkers);
    CHECK(!pthread_create(&reader, NULL, reader_main, &P));
    CHECK(!pthread_create(&writer, NULL, writer_main, &P));
    for (int w = 0; w < P.nworkers; w++) CHECK(!pthread_create(&workers[w], NULL, worker_main, &P));
    pthread_t *dthreads = xmalloc(sizeof(pthread_t) * ndev);
    device_arg *dargs = xmalloc(sizeof(device_arg) * ndev);
    for (int x = 0; x < ndev; x++) dargs[x] = (device_arg){&P, &dev[x]};
    for (int x = 1; x < ndev; x++) CHECK(!pthread_create(&dthreads[x], NULL, device_main, &dargs[x]));
    device_main(&dargs[0]);
    for (int x = 1; x < ndev; x++) pthread_join(dthreads[x], NULL);
    pthread_mutex_lock(&P.mu);
    P.device_done = 1;  // also after a failure: idle workers leave
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    free(dthreads), free(dargs);
    pthread_join(reader, NULL);
    for (int w = 0; w < P.nworkers; w++) pthread_join(workers[w], NULL);
    pthread_join(writer, NULL);
    free(workers);

    if (P.progress) {
        char el[16];
        fmt_time(el, sizeof el, skel_now() - P.t_start);
        if (P.failed) fprintf(stderr, "\n");
        else fprintf(stderr, "\r[%d/%d] done in %s%30s\n", P.total, P.total, el, "");
    }
    // where the time went: the stages overlap, so the wall time is about the largest of them
    if (o->stage_times) {
        double *t = o->stage_times;
        t[0] = skel_now() - P.t_start, t[1] = P.t_read, t[2] = P.t_device, t[3] = P.t_host, t[4] = P.t_write;
    }
    if (P.progress && !P.failed)
        fprintf(stderr,
                "analyze: %d heads in %.2f s; stage totals: reading %.2f s, %s %.2f s, host stage %.2f s (%d workers x %d "
                "threads), writing %.2f s\n",
                P.total, skel_now() - P.t_start, P.t_read, use_gpu ? "GPU" : "exact+decomposition", P.t_device,
                P.t_host, P.nworkers, P.worker_threads, P.t_write);
    for (int s = 0; s < P.nslots; s++) {
        job *j = &P.slots[s];
        if (j->have_st) exact_stats_free(&j->st);
        if (j->have_dc) decomp_free(&j->dc);
        results_packed_free(&j->pk);
        kv_release(j->kv);
        free(j->q), free(j->oracle), free(j->xa_score);
        for (int x = 0; x < N_MEASURED; x++) free(j->mmask[x]);
    }
    free(P.slots);
    pthread_mutex_destroy(&P.mu);
    pthread_mutex_destroy(&P.h5_mu);
    pthread_cond_destroy(&P.cv);
    for (int x = 0; x < ndev; x++) devctx_free(&dev[x]);
    free(dev);
    dump_close(&D);
    if (P.failed) {
        *e = P.err;
        results_abort(&R);
        return -1;
    }
    return results_finish(&R, e);
fail_dump:
    dump_close(&D);
    return -1;
}
