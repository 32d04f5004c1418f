#!/bin/sh
# rows_whatif.sh [N]: one GPU call that says what rows_kernel's time is made of: timing-only copies of
# cuda/decomp.cu (results wrong, never tested) with one phase of rows_kernel removed, each timed by ncu
# (rows_kernel alone, real clocks) against the tree:
#   nosplit  split_raw returns at once (the B tiles keep stale values: no max, scale, split or stores)
#   noepi    no interior sums and no log-sum-exp on the window and sink tiles (the mma still run)
#   nomma    no mma_tile_split on any tile (the epilogues read stale accumulators)
# What a variant takes off is an upper bound on what removing that phase's work could give (e.g. keys
# split once, outside rows_kernel, for nosplit). Logs under $OUT (./gpu-out elsewhere).
N=${1:-131072}
OUT=${OUT:-gpu-out}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build/ab && touch build/.deps
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
python3 - <<'PY'
import os
s = open('cuda/decomp.cu').read()
def variant(name, pairs):
    t = s
    for old, new in pairs:
        assert t.count(old) >= 1, (name, old)
        t = t.replace(old, new)
    os.makedirs('bench/%s.tmp' % name, exist_ok=True)
    open('bench/%s.tmp/decomp.cu' % name, 'w').write('// timing experiment (%s): results wrong\n' % name + t)
variant('nosplit', [('''    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, p = lane % LPR;
#pragma unroll
    for (int ps = 0; ps < PASSES; ps++) {''', '''    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, p = lane % LPR;
    if (nvalid > -1000000000) return;
#pragma unroll
    for (int ps = 0; ps < PASSES; ps++) {''')])
variant('noepi', [('            if (any_in)\n', '            if (false && any_in)\n'),
                  ('            if (any_win)\n', '            if (false && any_win)\n'),
                  ('        for (int h = 0; h < 2; h++) lse_tile(lm[h], ll[h], acc, h, qinv[h] * c2, 0.f, sinv, [=](int w) { return w < ns; });',
                   '        if (ns < -1000000000) for (int h = 0; h < 2; h++) lse_tile(lm[h], ll[h], acc, h, qinv[h] * c2, 0.f, sinv, [=](int w) { return w < ns; });')])
variant('nomma', [('            mma_tile_split<DP>(acc, qh, ql, Bh, Bl);\n', '            if (N < 0) mma_tile_split<DP>(acc, qh, ql, Bh, Bl);\n'),
                  ('        mma_tile_split<DP>(acc, qh, ql, Bh, Bl);\n', '        if (N < 0) mma_tile_split<DP>(acc, qh, ql, Bh, Bl);\n')])
PY
make -j16 build/gpu_decomp_time >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/gpu_decomp_time build/ab/dt_tree && cp build/cuda/decomp.o build/ab/decomp_tree.o
names=tree
for n in nosplit noepi nomma; do  # compiled side by side, linked in turn
    nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda $hdf5 -c "bench/$n.tmp/decomp.cu" -o "build/ab/decomp_$n.o" >"$OUT/build_$n.log" 2>&1 &
done
wait
for n in nosplit noepi nomma; do
    [ -s "build/ab/decomp_$n.o" ] && cp "build/ab/decomp_$n.o" build/cuda/decomp.o && touch build/cuda/decomp.o &&
        make build/gpu_decomp_time >>"$OUT/build_$n.log" 2>&1 || { tail -20 "$OUT/build_$n.log"; continue; }
    cp build/gpu_decomp_time "build/ab/dt_$n" && names="$names $n"
done
cp build/ab/decomp_tree.o build/cuda/decomp.o && touch build/cuda/decomp.o && make build/gpu_decomp_time >>"$OUT/build.log" 2>&1
for n in $names; do
    ./build/ab/dt_$n "$N" 2>&1 | sed "s/^/$n: /"
    timeout 60 ncu --clock-control none --kernel-name regex:"^rows_kernel" --metrics gpu__time_duration.sum --launch-count 2 \
        ./build/ab/dt_$n "$N" >"$OUT/ncu_rows_$n.log" 2>&1
    echo "$n rows_kernel us: $(grep gpu__time_duration "$OUT/ncu_rows_$n.log" | awk '{print $NF}' | tr '\n' ' ')"
done
