// skel plot: the charts over heads (Fig. 2, 3, 4, predicted vs exact, heat map, density vs
// recall). Writes the data files into DIR, copies the gnuplot scripts from plots/ next to them
// and runs gnuplot there, so a person can edit DIR/*.gp and rerun gnuplot to restyle.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmds.h"
#include "plot_data.h"
#include "render.h"

static const char *const SCRIPTS[] = {"fig2_sparsity_hist", "fig3_decomposition", "fig4_z_hist",
                                      "predicted_vs_exact", "heatmap_sparsity", "density_vs_recall",
                                      "recall_density", "attention_cost"};
#define N_SCRIPTS (sizeof SCRIPTS / sizeof SCRIPTS[0])

static void plot_usage(FILE *f) {
    fprintf(f,
            "usage: skel plot RESULTS.h5 [MORE.h5 ...] -o DIR [--heads L:H,L:H,...] [--scripts PLOTS_DIR] [--quiet]\n"
            "  writes the data files, the gnuplot scripts and their PNGs into DIR:\n"
            "  fig2_sparsity_hist, fig3_<L>_<H>, fig4_z_hist, predicted_vs_exact, heatmap_sparsity,\n"
            "  density_vs_recall, recall_density_<L>_<H> (heads analysed with --sweep), all from the first\n"
            "  file, and attention_cost (Fig. 6b: attention PFLOP per method against context length, one\n"
            "  length per file given). --heads picks the heads of Fig. 3 and 4 (default: the least, median and\n"
"  most sparse). Scripts come from --scripts, $SKEL_PLOTS, <skel>/../plots or ./plots.\n");
}

// Full path of an executable named `name` on PATH into out, or -1.
static int find_on_path(const char *name, char *out, size_t cap) {
    const char *path = getenv("PATH");
    if (!path) return -1;
    char *copy = strdup(path), *save = NULL;
    int rc = -1;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", *d ? d : ".", name);
        if (access(out, X_OK) == 0) {
            rc = 0;
            break;
        }
    }
    free(copy);
    return rc;
}

static int is_dir_with_scripts(const char *d) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s.gp", d, SCRIPTS[0]);
    return access(p, R_OK) == 0;
}

static int find_scripts(const char *given, char *out, size_t cap) {
    if (given) {
        snprintf(out, cap, "%s", given);
        return is_dir_with_scripts(out) ? 0 : -1;
    }
    const char *env = getenv("SKEL_PLOTS");
    if (env && is_dir_with_scripts(env)) return snprintf(out, cap, "%s", env), 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        snprintf(out, cap, "%s/../plots", dirname(exe));
        if (is_dir_with_scripts(out)) return 0;
    }
    snprintf(out, cap, "plots");
    return is_dir_with_scripts(out) ? 0 : -1;
}

static int copy_file(const char *from, const char *to_dir, const char *name) {
    char to[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(to, sizeof to, "%s/%s", to_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", to, (long)getpid());
    FILE *in = fopen(from, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    if (!in || !out) {
        if (in) fclose(in);
        return -1;
    }
    char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
    fclose(in);
    if (fclose(out) != 0) return unlink(tmp), -1;
    return rename(tmp, to);
}

// Runs `gnuplot script` in dir, its output appended to dir/gnuplot.log. Returns the exit status.
static int run_gnuplot(const char *gnuplot, const char *dir, const char *script) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND, 0666);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(gnuplot, "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The last line of dir/gnuplot.log that names a problem, for the one-line error.
static void last_log_error(const char *dir, char *out, size_t cap) {
    char p[PATH_MAX], line[512];
    snprintf(p, sizeof p, "%s/gnuplot.log", dir);
    out[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strstr(line, "rror") || strstr(line, "arning")) snprintf(out, cap, "%s", line);
    }
    fclose(f);
}

int cmd_plot(int argc, char **argv) {
    const char *in = NULL, *dir = NULL, *heads_arg = NULL, *scripts_arg = NULL;
    const char *files[64];  // every results file given: the first for the per-head charts, all for the cost
    int n_files = 0;
    int quiet = 0;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plot_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && k + 1 >= argc) {
            fprintf(stderr, "skel plot: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            dir = argv[++k];
        } else if (!strcmp(a, "--heads")) {
            heads_arg = argv[++k];
        } else if (!strcmp(a, "--scripts")) {
            scripts_arg = argv[++k];
        } else if (a[0] == '-') {
            fprintf(stderr, "skel plot: unknown option %s\n", a);
            plot_usage(stderr);
            return 2;
        } else if (n_files < 64) {
            files[n_files++] = a;
            if (!in) in = a;
        } else {
            fprintf(stderr, "skel plot: too many results files (64 at most)\n");
            return 2;
        }
    }
    if (!in || !dir) {
        fprintf(stderr, "skel plot: need RESULTS.h5 and -o DIR\n");
        plot_usage(stderr);
        return 2;
    }
    plot_head heads[PLOT_MAX_HEADS];
    int n_heads = 0;
    if (heads_arg) {
        const char *p = heads_arg;
        while (*p) {
            int l, h, used;
            if (n_heads == PLOT_MAX_HEADS || sscanf(p, "%d:%d%n", &l, &h, &used) != 2 || l < 0 || h < 0) {
                fprintf(stderr, "skel plot: --heads '%s': expected up to %d items L:H separated by commas\n",
                        heads_arg, PLOT_MAX_HEADS);
                return 2;
            }
            heads[n_heads++] = (plot_head){l, h};
            p += used;
            if (*p == ',') p++;
            else if (*p) {
                fprintf(stderr, "skel plot: --heads '%s': expected L:H,L:H,...\n", heads_arg);
                return 2;
            }
        }
    }
    char scripts[PATH_MAX];
    if (find_scripts(scripts_arg, scripts, sizeof scripts)) {
        fprintf(stderr, "skel plot: cannot find the gnuplot scripts (%s.gp ...): give --scripts PLOTS_DIR or set SKEL_PLOTS\n",
                SCRIPTS[0]);
        return 1;
    }
    skel_err e = {{0}};
    results_file R;
    head_report *rows = NULL;
    int n_rows = 0;
    if (results_open(&R, in, &e) || results_read_report(&R, &rows, &n_rows, &e)) {
        fprintf(stderr, "skel plot: %s\n", e.msg);
        results_close(&R);
        return 1;
    }
    if (!n_heads) n_heads = plot_choose_heads(rows, n_rows, heads);
    int rc = 1;
    for (int k = 0; k < n_heads; k++)
        if (!results_has_head(&R, heads[k].layer, heads[k].head)) {
            fprintf(stderr, "skel plot: %s: /layers/%d/heads/%d: no such head\n", in, heads[k].layer, heads[k].head);
            goto done;
        }
    int has_sweep[PLOT_MAX_HEADS], has_cost = 0;
    if (render_mkdir_p(dir, &e) || plot_write_data(&R, rows, n_rows, heads, n_heads, dir, &e) ||
        plot_write_sweeps(&R, heads, n_heads, dir, has_sweep, &e) || plot_write_cost(files, n_files, dir, &has_cost, &e)) {
        fprintf(stderr, "skel plot: %s\n", e.msg);
        goto done;
    }
    char gnuplot[PATH_MAX];
    if (find_on_path("gnuplot", gnuplot, sizeof gnuplot)) {
        fprintf(stderr, "skel plot: gnuplot not found on PATH; install the package gnuplot-nox "
                        "(apt-get install gnuplot-nox); data files are in %s\n", dir);
        goto done;
    }
    static const char *extra[] = {"common.gp"};
    char from[PATH_MAX + 64];
    for (size_t k = 0; k < N_SCRIPTS + 1; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", k < N_SCRIPTS ? SCRIPTS[k] : extra[0], k < N_SCRIPTS ? ".gp" : "");
        snprintf(from, sizeof from, "%s/%s", scripts, name);
        if (copy_file(from, dir, name)) {
            fprintf(stderr, "skel plot: cannot copy %s into %s: %s\n", from, dir, strerror(errno));
            goto done;
        }
    }
    char logp[PATH_MAX + 16];
    snprintf(logp, sizeof logp, "%s/gnuplot.log", dir);
    unlink(logp);
    for (size_t k = 0; k < N_SCRIPTS; k++) {
        char name[128];
        if (!has_cost && !strcmp(SCRIPTS[k], "attention_cost")) continue;
        snprintf(name, sizeof name, "%s.gp", SCRIPTS[k]);
        int st = run_gnuplot(gnuplot, dir, name);
        if (st != 0) {
            char why[512];
            last_log_error(dir, why, sizeof why);
            fprintf(stderr, "skel plot: gnuplot failed on %s/%s (exit %d)%s%s; see %s\n", dir, name, st,
                    why[0] ? ": " : "", why, logp);
            goto done;
        }
    }
    // Every chart must exist and be more than an empty frame.
    char outs[N_SCRIPTS + 2 * PLOT_MAX_HEADS][160];
    int n_out = 0;
    for (size_t k = 0; k < N_SCRIPTS; k++)
        if (strcmp(SCRIPTS[k], "fig3_decomposition") && strcmp(SCRIPTS[k], "recall_density") &&
            (has_cost || strcmp(SCRIPTS[k], "attention_cost")))
            snprintf(outs[n_out++], 160, "%s.png", SCRIPTS[k]);
    for (int k = 0; k < n_heads; k++) snprintf(outs[n_out++], 160, "fig3_%d_%d.png", heads[k].layer, heads[k].head);
    for (int k = 0; k < n_heads; k++)
        if (has_sweep[k]) snprintf(outs[n_out++], 160, "recall_density_%d_%d.png", heads[k].layer, heads[k].head);
    for (int k = 0; k < n_out; k++) {
        char p[PATH_MAX + 160];
        snprintf(p, sizeof p, "%s/%s", dir, outs[k]);
        struct stat st;
        if (stat(p, &st) != 0 || st.st_size < 1000) {
            fprintf(stderr, "skel plot: %s: gnuplot wrote no chart (see %s)\n", p, logp);
            goto done;
        }
        if (!quiet) printf("  wrote %s\n", p);
    }
    rc = 0;
done:
    free(rows);
    results_close(&R);
    return rc;
}
