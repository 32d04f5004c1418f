#!/bin/sh
# chol_phases.sh: one GPU call that says where the ridge solve's time goes (cuda/chol.cuh: ~190-214 us
# at n = 256 on one SM, against ~70 us estimated from its phases): bench/chol_ab.cu timed with
# timing-only copies of chol.cuh, each without one phase (results wrong: chol_ab reports FAIL for them,
# which is expected), against the tree's. Phases: nodiag (warp 0's factor of the diagonal tile),
# noinv (the tile's inverse and the forward substitution), noupd (the panel's update from the tiles on
# its left, DMMA), nox (X = P L^-T, DMMA), noback (the back substitution). Logs under $OUT.
OUT=${OUT:-gpu-out}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" build
python3 - <<'PY'
import os
s = open('cuda/chol.cuh').read()
def cut(src, a, b, repl):
    i = src.index(a); j = src.index(b, i) + len(b)
    return src[:i] + repl + src[j:]
variants = {
    'nodiag': lambda s: cut(s, '            double nxt = a[0];', '                    if (lane >= j) a[j] = fma(-a[p], ljp, a[j]);\n                }\n            }\n',
                           '            for (int p = 0; p < CT; p++) if (lane == p) invd[p] = 1.0;  // timing only\n'),
    'noinv': lambda s: cut(s, '        if (warp == 0 || (warp == 1 && lane == 0)) {', '        __syncthreads();\n        // X (I, K)',
                          '        __syncthreads();\n        // X (I, K)'),
    'noupd': lambda s: s.replace('            for (int J = 0; J < K; J++) mma_32x16(acc, tiles + slot[I][J] * TILE, tiles + slot[K][J] * TILE, c0);\n', ''),
    'nox': lambda s: s.replace('            if (task < ntask) mma_32x16(acc[u], tiles + slot[I][K] * TILE, Mt, 16 * (task & 1));\n', ''),
    'noback': lambda s: cut(s, '    load_l(nt - 1);\n', '        __syncthreads();\n    }\n', ''),
}
for name, f in variants.items():
    t = f(s)
    assert t != s, name
    os.makedirs(f'bench/chol_{name}.tmp', exist_ok=True)
    open(f'bench/chol_{name}.tmp/chol.cuh', 'w').write(t)
PY
for v in tree nodiag noinv noupd nox noback; do
    inc=; [ $v = tree ] || inc="-Ibench/chol_$v.tmp"
    nvcc -O3 -arch=sm_90 -std=c++17 $inc -Isrc -Icuda bench/chol_ab.cu -o build/chol_$v >"$OUT/build_chol_$v.log" 2>&1 || { echo "$v: build failed"; tail -5 "$OUT/build_chol_$v.log"; continue; }
    echo "== $v"; ./build/chol_$v | grep "n = 256"
done 2>&1 | tee "$OUT/chol_phases.log"
