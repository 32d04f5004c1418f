// png_image.h: an RGB raster, its PNG encoding through libpng, and the small drawing kit the
// figures need (rectangles, lines, a built-in 5x7 bitmap font, a log10 colour bar, labelled
// panels). No dependency beyond libpng: the figures render on a machine without fonts.
#ifndef SKEL_PNG_IMAGE_H
#define SKEL_PNG_IMAGE_H

#include <stdint.h>

#include "colormap.h"
#include "common.h"

typedef struct {
    uint8_t r, g, b;
} rgb8;

#define RGB8(r, g, b) ((rgb8){(r), (g), (b)})
#define RGB8_WHITE RGB8(255, 255, 255)
#define RGB8_BLACK RGB8(0, 0, 0)

typedef struct {
    int w, h;
    uint8_t *px;  // (h, w, 3) sRGB, row-major
} image;

// Allocates a w x h image filled with `fill`.
void image_init(image *im, int w, int h, rgb8 fill);
void image_free(image *im);

static inline void image_set(image *im, int x, int y, rgb8 c) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}
static inline rgb8 image_get(const image *im, int x, int y) {
    const uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
    return RGB8(p[0], p[1], p[2]);
}

// Filled rectangle [x, x+w) x [y, y+h), clipped to the image.
void image_fill_rect(image *im, int x, int y, int w, int h, rgb8 c);
// One-pixel rectangle outline.
void image_draw_rect(image *im, int x, int y, int w, int h, rgb8 c);
// Copies src with its top-left corner at (x, y), clipped.
void image_blit(image *dst, const image *src, int x, int y);

// ---------------------------------------------------------------------------- text
// The built-in font is 5x7 pixels in a 6x9 cell (g, j, p, q, y descend into the cell's last two
// rows); `scale` multiplies both (integer zoom).
// Characters outside printable ASCII draw as '?'.
#define FONT_W 5
#define FONT_H 7
#define FONT_ADV 6    // horizontal advance per character, unscaled
#define FONT_LINE 9   // line height, unscaled
int text_width(const char *s, int scale);
// Draws s with its top-left corner at (x, y).
void image_draw_text(image *im, int x, int y, const char *s, int scale, rgb8 c);
// Draws s rotated 90 degrees counter-clockwise (reads bottom to top), its bottom-left corner
// at (x, y + text_width).
void image_draw_text_vertical(image *im, int x, int y, const char *s, int scale, rgb8 c);

// ---------------------------------------------------------------------------- colour bar
// A vertical colour bar w x h at (x, y), bottom = lo, top = hi (log10 units), with a tick and
// a label at every integer in [lo, hi] (every 2nd, 5th... when they would crowd; every 0.5, 0.2
// or 0.1 when the range spans under 2.5 decades) drawn to the right, and `title` above. Returns
// the width taken including the labels.
int image_draw_colorbar(image *im, int x, int y, int w, int h, colormap_id cmap, double lo,
                        double hi, const char *title, int scale);

// ---------------------------------------------------------------------------- PNG
// Writes 8-bit RGB to <path>.tmp-<pid>, then renames it to path, so a failed write never
// leaves a half-written file under the final name.
int image_write_png(const image *im, const char *path, skel_err *e);
// Reads any PNG as 8-bit RGB (palette, grey, 16-bit and alpha are converted; alpha dropped).
int image_read_png(image *im, const char *path, skel_err *e);

#endif
