# Recall against density per method, one PNG per chosen head that skel analyze swept (--sweep):
# each method traced over its own knob (SparseSkeleton's budget, vertical-slash's counts,
# XAttention's tau, FlexPrefill's gamma, the Lambda and TriangleMix windows), against two oracles: the per-row-block
# oracle of SPEC section 2 (every row block reaches the recall), and the global oracle (the
# heaviest blocks of the head: the best mean recall any block mask of that density reaches).
# The y axis is the attention mass missed, 1 - recall, on a log scale.
# Data: sweep_<L>_<H>.dat (one index per method; columns knob density compute_fraction recall
#       min_rowblock_recall), sweep_params.gp (sweep_heads).
load 'common.gp'
load 'sweep_params.gp'
set xlabel 'mask density (% of causal blocks kept)'
set ylabel 'attention mass missed, 1 - recall'
set logscale y
set format y '10^{%L}'
set format y '%.0e'
set xrange [0:100]
set key top right
miss(r) = (1 - r) > 1e-6 ? 1 - r : 1e-6
do for [k = 1:words(sweep_heads)] {
    hd = word(sweep_heads, k)
    set output sprintf('recall_density_%s.png', hd)
    set title sprintf('recall vs density per method, %s head %s, N = %d, block %d', model, hd, n_tokens, block)
    f = sprintf('sweep_%s.dat', hd)
    plot f index 0 u (100 * $2):(miss($4)) w lp pt 7 lw 2 lc rgb c_skel t 'SparseSkeleton (budget)', \
         f index 1 u (100 * $2):(miss($4)) w lp pt 5 lc rgb '#e69f00' t 'vertical-slash (counts x1/8..16)', \
         f index 2 u (100 * $2):(miss($4)) w lp pt 9 lc rgb '#009e73' t 'XAttention (tau 0.5..0.99)', \
         f index 3 u (100 * $2):(miss($4)) w lp pt 3 lc rgb '#f0e442' t 'FlexPrefill (gamma 0.5..0.99)', \
         f index 4 u (100 * $2):(miss($4)) w lp pt 11 lc rgb '#cc79a7' t 'Lambda-shape (window)', \
         f index 5 u (100 * $2):(miss($4)) w lp pt 13 lc rgb '#56b4e9' t 'TriangleMix (local window)', \
         f index 6 u (100 * $2):(miss($4)) w lp pt 6 dt 2 lc rgb c_orac t 'oracle, every row block', \
         f index 7 u (100 * $2):(miss($4)) w l lw 2 dt 3 lc rgb '#000000' t 'oracle, heaviest blocks'
}
