// test_plot: `skel plot` end to end (needs SKEL, the built tool): gnuplot runs, every chart exists,
// decodes, has a sane size and is not blank; without gnuplot the charts fail with one line naming
// the package while `skel render` still writes its PNGs; bad input gets one line and a non-zero exit.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze.h"
#include "results_fixture.h"
#include "synth.h"

static char tmpdir[256], results[400];
static const char *skel;

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/skel-test-plot-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    fixture_opts fo;
    fixture_default(&fo);
    fo.N = 512;
    fo.n_layers = 2;
    fo.n_heads = 3;
    snprintf(results, sizeof results, "%s/results.h5", tmpdir);
    skel = getenv("SKEL");
    return fixture_write(results, &fo);
}
static int teardown(void **state) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int run_cmd(const char *cmd, char *err, size_t cap) {
    char full[2000], ef[400];
    snprintf(ef, sizeof ef, "%s/stderr.txt", tmpdir);
    snprintf(full, sizeof full, "%s >/dev/null 2>'%s'", cmd, ef);
    int st = system(full);
    FILE *f = fopen(ef, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

// A chart is sane when it decodes, is at least 400 x 300 and is not blank: more than 1% of its
// pixels differ from the background and it holds more than 8 distinct colours (axes, text, data).
static void check_chart(const char *path) {
    image im;
    skel_err e;
    if (image_read_png(&im, path, &e)) fail_msg("%s", e.msg);
    if (im.w < 400 || im.h < 300) fail_msg("%s: %d x %d is too small", path, im.w, im.h);
    rgb8 bg = image_get(&im, 0, 0);
    size_t ink = 0, n = (size_t)im.w * im.h;
    int ncol = 0;
    uint32_t seen[64];
    for (size_t k = 0; k < n; k++) {
        const uint8_t *p = im.px + 3 * k;
        if (p[0] != bg.r || p[1] != bg.g || p[2] != bg.b) ink++;
        uint32_t c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        int dup = 0;
        for (int q = 0; q < ncol; q++) dup |= seen[q] == c;
        if (!dup && ncol < 64) seen[ncol++] = c;
    }
    if (ink * 100 < n) fail_msg("%s: only %zu of %zu pixels differ from the background", path, ink, n);
    if (ncol <= 8) fail_msg("%s: only %d colours", path, ncol);
    image_free(&im);
}

static void test_plot_charts(void **state) {
    if (!skel) skip();
    char cmd[1500], err[4096], dir[400];
    snprintf(dir, sizeof dir, "%s/charts", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' plot '%s' -o '%s' --heads 0:1,1:2 --quiet", skel, results, dir);
    int rc = run_cmd(cmd, err, sizeof err);
    if (rc != 0) fail_msg("skel plot failed (%d): %s", rc, err);
    static const char *charts[] = {"fig2_sparsity_hist.png", "fig3_0_1.png", "fig3_1_2.png", "fig4_z_hist.png",
                                   "predicted_vs_exact.png", "heatmap_sparsity.png", "density_vs_recall.png"};
    for (size_t k = 0; k < sizeof charts / sizeof charts[0]; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, charts[k]);
        check_chart(p);
    }
    // The scripts sit next to their data, so a person can restyle and rerun them there.
    char p[600];
    snprintf(p, sizeof p, "%s/fig2_sparsity_hist.gp", dir);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(p, sizeof p, "%s/report.dat", dir);
    assert_int_equal(access(p, R_OK), 0);
}

// The charts of real pipeline output: `skel synth` (2 layers, 2 heads, 1024 tokens) analysed
// through the library (with the methods' sweeps), then `skel plot`.
static void test_plot_analyze_output(void **state) {
    if (!skel) skip();
    synth_params sp = {.N = 1024, .layers = 2, .q_heads = 2, .kv_heads = 1, .d = 64, .theta = 500000, .seed = 3};
    char dump[400], res[400], cmd[1500], err[4096];
    snprintf(dump, sizeof dump, "%s/synth.h5", tmpdir);
    snprintf(res, sizeof res, "%s/analyzed.h5", tmpdir);
    skel_err e;
    analyze_opts ao;
    analyze_opts_default(&ao);
    ao.quiet = 1;
    ao.sweep = 1;
    if (synth_write(dump, &sp, &e) || analyze_run(dump, res, &ao, &e)) fail_msg("%s", e.msg);
    snprintf(cmd, sizeof cmd, "'%s' plot '%s' -o '%s/analyzed' --heads 1:0 --quiet", skel, res, tmpdir);
    int rc = run_cmd(cmd, err, sizeof err);
    if (rc != 0) fail_msg("skel plot failed (%d): %s", rc, err);
    static const char *charts[] = {"fig2_sparsity_hist.png", "fig4_z_hist.png", "predicted_vs_exact.png",
                                   "heatmap_sparsity.png", "density_vs_recall.png", "recall_density_1_0.png",
                                   "attention_cost.png"};
    for (size_t k = 0; k < sizeof charts / sizeof charts[0]; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/analyzed/%s", tmpdir, charts[k]);
        check_chart(p);
    }
    // Fig. 6b's data: dense attention of 4 heads is 4 x 4 d N(N+1)/2 flops (QK^T and PV); every
    // method's cost lies below it and above zero
    char p[600], line[256];
    snprintf(p, sizeof p, "%s/analyzed/cost.dat", tmpdir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    long long n;
    double pf, dense = -1;
    int rows = 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%lld %lf", &n, &pf) == 2) {
            if (dense < 0) dense = pf;
            assert_int_equal(n, 1024);
            assert_true(pf > 0 && pf <= dense * (1 + 1e-9));
            rows++;
        }
    fclose(f);
    assert_int_equal(rows, 8);
    assert_true(fabs(dense - 4 * 4.0 * 64 * 1024 * 1025 / 2 / 1e15) < 1e-12);
}

static void test_plot_default_heads(void **state) {
    if (!skel) skip();
    char cmd[1500], err[4096];
    snprintf(cmd, sizeof cmd, "'%s' plot '%s' -o '%s/default' --quiet", skel, results, tmpdir);
    int rc = run_cmd(cmd, err, sizeof err);
    if (rc != 0) fail_msg("skel plot failed (%d): %s", rc, err);
    char p[600];
    snprintf(p, sizeof p, "%s/default/fig4_z_hist.png", tmpdir);
    check_chart(p);
}

// Without gnuplot on PATH: render still writes its PNGs; plot fails in one line naming gnuplot-nox.
static void test_plot_without_gnuplot(void **state) {
    if (!skel) skip();
    char cmd[1500], err[4096];
    snprintf(cmd, sizeof cmd, "PATH=/nonexistent '%s' render '%s' --layer 0 --head 0 -o '%s/nognu' --size 128 --quiet",
             skel, results, tmpdir);
    int rc = run_cmd(cmd, err, sizeof err);
    if (rc != 0) fail_msg("render without gnuplot failed (%d): %s", rc, err);
    char p[600];
    snprintf(p, sizeof p, "%s/nognu/montage.png", tmpdir);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(cmd, sizeof cmd, "PATH=/nonexistent '%s' plot '%s' -o '%s/nognu-charts'", skel, results, tmpdir);
    rc = run_cmd(cmd, err, sizeof err);
    assert_int_not_equal(rc, 0);
    if (lines(err) != 1 || !strstr(err, "gnuplot-nox")) fail_msg("expected one line naming gnuplot-nox, got: %s", err);
}

static void test_plot_bad_input(void **state) {
    if (!skel) skip();
    char cmd[1500], err[4096], old[400];
    fixture_opts fo;
    fixture_default(&fo);
    fo.N = 128;
    fo.n_layers = fo.n_heads = 1;
    fo.version = RESULTS_VERSION - 1;
    snprintf(old, sizeof old, "%s/old.h5", tmpdir);
    assert_int_equal(fixture_write(old, &fo), 0);
    struct {
        const char *fmt, *want;
    } cases[] = {
        {"'%s' plot '%s' -o '%s/x'", "older"},
        {"'%s' plot '%s' -o '%s/x' --heads 5:0", "no such head"},
        {"'%s' plot '%s' -o '%s/sub'", "cannot create"},
    };
    for (int k = 0; k < 3; k++) {
        const char *in = k == 0 ? old : results;
        const char *out = k == 2 ? results : tmpdir;  // k == 2: a file where a directory should be
        snprintf(cmd, sizeof cmd, cases[k].fmt, skel, in, out);
        int rc = run_cmd(cmd, err, sizeof err);
        if (rc == 0 || lines(err) != 1 || !strstr(err, cases[k].want))
            fail_msg("'%s': rc %d, expected one line containing '%s', got: %s", cmd, rc, cases[k].want, err);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot_charts),
        cmocka_unit_test(test_plot_default_heads),
        cmocka_unit_test(test_plot_analyze_output),
        cmocka_unit_test(test_plot_without_gnuplot),
        cmocka_unit_test(test_plot_bad_input),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
