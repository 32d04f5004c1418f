// results_read.h: reading the analysis results file (results.h5, schema in results.h) for the
// pictures. The writer lives with `skel analyze`; this side only reads, and checks that what it
// reads has the shapes the schema promises, so a picture never comes from a misread file.
#ifndef SKEL_RESULTS_READ_H
#define SKEL_RESULTS_READ_H

#include <hdf5.h>

#include "common.h"
#include "results.h"

typedef struct {
    char path[1024];
    hid_t file;
    int results_version;
    char model[256];   // "" when absent
    int64_t n_tokens;  // N
    int n_layers, n_q_heads;
    int block, sink, local;  // B, S, T
    double eps;
    int image_size;  // the requested P; a head's images are min(image_size, N) square
} results_file;

// Opens path and checks results_version (older or newer than RESULTS_VERSION is an error, as is
// a file without it) and the root attributes the pictures need (n_tokens, block, sink, local).
int results_open(results_file *R, const char *path, skel_err *e);
void results_close(results_file *R);

// 1 when /layers/<layer>/heads/<head> exists.
int results_has_head(const results_file *R, int layer, int head);

// One head's numbers. Arrays the file lacks are NULL (vs_mask, z_hist, image_mean).
typedef struct {
    int layer, head;
    int64_t N;      // tokens
    int nb;         // ceil(N / block)
    int P;          // image side, min(image_size, N)
    float *lse;         // (N)
    float *block_mass;  // (nb, nb) W[I][J], upper triangle 0
    float *block_max;   // (nb, nb)
    float *image_max;   // (P, P)
    float *image_mean;  // (P, P) or NULL
    float *s, *v, *h;   // (N) each; s indexed by offset i - j
    uint8_t *mask;      // (nb, nb) 1 = kept
    uint8_t *vs_mask;   // (nb, nb) vertical-slash mask, or NULL when the file holds none
    double *z_hist;     // (z_bins) or NULL
    int z_bins;
    double z_lo, z_hi, z_mean, z_var;
} results_head;

// Reads /layers/<layer>/heads/<head>. A missing head fails with one line that says which heads
// the file does hold.
int results_read_head(const results_file *R, int layer, int head, results_head *H, skel_err *e);
void results_head_free(results_head *H);

// Reads the /report table into a new array of *n rows (caller frees). Fields are matched by
// name, so the writer's field order does not matter; a field the file lacks is an error.
int results_read_report(const results_file *R, head_report **rows, int *n, skel_err *e);

#endif
