// analyze.h: the per-head pipeline dump -> exact statistics -> decomposition -> mask -> report,
// over a selection of layers and heads, writing a results file.
#ifndef SKEL_ANALYZE_H
#define SKEL_ANALYZE_H

#include "common.h"
#include "methods.h"

typedef enum { ANALYZE_DEVICE_AUTO = 0, ANALYZE_DEVICE_CPU, ANALYZE_DEVICE_GPU } analyze_device;

typedef struct {
    int block;        // B, a power of two in [16, 256] (default 64)
    int sink, local;  // S, T (default 64 each)
    double eps;       // (0, 1] (default 0.8)
    double budget;    // (0, 1] for budget mode; 0 = threshold mode
    int samples;      // M; 0 = 80 d
    double ridge;     // eps_r (default 1e-3)
    uint64_t seed;
    int image_size;   // pooled image side (default 1024)
    int threads;      // 0 = all
    int workers;      // host worker threads for the per-head host stage (0 = cores / 4, in [1, 8])
    int quiet;
    int methods;        // also the compared methods' masks (default 1)
    int sweep;          // also each method's recall-density sweep (default 0)
    methods_params mp;
    analyze_device device;  // exact statistics on the CPU or the GPU; auto: the GPU when usable
    int gpus;               // GPUs used (0 = every visible one); heads are spread over them
    int gpu_threads;        // device threads per GPU (0 = 1); 2 overlaps one head's copies with another's kernels
    const int *layers;  // selection (n_layers entries) or NULL for every present layer
    int n_layers;
    const int *heads;   // selection or NULL for every query head
    int n_heads;
    double *stage_times;  // NULL, or 5 doubles filled at the end: wall, then the stage totals (reading,
                          // device stage, host stage, writing), in seconds
} analyze_opts;

void analyze_opts_default(analyze_opts *o);
// Checks the options alone (ranges), before any file is opened.
int analyze_check_opts(const analyze_opts *o, skel_err *e);
int analyze_run(const char *dump_path, const char *out_path, const analyze_opts *o, skel_err *e);

#endif
