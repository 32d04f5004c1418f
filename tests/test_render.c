// test_render: colour maps, PNG round trip, pooling against brute force, and the Fig. 1 PNGs
// decoded back with libpng and checked pixel by pixel: for `skel synth` + `skel analyze` output
// (planted vertical keys and slashes where synth.h says) and for a fixture with an exact
// decomposition and a vertical-slash mask. CLI bad-input tests run when SKEL names the built tool. Run one test: CMOCKA_TEST_FILTER (cmocka >= 1.1.5) or argv[1].
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze.h"
#include "results_fixture.h"
#include "synth.h"

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
// Two sources of results files, each rendered once by its group's setup:
//   FX, the fixture of results_fixture.h: log A = s + v + h exactly and a vs_mask, for what real
//       analysis cannot promise (the recomposition equals the exact image; panel (g));
//   SY, `skel synth` + `skel analyze` (through the library): planted vertical keys and slashes at
//       positions synth.h reports, for the pixel checks on real pipeline output.
typedef struct {
    results_file R;
    results_head H[2];
    int n_heads;
    char dir[2][300];
    int S;
    int has_vs;
} fig_state;

static fig_state FX, SY;
static fixture_opts FX_OPTS;
static synth_params SY_PARAMS;

// Renders head k of st->R into st->dir[k] at side S (thumbnails 128).
static int render_into(fig_state *st, int k, const char *name) {
    render_opts o;
    render_opts_default(&o);
    o.size = st->S;
    o.thumb = 128;
    snprintf(st->dir[k], sizeof st->dir[k], "%s/%s", tmpdir, name);
    render_summary sum;
    skel_err e;
    if (render_head(&st->R, &st->H[k], &o, st->dir[k], &sum, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int setup_fixture(void **state) {
    if (setup_tmp(state)) return -1;
    fixture_default(&FX_OPTS);
    char path[400];
    snprintf(path, sizeof path, "%s/results.h5", tmpdir);
    if (fixture_write(path, &FX_OPTS)) return -1;
    skel_err e;
    if (results_open(&FX.R, path, &e) || results_read_head(&FX.R, 0, 0, &FX.H[0], &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    FX.n_heads = 1;
    FX.has_vs = 1;
    // 256 pixels for 2048 tokens: 8 tokens a pixel, 8 pixels a block, so mask pixels tile blocks.
    FX.S = 256;
    return render_into(&FX, 0, "fig");
}
static int teardown_fixture(void **state) {
    results_head_free(&FX.H[0]);
    results_close(&FX.R);
    return teardown_tmp(state);
}

// A synthetic dump of 2048 tokens, d = 64, two query heads on two KV heads (so two different
// slash offsets, N/4 and N/5, and two sets of vertical keys), analysed with the defaults (B = S =
// T = 64) and rendered at 256 pixels: 8 tokens a pixel, 8 pixels a block.
static int setup_synth(void **state) {
    if (setup_tmp(state)) return -1;
    SY_PARAMS = (synth_params){.N = 2048, .layers = 1, .q_heads = 2, .kv_heads = 2, .d = 64, .theta = 500000,
                               .seed = 1};
    char dump[400], res[400];
    snprintf(dump, sizeof dump, "%s/synth.h5", tmpdir);
    snprintf(res, sizeof res, "%s/analyzed.h5", tmpdir);
    skel_err e;
    analyze_opts ao;
    analyze_opts_default(&ao);
    ao.quiet = 1;
    if (synth_write(dump, &SY_PARAMS, &e) || analyze_run(dump, res, &ao, &e) || results_open(&SY.R, res, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    SY.n_heads = 2;
    SY.S = 256;
    for (int k = 0; k < SY.n_heads; k++) {
        if (results_read_head(&SY.R, 0, k, &SY.H[k], &e)) {
            fprintf(stderr, "setup: %s\n", e.msg);
            return -1;
        }
        SY.has_vs = SY.H[k].vs_mask != NULL;
        char name[32];
        snprintf(name, sizeof name, "synth%d", k);
        if (render_into(&SY, k, name)) return -1;
    }
    return 0;
}
static int teardown_synth(void **state) {
    for (int k = 0; k < SY.n_heads; k++) results_head_free(&SY.H[k]);
    results_close(&SY.R);
    return teardown_tmp(state);
}

static void load(const fig_state *st, int k, const char *name, image *im) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", st->dir[k], name);
    skel_err e;
    if (image_read_png(im, path, &e)) fail_msg("%s", e.msg);
}

// Every matrix PNG is S x S with the upper triangle blank and every causal pixel coloured; every
// mask PNG blanks exactly the blocks above the diagonal.
static void check_dimensions_and_blank_triangle(const fig_state *st, int k) {
    const int S = st->S;
    static const char *mat[5] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    for (int p = 0; p < 5; p++) {
        image im;
        load(st, k, mat[p], &im);
        assert_int_equal(im.w, S);
        assert_int_equal(im.h, S);
        for (int a = 0; a < S; a++)
            for (int b = 0; b < S; b++) {
                int white = rgb_eq(image_get(&im, b, a), RENDER_BLANK);
                if (b > a && !white) fail_msg("%s: pixel (row %d, col %d) above the diagonal is not blank", mat[p], a, b);
                if (b <= a && white) fail_msg("%s: causal pixel (row %d, col %d) is blank", mat[p], a, b);
            }
        image_free(&im);
    }
    static const char *masks[3] = {"f.png", "overlay.png", "g.png"};
    const int q = S / st->H[k].nb;  // pixels per block
    for (int p = 0; p < (st->has_vs ? 3 : 2); p++) {
        image im;
        load(st, k, masks[p], &im);
        assert_int_equal(im.w, S);
        assert_int_equal(im.h, S);
        for (int a = 0; a < S; a++)
            for (int b = 0; b < S; b++) {
                int white = rgb_eq(image_get(&im, b, a), RENDER_BLANK);
                if ((b / q > a / q) != white) fail_msg("%s: pixel (%d,%d) blank=%d, block above diagonal=%d",
                                                       masks[p], a, b, white, b / q > a / q);
            }
        image_free(&im);
    }
    image m;
    load(st, k, "montage.png", &m);
    assert_true(m.w >= 4 * 128 && m.h >= 2 * 128);
    image_free(&m);
}

static void test_fig_dimensions_and_blank_triangle(void **state) { check_dimensions_and_blank_triangle(&FX, 0); }
static void test_synth_dimensions_and_blank_triangle(void **state) {
    for (int k = 0; k < SY.n_heads; k++) check_dimensions_and_blank_triangle(&SY, k);
}

// Median over rows [a0, a1) of the lightness at column col (or at diagonal offset col when diag).
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

// The fixture's planted key column and slash: brighter, on the right pixel, than pixels a few
// columns away. 15 L* units: the background of a row varies smoothly; a planted spike of +7 in ln
// is several decades, tens of L* units on a map that spans the image's range.
#define SPIKE_MIN_DL 15.0
static void test_fig_planted_structure(void **state) {
    const int S = FX.S;
    int kc, so;
    fixture_plant(&FX_OPTS, 0, 0, &kc, &so);
    int pc = (int)((int64_t)kc * S / FX.H[0].N), po = (int)((int64_t)so * S / FX.H[0].N);
    static const char *col_panels[2] = {"a.png", "c.png"}, *diag_panels[2] = {"a.png", "b.png"};
    for (int k = 0; k < 2; k++) {
        image im;
        load(&FX, 0, col_panels[k], &im);
        double at = median_lightness(&im, pc + 8, S, pc, 0);
        double left = median_lightness(&im, pc + 8, S, pc - 4, 0), right = median_lightness(&im, pc + 8, S, pc + 4, 0);
        if (!(at > left + SPIKE_MIN_DL && at > right + SPIKE_MIN_DL))
            fail_msg("%s: key column %d (pixel %d): L* %.1f vs neighbours %.1f, %.1f", col_panels[k], kc, pc, at, left,
                     right);
        // and it is the brightest column of the lower rows, away from the sinks
        for (int b = 8; b < pc + 8 && b < S; b++)
            if (b != pc && median_lightness(&im, pc + 8, S, b, 0) >= at)
                fail_msg("%s: column %d as bright as the key column %d", col_panels[k], b, pc);
        image_free(&im);
    }
    for (int k = 0; k < 2; k++) {
        image im;
        load(&FX, 0, diag_panels[k], &im);
        double at = median_lightness(&im, po, S, po, 1);
        double lo = median_lightness(&im, po, S, po - 4, 1), hi = median_lightness(&im, po, S, po + 4, 1);
        if (!(at > lo + SPIKE_MIN_DL && at > hi + SPIKE_MIN_DL))
            fail_msg("%s: slash at offset %d (pixel %d): L* %.1f vs neighbours %.1f, %.1f", diag_panels[k], so, po, at,
                     lo, hi);
        image_free(&im);
    }
}

// ---------------------------------------------------------------------------- synth: planted keys
// Column profile of a panel: median L* of each pixel column over the rows below row a0.
static void column_profile(const image *im, int a0, double *prof) {
    for (int b = 0; b < im->w; b++) prof[b] = median_lightness(im, b > a0 ? b : a0, im->h, b, 0);
}

// Each of the 8 planted vertical keys of a KV head (synth_vertical_keys) shows as a bright column
// at pixel j S / N: its column is brighter by SYNTH_KEY_DL than the nearest columns on either side
// that hold no planted key, and the 8 brightest columns right of the sink pixels are exactly the
// planted ones. Rows start below the sinks' and the local band's reach, so the median is over the
// interior.
#define SYNTH_KEY_DL 10.0
static void test_synth_vertical_keys(void **state) {
    const int S = SY.S;
    static const char *panels[2] = {"a.png", "c.png"};
    for (int k = 0; k < SY.n_heads; k++) {
        const int64_t N = SY.H[k].N;
        int64_t keys[8];
        synth_vertical_keys(&SY_PARAMS, 0, k * SY_PARAMS.kv_heads / SY_PARAMS.q_heads, keys);
        const int sink_px = (int)((SY.R.sink * (int64_t)S + N - 1) / N);  // first pixel clear of the sinks
        int planted[1024] = {0}, n_cols = 0;  // two keys may share a pixel column
        for (int t = 0; t < 8; t++) {
            int pc = (int)(keys[t] * S / N);
            n_cols += !planted[pc] && pc >= sink_px && pc < S - 8;
            planted[pc] = 1;
        }
        for (int p = 0; p < 2; p++) {
            image im;
            load(&SY, k, panels[p], &im);
            double prof[1024];
            column_profile(&im, (int)((int64_t)(SY.R.sink + SY.R.local) * S / N) + 1, prof);
            for (int t = 0; t < 8; t++) {
                int pc = (int)(keys[t] * S / N), l = pc - 1, r = pc + 1;
                while (l > sink_px && planted[l]) l--;
                while (r < S - 1 && planted[r]) r++;
                double side = prof[l] > prof[r] ? prof[l] : prof[r];
                if (!(prof[pc] > side + SYNTH_KEY_DL))
                    fail_msg("head %d %s: key %lld (pixel column %d): L* %.1f vs neighbours %.1f (col %d), %.1f (col %d)",
                             k, panels[p], (long long)keys[t], pc, prof[pc], prof[l], l, prof[r], r);
            }
            // The brightest columns, as many as hold planted keys: all planted. The last 8 columns
            // have too few rows below the diagonal for a steady median.
            for (int t = 0; t < n_cols; t++) {
                int best = -1;
                for (int b = sink_px; b < S - 8; b++)
                    if (best < 0 || prof[b] > prof[best]) best = b;
                if (!planted[best])
                    fail_msg("head %d %s: column %d (L* %.1f) is among the %d brightest but holds no planted key",
                             k, panels[p], best, prof[best], n_cols);
                prof[best] = -1;
            }
            image_free(&im);
        }
    }
}

// The planted slash at offset m0 (synth_slash_offset) shows as the brightest diagonal near pixel
// offset m0 S / N (one pixel either way: m0 need not fall on a pixel boundary), brighter by
// SYNTH_SLASH_DL than the diagonals four pixels (32 tokens) away. "Near" is within half of m0:
// at d = 64 synth's slash lives on 4 RoPE pairs, whose phases line up again at other offsets, so
// the exact attention itself has fainter or even brighter echo slashes elsewhere (at d = 64, seed
// 1, head 1 has one at about 3.15 m0). Offsets below the local band's reach are left out.
#define SYNTH_SLASH_DL 10.0
static void test_synth_slash(void **state) {
    const int S = SY.S;
    static const char *panels[2] = {"a.png", "b.png"};
    for (int k = 0; k < SY.n_heads; k++) {
        const int64_t N = SY.H[k].N;
        int64_t m0 = synth_slash_offset(&SY_PARAMS, k * SY_PARAMS.kv_heads / SY_PARAMS.q_heads);
        int po = (int)(m0 * S / N);
        int o0 = (int)(2 * (int64_t)SY.R.local * S / N) + 2;
        for (int p = 0; p < 2; p++) {
            image im;
            load(&SY, k, panels[p], &im);
            double prof[1024];
            int best = -1;
            for (int o = o0 > po / 2 ? o0 : po / 2; o <= po + po / 2 && o < S - 16; o++) {
                prof[o] = median_lightness(&im, o, S, o, 1);
                if (best < 0 || prof[o] > prof[best]) best = o;
            }
            if (abs(best - po) > 1)
                fail_msg("head %d %s: brightest diagonal at pixel offset %d (L* %.1f), slash planted at %lld (pixel %d, L* %.1f)",
                         k, panels[p], best, prof[best], (long long)m0, po, prof[po]);
            if (!(prof[best] > prof[po - 4] + SYNTH_SLASH_DL && prof[best] > prof[po + 4] + SYNTH_SLASH_DL))
                fail_msg("head %d %s: slash at pixel offset %d: L* %.1f vs %.1f and %.1f four pixels away", k, panels[p],
                         best, prof[best], prof[po - 4], prof[po + 4]);
            image_free(&im);
        }
    }
}

// The fixture is exactly log A = s + v + h, so the recomposition draws the exact image: every
// pixel within one colour-map step (rounding of the float statistics).
static void test_fig_recomposition_matches_exact(void **state) {
    image a, e;
    load(&FX, 0, "a.png", &a);
    load(&FX, 0, "e.png", &e);
    const uint8_t(*t)[3] = colormap_table(COLORMAP_VIRIDIS);
    int bad = 0, worst = 0, wa = 0, wb = 0;
    for (int y = 0; y < FX.S; y++)
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
static void check_mask_fraction(const fig_state *st, int k) {
    const int S = st->S;
    const results_head *H = &st->H[k];
    image im;
    load(st, k, "f.png", &im);
    double kept = 0, causal = 0;
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            rgb8 c = image_get(&im, b, a);
            if (rgb_eq(c, RENDER_BLANK)) continue;
            causal++;
            if (rgb_eq(c, RENDER_KEPT)) kept++;
            else if (!rgb_eq(c, RENDER_DROPPED)) fail_msg("f.png: pixel (%d,%d) neither kept nor dropped", a, b);
        }
    mask_metrics mm;
    mask_evaluate(H->mask, H->block_mass, H->N, st->R.block, &mm);
    if (!(mm.density > 0.01 && mm.density < 0.99))
        fail_msg("head %d: mask density %.4f: too close to all or nothing to test the picture", k, mm.density);
    if (!(fabs(kept / causal - mm.density) <= 1.0 / causal))
        fail_msg("head %d: kept fraction %.6f vs mask density %.6f", k, kept / causal, mm.density);
    image_free(&im);
}
static void test_fig_mask_fraction(void **state) { check_mask_fraction(&FX, 0); }
static void test_synth_mask_fraction(void **state) {
    for (int k = 0; k < SY.n_heads; k++) check_mask_fraction(&SY, k);
}

// The overlay's classes agree with the oracle recomputed here.
static void check_overlay_classes(const fig_state *st, int k) {
    const results_head *H = &st->H[k];
    const int B = st->R.block;
    image im;
    load(st, k, "overlay.png", &im);
    int nb = H->nb, q = st->S / nb;
    mask_metrics mm;
    mask_evaluate(H->mask, H->block_mass, H->N, B, &mm);
    double r = mm.recall;
    assert_true(r > 0.5 && r <= 1.0 + 1e-6);
    uint8_t *need = malloc((size_t)nb * nb);
    mask_oracle(need, H->block_mass, H->N, B, r);
    // Oracle recall reaches r in every row block.
    for (int I = 0; I < nb; I++) {
        double acc = 0;
        for (int J = 0; J <= I; J++) acc += need[I * nb + J] ? H->block_mass[I * nb + J] : 0;
        assert_true(acc >= r * B * (1 - 1e-5));
    }
    for (int I = 0; I < nb; I++)
        for (int J = 0; J <= I; J++) {
            rgb8 c = image_get(&im, J * q + q / 2, I * q + q / 2);
            int m = H->mask[I * nb + J], n = need[I * nb + J];
            rgb8 want = m ? (n ? RENDER_KEPT_NEEDED : RENDER_KEPT_UNNEEDED)
                          : (n ? RENDER_DROPPED_NEEDED : RENDER_DROPPED_UNNEEDED);
            if (!rgb_eq(c, want)) fail_msg("head %d overlay block (%d,%d): wrong class colour", k, I, J);
        }
    free(need);
    image_free(&im);
}
static void test_fig_overlay_classes(void **state) { check_overlay_classes(&FX, 0); }
static void test_synth_overlay_classes(void **state) {
    for (int k = 0; k < SY.n_heads; k++) check_overlay_classes(&SY, k);
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
    const struct CMUnitTest fixture_tests[] = {
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
    const struct CMUnitTest synth_tests[] = {
        cmocka_unit_test(test_synth_dimensions_and_blank_triangle),
        cmocka_unit_test(test_synth_vertical_keys),
        cmocka_unit_test(test_synth_slash),
        cmocka_unit_test(test_synth_mask_fraction),
        cmocka_unit_test(test_synth_overlay_classes),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    int fails = cmocka_run_group_tests_name("fixture results", fixture_tests, setup_fixture, teardown_fixture);
    fails += cmocka_run_group_tests_name("synth + analyze results", synth_tests, setup_synth, teardown_synth);
    return fails;
}
