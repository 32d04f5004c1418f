// render.h: the paper's Fig. 1 panels for one head, pooled from the results file's statistics.
//
// Every matrix picture is S x S pixels whatever N is. Pixel (a, b) covers query rows
// [a N / S, (a+1) N / S) and key columns [b N / S, (b+1) N / S) (at least one row and column when
// S > N); it is blank (white) when that cell holds no causal pair, so the non-causal upper triangle
// is blank. Nothing here builds an N x N array: the exact panel pools the stored P x P image,
// the decomposition panels pool s, v, h through range-maximum tables and prefix sums.
//
// Panels (value grids are log10 of the pooled quantity, (S, S), NAN = blank):
//   (a) exact A, from image_max (pool max) or image_mean (pool mean)
//   (b) A_s = exp(s_{i-j})   (c) A_v = exp(v_j)   (d) A_h = exp(h_i)
//   (e) exp(s_{i-j} + v_j + h_i) on the interior (j >= sink, i - j >= local), and the exact image
//       wherever a pixel touches the Lambda-shape (sink columns or the local band). Pooling over a
//       pixel reads at most RENDER_RECOMP_ROWS rows of the cell (every column of each): exact
//       when a cell has at most that many rows, a row sample otherwise.
//   (f) the skeleton block mask, (g) the vertical-slash mask, and the overlay: block grids drawn
//       at the block under each pixel's centre; blank where J > I.
#ifndef SKEL_RENDER_H
#define SKEL_RENDER_H

#include "colormap.h"
#include "png_image.h"
#include "results_read.h"

#define RENDER_RECOMP_ROWS 8

typedef enum { RENDER_POOL_MAX = 0, RENDER_POOL_MEAN = 1 } render_pool;

typedef struct {
    int size;          // S, side of every matrix PNG (default 1024)
    render_pool pool;  // how a pixel pools the elements of its cell
    int has_range;     // --range given: lo, hi (log10) for panels (a) and (e)
    double lo, hi;
    colormap_id cmap;
    int thumb;  // side of each panel in montage.png
} render_opts;

void render_opts_default(render_opts *o);

// Colours of the block-mask pictures.
#define RENDER_BLANK RGB8(255, 255, 255)
#define RENDER_KEPT RGB8(33, 33, 33)
#define RENDER_DROPPED RGB8(214, 214, 214)
#define RENDER_KEPT_NEEDED RGB8(0, 114, 178)      // blue
#define RENDER_KEPT_UNNEEDED RGB8(150, 200, 235)  // light blue
#define RENDER_DROPPED_NEEDED RGB8(213, 94, 0)    // vermillion
#define RENDER_DROPPED_UNNEEDED RGB8(235, 235, 235)

// Value grids, out (S, S) log10, NAN where the pixel's cell holds no causal pair.
void render_grid_exact(const results_head *H, int S, render_pool pool, float *out);
void render_grid_s(const results_head *H, int S, render_pool pool, float *out);
void render_grid_v(const results_head *H, int S, render_pool pool, float *out);
void render_grid_h(const results_head *H, int S, render_pool pool, float *out);
void render_grid_recomposed(const results_head *H, int block_sink, int local, int S, render_pool pool,
                            const float *exact, float *out);

// Robust log10 range of a grid: hi = its maximum, lo = its 1st percentile, kept within
// [hi - 12, hi - 1] decades so a few underflowed pixels cannot flatten the picture.
void render_auto_range(const float *grid, int S, double *lo, double *hi);

// 1 when every causal pair of pixel (a, b) lies in the decomposition's interior (j >= sink and
// i - j >= local): the pixels where (e) draws s + v + h rather than the exact Lambda-shape.
int render_pixel_interior(int64_t N, int S, int sink, int local, int a, int b);
// render_auto_range over the interior pixels only (all pixels when none is interior). The factor
// panels use it: s, v, h are fitted on the interior, and their extrapolation to the sinks and the
// local band (which (e) takes from the exact statistics) would otherwise set the top of the range
// and flatten everything the decomposition actually models.
void render_auto_range_interior(const float *grid, int64_t N, int S, int sink, int local, double *lo,
                                double *hi);

// Colours a grid into an S x S image with the colour range [lo, hi] (log10).
void render_color_grid(const float *grid, int S, colormap_id cmap, double lo, double hi, image *im);

// Block masks (nb, nb); recall, density and the oracle come from mask.h.
// Draws a block mask into an S x S image (kept / dropped / blank).
void render_mask_image(const uint8_t *mask, int64_t N, int B, int nb, int S, image *im);
// The overlay of mask against needed (the oracle): four classes of causal block.
void render_overlay_image(const uint8_t *mask, const uint8_t *needed, int64_t N, int B, int nb, int S,
                          image *im);

// What render_head wrote and found.
typedef struct {
    double lo, hi;  // colour range of (a) and (e), log10
    double density, recall, oracle_density;
    int has_vs;
    int n_files;
    char files[12][1100];
} render_summary;

// Creates dir and its missing parents; one-line error naming dir when it cannot.
int render_mkdir_p(const char *dir, skel_err *e);

// Writes a.png .. f.png (g.png when the file holds vs_mask), overlay.png and montage.png into
// dir, creating dir if needed.
int render_head(const results_file *R, const results_head *H, const render_opts *o, const char *dir,
                render_summary *sum, skel_err *e);

#endif
