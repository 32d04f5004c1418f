// skel render: Fig. 1 of one head (panels a-g, the mask overlay and a labelled montage) as PNGs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "render.h"

static void render_usage(FILE *f) {
    fprintf(f,
            "usage: skel render RESULTS.h5 --layer L --head H -o DIR [--size 1024] [--pool max|mean]\n"
            "                   [--range LO:HI] [--cmap viridis|magma] [--thumb 384] [--quiet]\n"
            "  writes DIR/a.png .. g.png (exact A, A_s, A_v, A_h, recomposition, skeleton mask,\n"
            "  vertical-slash mask when the file holds one), DIR/overlay.png and DIR/montage.png.\n"
            "  --range LO:HI  log10 colour range of the exact and recomposed panels (default: from data)\n");
}

static int parse_int(const char *flag, const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -1000000000L || v > 1000000000L) {
        fprintf(stderr, "skel render: %s: '%s' is not an integer\n", flag, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_render(int argc, char **argv) {
    render_opts o;
    render_opts_default(&o);
    const char *in = NULL, *dir = NULL;
    int layer = -1, head = -1, quiet = 0;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        int has_val = k + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            render_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && !has_val) {
            fprintf(stderr, "skel render: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--layer")) {
            if (parse_int(a, argv[++k], &layer)) return 2;
        } else if (!strcmp(a, "--head")) {
            if (parse_int(a, argv[++k], &head)) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            dir = argv[++k];
        } else if (!strcmp(a, "--size")) {
            if (parse_int(a, argv[++k], &o.size)) return 2;
        } else if (!strcmp(a, "--thumb")) {
            if (parse_int(a, argv[++k], &o.thumb)) return 2;
            if (o.thumb < 64 || o.thumb > 2048) {
                fprintf(stderr, "skel render: --thumb %d: must be in [64, 2048]\n", o.thumb);
                return 2;
            }
        } else if (!strcmp(a, "--pool")) {
            const char *p = argv[++k];
            if (!strcmp(p, "max")) o.pool = RENDER_POOL_MAX;
            else if (!strcmp(p, "mean")) o.pool = RENDER_POOL_MEAN;
            else {
                fprintf(stderr, "skel render: --pool '%s': expected max or mean\n", p);
                return 2;
            }
        } else if (!strcmp(a, "--range")) {
            const char *r = argv[++k];
            char *end;
            o.lo = strtod(r, &end);
            if (end == r || *end != ':' || (o.hi = strtod(end + 1, &end), *end) || !(o.hi > o.lo)) {
                fprintf(stderr, "skel render: --range '%s': expected LO:HI in log10 units with LO < HI, e.g. -6:0\n",
                        r);
                return 2;
            }
            o.has_range = 1;
        } else if (!strcmp(a, "--cmap")) {
            if (colormap_parse(argv[++k], &o.cmap)) {
                fprintf(stderr, "skel render: --cmap '%s': expected viridis or magma\n", argv[k]);
                return 2;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "skel render: unknown option %s\n", a);
            render_usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "skel render: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in || !dir || layer < 0 || head < 0) {
        fprintf(stderr, "skel render: need RESULTS.h5, --layer, --head and -o DIR\n");
        render_usage(stderr);
        return 2;
    }
    skel_err e = {{0}};
    results_file R;
    results_head H;
    render_summary sum;
    if (results_open(&R, in, &e)) {
        fprintf(stderr, "skel render: %s\n", e.msg);
        return 1;
    }
    if (results_read_head(&R, layer, head, &H, &e)) {
        fprintf(stderr, "skel render: %s\n", e.msg);
        results_close(&R);
        return 1;
    }
    int rc = render_head(&R, &H, &o, dir, &sum, &e);
    results_head_free(&H);
    results_close(&R);
    if (rc) {
        fprintf(stderr, "skel render: %s\n", e.msg);
        return 1;
    }
    if (!quiet) {
        printf("skel render: layer %d head %d: log10 range [%.2f, %.2f]; mask density %.4f, recall %.4f, "
               "oracle density %.4f%s\n",
               layer, head, sum.lo, sum.hi, sum.density, sum.recall, sum.oracle_density,
               sum.has_vs ? "" : "; no vs_mask in the file, (g) marked missing");
        for (int k = 0; k < sum.n_files; k++) printf("  wrote %s\n", sum.files[k]);
    }
    return 0;
}
