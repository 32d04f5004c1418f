// test_blas_core.c: OpenBLAS's kernel choice (blas_core.h): the decision table, and on this machine
// that a program starting with blas_core_fix runs on kernels the CPU supports (where OpenBLAS did not
// know the CPU, as on an Emerald Rapids VM with 0.3.21, this test re-executes itself to get there).
#include <stdlib.h>
#include <string.h>

#include "blas_core.h"
#include "testutil.h"

char *openblas_get_corename(void);
char *openblas_get_config(void);

static void expect(const char *chosen, int avx512, int avx2, const char *want) {
    const char *got = blas_core_upgrade(chosen, avx512, avx2);
    if (!want) assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void test_table(void **state) {
    (void)state;
    expect("Prescott", 1, 1, "SkylakeX");  // the fallback for an unknown Intel model
    expect("prescott", 1, 1, "SkylakeX");  // OpenBLAS's names are matched without case
    expect("Prescott", 0, 1, "Haswell");
    expect("Core2", 0, 1, "Haswell");
    expect("Nehalem", 1, 1, "SkylakeX");
    expect("Sandybridge", 0, 1, "Haswell");  // AVX without AVX2 kernels
    expect("Bulldozer", 0, 1, "Haswell");
    expect("Prescott", 0, 0, NULL);  // nothing better to ask for
    expect("Haswell", 1, 1, NULL);   // a core with AVX2 kernels stays (OpenBLAS knew the CPU)
    expect("SkylakeX", 1, 1, NULL);
    expect("Cooperlake", 1, 1, NULL);
    expect("SapphireRapids", 1, 1, NULL);
    expect("Zen", 0, 1, NULL);
    expect(NULL, 1, 1, NULL);
}

// This process started with blas_core_fix (main): its OpenBLAS kernels are those the CPU allows,
// unless the user chose them.
static void test_loaded_core(void **state) {
    (void)state;
    const char *core = openblas_get_corename();
    assert_non_null(core);
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *user = getenv("SKEL_TEST_USER_CORETYPE");  // set by main before a user's own choice
    print_message("OpenBLAS core %s (CPU: avx512 %d, avx2 %d; OPENBLAS_CORETYPE %s)\n", core, avx512, avx2,
                  getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
    // (a build for one core, without DYNAMIC_ARCH, keeps its kernels whatever the variable says)
    if (!user && strstr(openblas_get_config(), "DYNAMIC_ARCH")) assert_null(blas_core_upgrade(core, avx512, avx2));
}

int main(int argc, char **argv) {
    (void)argc;
    // a user's OPENBLAS_CORETYPE is kept as it is: note it before blas_core_fix can set its own
    if (getenv("OPENBLAS_CORETYPE") && !getenv("SKEL_TEST_REEXEC")) setenv("SKEL_TEST_USER_CORETYPE", "1", 1);
    setenv("SKEL_TEST_REEXEC", "1", 1);
    blas_core_fix(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_loaded_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
