// skel info: a dump's metadata, layers and heads.
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "dump.h"

int cmd_info(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "usage: skel info dump.h5\n\nPrints the dump's metadata (model, N, d, heads, RoPE layout and\n"
                   "frequencies), the layers present with their datasets, the storage dtype and sizes.\n");
        return argc == 2 ? 0 : 2;
    }
    dump D;
    skel_err e;
    if (dump_open(&D, argv[1], &e)) {
        fprintf(stderr, "skel info: %s\n", e.msg);
        return 1;
    }
    const dump_meta *m = &D.meta;
    int es = !strcmp(D.dtype, "f16") ? 2 : !strcmp(D.dtype, "f32") ? 4 : 8;
    double per_layer = (double)m->n_tokens * m->head_dim * es * (m->n_q_heads + m->n_kv_heads * (1 + D.has_values));
    printf("file:           %s\n", D.path);
    printf("model:          %s\n", m->model);
    printf("format_version: %d\n", m->format_version);
    printf("tokens (N):     %lld%s\n", (long long)m->n_tokens, D.tokens ? "  (token ids present)" : "");
    printf("head_dim (d):   %d\n", m->head_dim);
    printf("heads:          %d query, %d key/value (group of %d)\n", m->n_q_heads, m->n_kv_heads,
           m->n_q_heads / m->n_kv_heads);
    printf("rope:           %s layout, inv_freq %.6g .. %.6g\n", rope_layout_name(m->layout), D.inv_freq[0],
           D.inv_freq[m->head_dim / 2 - 1]);
    printf("dtype:          %s\n", D.dtype);
    printf("values:         %s\n", D.has_values ? "yes" : "no");
    printf("layers:         %d of %d present:", D.n_present, m->n_layers);
    for (int i = 0; i < D.n_present; i++) printf(" %d", D.present[i]);
    printf("\nsize:           %.1f MiB per layer (uncompressed), %.1f MiB in all\n", per_layer / (1 << 20),
           per_layer * D.n_present / (1 << 20));
    dump_close(&D);
    return 0;
}
