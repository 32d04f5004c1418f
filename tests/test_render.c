// test_render: colour maps, PNG round trip, pooling against brute force, and the Fig. 1 PNGs of
// a synthetic head decoded back with libpng and checked pixel by pixel. CLI bad-input tests run
// when SKEL names the built tool. Run one test: CMOCKA_TEST_FILTER (cmocka >= 1.1.5) or argv[1].
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "results_fixture.h"

// Pooled values come out of double sums stored as float log10: float rounding of a log10 value
// of magnitude <= 20 is below 2e-6, so 1e-5 decades is a safe bound and far below a colour step
// (a 256-entry map over >= 1 decade changes colour every 0.004 decades).
#define POOL_ATOL 1e-5

static int rgb_eq(rgb8 a, rgb8 b) { return a.r == b.r && a.g == b.g && a.b == b.b; }
static double lightness(rgb8 c) {
    uint8_t p[3] = {c.r, c.g, c.b};
    return colormap_lightness(p);
}

// ---------------------------------------------------------------------------- colour maps
// The published float maps rise strictly in CIE L* (by >= 0.07 per entry); rounding a channel to
// 8 bits moves L* by up to ~0.2, so neighbours may tie or dip by that much (viridis dips 0.03 at
// entry 95), while four entries apart the rise is always clear.
#define LSTAR_ROUNDING 0.1
#define LSTAR_RISE_4 0.3
static void test_colormap_monotone(void **state) {
    for (int id = 0; id < 2; id++) {
        const uint8_t(*t)[3] = colormap_table((colormap_id)id);
        double L[256];
        for (int k = 0; k < 256; k++) L[k] = colormap_lightness(t[k]);
        for (int k = 1; k < 256; k++)
            if (!(L[k] >= L[k - 1] - LSTAR_ROUNDING))
                fail_msg("%s: lightness falls at entry %d (%.3f after %.3f)", colormap_name((colormap_id)id), k,
                         L[k], L[k - 1]);
        for (int k = 4; k < 256; k++)
            if (!(L[k] >= L[k - 4] + LSTAR_RISE_4))
                fail_msg("%s: lightness rises only %.3f over entries %d..%d", colormap_name((colormap_id)id),
                         L[k] - L[k - 4], k - 4, k);
        assert_true(L[255] - L[0] > 70);  // dark to light: viridis spans L* 16..90
    }
    // Endpoints of the published maps: viridis #440154 .. #fde725, magma #000004 .. #fcfdbf.
    const uint8_t(*v)[3] = colormap_table(COLORMAP_VIRIDIS), (*m)[3] = colormap_table(COLORMAP_MAGMA);
    assert_int_equal(v[0][0], 0x44), assert_int_equal(v[0][1], 0x01), assert_int_equal(v[0][2], 0x54);
    assert_int_equal(v[255][0], 0xfd), assert_int_equal(v[255][1], 0xe7), assert_int_equal(v[255][2], 0x25);
    assert_int_equal(m[0][0], 0x00), assert_int_equal(m[0][1], 0x00), assert_int_equal(m[0][2], 0x04);
    assert_int_equal(m[255][0], 0xfc), assert_int_equal(m[255][1], 0xfd), assert_int_equal(m[255][2], 0xbf);
    uint8_t c[3];
    colormap_map(COLORMAP_VIRIDIS, NAN, c);
    assert_memory_equal(c, v[0], 3);
    colormap_map(COLORMAP_VIRIDIS, 7.0, c);
    assert_memory_equal(c, v[255], 3);
}

// ---------------------------------------------------------------------------- PNG
static char tmpdir[256];

static int setup_tmp(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/skel-test-render-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}
static int teardown_tmp(void **state) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_png_roundtrip(void **state) {
    image im, back;
    image_init(&im, 37, 21, RGB8(1, 2, 3));
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) image_set(&im, x, y, RGB8(x * 7, y * 11, (x * y) & 255));
    image_draw_text(&im, 1, 1, "Ag(9)", 1, RGB8_BLACK);
    char path[400];
    snprintf(path, sizeof path, "%s/rt.png", tmpdir);
    skel_err e;
    assert_int_equal(image_write_png(&im, path, &e), 0);
    assert_int_equal(image_read_png(&back, path, &e), 0);
    assert_int_equal(back.w, 37);
    assert_int_equal(back.h, 21);
    assert_memory_equal(back.px, im.px, (size_t)37 * 21 * 3);
    // Nothing left under a temporary name.
    char tmp[500];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    // A directory that does not exist: one line naming the file, and no file appears.
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", tmpdir);
    assert_int_equal(image_write_png(&im, path, &e), -1);
    assert_non_null(strstr(e.msg, "x.png"));
    assert_null(strchr(e.msg, '\n'));
    image_free(&im);
    image_free(&back);
}

// ---------------------------------------------------------------------------- pooling
// A head with random s, v, h and N not a multiple of S, checked against brute-force pooling over
// each cell's causal pairs (N = 301 keeps the brute force tiny).
static void test_pool_vs_bruteforce(void **state) {
    results_head H;
    memset(&H, 0, sizeof H);
    H.N = 301;
    H.s = malloc(H.N * sizeof(float));
    H.v = malloc(H.N * sizeof(float));
    H.h = malloc(H.N * sizeof(float));
    uint64_t st = 42;
    for (int64_t k = 0; k < H.N; k++) {
        H.s[k] = (float)(3 * fx_noise(&st));
        H.v[k] = (float)(3 * fx_noise(&st));
        H.h[k] = (float)(3 * fx_noise(&st) - 5);
    }
    const int sizes[3] = {64, 301, 500};  // fewer, as many and more pixels than tokens
    for (int si = 0; si < 3; si++) {
        int S = sizes[si];
        float *g = malloc((size_t)S * S * sizeof(float));
        for (int kind = 0; kind < 3; kind++)
            for (int pool = 0; pool < 2; pool++) {
                if (kind == 0) render_grid_s(&H, S, (render_pool)pool, g);
                if (kind == 1) render_grid_v(&H, S, (render_pool)pool, g);
                if (kind == 2) render_grid_h(&H, S, (render_pool)pool, g);
                double worst = 0;
                int wa = 0, wb = 0;
                for (int a = 0; a < S; a++)
                    for (int b = 0; b < S; b++) {
                        int64_t r0 = (int64_t)a * H.N / S, r1 = (int64_t)(a + 1) * H.N / S;
                        int64_t c0 = (int64_t)b * H.N / S, c1 = (int64_t)(b + 1) * H.N / S;
                        if (r1 <= r0) r1 = r0 + 1;
                        if (c1 <= c0) c1 = c0 + 1;
                        double mx = -INFINITY, sum = 0, n = 0;
                        for (int64_t i = r0; i < r1; i++)
                            for (int64_t j = c0; j < c1 && j <= i; j++) {
                                double x = kind == 0 ? H.s[i - j] : kind == 1 ? H.v[j] : H.h[i];
                                if (x > mx) mx = x;
                                sum += exp(x);
                                n++;
                            }
                        float got = g[(size_t)a * S + b];
                        if (n == 0) {
                            if (!isnan(got)) fail_msg("S=%d kind %d: pixel (%d,%d) has no causal pair but %g", S,
                                                      kind, a, b, got);
                            continue;
                        }
                        double want = (pool == 0 ? mx : log(sum / n)) / log(10.0);
                        double err = fabs(got - want);
                        if (!(err <= worst)) worst = err, wa = a, wb = b;
                    }
                if (!(worst <= POOL_ATOL))
                    fail_msg("S=%d kind %d pool %d: worst |err| %.3g decades at pixel (%d,%d)", S, kind, pool,
                             worst, wa, wb);
            }
        free(g);
    }
    free(H.s), free(H.v), free(H.h);
}

// ---------------------------------------------------------------------------- Fig. 1 PNGs
typedef struct {
    fixture_opts fo;
    results_file R;
    results_head H;
    char dir[300];
    int S;
} fig_state;

static fig_state F;

static int setup_fig(void **state) {
    if (setup_tmp(state)) return -1;
    fixture_default(&F.fo);
    char path[400];
    snprintf(path, sizeof path, "%s/results.h5", tmpdir);
    if (fixture_write(path, &F.fo)) return -1;
    skel_err e;
    if (results_open(&F.R, path, &e) || results_read_head(&F.R, 0, 0, &F.H, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    // 256 pixels for 2048 tokens: 8 tokens a pixel, 8 pixels a block, so mask pixels tile blocks.
    F.S = 256;
    render_opts o;
    render_opts_default(&o);
    o.size = F.S;
    o.thumb = 128;
    snprintf(F.dir, sizeof F.dir, "%s/fig", tmpdir);
    render_summary sum;
    if (render_head(&F.R, &F.H, &o, F.dir, &sum, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return 0;
}
static int teardown_fig(void **state) {
    results_head_free(&F.H);
    results_close(&F.R);
    return teardown_tmp(state);
}

static void load(const char *name, image *im) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", F.dir, name);
    skel_err e;
    if (image_read_png(im, path, &e)) fail_msg("%s", e.msg);
}

static void test_fig_dimensions_and_blank_triangle(void **state) {
    static const char *mat[5] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    for (int k = 0; k < 5; k++) {
        image im;
        load(mat[k], &im);
        assert_int_equal(im.w, F.S);
        assert_int_equal(im.h, F.S);
        for (int a = 0; a < F.S; a++)
            for (int b = 0; b < F.S; b++) {
                int white = rgb_eq(image_get(&im, b, a), RENDER_BLANK);
                if (b > a && !white) fail_msg("%s: pixel (row %d, col %d) above the diagonal is not blank", mat[k], a, b);
                if (b <= a && white) fail_msg("%s: causal pixel (row %d, col %d) is blank", mat[k], a, b);
            }
        image_free(&im);
    }
    static const char *masks[3] = {"f.png", "g.png", "overlay.png"};
    const int q = F.S / F.H.nb;  // pixels per block
    for (int k = 0; k < 3; k++) {
        image im;
        load(masks[k], &im);
        assert_int_equal(im.w, F.S);
        assert_int_equal(im.h, F.S);
        for (int a = 0; a < F.S; a++)
            for (int b = 0; b < F.S; b++) {
                int white = rgb_eq(image_get(&im, b, a), RENDER_BLANK);
                if ((b / q > a / q) != white) fail_msg("%s: pixel (%d,%d) blank=%d, block above diagonal=%d",
                                                       masks[k], a, b, white, b / q > a / q);
            }
        image_free(&im);
    }
    image m;
    load("montage.png", &m);
    assert_true(m.w >= 4 * 128 && m.h >= 2 * 128);
    image_free(&m);
}

// Median over rows [a0, a1) of the lightness at column b (or at diagonal offset when diag).
static double median_lightness(const image *im, int a0, int a1, int col, int diag) {
    double v[4096];
    int n = 0;
    for (int a = a0; a < a1; a++) {
        int b = diag ? a - col : col;
        if (b < 0 || b > a) continue;
        v[n++] = lightness(image_get(im, b, a));
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? v[n / 2] : -1;
}

// The planted key column and slash: brighter, on the right pixel, than pixels a few columns away.
// 15 L* units: the background of a row varies smoothly; a planted spike of +7 in ln is several
// decades, tens of L* units on a map that spans the image's range.
#define SPIKE_MIN_DL 15.0
static void test_fig_planted_structure(void **state) {
    int kc, so;
    fixture_plant(&F.fo, 0, 0, &kc, &so);
    int pc = (int)((int64_t)kc * F.S / F.H.N), po = (int)((int64_t)so * F.S / F.H.N);
    static const char *col_panels[2] = {"a.png", "c.png"}, *diag_panels[2] = {"a.png", "b.png"};
    for (int k = 0; k < 2; k++) {
        image im;
        load(col_panels[k], &im);
        double at = median_lightness(&im, pc + 8, F.S, pc, 0);
        double left = median_lightness(&im, pc + 8, F.S, pc - 4, 0), right = median_lightness(&im, pc + 8, F.S, pc + 4, 0);
        if (!(at > left + SPIKE_MIN_DL && at > right + SPIKE_MIN_DL))
            fail_msg("%s: key column %d (pixel %d): L* %.1f vs neighbours %.1f, %.1f", col_panels[k], kc, pc, at, left,
                     right);
        // and it is the brightest column of the lower rows, away from the sinks
        for (int b = 8; b < pc + 8 && b < F.S; b++)
            if (b != pc && median_lightness(&im, pc + 8, F.S, b, 0) >= at)
                fail_msg("%s: column %d as bright as the key column %d", col_panels[k], b, pc);
        image_free(&im);
    }
    for (int k = 0; k < 2; k++) {
        image im;
        load(diag_panels[k], &im);
        double at = median_lightness(&im, po, F.S, po, 1);
        double lo = median_lightness(&im, po, F.S, po - 4, 1), hi = median_lightness(&im, po, F.S, po + 4, 1);
        if (!(at > lo + SPIKE_MIN_DL && at > hi + SPIKE_MIN_DL))
            fail_msg("%s: slash at offset %d (pixel %d): L* %.1f vs neighbours %.1f, %.1f", diag_panels[k], so, po, at,
                     lo, hi);
        image_free(&im);
    }
}

// The fixture is exactly log A = s + v + h, so the recomposition draws the exact image: every
// pixel within one colour-map step (rounding of the float statistics).
static void test_fig_recomposition_matches_exact(void **state) {
    image a, e;
    load("a.png", &a);
    load("e.png", &e);
    const uint8_t(*t)[3] = colormap_table(COLORMAP_VIRIDIS);
    int bad = 0, worst = 0, wa = 0, wb = 0;
    for (int y = 0; y < F.S; y++)
        for (int x = 0; x <= y; x++) {
            rgb8 p = image_get(&a, x, y), q = image_get(&e, x, y);
            int ia = -1, ie = -1;
            for (int k = 0; k < 256; k++) {
                if (t[k][0] == p.r && t[k][1] == p.g && t[k][2] == p.b) ia = k;
                if (t[k][0] == q.r && t[k][1] == q.g && t[k][2] == q.b) ie = k;
            }
            if (ia < 0 || ie < 0) fail_msg("pixel (%d,%d) is not a viridis colour", y, x);
            int d = abs(ia - ie);
            if (d > worst) worst = d, wa = y, wb = x;
            bad += d > 1;
        }
    if (bad) fail_msg("%d pixels differ by more than one colour step; worst %d at (%d,%d)", bad, worst, wa, wb);
    image_free(&a);
    image_free(&e);
}

// Kept pixels of f.png over its causal (non-blank) pixels equals the mask density; with 8 x 8
// pixels a block the tiling is exact, so the bound is one pixel's share of the causal area.
static void test_fig_mask_fraction(void **state) {
    image im;
    load("f.png", &im);
    double kept = 0, causal = 0;
    for (int a = 0; a < F.S; a++)
        for (int b = 0; b < F.S; b++) {
            rgb8 c = image_get(&im, b, a);
            if (rgb_eq(c, RENDER_BLANK)) continue;
            causal++;
            if (rgb_eq(c, RENDER_KEPT)) kept++;
            else if (!rgb_eq(c, RENDER_DROPPED)) fail_msg("f.png: pixel (%d,%d) neither kept nor dropped", a, b);
        }
    mask_metrics mm;
    mask_evaluate(F.H.mask, F.H.block_mass, F.H.N, F.fo.block, &mm);
    double density = mm.density;
    if (!(fabs(kept / causal - density) <= 1.0 / causal))
        fail_msg("kept fraction %.6f vs mask density %.6f", kept / causal, density);
    image_free(&im);
}

// The overlay's classes agree with the oracle recomputed here.
static void test_fig_overlay_classes(void **state) {
    image im;
    load("overlay.png", &im);
    int nb = F.H.nb, q = F.S / nb;
    mask_metrics mm;
    mask_evaluate(F.H.mask, F.H.block_mass, F.H.N, F.fo.block, &mm);
    double r = mm.recall;
    assert_true(r > 0.5 && r <= 1.0 + 1e-6);
    uint8_t *need = malloc((size_t)nb * nb);
    mask_oracle(need, F.H.block_mass, F.H.N, F.fo.block, r);
    // Oracle recall reaches r in every row block.
    for (int I = 0; I < nb; I++) {
        double acc = 0;
        for (int J = 0; J <= I; J++) acc += need[I * nb + J] ? F.H.block_mass[I * nb + J] : 0;
        assert_true(acc >= r * F.fo.block * (1 - 1e-5));
    }
    for (int I = 0; I < nb; I++)
        for (int J = 0; J <= I; J++) {
            rgb8 c = image_get(&im, J * q + q / 2, I * q + q / 2);
            int m = F.H.mask[I * nb + J], n = need[I * nb + J];
            rgb8 want = m ? (n ? RENDER_KEPT_NEEDED : RENDER_KEPT_UNNEEDED)
                          : (n ? RENDER_DROPPED_NEEDED : RENDER_DROPPED_UNNEEDED);
            if (!rgb_eq(c, want)) fail_msg("overlay block (%d,%d): wrong class colour", I, J);
        }
    free(need);
    image_free(&im);
}

// Without vs_mask: no g.png and no placeholder, everything else written.
static void test_fig_without_vs(void **state) {
    fixture_opts fo;
    fixture_default(&fo);
    fo.with_vs = 0;
    fo.N = 512;
    fo.n_layers = fo.n_heads = 1;
    char path[400], dir[400];
    snprintf(path, sizeof path, "%s/novs.h5", tmpdir);
    snprintf(dir, sizeof dir, "%s/novs", tmpdir);
    assert_int_equal(fixture_write(path, &fo), 0);
    results_file R;
    results_head H;
    skel_err e;
    assert_int_equal(results_open(&R, path, &e), 0);
    assert_int_equal(results_read_head(&R, 0, 0, &H, &e), 0);
    assert_null(H.vs_mask);
    render_opts o;
    render_opts_default(&o);
    o.size = 200;  // not a divisor of N: pixels pool unequal cells
    o.thumb = 96;
    o.pool = RENDER_POOL_MEAN;
    render_summary sum;
    assert_int_equal(render_head(&R, &H, &o, dir, &sum, &e), 0);
    assert_int_equal(sum.has_vs, 0);
    char g[500];
    snprintf(g, sizeof g, "%s/g.png", dir);
    assert_int_not_equal(access(g, F_OK), 0);
    snprintf(g, sizeof g, "%s/montage.png", dir);
    assert_int_equal(access(g, F_OK), 0);
    results_head_free(&H);
    results_close(&R);
}

// ---------------------------------------------------------------------------- command line
// Runs cmd, returns its exit status; stderr goes to errfile.
static int run_cmd(const char *cmd, const char *errfile) {
    char full[2000];
    snprintf(full, sizeof full, "%s >/dev/null 2>'%s'", cmd, errfile);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}
static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

// One line on stderr containing `want`, and a non-zero exit.
static void expect_one_line_error(const char *cmd, const char *want) {
    char err[400], msg[4096];
    snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
    int rc = run_cmd(cmd, err);
    slurp(err, msg, sizeof msg);
    if (rc == 0) fail_msg("'%s' succeeded; expected an error", cmd);
    if (count_lines(msg) != 1 || !strstr(msg, want))
        fail_msg("'%s': expected one line containing '%s', got: %s", cmd, want, msg);
}

static void test_cli_bad_input(void **state) {
    const char *skel = getenv("SKEL");
    if (!skel) skip();
    fixture_opts fo;
    fixture_default(&fo);
    fo.N = 256;
    fo.n_layers = 1;
    fo.n_heads = 2;
    char good[400], old[400], cmd[1500];
    snprintf(good, sizeof good, "%s/good.h5", tmpdir);
    snprintf(old, sizeof old, "%s/old.h5", tmpdir);
    assert_int_equal(fixture_write(good, &fo), 0);
    fo.version = RESULTS_VERSION - 1;
    assert_int_equal(fixture_write(old, &fo), 0);

    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 0 --head 0 -o '%s/ok' --size 128 --quiet", skel, good, tmpdir);
    char err[400];
    snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
    assert_int_equal(run_cmd(cmd, err), 0);

    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 0 --head 7 -o '%s/x'", skel, good, tmpdir);
    expect_one_line_error(cmd, "no such head");
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 3 --head 0 -o '%s/x'", skel, good, tmpdir);
    expect_one_line_error(cmd, "no such head");
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 0 --head 0 -o '%s/x'", skel, old, tmpdir);
    expect_one_line_error(cmd, "older");
    // A regular file where a directory should be: unwritable even for root.
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 0 --head 0 -o '%s/sub'", skel, good, good);
    expect_one_line_error(cmd, "cannot create");
    snprintf(cmd, sizeof cmd, "'%s' render '%s/missing.h5' --layer 0 --head 0 -o '%s/x'", skel, tmpdir, tmpdir);
    expect_one_line_error(cmd, "missing.h5");
    snprintf(cmd, sizeof cmd, "'%s' render '%s' --layer 0 --head 0 -o '%s/x' --range 2:1", skel, good, tmpdir);
    expect_one_line_error(cmd, "--range");
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colormap_monotone),
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_pool_vs_bruteforce),
        cmocka_unit_test(test_fig_dimensions_and_blank_triangle),
        cmocka_unit_test(test_fig_planted_structure),
        cmocka_unit_test(test_fig_recomposition_matches_exact),
        cmocka_unit_test(test_fig_mask_fraction),
        cmocka_unit_test(test_fig_overlay_classes),
        cmocka_unit_test(test_fig_without_vs),
        cmocka_unit_test(test_cli_bad_input),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup_fig, teardown_fig);
}
