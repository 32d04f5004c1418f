#!/bin/sh
# decomp_paths.sh [SIZES]: one GPU call that says which of the decomposition's two streams sets its
# time: timing-only copies of cuda/decomp.cu (results wrong, never tested) without the Cholesky's
# launch (nochol) and without the ridge chain (noridge: every s2 launch between the fork and the
# join), timed against the tree by gpu_decomp_ab.sh. If noridge takes ~X out of the total, the ridge
# chain is critical by X; nochol says how much of that is the one-SM Cholesky.
SIZES=${1:-32768,131072}
mkdir -p bench/nochol.tmp bench/noridge.tmp
python3 - <<'PY'
s = open('cuda/decomp.cu').read()
chol = 'chol::chol_solve_kernel<<<'
i = s.index(chol)
j = s.index(';\n', i) + 2
open('bench/nochol.tmp/decomp.cu', 'w').write(s[:i] + '(void)0;  // timing experiment: no Cholesky\n' + s[j:])
a = s.index("    // ------------------------------------------------------------ s2: u, its prefix sums and k's")
b = s.index('    CUDA_CHECK(cudaEventRecord(g->join, g->s2));')
open('bench/noridge.tmp/decomp.cu', 'w').write(s[:a] + '    // timing experiment: no ridge chain\n' + s[b:])
PY
sh bench/gpu_decomp_ab.sh "$SIZES" bench/nochol.tmp bench/noridge.tmp
