#!/bin/sh
# gpu_session.sh: one call on the GPU machine: build, gpu_test, (optionally) memcheck, gpu_bench and
# ncu, logs under $OUT (the device tool's output folder; ./gpu-out elsewhere).
#   bench/gpu_session.sh [test] [memcheck] [bench SIZES|full] [ncu N] [ncudec N] [nsys N] [sass]
#                        [variant FLAG N] [base FILE N] [ncustall N]
#   VARIANT_TEST=quick: variants run gpu_test --quick; VARIANT_ARCH: their nvcc target (default -arch=sm_90)
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" build && touch build/.deps
make -j16 bin/skel build/gpu_test build/gpu_bench >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
export PATH=$PATH:/usr/local/cuda/bin
while [ $# -gt 0 ]; do
    case $1 in
    test) ./build/gpu_test >"$OUT/gpu_test.log" 2>&1; echo "gpu_test rc=$?"
          grep -E "FAIL|checks failed" "$OUT/gpu_test.log" | head -20 ;;
    memcheck) compute-sanitizer --tool memcheck ./build/gpu_test --quick >"$OUT/sanitizer.log" 2>&1
          echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|checks failed" "$OUT/sanitizer.log" ;;
    bench) shift
          if [ "$1" = full ]; then ./build/gpu_bench >"$OUT/bench.log" 2>&1
          else ./build/gpu_bench --sizes "$1" --no-e2e >"$OUT/bench.log" 2>&1; fi
          echo "gpu_bench rc=$?"; grep -A12 "exact ms" "$OUT/bench.log"; grep "analyze --device" "$OUT/bench.log" ;;
    ncu) shift
          timeout 240 ncu --kernel-name regex:'pass|decomp|mask' --launch-skip 0 --launch-count 2 \
              --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
              --section LaunchStats ./build/gpu_bench --sizes "$1" --no-e2e >"$OUT/ncu.log" 2>&1
          echo "ncu rc=$?"; grep -E "exact_pass|decomp|mask_|Duration|Achieved Occupancy|Registers Per|Issue Slots Busy|Compute \(SM\) Throughput|L2 Cache Throughput|Memory Throughput" "$OUT/ncu.log" | head -60 ;;
    ncustall) shift  # both exact passes: stall reasons per issued instruction, pipe use, shared-memory wavefronts
          timeout 240 ncu --kernel-name regex:'exact_pass' --launch-count 2 \
              --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active$,smsp__inst_executed.sum,smsp__inst_executed_op_shared_atom.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_atom.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_atom.sum,l1tex__t_sectors_pipe_lsu_mem_local_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_local_op_st.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum' \
              ./build/gpu_bench --sizes "$1" --no-e2e >"$OUT/ncu_stall.log" 2>&1
          echo "ncustall rc=$?"; grep -E "exact_pass|stalled|pipe_|time_duration|shared|issue_active" "$OUT/ncu_stall.log" | awk '$NF != "0" && $NF != "0.00"' | head -90 ;;
    ncudec) shift  # the decomposition's kernels, durations only (the warm-up call)
          timeout 200 ncu --metrics gpu__time_duration.sum --launch-count 60 \
              --kernel-name regex:'unrope|colsum|scan|rows_kernel|gram|short|lse_|sample|uk_|s_kernel|scalars|vh_|block_vectors|mask_kernel|gemm|gemv|chol' \
              ./build/gpu_bench --sizes "$1" --no-e2e >"$OUT/ncu_decomp.log" 2>&1
          echo "ncudec rc=$?"; grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" "$OUT/ncu_decomp.log" | sed 's/(.*//; s/ \+/ /g' | paste - - | head -40 ;;
    nsys) shift
          timeout 200 nsys profile -o /tmp/prof --force-overwrite true --stats=false ./build/gpu_bench --sizes "$1" --no-e2e >"$OUT/nsys_run.log" 2>&1
          nsys stats --report cuda_gpu_kern_sum --format csv /tmp/prof.nsys-rep >"$OUT/nsys_kern.csv" 2>&1
          echo "nsys rc=$?"; cut -d, -f1-3,9 "$OUT/nsys_kern.csv" | head -40 ;;
    variant) shift  # rebuild with -D$1=1 (an experiment), then gpu_test, bench at $2, ncu and sass of it
          touch cuda/*.cu
          make -j16 NVCCFLAGS="-O3 ${VARIANT_ARCH:--arch=sm_90} -std=c++17 -Isrc -D$1=1" bin/skel build/gpu_test build/gpu_bench >"$OUT/build_$1.log" 2>&1 || { tail -20 "$OUT/build_$1.log"; exit 1; }
          ./build/gpu_test ${VARIANT_TEST:+--$VARIANT_TEST} >"$OUT/gpu_test_$1.log" 2>&1; echo "gpu_test ($1) rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test_$1.log" | head
          ./build/gpu_bench --sizes "$2" --no-e2e >"$OUT/bench_$1.log" 2>&1; grep -A6 "exact ms" "$OUT/bench_$1.log"
          cuobjdump -sass build/cuda/exact.o >"$OUT/exact_$1.sass" 2>&1; shift ;;
    base) shift  # the benchmark at $2 with another cuda/exact.cu ($1: the baseline of an A/B); the tree's is put back
          cp cuda/exact.cu /tmp/exact_tree.cu && cp "$1" cuda/exact.cu
          make -j16 build/gpu_bench >"$OUT/build_base.log" 2>&1 || { tail -20 "$OUT/build_base.log"; exit 1; }
          ./build/gpu_bench --sizes "$2" --no-e2e >"$OUT/bench_base.log" 2>&1; echo "base: $1"; grep -A6 "exact ms" "$OUT/bench_base.log"
          cp /tmp/exact_tree.cu cuda/exact.cu; shift ;;
    sass) cuobjdump -sass build/cuda/exact.o >"$OUT/exact.sass" 2>&1
          echo "sass: $(grep -c 'LDL\|STL' "$OUT/exact.sass") local-memory instructions in exact.o" ;;
    esac
    shift
done
