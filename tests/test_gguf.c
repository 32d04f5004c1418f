// test_gguf.c: GGUF parsing (every metadata type, arrays, alignment, tensor table), dequantisation
// against llama.cpp's Python reference (tests/quant_vectors.h), and one-line errors for bad files.
#include <math.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "quant_vectors.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/skel-test-gguf-XXXXXX";

static void path_in_tmp(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

// A file with one key of every scalar type, arrays of int32, float32 and strings, general.alignment
// 64 and two tensors (F32 1-D, Q8_0 2-D).
static size_t write_all_types(const char *path) {
    gw w = {0};
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 1ULL << 40;
    int64_t i64 = -(1LL << 40);
    double f64 = 3.141592653589793;
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_scalar(&w, "t.u8", GGUF_TYPE_UINT8, &u8, 1);
    gw_kv_scalar(&w, "t.i8", GGUF_TYPE_INT8, &i8, 1);
    gw_kv_scalar(&w, "t.u16", GGUF_TYPE_UINT16, &u16, 2);
    gw_kv_scalar(&w, "t.i16", GGUF_TYPE_INT16, &i16, 2);
    gw_kv_u32(&w, "t.u32", 4000000000u);
    gw_kv_scalar(&w, "t.i32", GGUF_TYPE_INT32, &i32, 4);
    gw_kv_f32(&w, "t.f32", 1.5f);
    gw_kv_bool(&w, "t.bool", 1);
    gw_kv_scalar(&w, "t.u64", GGUF_TYPE_UINT64, &u64, 8);
    gw_kv_scalar(&w, "t.i64", GGUF_TYPE_INT64, &i64, 8);
    gw_kv_scalar(&w, "t.f64", GGUF_TYPE_FLOAT64, &f64, 8);
    int32_t ai[5] = {1, -2, 3, -4, 5};
    float af[3] = {0.5f, -0.25f, 8.0f};
    const char *as[3] = {"alpha", "", "gamma \xce\xb3"};
    gw_kv_arr(&w, "t.arr_i32", GGUF_TYPE_INT32, ai, 5, 4);
    gw_kv_arr(&w, "t.arr_f32", GGUF_TYPE_FLOAT32, af, 3, 4);
    gw_kv_arr_str(&w, "t.arr_str", as, 3);
    float v[7] = {1, 2, 3, 4, 5, 6, 7};
    gw_add_tensor(&w, "vec", GGML_TYPE_F32, 7, 0, v, sizeof v);
    gw_add_tensor(&w, "mat", GGML_TYPE_Q8_0, 32, 2, QV_Q8_0_BLOCKS, sizeof QV_Q8_0_BLOCKS);
    w.alignment = 64;
    return gw_write(&w, path);
}

static void test_metadata_and_tensors(void **state) {
    char path[256];
    path_in_tmp(path, sizeof path, "all.gguf");
    assert_true(write_all_types(path) > 0);
    gguf_file g;
    skel_err e = {{0}};
    assert_int_equal(gguf_open(&g, path, &e), 0);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.alignment, 64);
    assert_int_equal(g.data_offset % 64, 0);
    const gguf_kv *kv;
    assert_non_null(kv = gguf_find(&g, "t.u8")), assert_int_equal(kv->v.u, 200);
    assert_non_null(kv = gguf_find(&g, "t.i8")), assert_int_equal(kv->v.i, -100);
    assert_non_null(kv = gguf_find(&g, "t.u16")), assert_int_equal(kv->v.u, 60000);
    assert_non_null(kv = gguf_find(&g, "t.i16")), assert_int_equal(kv->v.i, -30000);
    assert_non_null(kv = gguf_find(&g, "t.i32")), assert_int_equal(kv->v.i, -2000000000);
    assert_non_null(kv = gguf_find(&g, "t.u64")), assert_true(kv->v.u == 1ULL << 40);
    assert_non_null(kv = gguf_find(&g, "t.i64")), assert_true(kv->v.i == -(1LL << 40));
    assert_non_null(kv = gguf_find(&g, "t.f64")), assert_true(kv->v.f == 3.141592653589793);
    uint32_t u;
    float f;
    int b;
    char s[64];
    assert_int_equal(gguf_get_u32(&g, "t.u32", &u, &e), 0), assert_true(u == 4000000000u);
    assert_int_equal(gguf_get_u32(&g, "t.u16", &u, &e), 0), assert_int_equal(u, 60000);
    assert_int_equal(gguf_get_u32(&g, "t.i32", &u, &e), -1);  // negative: does not fit
    assert_non_null(strstr(e.msg, "t.i32"));
    assert_int_equal(gguf_get_f32(&g, "t.f32", &f, &e), 0), assert_true(f == 1.5f);
    assert_int_equal(gguf_get_bool(&g, "t.bool", &b, &e), 0), assert_int_equal(b, 1);
    assert_int_equal(gguf_get_str(&g, "general.architecture", s, sizeof s, &e), 0), assert_string_equal(s, "llama");
    assert_int_equal(gguf_get_u32(&g, "no.such.key", &u, &e), -1);
    assert_non_null(strstr(e.msg, "missing metadata key 'no.such.key'"));
    const gguf_kv *arr;
    assert_int_equal(gguf_get_arr(&g, "t.arr_i32", GGUF_TYPE_INT32, &arr, &e), 0);
    assert_int_equal(arr->v.arr.n, 5);
    assert_int_equal(((const int32_t *)arr->v.arr.data)[3], -4);
    assert_int_equal(gguf_get_arr(&g, "t.arr_f32", GGUF_TYPE_FLOAT32, &arr, &e), 0);
    assert_true(((const float *)arr->v.arr.data)[2] == 8.0f);
    assert_int_equal(gguf_get_arr(&g, "t.arr_str", GGUF_TYPE_STRING, &arr, &e), 0);
    assert_int_equal(arr->v.arr.n, 3);
    assert_int_equal(arr->v.arr.strs[1].n, 0);
    assert_memory_equal(arr->v.arr.strs[2].s, "gamma \xce\xb3", 8);
    assert_int_equal(gguf_get_arr(&g, "t.arr_str", GGUF_TYPE_INT32, &arr, &e), -1);

    assert_int_equal(g.n_tensors, 2);
    const gguf_tensor *t = gguf_find_tensor(&g, "vec"), *m = gguf_find_tensor(&g, "mat");
    assert_non_null(t), assert_non_null(m);
    assert_int_equal(t->n_dims, 1), assert_int_equal(t->ne[0], 7), assert_int_equal(t->n_bytes, 28);
    assert_int_equal(m->n_dims, 2), assert_int_equal(m->ne[0], 32), assert_int_equal(m->ne[1], 2);
    assert_int_equal(m->offset % 64, 0);
    assert_int_equal(((const float *)t->data)[6], 7);
    float out[64];
    assert_int_equal(gguf_tensor_to_f32(&g, m, out, &e), 0);
    for (int i = 0; i < 64; i++) assert_true(out[i] == QV_Q8_0_REF[i]);
    gguf_close(&g);
}

// Each block type against gguf-py's dequantisation of the same random blocks: exact equality
// (both compute the same float products in the same order up to one rounding).
static void check_type(ggml_type t, const unsigned char *blocks, const float *ref, int n) {
    float *y = malloc((size_t)n * sizeof(float));
    assert_int_equal(ggml_dequantize(t, blocks, y, n), 0);
    double got[512], want[512];
    for (int i = 0; i < n; i++) got[i] = y[i], want[i] = ref[i];
    // atol 1e-9: values are ~1e-2, the reference rounds d*q once in float32 as we do (Q4_K/Q6_K
    // multiply three factors, where the order may differ by one ulp ~ 1e-9).
    assert_close(ggml_type_name(t), got, want, (size_t)n, 1e-9, 1e-6);
    free(y);
}

static void test_dequantize_vs_reference(void **state) {
#define CT(T) check_type(GGML_TYPE_##T, QV_##T##_BLOCKS, QV_##T##_REF, (int)(sizeof QV_##T##_REF / sizeof(float)))
    CT(Q4_0);
    CT(Q4_1);
    CT(Q5_0);
    CT(Q5_1);
    CT(Q8_0);
    CT(Q4_K);
    CT(Q6_K);
#undef CT
    assert_int_equal(ggml_dequantize(GGML_TYPE_Q2_K, QV_Q4_K_BLOCKS, (float[256]){0}, 256), -1);
}

static void test_half_conversions(void **state) {
    for (int i = 0; i < 65536; i++) {
        float f = skel_f16_to_f32((uint16_t)i);
        if (!isnan(f)) assert_int_equal(skel_f32_to_f16(f), i);  // every half round-trips
    }
    assert_true(skel_f16_to_f32(0x3c00) == 1.0f);
    assert_true(skel_f16_to_f32(0x0001) == ldexpf(1, -24));  // smallest subnormal
    assert_int_equal(skel_f32_to_f16(65520.0f), 0x7c00);      // rounds to infinity
    assert_int_equal(skel_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);  // tie to even
    assert_true(skel_bf16_to_f32(0x3f80) == 1.0f);
}

// Bad files: each gives -1 and one line naming the file and the problem.
static void expect_fail(const char *path, const char *what) {
    gguf_file g;
    skel_err e = {{0}};
    assert_int_equal(gguf_open(&g, path, &e), -1);
    if (!strstr(e.msg, what) || !strstr(e.msg, path) || strchr(e.msg, '\n')) {
        fprintf(stderr, "message '%s' does not name '%s' and '%s' on one line\n", e.msg, path, what);
        fail();
    }
}

static void test_bad_files(void **state) {
    char good[256], bad[256];
    path_in_tmp(good, sizeof good, "all.gguf");
    size_t n = write_all_types(good);
    FILE *f = fopen(good, "rb");
    unsigned char *b = malloc(n);
    assert_int_equal(fread(b, 1, n, f), n);
    fclose(f);
    path_in_tmp(bad, sizeof bad, "bad.gguf");
    // Truncated: in the header, in the metadata, in the tensor table, in the tensor data.
    // The last tensor (68 bytes of Q8_0) is followed by 60 bytes of padding to the alignment 64.
    size_t cuts[] = {3, 10, 40, 300, n - 200, n - 61};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        f = fopen(bad, "wb");
        fwrite(b, 1, cuts[k], f);
        fclose(f);
        expect_fail(bad, "truncated");
    }
    f = fopen(bad, "wb");
    fwrite("GGML", 1, 4, f);
    fwrite(b + 4, 1, n - 4, f);
    fclose(f);
    expect_fail(bad, "bad magic");
    // Unknown tensor type id 99.
    gw w = {0};
    float v[32] = {0};
    gw_add_tensor(&w, "x", 99, 32, 0, v, sizeof v);
    gw_write(&w, bad);
    expect_fail(bad, "unknown ggml type id 99");
    expect_fail("/nonexistent/model.gguf", "cannot open");
    free(b);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return perror("mkdtemp"), 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_and_tensors),
        cmocka_unit_test(test_dequantize_vs_reference),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_bad_files),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) rc = rc ? rc : 1;
    return rc;
}
