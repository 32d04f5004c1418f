# Mask density against recall per head: the SparseSkeleton mask, and the oracle mask at the same
# recall, joined per head. The oracle (SPEC section 2) brings every row block to that recall, a
# stricter goal than the mean recall on the x axis, so it can be denser than a mask that reaches
# the mean with some row blocks below it.
# Data: report.dat (see fig2_sparsity_hist.gp).
load 'common.gp'
set output 'density_vs_recall.png'
set xlabel 'recall (mean fraction of a row''s attention mass kept)'
set ylabel 'mask density (% of causal blocks kept)'
set xrange [*:1]
set yrange [0:*]
set title sprintf('density vs recall, %d heads, %s', n_heads_total, model)
set key top left
plot 'report.dat' u 9:(100 * $8):(0):(100 * ($10 - $8)) w vectors nohead lc rgb '#bbbbbb' t '', \
     ''           u 9:(100 * $8) w p pt 7 ps 1.2 lc rgb c_skel t 'SparseSkeleton mask', \
     ''           u 9:(100 * $10) w p pt 9 ps 1.4 lc rgb c_orac t 'oracle: every row block reaches that recall'
