#include "png_image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>

void image_init(image *im, int w, int h, rgb8 fill) {
    CHECK(w > 0 && h > 0);
    im->w = w;
    im->h = h;
    im->px = xmalloc((size_t)w * h * 3);
    for (size_t k = 0; k < (size_t)w * h; k++) {
        im->px[3 * k] = fill.r;
        im->px[3 * k + 1] = fill.g;
        im->px[3 * k + 2] = fill.b;
    }
}

void image_free(image *im) {
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

void image_fill_rect(image *im, int x, int y, int w, int h, rgb8 c) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) image_set(im, xx, yy, c);
}

void image_draw_rect(image *im, int x, int y, int w, int h, rgb8 c) {
    image_fill_rect(im, x, y, w, 1, c);
    image_fill_rect(im, x, y + h - 1, w, 1, c);
    image_fill_rect(im, x, y, 1, h, c);
    image_fill_rect(im, x + w - 1, y, 1, h, c);
}

void image_blit(image *dst, const image *src, int x, int y) {
    for (int yy = 0; yy < src->h; yy++) {
        int ty = y + yy;
        if (ty < 0 || ty >= dst->h) continue;
        for (int xx = 0; xx < src->w; xx++) image_set(dst, x + xx, ty, image_get(src, xx, yy));
    }
}

// ---------------------------------------------------------------------------- font
// 5x7 glyphs for ASCII 32..126, one byte per column, bit 0 = top row.
static const uint8_t font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00},
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08},
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},
};

// The classic 5x7 table squeezes g, j, p, q, y above the baseline, where g reads as 9 and p as P;
// these five get real descenders in the two spare rows of the 9-row cell.
static const struct {
    char ch;
    const char *rows[FONT_LINE];
} descenders[] = {
    {'g', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'p', {".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"}},
    {'y', {".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
};

// Columns of ch, bit k = row k (FONT_LINE rows; rows FONT_H.. hold descenders).
static void glyph(char ch, uint16_t cols[FONT_W]) {
    for (size_t d = 0; d < sizeof descenders / sizeof descenders[0]; d++)
        if (descenders[d].ch == ch) {
            for (int col = 0; col < FONT_W; col++) {
                cols[col] = 0;
                for (int row = 0; row < FONT_LINE; row++)
                    cols[col] |= (uint16_t)(descenders[d].rows[row][col] == '#') << row;
            }
            return;
        }
    unsigned c = (unsigned char)ch;
    if (c < 32 || c > 126) c = '?';
    for (int col = 0; col < FONT_W; col++) cols[col] = font5x7[c - 32][col];
}

int text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)(n * FONT_ADV - 1) * scale : 0;
}

void image_draw_text(image *im, int x, int y, const char *s, int scale, rgb8 c) {
    for (; *s; s++, x += FONT_ADV * scale) {
        uint16_t g[FONT_W];
        glyph(*s, g);
        for (int col = 0; col < FONT_W; col++)
            for (int row = 0; row < FONT_LINE; row++)
                if (g[col] >> row & 1) image_fill_rect(im, x + col * scale, y + row * scale, scale, scale, c);
    }
}

void image_draw_text_vertical(image *im, int x, int y, const char *s, int scale, rgb8 c) {
    int base = y + text_width(s, scale);  // the first character sits at the bottom
    for (int k = 0; *s; s++, k++) {
        uint16_t g[FONT_W];
        glyph(*s, g);
        for (int col = 0; col < FONT_W; col++)
            for (int row = 0; row < FONT_LINE; row++)
                if (g[col] >> row & 1)
                    image_fill_rect(im, x + row * scale, base - (k * FONT_ADV + col + 1) * scale, scale,
                                    scale, c);
    }
}

// ---------------------------------------------------------------------------- colour bar
int image_draw_colorbar(image *im, int x, int y, int w, int h, colormap_id cmap, double lo,
                        double hi, const char *title, int scale) {
    CHECK(h > 1 && hi > lo);
    for (int yy = 0; yy < h; yy++) {
        uint8_t c[3];
        colormap_map(cmap, 1.0 - (double)yy / (h - 1), c);
        image_fill_rect(im, x, y + yy, w, 1, RGB8(c[0], c[1], c[2]));
    }
    image_draw_rect(im, x - 1, y - 1, w + 2, h + 2, RGB8_BLACK);
    // Label every `step` decades so that labels stay at least two text lines apart; a range of
    // under 2.5 decades (a factor panel can span just one) gets labels at tenths, fifths or halves,
    // at most 6 of them, so the bar never carries a single label.
    static const double steps[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100};
    const double span = hi - lo;
    double step = 100;
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        if (steps[k] < 1 && (span >= 2.5 || span / steps[k] > 6)) continue;
        if ((double)h * steps[k] / span >= 2.0 * FONT_LINE * scale) {
            step = steps[k];
            break;
        }
    }
    int maxw = 0;
    for (long n = lround(ceil(lo / step - 1e-9)); n * step <= hi + 1e-9; n++) {
        double t = n * step;  // n * step, not a running sum, so that labels print exactly
        int yy = y + (int)lround((hi - t) / span * (h - 1));
        image_fill_rect(im, x + w, yy, 4, 1, RGB8_BLACK);
        char lab[32];
        snprintf(lab, sizeof lab, "%g", n == 0 ? 0.0 : t);
        image_draw_text(im, x + w + 6, yy - FONT_H * scale / 2, lab, scale, RGB8_BLACK);
        int tw = text_width(lab, scale);
        if (tw > maxw) maxw = tw;
    }
    if (title) image_draw_text(im, x - 2 * scale, y - FONT_LINE * scale - 4, title, scale, RGB8_BLACK);
    return w + 6 + maxw;
}

// ---------------------------------------------------------------------------- PNG
int image_write_png(const image *im, const char *path, skel_err *e) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return skel_fail(e, "%s: cannot create: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        return skel_fail(e, "%s: libpng failed while writing", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)y * im->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int err = errno;
        unlink(tmp);
        return skel_fail(e, "%s: write failed: %s", path, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return skel_fail(e, "%s: cannot rename %s into place: %s", path, tmp, strerror(err));
    }
    return 0;
}

int image_read_png(image *im, const char *path, skel_err *e) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path))
        return skel_fail(e, "%s: cannot read PNG: %s", path, pi.message);
    pi.format = PNG_FORMAT_RGB;
    image_init(im, (int)pi.width, (int)pi.height, RGB8_WHITE);
    if (!png_image_finish_read(&pi, NULL, im->px, 0, NULL)) {
        image_free(im);
        png_image_free(&pi);
        return skel_fail(e, "%s: cannot decode PNG: %s", path, pi.message);
    }
    return 0;
}
