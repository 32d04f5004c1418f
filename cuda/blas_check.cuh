// blas_check.cuh: cuBLAS calls that fail are internal errors, as CUDA_CHECK's are: file, line and
// statement, then abort.
#ifndef SKEL_BLAS_CHECK_CUH
#define SKEL_BLAS_CHECK_CUH

#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>

#define CUBLAS_CHECK(stmt)                                                                                \
    do {                                                                                                  \
        cublasStatus_t st_ = (stmt);                                                                      \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                               \
            fprintf(stderr, "cuBLAS error at %s:%d: %s: status %d\n", __FILE__, __LINE__, #stmt, (int)st_); \
            abort();                                                                                      \
        }                                                                                                 \
    } while (0)

#endif
