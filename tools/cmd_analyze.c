// skel analyze: the per-head pipeline over a dump, writing results.h5 and results.csv.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "args.h"
#include "cmds.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: skel analyze dump.h5 -o results.h5 [options]\n\n"
            "For every selected head: the exact attention statistics (lse, block mass and max, threshold,\n"
            "block and exact sparsity, z histogram, pooled images), the decomposition s, v, h, the\n"
            "SparseSkeleton block mask, the predicted sparsity, and the report row. Writes results.h5 and\n"
            "results.csv beside it (both to temporary names first, renamed when complete).\n\n"
            "  -o PATH        results file (required)\n"
            "  --layers LIST  layers, e.g. 0,5-7 (default: every layer in the dump)\n"
            "  --heads LIST   query heads, e.g. 0-3 (default: all)\n"
            "  --block B      block size, a power of two in [16, 256] (default 64)\n"
            "  --sink S       sink tokens (default 64)\n"
            "  --local T      local window (default 64)\n"
            "  --eps E        error tolerance in (0, 1] (default 0.8)\n"
            "  --budget RHO   budget mode: keep this causal block density, in (0, 1] (default: off,\n"
            "                 threshold mode keeps blocks scoring >= log(eps B / N))\n"
            "  --samples M    ridge samples (default 80 d)\n"
            "  --ridge R      ridge factor eps_r (default 1e-3)\n"
            "  --seed S       sampling seed (default 1)\n"
            "  --image P      pooled image side in pixels (default 1024)\n"
            "  --threads T    OpenMP threads (default: all cores)\n"
            "  --gpus G       GPUs to spread the heads over (default: every visible one)\n"
            "  --gpu-threads T  device threads per GPU, each with its own buffers (default 1; more\n"
            "                 overlap one head's copies with another's kernels, no gain measured on an H100)\n"
            "  --workers W    heads processed at once by the host stage (compared methods, metrics,\n"
            "                 sweep) while the next head reads and computes (default: cores / 4, 1 to 8)\n"
            "  --device DEV   cpu, gpu or auto: where the exact statistics, the decomposition and mask,\n"
            "                 XAttention's scores and the output errors run (default auto: the GPU when\n"
            "                 one is usable and the shape is supported, d = 64 or 128)\n"
            "  --quiet        no progress on stderr\n\n"
            "Compared methods (SPEC section 7; masks vs_mask, xattention_mask, flexprefill_mask,\n"
            "lambda_mask, trianglemix_mask, oracle_mask per head, and the /methods table and <out>_methods.csv):\n"
            "  --no-methods       skip them\n"
            "  --sweep            also sweep each method's knob: recall-density curves per head, stored as\n"
            "                     /layers/L/heads/H/sweep and drawn by skel plot (costs about one more\n"
            "                     exact pass per head)\n"
            "  --vs-vertical N    vertical-slash: key columns kept (default 1000 N / 131072, >= 30)\n"
            "  --vs-slash N       vertical-slash: diagonals kept (default 6096 N / 131072, >= 100)\n"
            "  --xa-tau X         XAttention: share of each block row's score kept, in (0, 1] (default 0.9)\n"
            "  --fp-gamma X       FlexPrefill: coverage in (0, 1] (default 0.9; block 128, tau 0.1)\n"
            "  --lambda-window W  Lambda-shape: local window in tokens (default 1024; 4 sinks)\n"
            "TriangleMix uses 8 sinks, a 512-token window and the last 128 rows dense.\n");
}

int cmd_analyze(int argc, char **argv) {
    analyze_opts o;
    analyze_opts_default(&o);
    const char *in = NULL, *out = NULL;
    int *layers = NULL, *heads = NULL, rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--no-methods")) {
            o.methods = 0;
            continue;
        }
        if (!strcmp(a, "--sweep")) {
            o.sweep = 1;
            continue;
        }
        if (a[0] != '-') {
            if (in) {
                fprintf(stderr, "skel analyze: more than one input ('%s' and '%s')\n", in, a);
                goto done;
            }
            in = a;
            continue;
        }
        if (!(v = arg_value(argc, argv, &i))) goto done;
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--layers")) {
            free(layers);
            if (arg_list(a, v, &layers, &o.n_layers)) goto done;
            o.layers = layers;
        } else if (!strcmp(a, "--heads")) {
            free(heads);
            if (arg_list(a, v, &heads, &o.n_heads)) goto done;
            o.heads = heads;
        } else if (!strcmp(a, "--block")) {
            if (arg_int(a, v, 1, 1 << 20, &x)) goto done;
            o.block = (int)x;
        } else if (!strcmp(a, "--sink")) {
            if (arg_int(a, v, 0, 1 << 24, &x)) goto done;
            o.sink = (int)x;
        } else if (!strcmp(a, "--local")) {
            if (arg_int(a, v, 1, 1 << 24, &x)) goto done;
            o.local = (int)x;
        } else if (!strcmp(a, "--eps")) {
            if (arg_real(a, v, &o.eps)) goto done;
        } else if (!strcmp(a, "--budget")) {
            if (arg_real(a, v, &o.budget)) goto done;
            if (!(o.budget > 0 && o.budget <= 1)) {
                fprintf(stderr, "skel analyze: --budget %g: must be in (0, 1]\n", o.budget);
                goto done;
            }
        } else if (!strcmp(a, "--samples")) {
            if (arg_int(a, v, 1, 1 << 24, &x)) goto done;
            o.samples = (int)x;
        } else if (!strcmp(a, "--ridge")) {
            if (arg_real(a, v, &o.ridge)) goto done;
        } else if (!strcmp(a, "--seed")) {
            if (arg_int(a, v, 0, 1LL << 62, &x)) goto done;
            o.seed = (uint64_t)x;
        } else if (!strcmp(a, "--image")) {
            if (arg_int(a, v, 1, 1 << 20, &x)) goto done;
            o.image_size = (int)x;
        } else if (!strcmp(a, "--vs-vertical")) {
            if (arg_int(a, v, 1, 1LL << 40, &x)) goto done;
            o.mp.vs_vertical = x;
        } else if (!strcmp(a, "--vs-slash")) {
            if (arg_int(a, v, 1, 1LL << 40, &x)) goto done;
            o.mp.vs_slash = x;
        } else if (!strcmp(a, "--lambda-window")) {
            if (arg_int(a, v, 1, 1LL << 40, &x)) goto done;
            o.mp.lambda_window = (int)x;
        } else if (!strcmp(a, "--fp-gamma")) {
            if (arg_real(a, v, &o.mp.fp_gamma)) goto done;
            if (!(o.mp.fp_gamma > 0 && o.mp.fp_gamma <= 1)) {
                fprintf(stderr, "skel analyze: --fp-gamma %g: must be in (0, 1]\n", o.mp.fp_gamma);
                goto done;
            }
        } else if (!strcmp(a, "--xa-tau")) {
            if (arg_real(a, v, &o.mp.xa_tau)) goto done;
            if (!(o.mp.xa_tau > 0 && o.mp.xa_tau <= 1)) {
                fprintf(stderr, "skel analyze: --xa-tau %g: must be in (0, 1]\n", o.mp.xa_tau);
                goto done;
            }
        } else if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cpu")) o.device = ANALYZE_DEVICE_CPU;
            else if (!strcmp(v, "gpu")) o.device = ANALYZE_DEVICE_GPU;
            else if (!strcmp(v, "auto")) o.device = ANALYZE_DEVICE_AUTO;
            else {
                fprintf(stderr, "skel analyze: --device '%s': must be cpu, gpu or auto\n", v);
                goto done;
            }
        } else if (!strcmp(a, "--threads")) {
            if (arg_int(a, v, 1, 4096, &x)) goto done;
            o.threads = (int)x;
        } else if (!strcmp(a, "--gpus")) {
            if (arg_int(a, v, 1, 1024, &x)) goto done;
            o.gpus = (int)x;
        } else if (!strcmp(a, "--gpu-threads")) {
            if (arg_int(a, v, 1, 16, &x)) goto done;
            o.gpu_threads = (int)x;
        } else if (!strcmp(a, "--workers")) {
            if (arg_int(a, v, 1, 256, &x)) goto done;
            o.workers = (int)x;
        } else {
            fprintf(stderr, "skel analyze: unknown option '%s' (see skel analyze --help)\n", a);
            goto done;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "skel analyze: an input dump and -o are required (see skel analyze --help)\n");
        goto done;
    }
    skel_err e;
    if (analyze_check_opts(&o, &e)) {
        fprintf(stderr, "skel analyze: %s\n", e.msg);
        goto done;
    }
    rc = 0;
    if (analyze_run(in, out, &o, &e)) {
        fprintf(stderr, "skel analyze: %s\n", e.msg);
        rc = 1;
    }
done:
    free(layers);
    free(heads);
    return rc;
}
