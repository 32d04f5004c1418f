// The dump reader (f16 and f32, GQA) and the command line end to end: synth -> info -> analyze,
// the results file against the planted structure, and every bad-input case of the core pipeline:
// a one-line error naming the file and dataset, and a non-zero exit.
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dump.h"
#include "synth.h"
#include "testutil.h"

static char dir[256], skel[512];

static int setup(void **state) {
    const char *s = getenv("SKEL");
    snprintf(skel, sizeof skel, "%s", s ? s : "bin/skel");
    snprintf(dir, sizeof dir, "/tmp/skel-test-cli-%d", (int)getpid());
    mkdir(dir, 0755);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) != 0;
}

// Runs a shell command; returns its exit status and its stderr (up to cap bytes) in err.
static int run(const char *cmd, char *err, size_t cap) {
    char full[2048], path[300];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, path);
    int st = system(full);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void make_synth(const char *path, int64_t N, int d, int hq, int hkv, int f16) {
    synth_params p = {.N = N, .layers = 2, .q_heads = hq, .kv_heads = hkv, .d = d, .theta = 5e5, .seed = 3, .f16 = f16};
    skel_err e;
    assert_int_equal(synth_write(path, &p, &e), 0);
}

// Expects a failure with exactly one line of stderr that contains every needle.
static void expect_error(const char *cmd, const char *n1, const char *n2) {
    char err[4096];
    int rc = run(cmd, err, sizeof err);
    int lines = 0;
    for (char *c = err; *c; c++) lines += *c == '\n';
    if (rc == 0 || lines != 1 || (n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2))) {
        fprintf(stderr, "command: %s\nexit %d, stderr: %s\nexpected one line with '%s' and '%s'\n", cmd, rc, err,
                n1 ? n1 : "", n2 ? n2 : "");
        fail();
    }
}

static void test_reader_f16_f32_gqa(void **state) {
    char p32[300], p16[300];
    snprintf(p32, sizeof p32, "%s/f32.h5", dir);
    snprintf(p16, sizeof p16, "%s/f16.h5", dir);
    make_synth(p32, 300, 32, 4, 1, 0);
    make_synth(p16, 300, 32, 4, 1, 1);
    dump a, b;
    skel_err e;
    assert_int_equal(dump_open(&a, p32, &e), 0);
    assert_int_equal(dump_open(&b, p16, &e), 0);
    assert_string_equal(a.dtype, "f32");
    assert_string_equal(b.dtype, "f16");
    assert_int_equal(a.meta.n_q_heads, 4);
    assert_int_equal(a.meta.n_kv_heads, 1);
    assert_int_equal(a.n_present, 2);
    float *x = malloc(sizeof(float) * 300 * 32), *y = malloc(sizeof(float) * 300 * 32);
    double *gx = malloc(sizeof(double) * 300 * 32), *gy = malloc(sizeof(double) * 300 * 32);
    for (int h = 0; h < 4; h++) {
        assert_int_equal(dump_read_head(&a, 1, 'q', h, x, &e), 0);
        assert_int_equal(dump_read_head(&b, 1, 'q', h, y, &e), 0);
        for (int i = 0; i < 300 * 32; i++) gx[i] = x[i], gy[i] = y[i];
        // float16 keeps 11 significant bits: relative rounding 2^-11
        assert_close("f16 head vs f32 head", gy, gx, 300 * 32, 1e-7, 1.0 / 2048);
    }
    assert_int_equal(dump_read_head(&a, 0, 'k', 1, x, &e), -1);  // Hkv = 1: key head 1 does not exist
    assert_non_null(strstr(e.msg, "head 1 not present"));
    free(x), free(y), free(gx), free(gy);
    dump_close(&a);
    dump_close(&b);
}

// Heads read chunk by chunk (inflated and unshuffled in parallel by the reader) equal what HDF5's
// own filters give, for float16 and float32 dumps whose token count is not a multiple of the
// 1024-token chunk.
static void test_reader_chunks_vs_hdf5(void **state) {
    const int64_t N = 2500;
    const int d = 64;
    for (int f16 = 0; f16 <= 1; f16++) {
        char p[300];
        snprintf(p, sizeof p, "%s/chunks-%d.h5", dir, f16);
        make_synth(p, N, d, 2, 1, f16);
        dump D;
        skel_err e;
        assert_int_equal(dump_open(&D, p, &e), 0);
        float *x = malloc(sizeof(float) * N * d), *y = malloc(sizeof(float) * N * d);
        for (int h = 0; h < 2; h++) {
            assert_int_equal(dump_read_head(&D, 1, 'q', h, x, &e), 0);
            // the reference: HDF5 reads and converts the whole head itself
            hid_t ds = H5Dopen2(D.file, "/layers/1/q", H5P_DEFAULT), fs = H5Dget_space(ds);
            hsize_t start[3] = {(hsize_t)h, 0, 0}, count[3] = {1, (hsize_t)N, (hsize_t)d};
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
            hid_t ms = H5Screate_simple(3, count, NULL);
            assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, y) >= 0);
            H5Sclose(ms), H5Sclose(fs), H5Dclose(ds);
            assert_memory_equal(x, y, sizeof(float) * N * d);
        }
        dump_close(&D);
        free(x), free(y);
    }
}

// synth -> analyze on a GQA dump; the decomposition finds the planted vertical keys and slash.
static void test_end_to_end_planted(void **state) {
    char dump_p[300], res[300], cmd[1200], err[4096];
    const int64_t N = 3000;
    snprintf(dump_p, sizeof dump_p, "%s/e2e.h5", dir);
    snprintf(res, sizeof res, "%s/e2e-results.h5", dir);
    synth_params p = {.N = N, .layers = 2, .q_heads = 4, .kv_heads = 2, .d = 64, .theta = 5e5, .seed = 3, .values = 1};
    skel_err e;
    assert_int_equal(synth_write(dump_p, &p, &e), 0);
    snprintf(cmd, sizeof cmd, "%s info %s", skel, dump_p);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "%s analyze %s -o %s --layers 1 --heads 0,3 --block 32 --quiet", skel, dump_p, res);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    // the CSV beside the results: a header and one row per analysed head
    char csv[300], line[1024];
    snprintf(csv, sizeof csv, "%s/e2e-results.csv", dir);
    FILE *f = fopen(csv, "r");
    assert_non_null(f);
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (rows++ == 0) continue;
        char *c = line;  // output_rel_error is column 16: with values it is measured
        for (int col = 0; col < 15; col++) c = strchr(c, ',') + 1;
        double err = strtod(c, NULL);
        assert_true(err > 0 && err < 1);
    }
    fclose(f);
    assert_int_equal(rows, 3);

    hid_t file = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    for (int t = 0; t < 2; t++) {
        int h = t ? 3 : 0, kvh = h / 2;
        char name[128];
        float *v = malloc(sizeof(float) * N), *s = malloc(sizeof(float) * N);
        snprintf(name, sizeof name, "/layers/1/heads/%d/v", h);
        hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
        assert_true(ds >= 0);
        H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(ds);
        snprintf(name, sizeof name, "/layers/1/heads/%d/s", h);
        ds = H5Dopen2(file, name, H5P_DEFAULT);
        H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
        H5Dclose(ds);
        // every planted vertical key is among the 12 largest v_j (8 verticals + 4 sinks)
        int64_t vert[8];
        synth_vertical_keys(&p, 1, kvh, vert);
        for (int a = 0; a < 8; a++) {
            int larger = 0;
            for (int64_t j = 0; j < N; j++) larger += v[j] > v[vert[a]];
            if (larger >= 12) fprintf(stderr, "head %d: vertical key %lld has rank %d\n", h, (long long)vert[a], larger);
            assert_true(larger < 12);
        }
        // the slash: s near the planted offset (within 4 tokens: the fitted Fourier series is not
        // perfectly sharp) is in the top 1% of all offsets beyond the local window
        int64_t m0 = synth_slash_offset(&p, kvh), above = 0;
        float peak = -INFINITY;
        for (int64_t m = m0 - 4; m <= m0 + 4; m++) peak = s[m] > peak ? s[m] : peak;
        for (int64_t m = 200; m < N; m++) above += s[m] > peak;
        if (above >= (N - 200) / 100) fprintf(stderr, "head %d: slash at %lld has rank %lld\n", h, (long long)m0, (long long)above);
        assert_true(above < (N - 200) / 100);
        free(v), free(s);
    }
    H5Fclose(file);
}

// Writes a valid dump then edits it with the HDF5 API into one bad case.
// Compares two CSV files field by field: the same rows and text, numbers within 2e-6 (the printed
// precision); the last `skip_tail` columns (timings) are not compared.
static void expect_same_csv(const char *a, const char *b, int skip_tail) {
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    assert_non_null(fa);
    assert_non_null(fb);
    char la[2048], lb[2048];
    int rows = 0;
    for (;;) {
        char *ra = fgets(la, sizeof la, fa), *rb = fgets(lb, sizeof lb, fb);
        assert_true((ra == NULL) == (rb == NULL));
        if (!ra) break;
        rows++;
        int nf = 1;
        for (char *c = la; *c; c++) nf += *c == ',';
        char *sa, *sb, *ta = strtok_r(la, ",\n", &sa), *tb = strtok_r(lb, ",\n", &sb);
        for (int c = 0; c < nf - skip_tail; c++) {
            assert_non_null(ta);
            assert_non_null(tb);
            char *ea, *eb;
            double xa = strtod(ta, &ea), xb = strtod(tb, &eb);
            if (*ea || *eb || ea == ta) assert_string_equal(ta, tb);
            else if (!(isnan(xa) && isnan(xb)) && fabs(xa - xb) > 2e-6) {
                fprintf(stderr, "%s row %d column %d: %s vs %s\n", a, rows, c + 1, ta, tb);
                fail();
            }
            ta = strtok_r(NULL, ",\n", &sa), tb = strtok_r(NULL, ",\n", &sb);
        }
    }
    fclose(fa), fclose(fb);
    assert_true(rows > 1);
}

// The pipeline (reader, device stage, host workers, writer) gives the same results with one host
// worker and with four: every report column but the timings, and the methods table, over two
// layers of GQA heads with values and sweeps.
static void test_workers_same_results(void **state) {
    char dump_p[300], cmd[1200], err[4096], a[300], b[300];
    snprintf(dump_p, sizeof dump_p, "%s/workers.h5", dir);
    synth_params p = {.N = 1500, .layers = 2, .q_heads = 4, .kv_heads = 2, .d = 64, .theta = 5e5, .seed = 5, .values = 1};
    skel_err e;
    assert_int_equal(synth_write(dump_p, &p, &e), 0);
    for (int w = 0; w < 2; w++) {
        snprintf(cmd, sizeof cmd, "%s analyze %s -o %s/workers-%d.h5 --block 32 --sweep --quiet --workers %d", skel,
                 dump_p, dir, w, w ? 4 : 1);
        assert_int_equal(run(cmd, err, sizeof err), 0);
    }
    snprintf(a, sizeof a, "%s/workers-0.csv", dir);
    snprintf(b, sizeof b, "%s/workers-1.csv", dir);
    expect_same_csv(a, b, 3);
    snprintf(a, sizeof a, "%s/workers-0_methods.csv", dir);
    snprintf(b, sizeof b, "%s/workers-1_methods.csv", dir);
    expect_same_csv(a, b, 0);
    // 2 layers x 4 heads: 8 report rows
    FILE *f = fopen(a, "r");
    int lines = 0;
    for (int c; (c = fgetc(f)) != EOF;) lines += c == '\n';
    fclose(f);
    assert_int_equal(lines, 1 + 8 * 7);
}

static void make_bad(const char *path, const char *what) {
    make_synth(path, 300, 32, 2, 1, 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (!strcmp(what, "no-attr")) H5Adelete(f, "head_dim");
    else if (!strcmp(what, "no-k")) H5Ldelete(f, "/layers/0/k", H5P_DEFAULT);
    else if (!strcmp(what, "shape-k") || !strcmp(what, "int-q") || !strcmp(what, "nan") || !strcmp(what, "freq")) {
        const char *name = !strcmp(what, "shape-k") ? "/layers/0/k" : !strcmp(what, "freq") ? "/rope/inv_freq" : "/layers/0/q";
        H5Ldelete(f, name, H5P_DEFAULT);
        hsize_t dk[3] = {1, 299, 32}, dq[3] = {2, 300, 32}, df[1] = {17};
        hid_t sp = !strcmp(what, "shape-k") ? H5Screate_simple(3, dk, NULL)
                   : !strcmp(what, "freq")  ? H5Screate_simple(1, df, NULL)
                                            : H5Screate_simple(3, dq, NULL);
        hid_t t = !strcmp(what, "int-q") ? H5T_STD_I32LE : !strcmp(what, "freq") ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
        hid_t d = H5Dcreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        size_t n = !strcmp(what, "shape-k") ? 299 * 32 : !strcmp(what, "freq") ? 17 : 2 * 300 * 32;
        double *buf = calloc(n, sizeof(double));
        for (size_t i = 0; i < n; i++) buf[i] = 0.01 * (double)(i % 97);
        if (!strcmp(what, "nan")) buf[1 * 300 * 32 + 123 * 32 + 5] = NAN;  // head 1, token 123, dim 5
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
        H5Dclose(d);
        H5Sclose(sp);
    } else if (!strcmp(what, "odd-d")) {
        hid_t a = H5Aopen(f, "head_dim", H5P_DEFAULT);
        long long v = 31;
        H5Awrite(a, H5T_NATIVE_LLONG, &v);
        H5Aclose(a);
    }
    H5Fclose(f);
}

static void test_bad_input(void **state) {
    char p[300], cmd[1200], res[300];
    snprintf(res, sizeof res, "%s/out.h5", dir);
#define ANALYZE(path, extra) snprintf(cmd, sizeof cmd, "%s analyze %s -o %s --quiet %s", skel, path, res, extra)

    ANALYZE("/nonexistent/dump.h5", "");
    expect_error(cmd, "/nonexistent/dump.h5", "No such file");

    snprintf(p, sizeof p, "%s/text.h5", dir);
    FILE *f = fopen(p, "w");
    fputs("this is not an HDF5 file\n", f);
    fclose(f);
    ANALYZE(p, "");
    expect_error(cmd, p, "not an HDF5 file");

    // truncated: the first half of a valid dump
    char good[300];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    make_synth(good, 2000, 64, 2, 1, 0);
    snprintf(p, sizeof p, "%s/trunc.h5", dir);
    snprintf(cmd, sizeof cmd, "head -c $(( $(stat -c %%s %s) / 2 )) %s > %s", good, good, p);
    assert_int_equal(system(cmd), 0);
    ANALYZE(p, "");
    expect_error(cmd, p, NULL);

    struct {
        const char *what, *n1, *n2, *extra;
    } cases[] = {
        {"no-attr", "missing attribute 'head_dim'", NULL, ""},
        {"no-k", "/layers/0/k", "missing dataset", ""},
        {"shape-k", "/layers/0/k", "shape mismatch", ""},
        {"freq", "/rope/inv_freq", "shape mismatch", ""},
        {"odd-d", "head_dim = 31 is odd", NULL, ""},
        {"int-q", "/layers/0/q", "unsupported dtype", ""},
        {"nan", "/layers/0/q", "NaN at token 123, dim 5", "--sink 16 --local 16"},
        {"ok", "too small for --sink 200 + --local 200", NULL, "--sink 200 --local 200"},
        {"ok", "/layers/7", "not present", "--layers 7"},
        {"ok", "head 5 not present", NULL, "--heads 5"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(p, sizeof p, "%s/bad-%s.h5", dir, cases[c].what);
        make_bad(p, cases[c].what);
        ANALYZE(p, cases[c].extra);
        expect_error(cmd, p, cases[c].n1);
        if (cases[c].n2) expect_error(cmd, cases[c].n1, cases[c].n2);
    }

    // flags out of range, checked before any file is read
    const char *flags[][2] = {{"--block 48", "--block 48"}, {"--block 512", "--block 512"}, {"--eps 1.5", "--eps 1.5"},
                              {"--eps 0", "--eps 0"},       {"--budget 0", "--budget 0"},   {"--budget 1.2", "--budget 1.2"}};
    for (int c = 0; c < 6; c++) {
        ANALYZE(good, flags[c][0]);
        expect_error(cmd, flags[c][1], "must be");
    }

    // an output that cannot be written leaves no file behind and names the path
    snprintf(cmd, sizeof cmd, "%s analyze %s -o /nonexistent/dir/r.h5 --quiet --sink 16 --local 16", skel, good);
    expect_error(cmd, "/nonexistent/dir/r.h5", "cannot create");

    // a failed run never destroys an earlier result
    ANALYZE(good, "--sink 16 --local 16 --heads 0");
    char err[4096];
    assert_int_equal(run(cmd, err, sizeof err), 0);
    struct stat before, after;
    assert_int_equal(stat(res, &before), 0);
    snprintf(p, sizeof p, "%s/bad-nan.h5", dir);
    ANALYZE(p, "--sink 16 --local 16");
    expect_error(cmd, p, "NaN");
    assert_int_equal(stat(res, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtime, after.st_mtime);
}

// Progress goes to stderr per head with an ETA when stderr is a terminal (here a pseudo-terminal
// from script(1)), and --quiet silences it; into a pipe nothing is printed.
static void test_progress_on_terminal(void **state) {
    if (system("command -v script >/dev/null 2>&1") != 0) {
        fprintf(stderr, "    script(1) not installed: progress on a terminal not checked\n");
        skip();
    }
    char cmd[1500], log[300], err[4096];
    snprintf(log, sizeof log, "%s/pty.log", dir);
    const char *flags[2] = {"", "--quiet"};
    for (int t = 0; t < 2; t++) {
        snprintf(cmd, sizeof cmd,
                 "script -qec \"%s analyze data/sample-smollm2-austen-1792.h5 -o %s/pty.h5 --layers 9 --heads 0-2 "
                 "--no-methods %s\" %s > /dev/null",
                 skel, dir, flags[t], log);
        assert_int_equal(system(cmd), 0);
        FILE *f = fopen(log, "r");
        assert_non_null(f);
        size_t n = fread(err, 1, sizeof err - 1, f);
        err[n] = 0;
        fclose(f);
        int shown = strstr(err, "[1/3] layer 9 head 0") && strstr(err, "ETA") && strstr(err, "[3/3] done in");
        assert_int_equal(shown, t == 0);
    }
    snprintf(cmd, sizeof cmd, "%s analyze data/sample-smollm2-austen-1792.h5 -o %s/pipe.h5 --layers 9 --heads 0 --no-methods",
             skel, dir);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    assert_string_equal(err, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_f16_f32_gqa),
        cmocka_unit_test(test_reader_chunks_vs_hdf5),
        cmocka_unit_test(test_end_to_end_planted),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_workers_same_results),
        cmocka_unit_test(test_progress_on_terminal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
