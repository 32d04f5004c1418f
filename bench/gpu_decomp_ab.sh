#!/bin/sh
# gpu_decomp_ab.sh [SIZES]: one GPU call for an A/B of the decomposition: cuda/decomp.cu's default
# build (decomp3's) against -DDECOMP4=1 (decomp4's tiled Cholesky and CUDA graph, cuda/NOTES.md),
# logs under $OUT (./gpu-out elsewhere): the Cholesky workbench (bench/chol_ab.cu), gpu_test and
# memcheck of the DECOMP4 build, then the decomposition alone (tests/gpu_decomp_time.c): default,
# DECOMP4, and DECOMP4 launched without its graph (SKEL_DECOMP_NOGRAPH=1), in turn, twice; last the
# DECOMP4 build's kernel durations under ncu at 128K. The tree is left with the default build.
OUT=${OUT:-gpu-out}
SIZES=${1:-8192,32768,131072}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build && touch build/.deps
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda bench/chol_ab.cu -o build/chol_ab >"$OUT/build_chol.log" 2>&1 || { tail -20 "$OUT/build_chol.log"; exit 1; }
./build/chol_ab >"$OUT/chol_ab.log" 2>&1; cat "$OUT/chol_ab.log"
make -j16 build/gpu_test build/gpu_decomp_time >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/gpu_decomp_time build/dt_base && cp build/cuda/decomp.o build/decomp_base.o
nvcc -O3 -arch=sm_90 -std=c++17 -Isrc $hdf5 -DDECOMP4=1 -c cuda/decomp.cu -o build/cuda/decomp.o >>"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
make build/gpu_test build/gpu_decomp_time >>"$OUT/build.log" 2>&1 && cp build/gpu_decomp_time build/dt_d4
./build/gpu_test >"$OUT/gpu_test.log" 2>&1; echo "gpu_test (DECOMP4) rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test.log" | head -20
compute-sanitizer --tool memcheck ./build/gpu_test --quick >"$OUT/sanitizer.log" 2>&1
echo "memcheck (DECOMP4) rc=$?"; grep -E "ERROR SUMMARY|checks failed" "$OUT/sanitizer.log"
for r in 1 2; do
    echo "== default (decomp3)"; ./build/dt_base "$SIZES"
    echo "== DECOMP4"; ./build/dt_d4 "$SIZES"
    echo "== DECOMP4, no graph"; SKEL_DECOMP_NOGRAPH=1 ./build/dt_d4 "$SIZES"
done >"$OUT/decomp_ab.log" 2>&1; cat "$OUT/decomp_ab.log"
timeout 150 ncu --metrics gpu__time_duration.sum --launch-count 45 ./build/dt_d4 131072 >"$OUT/ncu_decomp.log" 2>&1
echo "ncu rc=$?"; grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" "$OUT/ncu_decomp.log" | sed 's/(.*//; s/ \+/ /g' | paste - - | head -45
cp build/decomp_base.o build/cuda/decomp.o && touch build/cuda/decomp.o && make build/gpu_test build/gpu_decomp_time >>"$OUT/build.log" 2>&1
