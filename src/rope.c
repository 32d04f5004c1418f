#include "rope.h"

#include <math.h>

static void rotate(float *out, const float *in, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                   rope_layout layout, double sign) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) {
        for (int x = 0; x < d / 2; x++) {
            double s, c;
            sincos(sign * (double)pos[j] * inv_freq[x], &s, &c);
            int a = rope_pair_a(layout, d, x), b = rope_pair_b(layout, d, x);
            double ya = in[j * d + a], yb = in[j * d + b];
            out[j * d + a] = (float)(ya * c - yb * s);
            out[j * d + b] = (float)(ya * s + yb * c);
        }
    }
}

void rope_apply(float *out, const float *in, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                rope_layout layout) {
    rotate(out, in, N, d, inv_freq, pos, layout, 1.0);
}

void rope_unapply(float *out, const float *in, int64_t N, int d, const double *inv_freq, const int32_t *pos,
                  rope_layout layout) {
    rotate(out, in, N, d, inv_freq, pos, layout, -1.0);
}
