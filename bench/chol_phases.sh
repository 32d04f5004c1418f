#!/bin/sh
# chol_phases.sh: one GPU call that says where the ridge solve's time goes (cuda/chol.cuh: ~190-214 us
# at n = 256 on one SM in session 6, 110 us since session 7): bench/chol_ab.cu timed with
# timing-only copies of chol.cuh, each without one phase (results wrong: chol_ab reports FAIL for them,
# which is expected), against the tree's. Phases (session 7's kernel): nodiag (warp 0's factor of the
# diagonal tile with the inverse beside it), norky (warp 1's sum of the forward substitution's terms),
# noupd (the panel's update from the tiles on its left, DMMA), nox (X = P L_KK^-T, DMMA), noback (the
# back substitution). The run on session 6's kernel: bench/gpu-logs/s7_paths_chol_phases.log (186.7 us,
# 98 of it the diagonal factor). Logs under $OUT.
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
    'nodiag': lambda s: cut(s, '            double nxt = a[0];', '                    a[j + 1] = fma(-l, c2.y, a[j + 1]), v[j + 1] = fma(-v[p], c2.y, v[j + 1]);\n                }\n            }\n', ''),
    'norky': lambda s: cut(s, '            for (int J = 0; J < K; J++) {\n                const double *B', '            rk[lane] = (s[0] + s[1]) + (s[2] + s[3]);\n', '            rk[lane] = s[0];\n'),
    'noupd': lambda s: s.replace('            for (int J = 0; J < K; J++) mma_32x16(acc, tiles + slot[I][J] * TILE, tiles + slot[K][J] * TILE, c0);\n', ''),
    'nox': lambda s: s.replace('            mma_32x16(acc[0], P, Mt, 0);\n            mma_32x16(acc[1], P, Mt, 16);\n', ''),
    'noback': lambda s: cut(s, '    load_l(nt - 1);\n', '        __syncthreads();\n    }\n', ''),
}
for name, f in variants.items():
    t = f(s)
    assert t != s, name
    os.makedirs(f'bench/chol_{name}.tmp', exist_ok=True)
    open(f'bench/chol_{name}.tmp/chol.cuh', 'w').write(t)
PY
for v in tree nodiag norky noupd nox noback; do
    inc=; [ $v = tree ] || inc="-Ibench/chol_$v.tmp"
    nvcc -O3 -arch=sm_90 -std=c++17 $inc -Isrc -Icuda bench/chol_ab.cu -o build/chol_$v >"$OUT/build_chol_$v.log" 2>&1 || { echo "$v: build failed"; tail -5 "$OUT/build_chol_$v.log"; continue; }
    echo "== $v"; ./build/chol_$v | grep "n = 256"
done 2>&1 | tee "$OUT/chol_phases.log"
