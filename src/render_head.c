// render_head.c: one head's Fig. 1 files (a.png .. g.png, overlay.png) and the labelled montage.
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "mask.h"
#include "render.h"

int render_mkdir_p(const char *dir, skel_err *e) {
    char p[1024];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return skel_fail(e, "%s: path too long", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == 0) {
            char keep = *c;
            *c = 0;
            struct stat st;
            if (stat(p, &st) != 0) {
                if (mkdir(p, 0777) != 0 && errno != EEXIST)
                    return skel_fail(e, "%s: cannot create output directory: %s", dir, strerror(errno));
            } else if (!S_ISDIR(st.st_mode)) {
                return skel_fail(e, "%s: cannot create output directory: %s is not a directory", dir, p);
            }
            *c = keep;
            if (!keep) break;
        }
    }
    return 0;
}

// Token count as a tick label: 16384 -> "16K" (K = 1024), 1000 -> "1000".
static void fmt_tokens(int64_t n, char *buf, size_t cap) {
    if (n >= 2048 && n % 1024 == 0) snprintf(buf, cap, "%lldK", (long long)(n / 1024));
    else snprintf(buf, cap, "%lld", (long long)n);
}

// ---------------------------------------------------------------------------- montage layout
#define TS 2                        // text scale in the montage
#define LINE (FONT_LINE * TS)       // 18 px
#define LM 84                       // left margin of a panel cell: axis title and tick labels
#define RM 104                      // right margin: colour bar and its labels
#define TM 34                       // top margin: panel title
#define BM 52                       // bottom margin: tick labels and axis title
#define LEGEND (4 * LINE + 8)       // extra bottom margin of the mask row
#define HEADER (2 * LINE + 24)

static const rgb8 GREY = {110, 110, 110};

// Axes of a panel at (x, y), side T: ticks at 0, N/2, N on the left (query i) and bottom (key j).
static void draw_axes(image *m, int x, int y, int T, int64_t N) {
    image_draw_rect(m, x - 1, y - 1, T + 2, T + 2, GREY);
    int64_t ticks[3] = {0, N / 2, N};
    for (int k = 0; k < 3; k++) {
        int off = (int)lround((double)ticks[k] / (double)N * T);
        if (off > T) off = T;
        char lab[32];
        fmt_tokens(ticks[k], lab, sizeof lab);
        int tw = text_width(lab, TS);
        image_fill_rect(m, x - 7, y + off - (off == T), 6, 1, RGB8_BLACK);
        image_draw_text(m, x - 10 - tw, y + off - FONT_H * TS / 2, lab, TS, RGB8_BLACK);
        image_fill_rect(m, x + off - (off == T), y + T + 1, 1, 6, RGB8_BLACK);
        int lx = x + off - tw / 2;
        if (lx + tw > x + T + 8) lx = x + T + 8 - tw;
        image_draw_text(m, lx, y + T + 10, lab, TS, RGB8_BLACK);
    }
    const char *xt = "key j", *yt = "query i";
    image_draw_text(m, x + T / 2 - text_width(xt, TS) / 2, y + T + 10 + LINE, xt, TS, GREY);
    image_draw_text_vertical(m, x - LM + 4, y + T / 2 - text_width(yt, TS) / 2, yt, TS, GREY);
}

static void draw_swatch(image *m, int x, int y, rgb8 c, const char *label) {
    image_fill_rect(m, x, y + 1, 14, 14, c);
    image_draw_rect(m, x, y + 1, 14, 14, GREY);
    image_draw_text(m, x + 22, y + 2, label, TS, RGB8_BLACK);
}

typedef struct {
    image montage;
    int T;
} montage_ctx;

static void cell_origin(const montage_ctx *M, int col, int row, int *x, int *y) {
    *x = 10 + col * (LM + M->T + RM) + LM;
    *y = HEADER + row * (TM + M->T + BM) + TM;
}

static void place_panel(montage_ctx *M, int col, int row, const image *thumb, const char *title, int64_t N) {
    int x, y;
    cell_origin(M, col, row, &x, &y);
    image_draw_text(&M->montage, x - 2, y - TM + 6, title, TS, RGB8_BLACK);
    if (thumb) {
        image_blit(&M->montage, thumb, x, y);
        draw_axes(&M->montage, x, y, M->T, N);
    }
}

static void place_colorbar(montage_ctx *M, int col, int row, colormap_id cmap, double lo, double hi) {
    int x, y;
    cell_origin(M, col, row, &x, &y);
    image_draw_colorbar(&M->montage, x + M->T + 14, y + 6, 16, M->T - 12, cmap, lo, hi, NULL, TS);
    // The unit goes under the bar, on the row of the axis title (centred under the panel, clear
    // of the bar): above the bar it would run into a long panel title.
    image_draw_text(&M->montage, x + M->T + 12, y + M->T + 10 + LINE, "log10", TS, GREY);
}

// ---------------------------------------------------------------------------- render_head
static int write_png(render_summary *sum, const image *im, const char *dir, const char *name, skel_err *e) {
    CHECK(sum->n_files < (int)(sizeof sum->files / sizeof sum->files[0]));
    char *path = sum->files[sum->n_files];
    snprintf(path, sizeof sum->files[0], "%s/%s", dir, name);
    if (image_write_png(im, path, e)) return -1;
    sum->n_files++;
    return 0;
}

// A grid at side S for panel k (0 = a .. 4 = e). exact is the (a) grid at the same side.
static void panel_grid(const results_file *R, const results_head *H, int k, int S, render_pool pool,
                       const float *exact, float *out) {
    switch (k) {
    case 0: render_grid_exact(H, S, pool, out); break;
    case 1: render_grid_s(H, S, pool, out); break;
    case 2: render_grid_v(H, S, pool, out); break;
    case 3: render_grid_h(H, S, pool, out); break;
    default: render_grid_recomposed(H, R->sink, R->local, S, pool, exact, out); break;
    }
}

int render_head(const results_file *R, const results_head *H, const render_opts *o, const char *dir,
                render_summary *sum, skel_err *e) {
    memset(sum, 0, sizeof *sum);
    if (o->size < 16 || o->size > 16384) return skel_fail(e, "--size %d: must be in [16, 16384]", o->size);
    if (o->has_range && !(o->hi > o->lo)) return skel_fail(e, "--range %g:%g: LO must be below HI", o->lo, o->hi);
    if (render_mkdir_p(dir, e)) return -1;
    const int S = o->size, T = o->thumb;
    const int64_t N = H->N;
    const int nb = H->nb, B = R->block;
    static const char *names[5] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    const char *pool_name = o->pool == RENDER_POOL_MAX ? "max" : "mean";
    char titles[8][64];
    snprintf(titles[0], 64, "(a) exact A, %s-pooled", pool_name);
    snprintf(titles[1], 64, "(b) A_s = exp(s[i-j])");
    snprintf(titles[2], 64, "(c) A_v = exp(v[j])");
    snprintf(titles[3], 64, "(d) A_h = exp(h[i])");
    snprintf(titles[4], 64, "(e) exp(s+v+h), exact Lambda");
    snprintf(titles[5], 64, "(f) SparseSkeleton mask");
    snprintf(titles[6], 64, "(g) vertical-slash mask");
    snprintf(titles[7], 64, "(h) mask vs oracle");

    float *grid = xmalloc((size_t)S * S * sizeof(float)), *exact = xmalloc((size_t)S * S * sizeof(float));
    float *tgrid = xmalloc((size_t)T * T * sizeof(float)), *texact = xmalloc((size_t)T * T * sizeof(float));
    uint8_t *oracle = xmalloc((size_t)nb * nb);
    image im = {0}, th = {0};
    montage_ctx M = {.T = T};
    int W = 20 + 4 * (LM + T + RM), Ht = HEADER + 2 * (TM + T + BM) + LEGEND;
    image_init(&M.montage, W, Ht, RGB8_WHITE);
    int rc = -1;

    double lo[5], hi[5];
    for (int k = 0; k < 5; k++) {
        panel_grid(R, H, k, S, o->pool, exact, k == 0 ? exact : grid);
        const float *g = k == 0 ? exact : grid;
        if (k == 0) {
            if (o->has_range) lo[0] = o->lo, hi[0] = o->hi;
            else render_auto_range(g, S, &lo[0], &hi[0]);
        } else if (k == 4) {
            lo[4] = lo[0], hi[4] = hi[0];  // (e) is on the scale of A, to compare with (a)
        } else {
            // A factor has no absolute scale of its own (a constant can move between s, v and h),
            // so each gets its own range, taken where it is fitted: the interior.
            render_auto_range_interior(g, N, S, R->sink, R->local, &lo[k], &hi[k]);
        }
        render_color_grid(g, S, o->cmap, lo[k], hi[k], &im);
        if (write_png(sum, &im, dir, names[k], e)) goto done;
        image_free(&im);
        panel_grid(R, H, k, T, o->pool, texact, k == 0 ? texact : tgrid);
        render_color_grid(k == 0 ? texact : tgrid, T, o->cmap, lo[k], hi[k], &th);
        place_panel(&M, k < 4 ? k : 0, k < 4 ? 0 : 1, &th, titles[k], N);
        place_colorbar(&M, k < 4 ? k : 0, k < 4 ? 0 : 1, o->cmap, lo[k], hi[k]);
        image_free(&th);
    }
    sum->lo = lo[0];
    sum->hi = hi[0];

    // Masks: (f) the skeleton, (g) vertical-slash when present, and the overlay against the oracle.
    mask_metrics mm, om;
    mask_evaluate(H->mask, H->block_mass, N, B, &mm);
    sum->density = mm.density;
    sum->recall = mm.recall;
    mask_oracle(oracle, H->block_mass, N, B, sum->recall);
    mask_evaluate(oracle, H->block_mass, N, B, &om);
    sum->oracle_density = om.density;
    render_mask_image(H->mask, N, B, nb, S, &im);
    if (write_png(sum, &im, dir, "f.png", e)) goto done;
    image_free(&im);
    render_mask_image(H->mask, N, B, nb, T, &th);
    place_panel(&M, 1, 1, &th, titles[5], N);
    image_free(&th);
    sum->has_vs = H->vs_mask != NULL;
    if (H->vs_mask) {
        render_mask_image(H->vs_mask, N, B, nb, S, &im);
        if (write_png(sum, &im, dir, "g.png", e)) goto done;
        image_free(&im);
        render_mask_image(H->vs_mask, N, B, nb, T, &th);
        place_panel(&M, 2, 1, &th, titles[6], N);
        image_free(&th);
    } else {
        int x, y;
        cell_origin(&M, 2, 1, &x, &y);
        place_panel(&M, 2, 1, NULL, titles[6], N);
        image_draw_rect(&M.montage, x, y, T, T, GREY);
        static const char *l1 = "missing: no vs_mask", *l2 = "in the results file";
        image_draw_text(&M.montage, x + T / 2 - text_width(l1, TS) / 2, y + T / 2 - LINE, l1, TS, GREY);
        image_draw_text(&M.montage, x + T / 2 - text_width(l2, TS) / 2, y + T / 2 + 4, l2, TS, GREY);
    }
    render_overlay_image(H->mask, oracle, N, B, nb, S, &im);
    if (write_png(sum, &im, dir, "overlay.png", e)) goto done;
    image_free(&im);
    render_overlay_image(H->mask, oracle, N, B, nb, T, &th);
    place_panel(&M, 3, 1, &th, titles[7], N);
    image_free(&th);

    // Legends under the mask row.
    {
        int x, y;
        cell_origin(&M, 1, 1, &x, &y);
        int ly = y + T + BM;
        draw_swatch(&M.montage, x, ly, RENDER_KEPT, "kept block");
        draw_swatch(&M.montage, x, ly + LINE + 2, RENDER_DROPPED, "dropped block");
        cell_origin(&M, 3, 1, &x, &y);
        draw_swatch(&M.montage, x, ly, RENDER_KEPT_NEEDED, "kept, needed");
        draw_swatch(&M.montage, x, ly + LINE + 2, RENDER_KEPT_UNNEEDED, "kept, not needed");
        draw_swatch(&M.montage, x, ly + 2 * (LINE + 2), RENDER_DROPPED_NEEDED, "dropped, needed");
        draw_swatch(&M.montage, x, ly + 3 * (LINE + 2), RENDER_DROPPED_UNNEEDED, "dropped, not needed");
    }
    // Header: what this is and the numbers a reader needs to read it.
    {
        char l1[512], l2[512], ntok[32];
        fmt_tokens(N, ntok, sizeof ntok);
        snprintf(l1, sizeof l1, "%s%slayer %d, head %d: N = %s tokens, block %d, sink %d, local %d",
                 R->model[0] ? R->model : "", R->model[0] ? ", " : "", H->layer, H->head, ntok, B, R->sink,
                 R->local);
        snprintf(l2, sizeof l2,
                 "mask density %.3f at recall %.3f; oracle at the same recall: density %.3f. "
                 "(a), (e): log10 range [%.1f, %.1f]%s",
                 sum->density, sum->recall, sum->oracle_density, lo[0], hi[0],
                 o->has_range ? " (--range)" : " (from the data)");
        image_draw_text(&M.montage, 14, 10, l1, TS, RGB8_BLACK);
        image_draw_text(&M.montage, 14, 10 + LINE + 4, l2, TS, RGB8_BLACK);
    }
    if (write_png(sum, &M.montage, dir, "montage.png", e)) goto done;
    rc = 0;
done:
    image_free(&im);
    image_free(&th);
    image_free(&M.montage);
    free(grid);
    free(exact);
    free(tgrid);
    free(texact);
    free(oracle);
    return rc;
}
