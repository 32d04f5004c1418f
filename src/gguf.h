// gguf.h: reading GGUF model files (version 2 and 3), as written by llama.cpp's converters.
//
// Layout of a file (little-endian):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv x      { string key, u32 type, value }          (arrays: u32 elem type, u64 count, elems)
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
//   padding to general.alignment (default 32), then the tensor data; each offset is relative to
//   the data start and a multiple of the alignment.
// ne[0] is the contiguous dimension: a matrix W (out, in) has ne = {in, out}.
// The file is memory-mapped; values, arrays and tensor data point into the mapping.
#ifndef SKEL_GGUF_H
#define SKEL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

// ggml tensor types (the subset with a fixed id that this reader names; others are rejected).
typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT = 40,
} ggml_type;

typedef struct {
    const char *s;  // not NUL-terminated: points into the mapping
    uint64_t n;     // bytes
} gguf_str;

typedef struct {
    gguf_str key;
    gguf_type type;
    union {
        uint64_t u;  // UINT8..UINT64, BOOL
        int64_t i;   // INT8..INT64
        double f;    // FLOAT32, FLOAT64
        gguf_str str;
        struct {
            gguf_type type;    // element type
            uint64_t n;        // elements
            const void *data;  // numeric: packed elements; strings: the first string's u64 length
            gguf_str *strs;    // strings only: (n) decoded views, owned by the file
        } arr;
    } v;
} gguf_kv;

typedef struct {
    gguf_str name;
    int n_dims;
    int64_t ne[4];       // ne[0] contiguous; unused dims are 1
    ggml_type type;
    uint64_t offset;     // relative to the data section
    int64_t n_elements;
    size_t n_bytes;
    const void *data;    // into the mapping
} gguf_tensor;

typedef struct {
    char path[1024];
    const uint8_t *map;  // whole file, read-only
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;          // (n_kv)
    uint64_t n_tensors;
    gguf_tensor *tensors;  // (n_tensors)
    uint64_t alignment;
    size_t data_offset;   // start of the tensor data section
} gguf_file;

// Maps and parses path. Fails with one line naming the file and the problem: missing file, bad
// magic, unsupported version, truncated header or tensor data, misaligned or out-of-file tensor,
// unknown tensor type id.
int gguf_open(gguf_file *g, const char *path, skel_err *e);
void gguf_close(gguf_file *g);

// Returns the key's entry or NULL.
const gguf_kv *gguf_find(const gguf_file *g, const char *key);
// Typed getters: 0 on success; -1 naming the file and key when the key is missing or its type does
// not fit (any integer type fits an integer getter if the value is in range).
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, skel_err *e);
int gguf_get_f32(const gguf_file *g, const char *key, float *out, skel_err *e);
int gguf_get_bool(const gguf_file *g, const char *key, int *out, skel_err *e);
// Copies a string value into out (NUL-terminated, truncated to cap - 1 bytes).
int gguf_get_str(const gguf_file *g, const char *key, char *out, size_t cap, skel_err *e);
// Array of the given element type: *arr gets the entry (count in (*arr)->v.arr.n).
int gguf_get_arr(const gguf_file *g, const char *key, gguf_type elem, const gguf_kv **arr, skel_err *e);

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

// Name of a ggml type ("Q4_1") or NULL when unknown; weights per block and bytes per block (0 when
// the type is unknown).
const char *ggml_type_name(ggml_type t);
int ggml_blck_size(ggml_type t);
size_t ggml_type_size(ggml_type t);
// 1 if ggml_dequantize supports the type.
int ggml_can_dequantize(ggml_type t);

// out (n) = the n weights of src in type t; n is a multiple of the block size. Returns -1 for a
// type it cannot dequantize (the caller names the file and tensor).
int ggml_dequantize(ggml_type t, const void *src, float *out, int64_t n);

// Dequantises a whole tensor into out (n_elements), naming file, tensor and type on failure.
int gguf_tensor_to_f32(const gguf_file *g, const gguf_tensor *t, float *out, skel_err *e);

float skel_f16_to_f32(uint16_t h);
uint16_t skel_f32_to_f16(float f);  // round to nearest even
float skel_bf16_to_f32(uint16_t h);

#endif
