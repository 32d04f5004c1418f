#!/bin/sh
# decomp_whatif.sh [SIZES] [KERNELS]: one GPU call that says what each kernel adds to the decomposition's
# time as the streams run it: timing-only copies of cuda/decomp.cu (results wrong, never tested), each
# without every launch of one kernel, compiled in parallel, linked against build/libskel.a and
# timed against the tree (tests/gpu_decomp_time.c: device events, median of 21), all in turn, twice.
# tree - without_K is K's marginal cost: a kernel that runs beside another on its own stream adds less
# than its own time, one on the critical chain about all of it. (decomp_paths.sh asks the same of the
# two streams as wholes.) Logs under $OUT (./gpu-out elsewhere).
#   sh bench/decomp_whatif.sh 131072 "rows_kernel gram_kernel"
OUT=${OUT:-gpu-out}
SIZES=${1:-131072}
KS=${2:-"rows_kernel gram_kernel sample_rows_kernel unrope_sums_kernel lse_last_kernel ata_kernel chol_solve_kernel uk_kernel s_kernel short_rows_kernel"}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build/wi && touch build/.deps
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
make -j16 build/gpu_decomp_time >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/gpu_decomp_time build/wi/dt_tree
link=$(make -s -n -W tests/gpu_decomp_time.c build/gpu_decomp_time | grep ' -o build/gpu_decomp_time')
for k in $KS; do
    mkdir -p "build/wi/$k" && cp cuda/*.cuh "build/wi/$k/"
    python3 - "$k" <<'PY' || exit 1
import re, sys
k = sys.argv[1]
s = open('cuda/decomp.cu').read()
body = s.index('static void decomp_enqueue(')
n = 0
# every launch statement that names k (plain, templated or a conditional's branch), from the start of
# its line to the ';' that ends it
# (or a launch_pdl statement, decomp.cu's programmatic launches)
for m in reversed(list(re.finditer(r'^[^\n]*(?:\b' + re.escape(k) + r'\b[^\n]*<<<|launch_pdl\([^,]*, [\w:]*\b' + re.escape(k) + r'\b)', s[body:], re.M))):
    a = body + m.start()
    b = s.index(';\n', s.index('>>>(', a) if '<<<' in m.group(0) else a) + 2
    lead = re.match(r'\s*(else\s+if\s*\([^\n]*?\)\s*|if\s*\([^\n]*?\)\s*|else\s*)?', s[a:b]).group(0)
    s = s[:a] + lead + '(void)0;  // timing experiment\n' + s[b:]
    n += 1
if n == 0:
    sys.exit('decomp_whatif: no launch of %s' % k)
s = s.replace('if (info) return skel_fail', 'if (0 && info) return skel_fail')  # the solve's inputs may be garbage
open('build/wi/%s/decomp.cu' % k, 'w').write(s)
print('%s: %d launch(es) left out' % (k, n))
PY
    nvcc -O3 -arch=sm_90 -std=c++17 -Isrc -Icuda $hdf5 -c "build/wi/$k/decomp.cu" -o "build/wi/$k/decomp.o" >"$OUT/build_$k.log" 2>&1 &
done
wait
names=tree
for k in $KS; do
    [ -f "build/wi/$k/decomp.o" ] || { echo "$k: no object"; tail -5 "$OUT/build_$k.log"; continue; }
    # the variant's object before the library: the library's own decomp.o (every symbol of it then
    # defined) is not pulled in
    sh -c "$(echo "$link" | sed "s#build/libskel.a#build/wi/$k/decomp.o build/libskel.a#; s#-o build/gpu_decomp_time#-o build/wi/dt_$k#")" >>"$OUT/build_$k.log" 2>&1 &&
        names="$names $k"
done
for r in 1 2; do
    for n in $names; do printf '== %s: ' "$n"; ./build/wi/dt_$n "$SIZES" 2>&1 | tr '\n' ' '; echo; done
done >"$OUT/whatif.log" 2>&1
sed 's/ (min[^)]*)//g; s/, fit R^2 [-0-9.]*, predicted block sparsity [0-9.]*//g' "$OUT/whatif.log"
