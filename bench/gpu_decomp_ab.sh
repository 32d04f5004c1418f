#!/bin/sh
# gpu_decomp_ab.sh [SIZES] [BASE...]: one GPU call for an A/B of the decomposition: the tree's
# cuda/decomp.cu against each BASE, a folder holding another decomp.cu (and its headers, found beside it
# first), e.g. from a git revision with its cuda/*.cuh: `sh bench/ab_base.sh HEAD head` makes
# bench/head.tmp (*.tmp is ignored by git; pass it to the device tool's carry). Each is built into its
# own gpu_decomp_time (tests/gpu_decomp_time.c: the decomposition and mask alone, device events, median
# of 21), and all are timed in turn, twice, in the same call. Logs under $OUT (./gpu-out elsewhere).
# Options by environment:
#   AB_TEST=1     gpu_test and memcheck (--quick) of the tree (AB_TEST=base: neither, only AB_TEST_BASE's)
#   AB_TEST_BASE  also gpu_test of the first BASE (with AB_TEST_BASE=quick: --quick)
#   AB_CHOL=1     the Cholesky workbench (bench/chol_ab.cu) first
#   AB_NCU=1      kernel durations under ncu at the largest size, of the tree and of the first BASE
#   AB_NCU_CLOCK  ncu's --clock-control (default base; none = the clocks the timings run at)
#   GDT_D=64      every timing (and ncu) on d = 64 heads (gpu_decomp_time reads it)
# The tree's build is put back last.
OUT=${OUT:-gpu-out}
SIZES=${1:-8192,32768,131072}
[ $# -gt 0 ] && shift
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build/ab && touch build/.deps
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
LAST=$(echo "$SIZES" | tr , '\n' | tail -1)
if [ -n "$AB_CHOL" ]; then
    nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda bench/chol_ab.cu -o build/chol_ab >"$OUT/build_chol.log" 2>&1 || { tail -20 "$OUT/build_chol.log"; exit 1; }
    ./build/chol_ab >"$OUT/chol_ab.log" 2>&1; cat "$OUT/chol_ab.log"
fi
make -j16 build/gpu_test build/gpu_decomp_time >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/gpu_decomp_time build/ab/dt_tree && cp build/gpu_test build/ab/gt_tree && cp build/cuda/decomp.o build/ab/decomp_tree.o
names=tree
for b in "$@"; do
    n=$(basename "$b" .tmp)
    nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda $hdf5 -c "$b/decomp.cu" -o build/cuda/decomp.o >"$OUT/build_$n.log" 2>&1 &&
        make build/gpu_test build/gpu_decomp_time >>"$OUT/build_$n.log" 2>&1 || { tail -20 "$OUT/build_$n.log"; continue; }
    cp build/gpu_decomp_time "build/ab/dt_$n" && cp build/gpu_test "build/ab/gt_$n" && names="$names $n"
done
cp build/ab/decomp_tree.o build/cuda/decomp.o && touch build/cuda/decomp.o && make build/gpu_test build/gpu_decomp_time >>"$OUT/build.log" 2>&1
if [ -n "$AB_TEST" ]; then
    [ "$AB_TEST" = base ] || { ./build/ab/gt_tree >"$OUT/gpu_test_tree.log" 2>&1; echo "gpu_test (tree) rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test_tree.log" | head -20; }
    n=$(echo $names | cut -d' ' -f2)
    if [ -n "$AB_TEST_BASE" ] && [ "$n" != tree ]; then
        opt=; [ "$AB_TEST_BASE" = quick ] && opt=--quick
        ./build/ab/gt_$n $opt >"$OUT/gpu_test_$n.log" 2>&1; echo "gpu_test ($n $opt) rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test_$n.log" | head -20
    fi
    if [ "$AB_TEST" != base ]; then
        compute-sanitizer --tool memcheck ./build/ab/gt_tree --quick >"$OUT/sanitizer.log" 2>&1
        echo "memcheck (tree) rc=$?"; grep -E "ERROR SUMMARY|checks failed" "$OUT/sanitizer.log"
    fi
fi
for r in 1 2; do
    for n in $names; do echo "== $n"; ./build/ab/dt_$n "$SIZES"; done
done >"$OUT/decomp_ab.log" 2>&1; cat "$OUT/decomp_ab.log"
if [ -n "$AB_NCU" ]; then
    for n in $(echo $names | cut -d' ' -f1-2); do
        timeout 150 ncu --clock-control "${AB_NCU_CLOCK:-base}" --metrics gpu__time_duration.sum --launch-count 45 ./build/ab/dt_$n "$LAST" >"$OUT/ncu_decomp_$n.log" 2>&1
        echo "ncu ($n, $LAST) rc=$?"; grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" "$OUT/ncu_decomp_$n.log" | sed 's/(.*//; s/ \+/ /g' | paste - - | cut -c1-110 | head -45
    done
fi
