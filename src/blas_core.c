// blas_core.c: see blas_core.h.
#include "blas_core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void);  // OpenBLAS
char *openblas_get_config(void);

const char *blas_core_upgrade(const char *chosen, int has_avx512, int has_avx2) {
    // OpenBLAS's x86 core names without AVX2 kernels (its fallbacks for CPUs it does not know)
    static const char *const weak[] = {"Katmai",  "Coppermine", "Northwood", "Prescott",   "Banias",  "Atom",
                                       "Core2",   "Penryn",     "Dunnington", "Nehalem",   "Sandybridge",
                                       "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat",    "Bulldozer",
                                       "Piledriver", "Steamroller", "Excavator"};
    if (!chosen || !(has_avx512 || has_avx2)) return NULL;
    int is_weak = 0;
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++) is_weak |= !strcasecmp(chosen, weak[i]);
    if (!is_weak) return NULL;
    return has_avx512 ? "SkylakeX" : "Haswell";
}

void blas_core_fix(char **argv) {
#if defined(__x86_64__) || defined(__i386__)
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *cfg = openblas_get_config();
    if (!cfg || !strstr(cfg, "DYNAMIC_ARCH")) return;  // a build for one core: the variable would change nothing
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *want = blas_core_upgrade(openblas_get_corename(), avx512, avx2);
    if (!want || setenv("OPENBLAS_CORETYPE", want, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");  // the exec failed: go on with the kernels loaded
#else
    (void)argv;
#endif
}
