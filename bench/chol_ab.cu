// chol_ab.cu: workbench for the ridge solve of the decomposition (cuda/chol.cuh): checks the tiled
// kernel against a long double Cholesky on the host, then times it with CUDA events (back-to-back
// launches, median of 5 batches of 100). decomp3's one-CTA right-looking kernel, which it replaced,
// measured 291.8 us at n = 256 here (bench/gpu-logs/chol_ab_decomp4.log). Problems as the decomposition's: G = A^T A, A (M = 40 n, n) with column scales
// over three decades (condition of G + ridge ~1e6), eps_r = 1e-3.
//   nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda bench/chol_ab.cu -o build/chol_ab && build/chol_ab
#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#include "chol.cuh"

#include "chol_ref.h"

int main() {
    const double eps_r = 1e-3;
    int fails = 0;
    for (int n : {256, 128, 252, 30}) {
        std::vector<double> G, b, x(n), xr;
        make_problem(G, b, n);
        ref_solve(xr, G, b, n, eps_r);
        double *dG, *db, *dx, *dL, *dM;
        int *dinfo, info;
        CUDA_CHECK(cudaMalloc(&dG, sizeof(double) * n * n));
        CUDA_CHECK(cudaMalloc(&db, sizeof(double) * n));
        CUDA_CHECK(cudaMalloc(&dx, sizeof(double) * n));
        CUDA_CHECK(cudaMalloc(&dL, sizeof(double) * chol::LG_DOUBLES));
        CUDA_CHECK(cudaMalloc(&dM, sizeof(double) * chol::MG_DOUBLES));
        CUDA_CHECK(cudaMalloc(&dinfo, sizeof(int)));
        CUDA_CHECK(cudaMemcpy(dG, G.data(), sizeof(double) * n * n, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(db, b.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaFuncSetAttribute(chol::chol_solve_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)chol::SMEM));
        auto run = [&] { chol::chol_solve_kernel<<<1, chol::THREADS, chol::SMEM>>>(dL, dM, dx, dinfo, dG, db, n, eps_r); };
        cudaEvent_t e0, e1;
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        CUDA_CHECK(cudaMemset(dx, 0, sizeof(double) * n));
        run();
        CUDA_CHECK(cudaGetLastError());
        CUDA_CHECK(cudaMemcpy(x.data(), dx, sizeof(double) * n, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(&info, dinfo, sizeof(int), cudaMemcpyDeviceToHost));
        const double err = rel_err(x, xr);
        std::vector<float> ms;
        for (int rep = 0; rep < 5; rep++) {
            CUDA_CHECK(cudaEventRecord(e0));
            for (int it = 0; it < 100; it++) run();
            CUDA_CHECK(cudaEventRecord(e1));
            CUDA_CHECK(cudaEventSynchronize(e1));
            float t;
            CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
            ms.push_back(t * 10);  // us per launch
        }
        std::sort(ms.begin(), ms.end());
        const bool ok = info == 0 && err < 1e-9;
        fails += !ok;
        printf("n = %3d tiled (chol.cuh) max|x - ref| / max|ref| %.2e info %d  %7.1f us per solve  %s\n", n, err, info,
               ms[2], ok ? "ok" : "FAIL");
        cudaFree(dG), cudaFree(db), cudaFree(dx), cudaFree(dL), cudaFree(dM), cudaFree(dinfo);
    }
    printf("chol_ab: %d failed\n", fails);
    return fails != 0;
}
