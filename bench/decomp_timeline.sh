#!/bin/sh
# decomp_timeline.sh [SIZES] [CALL]: one GPU call that shows when each kernel of the decomposition and the
# mask ran, as the graph runs them (there is no nsys on the device machine): a timing-only copy of
# cuda/decomp.cu (and chol.cuh) whose every kernel records the global timer at its first CTA's start
# (atomicMin) and at each warp's end (atomicMax), linked into gpu_decomp_time, which prints the table at
# its CALL-th call of each size (default 12: after the warm-up, in the middle of the 21 timed calls).
# TL_SRC=DIR: that folder's decomp.cu and chol.cuh (an A/B base, bench/*.tmp) instead of cuda/'s.
# The probes cost an atomic a warp; the times are for reading the order and the gaps, not for A/B.
#   sh bench/decomp_timeline.sh 131072
OUT=${OUT:-gpu-out}
SIZES=${1:-131072}
export DECOMP_TL_CALL=${2:-12}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build/tl && touch build/.deps
hdf5=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
make -j16 build/gpu_decomp_time >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
link=$(make -s -n -W tests/gpu_decomp_time.c build/gpu_decomp_time | grep ' -o build/gpu_decomp_time')
cp cuda/*.cuh build/tl/
[ -n "$TL_SRC" ] && cp "$TL_SRC"/*.cuh build/tl/
python3 - <<'PY' || exit 1
import os, re
src = os.environ.get('TL_SRC', 'cuda')
names = []
def probe(s):
    # after the opening brace of every __global__ function: an RAII probe with the kernel's id
    out, pos = [], 0
    for m in re.finditer(r'__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s*)?(?:void\s+)?(\w+)\s*\(', s):
        b = s.index('{', m.end())
        if m.start() < pos:
            continue
        # after a programmatic launch's wait (griddep_wait, griddep_launch): the kernel's start is then its work's
        w = re.match(r'(\s*(?://[^\n]*)?\n\s*griddep_(?:wait|launch)\(\);[^\n]*)+', s[b + 1:])
        if w:
            b += len(w.group(0))
        name = m.group(1)
        if name not in names:
            names.append(name)
        idx = '%d' % names.index(name)
        if name == 'scan_cols_kernel':  # two instances: the key sums' (double) and the Grams' (float)
            idx += ' + 40 * (sizeof(Tv) == 4)'
        out.append(s[pos:b + 1] + '\n    TLProbe tl_probe_(%s);' % idx)
        pos = b + 1
    out.append(s[pos:])
    return ''.join(out)
chol = probe(open(src + '/chol.cuh').read())
# the Cholesky's phases: each panel's start, the back substitution's, the end (thread 0)
chol = re.sub(r'(?m)^    for \(int K = 0; K < nt; K\+\+\) \{\n', lambda m: m.group(0) + '        if (tid == 0 && K < 16) tl_chol[K] = tl_now();\n', chol, count=1)
chol = chol.replace('    load_l(nt - 1);\n', '    if (tid == 0) tl_chol[16] = tl_now();\n    load_l(nt - 1);\n', 1)
chol = chol.replace('    if (tid == 0) *info = bad;\n', '    if (tid == 0) *info = bad, tl_chol[17] = tl_now();\n', 1)
assert chol.count('tl_chol') == 3
s = open(src + '/decomp.cu').read()
head = r'''
#include <stdio.h>
#include <stdlib.h>
__device__ unsigned long long tl_buf[64][2], tl_chol[18];
__device__ __forceinline__ unsigned long long tl_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
struct TLProbe {
    int id;
    __device__ TLProbe(int i) : id(i) {
        if (threadIdx.x == 0 && threadIdx.y == 0) atomicMin(&tl_buf[i][0], tl_now());
    }
    __device__ ~TLProbe() {
        if ((threadIdx.x & 31) == 0) atomicMax(&tl_buf[id][1], tl_now());
    }
};
'''
s = s.replace('#include "chol.cuh"', head + '#include "chol.cuh"', 1)
s = probe(s)
names += [''] * (names.index('scan_cols_kernel') + 40 - len(names)) + ['scan_cols_kernel<float>']
tab = 'static const char *tl_names[] = {' + ', '.join('"%s"' % n for n in names) + '};\n'
reset = '''{
        static unsigned long long init[64][2];
        for (int x = 0; x < 64; x++) init[x][0] = ~0ull, init[x][1] = 0;
        CUDA_CHECK(cudaMemcpyToSymbol(tl_buf, init, sizeof init));
    }
    CUDA_CHECK(cudaEventRecord(g->ev[0]));'''
s = s.replace('    CUDA_CHECK(cudaEventRecord(g->ev[0]));', '    ' + reset, 1)
dump = '''CUDA_CHECK(cudaEventRecord(g->ev[3]));
    {
        static int calls = 0;
        static int64_t lastN = -1;
        if (N != lastN) calls = 0, lastN = N;
        if (++calls == atoi(getenv("DECOMP_TL_CALL") ? getenv("DECOMP_TL_CALL") : "12")) {
            unsigned long long b[64][2], t0 = ~0ull;
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaMemcpyFromSymbol(b, tl_buf, sizeof b));
            const int nk = (int)(sizeof tl_names / sizeof *tl_names);
            for (int x = 0; x < nk; x++) if (b[x][1] && b[x][0] < t0) t0 = b[x][0];
            int ord[64], n = 0;
            for (int x = 0; x < nk; x++) if (b[x][1]) ord[n++] = x;
            for (int a = 1; a < n; a++) for (int c = a; c > 0 && b[ord[c]][0] < b[ord[c - 1]][0]; c--) { int y = ord[c]; ord[c] = ord[c - 1]; ord[c - 1] = y; }
            printf("timeline N=%lld (us from the first kernel's start; a kernel launched twice spans both)\\n", (long long)N);
            for (int a = 0; a < n; a++) {
                const int x = ord[a];
                printf("  %-26s %8.1f %8.1f %8.1f\\n", tl_names[x], (b[x][0] - t0) / 1e3, (b[x][1] - t0) / 1e3, (b[x][1] - b[x][0]) / 1e3);
            }
            unsigned long long ch[18];
            CUDA_CHECK(cudaMemcpyFromSymbol(ch, tl_chol, sizeof ch));
            printf("  Cholesky phases (us from its start): panels");
            for (int x = 0; x < 8; x++) printf(" %.1f", (ch[x] - b[0][0]) / 1e3);
            printf(", back substitution %.1f, end %.1f\\n", (ch[16] - b[0][0]) / 1e3, (ch[17] - b[0][0]) / 1e3);
        }
    }'''
s = s.replace('CUDA_CHECK(cudaEventRecord(g->ev[3]));', dump, 1)
s = s.replace('namespace {', tab + 'namespace {', 1)
open('build/tl/chol.cuh', 'w').write(chol)
open('build/tl/decomp.cu', 'w').write(s)
print('probes:', ' '.join(names))
PY
nvcc -O3 -arch=sm_90 -std=c++17 -Ibuild/tl -Isrc -Icuda $hdf5 -c build/tl/decomp.cu -o build/tl/decomp.o >"$OUT/build_tl.log" 2>&1 ||
    { tail -20 "$OUT/build_tl.log"; exit 1; }
sh -c "$(echo "$link" | sed "s#build/libskel.a#build/tl/decomp.o build/libskel.a#; s#-o build/gpu_decomp_time#-o build/tl/dt_tl#")" >>"$OUT/build_tl.log" 2>&1 ||
    { tail -20 "$OUT/build_tl.log"; exit 1; }
./build/tl/dt_tl "$SIZES"
