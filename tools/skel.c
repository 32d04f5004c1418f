// skel: command-line front end of the SparseSkeleton toolkit. Each subcommand lives in its own
// tools/cmd_*.c file and is listed in the table below.
#include <stdio.h>
#include <string.h>

#include "blas_core.h"
#include "cmds.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"synth", cmd_synth, "write a synthetic dump with planted structure"},
    {"info", cmd_info, "print a dump's metadata, layers and heads"},
    {"analyze", cmd_analyze, "exact statistics, decomposition, mask and report per head"},
    {"render", cmd_render, "one head's attention pictures (Fig. 1 panels, overlay, montage) as PNG"},
    {"plot", cmd_plot, "charts over heads through gnuplot (Fig. 2-4, scatter, heat map, recall)"},
    {"dump", cmd_dump, "run a GGUF model on a text and write its q/k/v per layer"},
    {"perplexity", cmd_perplexity, "perplexity of a GGUF model on a text"},
    {"generate", cmd_generate, "greedy continuation of a prompt by a GGUF model"},
    {"corpus", cmd_corpus, "convert R .rdb text data (janeaustenr, tokenizers) into plain .txt"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: skel <command> [options]   (skel <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv) {
    blas_core_fix(argv);  // OpenBLAS's kernels for this CPU (may run skel again, before anything else)
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "skel: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
