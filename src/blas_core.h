// blas_core.h: OpenBLAS's kernel choice. OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its
// kernels from the CPU model when it loads; a model it does not know (e.g. a newer Xeon behind a
// VM's generic name) gets its Prescott (SSE3) kernels, and SGEMM runs ~2.5x slower than the CPU
// allows (the model run of `skel dump`: 4x). OPENBLAS_CORETYPE overrides the choice, but only
// before OpenBLAS loads.
#ifndef SKEL_BLAS_CORE_H
#define SKEL_BLAS_CORE_H

// The core type to ask for when OpenBLAS chose `chosen` on a CPU with (has_avx512: AVX-512 F, BW,
// VL, DQ; has_avx2: AVX2 and FMA), or NULL to keep it: "SkylakeX" or "Haswell" where `chosen` is
// one of OpenBLAS's x86 cores without AVX2 (Prescott, Core2, .., Sandybridge, Bulldozer) and the CPU
// has more.
const char *blas_core_upgrade(const char *chosen, int has_avx512, int has_avx2);

// Where OPENBLAS_CORETYPE is unset, OpenBLAS is a DYNAMIC_ARCH build and blas_core_upgrade says so
// for this CPU: sets it and runs this program again (execv of /proc/self/exe, the same arguments), so that OpenBLAS loads with it.
// Returns when there is nothing to do, or when the exec failed (the program then goes on as it is).
void blas_core_fix(char **argv);

#endif
