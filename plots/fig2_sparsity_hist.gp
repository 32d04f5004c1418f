# Fig. 2: how sparse the heads are. Histogram over all heads of the exact sparsity (eq. 1),
# the threshold sparsity (A < eps/N) and the block sparsity (block max < eps/N), in percent.
# Data: report.dat (columns: layer head exact threshold block predicted predicted_block
#       mask_density mask_recall oracle_density min_rowblock_recall).
load 'common.gp'
set output 'fig2_sparsity_hist.png'
bw = 2.5
bin(x) = bw * floor(x / bw) + bw / 2.0
set style fill transparent solid 0.45 border
set boxwidth bw * 0.9
set xrange [0:100]
set yrange [0:*]
set xlabel 'sparsity (% of causal elements / blocks)'
set ylabel 'number of heads'
set title sprintf('Fig. 2: sparsity over %d heads, %s, N = %d, eps = %g', n_heads_total, model, n_tokens, eps)
set key top left
plot 'report.dat' u (bin(100 * $3)):(1.0) smooth freq w boxes lc rgb c_exact t 'exact sparsity', \
     ''           u (bin(100 * $4)):(1.0) smooth freq w boxes lc rgb c_thr   t 'threshold sparsity', \
     ''           u (bin(100 * $5)):(1.0) smooth freq w boxes lc rgb c_block t 'block sparsity'
