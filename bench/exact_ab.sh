#!/bin/sh
# exact_ab.sh: same-call A/B of several builds of cuda/exact.cu on the GPU machine, cheaply: each
# build is one object (compiled in parallel up front, ~7 s each), linked into gpu_bench in turn and
# timed at N with --exact-only (SDPA in the first run only), in the order given; name one twice to
# see the spread. The tree's own build is put back at the end. Logs under $OUT (the device tool's
# output folder): build.log, ab.log (every run), gpu_test.log, ncu_stall.log.
#   bench/exact_ab.sh N NAME...
#     NAME: tree (cuda/exact.cu as it is), EXP_FLAG (the tree's with -DEXP_FLAG=1: an experiment
#     flag; several joined by '+', each FLAG or FLAG=VALUE: EXP_A+EXP_B=0), or the path of another
#     exact.cu (a baseline, e.g. an older commit's, put in the tree)
#   AB_TEST=1: gpu_test (full) on the tree's build first; AB_TEST=NAME: on NAME's build, after its
#   first timing (a list: "1 NAME ..."). AB_NCU=1: ncu stall metrics of the tree's build at N last (as gpu_session.sh's
#   ncustall, on the exact pass alone); AB_NCU=NAME: of NAME's build.
OUT=${OUT:-gpu-out}
n=$1
shift
mkdir -p "$OUT" build/ab && touch build/.deps && rm -f build/ab/*
make -j16 bin/skel build/gpu_test build/gpu_bench >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
export PATH=$PATH:/usr/local/cuda/bin
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
i=0
for name in "$@"; do
    i=$((i + 1))
    case $name in
    tree) src=cuda/exact.cu def= ;;
    EXP_*) src=cuda/exact.cu def=$(echo "$name" | tr '+' '\n' | sed 's/^/-D/; /=/!s/$/=1/' | tr '\n' ' ') ;;
    *) src=$name def= ;;
    esac
    nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda $hdf5 $def -c "$src" -o build/ab/$i.o >>"$OUT/build.log" 2>&1 &
done
wait
cp build/cuda/exact.o build/ab/tree_saved.o
if echo " $AB_TEST " | grep -q " 1 "; then
    ./build/gpu_test >"$OUT/gpu_test.log" 2>&1
    echo "gpu_test rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test.log" | head -20
fi
sdpa= i=0
: >"$OUT/ab.log"
for name in "$@"; do
    i=$((i + 1))
    [ -f build/ab/$i.o ] || { echo "$i $name: compile failed (build.log)"; continue; }
    cp build/ab/$i.o build/cuda/exact.o && touch build/cuda/exact.o
    make build/gpu_bench >>"$OUT/build.log" 2>&1 || { echo "$i $name: link failed"; continue; }
    echo "== run $i: $name" >>"$OUT/ab.log"
    ./build/gpu_bench --sizes "$n" --exact-only $sdpa >>"$OUT/ab.log" 2>&1
    echo "$i $name: $(grep -A1 'exact ms' "$OUT/ab.log" | tail -1)"
    if echo " $AB_TEST " | grep -qF " $name " && ! grep -qxF "$name" build/ab/tested 2>/dev/null; then
        echo "$name" >>build/ab/tested
        make build/gpu_test >>"$OUT/build.log" 2>&1 && ./build/gpu_test >"$OUT/gpu_test_$i.log" 2>&1
        echo "gpu_test ($name) rc=$?"; grep -E "FAIL|checks failed" "$OUT/gpu_test_$i.log" | head -20
    fi
    [ "$name" = "$AB_NCU" ] && cp build/ab/$i.o build/ab/ncu_saved.o
    sdpa=--no-sdpa
done
if [ -n "$AB_NCU" ]; then
    ncu_o=build/ab/tree_saved.o
    [ "$AB_NCU" != 1 ] && ncu_o=build/ab/ncu_saved.o
    cp $ncu_o build/cuda/exact.o && touch build/cuda/exact.o && make build/gpu_bench >>"$OUT/build.log" 2>&1
    timeout 240 ncu --kernel-name regex:'exact_pass|qk_' --launch-count 4 \
        --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active$,smsp__inst_executed.sum,l1tex__t_sectors_pipe_lsu_mem_local_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_local_op_st.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum' \
        ./build/gpu_bench --sizes "$n" --exact-only --no-sdpa >"$OUT/ncu_stall.log" 2>&1
    echo "ncu rc=$?"; grep -E "exact_pass|stalled|pipe_|time_duration|issue_active|inst_executed.sum|local" "$OUT/ncu_stall.log" | awk '$NF != "0" && $NF+0 >= 0.05' | head -70
fi
cp build/ab/tree_saved.o build/cuda/exact.o && touch build/cuda/exact.o && make build/gpu_bench build/gpu_test >>"$OUT/build.log" 2>&1
