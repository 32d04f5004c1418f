// synth.c: see synth.h for the planted structure.
#include "synth.h"

#include <math.h>
#include <string.h>

#include "dump.h"
#include "rope.h"

static inline uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
// Counter-based generator: element (stream, index) is reproducible whatever the thread layout.
static inline double uni(uint64_t stream, uint64_t idx) { return ((mix(stream ^ mix(idx)) >> 11) + 0.5) * 0x1p-53; }
static inline double gauss(uint64_t stream, uint64_t idx) {
    return sqrt(-2 * log(uni(stream, 2 * idx))) * cos(2 * M_PI * uni(stream, 2 * idx + 1));
}

int64_t synth_slash_offset(const synth_params *p, int kv_head) { return p->N / (4 + kv_head); }

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void synth_vertical_keys(const synth_params *p, int layer, int kv_head, int64_t out[8]) {
    uint64_t st = mix(p->seed * 1000003ULL + (uint64_t)layer * 7919 + (uint64_t)kv_head + 17);
    for (int t = 0; t < 8; t++) {
        int64_t j;
        int fresh;
        do {  // distinct keys away from the sinks
            j = 16 + (int64_t)(uni(st, (uint64_t)t) * (double)(p->N - 32));
            fresh = 1;
            for (int s = 0; s < t; s++) fresh &= out[s] != j;
            st = mix(st);
        } while (!fresh);
        out[t] = j;
    }
    qsort(out, 8, sizeof(int64_t), cmp64);
}

int synth_write(const char *path, const synth_params *p, skel_err *e) {
    const int64_t N = p->N;
    const int d = p->d, hq = p->q_heads, hkv = p->kv_heads, np = d / 2;
    if (d < 16 || d % 8) return skel_fail(e, "synth: --dim %d must be a multiple of 8 and at least 16", d);
    if (hq % hkv) return skel_fail(e, "synth: --q-heads %d is not a multiple of --kv-heads %d", hq, hkv);
    double *freq = xmalloc(sizeof(double) * np);
    for (int x = 0; x < np; x++) freq[x] = pow(p->theta, -2.0 * x / d);
    int32_t *pos = xmalloc(sizeof(int32_t) * N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)i;
    dump_meta m = {.n_tokens = N, .n_layers = p->layers, .n_q_heads = hq, .n_kv_heads = hkv, .head_dim = d,
                   .layout = ROPE_HALF};
    snprintf(m.model, sizeof m.model, "synthetic (seed %llu, theta %g)", (unsigned long long)p->seed, p->theta);
    dump_writer W;
    if (dump_writer_create(&W, path, &m, p->f16, freq, pos, NULL, NULL, e)) {
        free(freq), free(pos);
        return -1;
    }
    const int g_loc = np / 8, g_sl = np / 4;  // pair groups: [0, g_loc) local, [g_loc, g_sl) slash
    const double sd = sqrt((double)d);
    // amplitudes chosen so that the planted peaks reach z of about 8 at c = 1/sqrt(d)
    const double a_loc = sqrt(8 * sd / g_loc), a_sl = sqrt(6 * sd / (g_sl - g_loc));
    float *qb = xmalloc(sizeof(float) * hq * N * d), *kb = xmalloc(sizeof(float) * hkv * N * d);
    float *vb = p->values ? xmalloc(sizeof(float) * hkv * N * d) : NULL;
    int rc = 0;
    for (int L = 0; L < p->layers && !rc; L++) {
        uint64_t ls = mix(p->seed * 0x1000193ULL + (uint64_t)L);
        for (int kh = 0; kh < hkv; kh++) {
            int64_t vert[8];
            synth_vertical_keys(p, L, kh, vert);
            int64_t m0 = synth_slash_offset(p, kh);
            uint64_t ks = mix(ls + 101 * (uint64_t)kh + 1);
            float *u = kb + (int64_t)kh * N * d;
#pragma omp parallel for schedule(static)
            for (int64_t j = 0; j < N; j++) {
                float *row = u + j * d;
                for (int x = 0; x < d; x++) row[x] = (float)(0.5 * gauss(ks, (uint64_t)(j * d + x)));
                for (int x = 0; x < g_loc; x++) row[x] += (float)a_loc;
                for (int x = g_loc; x < g_sl; x++) {
                    row[x] += (float)(a_sl * cos(m0 * freq[x]));
                    row[x + np] += (float)(a_sl * sin(m0 * freq[x]));
                }
                double big = j < 4 ? 12.0 : 0.0;
                for (int t = 0; t < 8; t++) big = vert[t] == j ? 9.0 : big;
                // with the queries' sqrt(d) on the same two pairs: z = w_v * big
                row[np - 1] += (float)(big / 2);
                row[np - 2] += (float)(big / 2);
            }
            rope_apply(u, u, N, d, freq, pos, ROPE_HALF);
            if (vb) {
                float *v = vb + (int64_t)kh * N * d;
                for (int64_t x = 0; x < N * d; x++) v[x] = (float)gauss(ks ^ 0xabcdef, (uint64_t)x);
            }
        }
        for (int h = 0; h < hq; h++) {
            uint64_t qs = mix(ls + 7777 * (uint64_t)h + 3);
            double w_loc = 0.5 + uni(qs, 1), w_sl = 0.5 + uni(qs, 2), w_v = 0.5 + uni(qs, 3);
            float *q = qb + (int64_t)h * N * d;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < N; i++) {
                float *row = q + i * d;
                for (int x = 0; x < d; x++) row[x] = (float)(0.5 * gauss(qs, (uint64_t)(i * d + x) + 10));
                for (int x = 0; x < g_loc; x++) row[x] += (float)(w_loc * a_loc);
                for (int x = g_loc; x < g_sl; x++) row[x] += (float)(w_sl * a_sl);
                row[np - 1] += (float)(w_v * sd);
                row[np - 2] += (float)(w_v * sd);
            }
            rope_apply(q, q, N, d, freq, pos, ROPE_HALF);
        }
        rc = dump_writer_put(&W, L, 'q', qb, e) || dump_writer_put(&W, L, 'k', kb, e) ||
             (vb && dump_writer_put(&W, L, 'v', vb, e));
    }
    free(qb), free(kb), free(vb), free(freq), free(pos);
    if (rc) {
        dump_writer_abort(&W);
        return -1;
    }
    return dump_writer_finish(&W, e);
}
