// colormap.h: perceptually uniform colour maps (viridis, magma) as lookup tables.
//
// A value t in [0, 1] (0 = lowest of the colour range) maps to one of 256 sRGB entries.
// Both maps rise monotonically in lightness, so the darkest pixel is always the smallest value.
#ifndef SKEL_COLORMAP_H
#define SKEL_COLORMAP_H

#include <stdint.h>

typedef enum { COLORMAP_VIRIDIS = 0, COLORMAP_MAGMA = 1 } colormap_id;

// The 256 entries of a map, (256, 3) sRGB.
const uint8_t (*colormap_table(colormap_id id))[3];
const char *colormap_name(colormap_id id);
// "viridis" or "magma"; -1 for anything else.
int colormap_parse(const char *name, colormap_id *id);
// t is clamped to [0, 1]; NaN maps to 0.
void colormap_map(colormap_id id, double t, uint8_t rgb[3]);
// CIE L* (0..100) of an sRGB colour.
double colormap_lightness(const uint8_t rgb[3]);

#endif
