// skel corpus: plain-text novels out of R data packages (janeaustenr, tokenizers), for the model runs.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"
#include "rdb.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: skel corpus -o DIR RDATA.rdb...\n"
            "Writes each character vector of an R lazy-load database (RDATA.rdb with RDATA.rdx beside it)\n"
            "to DIR/<name>.txt, one element per line, Project Gutenberg header and footer stripped.\n"
            "  -o, --output DIR   output folder, created if missing (required)\n"
            "  --quiet            do not list the files written\n"
            "  -h, --help         this text\n");
}

int cmd_corpus(int argc, char **argv) {
    const char *dir = NULL;
    int quiet = 0, first = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout), 0;
        if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc) return fprintf(stderr, "skel corpus: -o needs a folder\n"), 2;
            dir = argv[++i];
        } else if (argv[i][0] == '-') return fprintf(stderr, "skel corpus: unknown option '%s'\n", argv[i]), 2;
        else if (!first) first = i;
    }
    if (!dir || !first) return usage(stderr), 2;
    if (mkdir(dir, 0777) && errno != EEXIST)
        return fprintf(stderr, "skel corpus: %s: cannot create: %s\n", dir, strerror(errno)), 1;
    for (int i = first; i < argc; i++) {
        if (argv[i][0] == '-') {
            i += !strcmp(argv[i], "-o") || !strcmp(argv[i], "--output");
            continue;
        }
        char rdx[4096];
        size_t n = strlen(argv[i]);
        if (n < 4 || strcmp(argv[i] + n - 4, ".rdb") || n + 1 > sizeof rdx)
            return fprintf(stderr, "skel corpus: %s: expected a .rdb file\n", argv[i]), 2;
        snprintf(rdx, sizeof rdx, "%.*s.rdx", (int)(n - 4), argv[i]);
        skel_err e = {{0}};
        rdb_object *objs;
        int no;
        if (rdb_read(argv[i], rdx, &objs, &no, &e)) return fprintf(stderr, "skel corpus: %s\n", e.msg), 1;
        for (int k = 0; k < no; k++) {
            if (!objs[k].text) continue;
            size_t len = gutenberg_strip(objs[k].text, objs[k].len);
            char path[4096 + 300], tmp[4096 + 320];
            snprintf(path, sizeof path, "%s/%s.txt", dir, objs[k].name);
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            FILE *f = fopen(tmp, "wb");
            int bad = !f || fwrite(objs[k].text, 1, len, f) != len;
            if (f) bad |= fclose(f) != 0;
            if (bad || rename(tmp, path)) {
                fprintf(stderr, "skel corpus: %s: cannot write: %s\n", path, strerror(errno));
                remove(tmp);
                rdb_free(objs, no);
                return 1;
            }
            if (!quiet) printf("%s  %zu bytes\n", path, len);
        }
        rdb_free(objs, no);
    }
    return 0;
}
