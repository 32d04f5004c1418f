// h5util.h: small HDF5 helpers shared by the writers (dump and results files).
#ifndef SKEL_H5UTIL_H
#define SKEL_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

// Scalar attributes on obj, replacing an existing one of that name: int64, float64, and a
// fixed-length NUL-terminated string (readable by h5py as bytes/str and by h5dump).
void h5_attr_put_i64(hid_t obj, const char *name, int64_t v);
void h5_attr_put_f64(hid_t obj, const char *name, double v);
void h5_attr_put_str(hid_t obj, const char *name, const char *s);

// A 2-D array compressed ahead of writing: HDF5's shuffle (elements wider than a byte) and deflate
// over chunks of at most 256 x 256, stored as HDF5's own filters would read them (the deflate stream
// from zlib's run-length strategy, faster than HDF5's level 1 and as small). Compressing is the slow
// part of writing a results file, so the pipeline packs in its worker threads and the HDF5 writer
// only copies the chunks (H5Dwrite_chunk). Elements are stored little-endian as in
// memory (x86-64 and arm64 hosts).
typedef struct {
    hsize_t dims[2], chunk[2];
    size_t elem;          // bytes per element
    int nch;              // chunks, row-major over the chunk grid
    unsigned char **buf;  // (nch) compressed chunks
    size_t *len;          // (nch) their sizes
} h5_packed;

// Packs data (rows, cols) of elem-byte elements; the chunks are compressed in parallel (OpenMP).
void h5_pack2d(h5_packed *p, const void *data, size_t elem, hsize_t rows, hsize_t cols);
void h5_packed_free(h5_packed *p);
// Creates dataset `name` in g (file type ft, memory type mt, dims) chunked and deflate-compressed,
// from pk when given (its dims must match), else compressing `data` through HDF5. Small arrays
// (under 4096 elements) are stored contiguous and uncompressed, from `data`. Returns 0 or -1.
int h5_put2d(hid_t g, const char *name, hid_t ft, hid_t mt, const hsize_t dims[2], const void *data, const h5_packed *pk);

#endif
