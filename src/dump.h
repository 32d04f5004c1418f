// dump.h: the Q/K/V dump file (SPEC section 1), reading and writing.
//
// Layout (HDF5):
//   /            attrs model (string), n_tokens, n_layers, n_q_heads, n_kv_heads, head_dim,
//                rope_layout ("half" | "interleaved"), format_version
//   /rope/inv_freq   float64 (d/2)
//   /tokens          int32 (N)          optional /text (string)
//   /positions       int32 (N)
//   /layers/L/q      f16|f32 (Hq, N, d)  post-RoPE queries
//   /layers/L/k      f16|f32 (Hkv, N, d) post-RoPE keys
//   /layers/L/v      f16|f32 (Hkv, N, d) optional values
// Datasets are chunked along N, so one head is read without reading its layer.
#ifndef SKEL_DUMP_H
#define SKEL_DUMP_H

#include <hdf5.h>

#include "common.h"

#define DUMP_FORMAT_VERSION 1
#define DUMP_MAX_LAYERS 1024

typedef enum { ROPE_HALF = 0, ROPE_INTERLEAVED = 1 } rope_layout;

const char *rope_layout_name(rope_layout l);

typedef struct {
    char model[256];
    int64_t n_tokens;  // N
    int n_layers;      // layers of the model (the dump may hold a subset)
    int n_q_heads;     // Hq
    int n_kv_heads;    // Hkv; query head h uses key head h / (Hq / Hkv)
    int head_dim;      // d, even
    rope_layout layout;
    int format_version;
} dump_meta;

typedef struct {
    char path[1024];
    hid_t file;
    dump_meta meta;
    double *inv_freq;    // (d/2) omega_k
    int32_t *positions;  // (N)
    int32_t *tokens;     // (N), NULL if absent
    int n_present;       // layers present under /layers
    int *present;        // (n_present) layer indices, ascending
    int has_values;      // every present layer has v
    char dtype[8];       // "f16", "f32" or "f64": storage type of /layers/*/q
} dump;

// Opens and validates a dump: attributes, /rope/inv_freq shape, /positions, every present layer's
// q/k shapes against the attributes and a float storage type. Fails with one line naming the file,
// the dataset and the problem.
int dump_open(dump *D, const char *path, skel_err *e);
void dump_close(dump *D);

int dump_has_layer(const dump *D, int layer);

// Reads one head of /layers/<layer>/<which> (which = 'q', 'k' or 'v') into out (N, d) as float32.
// Rejects NaN and Inf with the position of the first bad element.
int dump_read_head(const dump *D, int layer, char which, int head, float *out, skel_err *e);

// ---------------------------------------------------------------------------- writing
// The writer creates <path>.tmp-<pid> and renames it to path in dump_writer_finish, so a failed
// run never replaces a good file.
typedef struct {
    char path[1024];
    char tmp_path[1100];
    hid_t file;
    dump_meta meta;
    int f16;  // store float16 rather than float32
} dump_writer;

// inv_freq (d/2), positions (N), tokens (N) or NULL, text or NULL.
int dump_writer_create(dump_writer *W, const char *path, const dump_meta *meta, int f16,
                       const double *inv_freq, const int32_t *positions, const int32_t *tokens,
                       const char *text, skel_err *e);
// Writes /layers/<layer>/<which> (H, N, d) from data (H, N, d) float32; H = Hq for q, Hkv else.
int dump_writer_put(dump_writer *W, int layer, char which, const float *data, skel_err *e);
// Closes and renames into place. On error the temporary file is removed.
int dump_writer_finish(dump_writer *W, skel_err *e);
// Abandons a write: closes and removes the temporary file.
void dump_writer_abort(dump_writer *W);

#endif
