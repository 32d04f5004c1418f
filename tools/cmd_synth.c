// skel synth: a synthetic dump with planted structure.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "synth.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: skel synth -o dump.h5 --tokens N --layers L --q-heads Hq --kv-heads Hkv --dim d\n"
            "                  [--rope-theta X] [--seed S] [--dtype f32|f16] [--values]\n\n"
            "Writes a dump in the SPEC schema whose queries and keys carry planted structure, built\n"
            "un-rotated and then rotated with real RoPE (inv_freq = theta^(-2k/d), layout \"half\"):\n"
            "  - a local band: the highest-frequency eighth of the pairs align queries and keys, so\n"
            "    attention peaks at i = j and decays with the distance;\n"
            "  - a slash: the next eighth of the pairs carry the phase of offset m0 = N / (4 + kv_head),\n"
            "    so every query also attends to the key m0 tokens back;\n"
            "  - sinks and verticals: the two lowest-frequency pairs (which RoPE barely turns) make the\n"
            "    first 4 keys (z ~ 12) and 8 random keys per KV head (z ~ 9) attended by every query;\n"
            "  - Gaussian noise on every component (z noise of standard deviation ~1.5).\n"
            "Each query head weights the three parts by its own factors in [0.5, 1.5].\n\n"
            "  -o PATH          output file (written to a temporary name, then renamed)\n"
            "  --tokens N       tokens, >= 64\n"
            "  --layers L       layers (default 1)\n"
            "  --q-heads Hq     query heads (default 4)\n"
            "  --kv-heads Hkv   key/value heads, dividing Hq (default 1)\n"
            "  --dim d          head dimension, a multiple of 8 in [16, 256] (default 128)\n"
            "  --rope-theta X   RoPE base (default 500000)\n"
            "  --seed S         seed (default 1)\n"
            "  --dtype T        f32 or f16 storage (default f32)\n"
            "  --values         also write v (Gaussian)\n");
}

int cmd_synth(int argc, char **argv) {
    synth_params p = {.N = 0, .layers = 1, .q_heads = 4, .kv_heads = 1, .d = 128, .theta = 5e5, .seed = 1};
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return 0;
        }
        if (!strcmp(a, "--values")) {
            p.values = 1;
            continue;
        }
        if (!(v = arg_value(argc, argv, &i))) return 2;
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--tokens")) {
            if (arg_int(a, v, 64, 1LL << 31, &x)) return 2;
            p.N = x;
        } else if (!strcmp(a, "--layers")) {
            if (arg_int(a, v, 1, 1024, &x)) return 2;
            p.layers = (int)x;
        } else if (!strcmp(a, "--q-heads")) {
            if (arg_int(a, v, 1, 1024, &x)) return 2;
            p.q_heads = (int)x;
        } else if (!strcmp(a, "--kv-heads")) {
            if (arg_int(a, v, 1, 1024, &x)) return 2;
            p.kv_heads = (int)x;
        } else if (!strcmp(a, "--dim")) {
            if (arg_int(a, v, 16, 256, &x)) return 2;
            p.d = (int)x;
        } else if (!strcmp(a, "--rope-theta")) {
            if (arg_real(a, v, &p.theta)) return 2;
            if (!(p.theta > 1)) {
                fprintf(stderr, "skel synth: --rope-theta %g: must be > 1\n", p.theta);
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            if (arg_int(a, v, 0, 1LL << 62, &x)) return 2;
            p.seed = (uint64_t)x;
        } else if (!strcmp(a, "--dtype")) {
            if (strcmp(v, "f16") && strcmp(v, "f32")) {
                fprintf(stderr, "skel synth: --dtype '%s': expected f16 or f32\n", v);
                return 2;
            }
            p.f16 = !strcmp(v, "f16");
        } else {
            fprintf(stderr, "skel synth: unknown option '%s' (see skel synth --help)\n", a);
            return 2;
        }
    }
    if (!out || !p.N) {
        fprintf(stderr, "skel synth: -o and --tokens are required (see skel synth --help)\n");
        return 2;
    }
    skel_err e;
    if (synth_write(out, &p, &e)) {
        fprintf(stderr, "skel synth: %s\n", e.msg);
        return 1;
    }
    return 0;
}
