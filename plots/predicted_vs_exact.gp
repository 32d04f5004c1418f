# Predicted against exact sparsity over heads (section 4), with the diagonal: points on it are
# heads whose sparsity the decomposition predicts exactly. The block pair does not share a
# threshold (SPEC sections 2 and 4): exact counts blocks whose max is below eps/N, predicted
# counts blocks whose score is below log(eps B/N), B times higher; the legend says so.
# Data: report.dat (see fig2_sparsity_hist.gp).
load 'common.gp'
set output 'predicted_vs_exact.png'
set size ratio -1
set xrange [0:100]
set yrange [0:100]
set xlabel 'exact (%)'
set ylabel 'predicted (%)'
set title sprintf('predicted vs exact sparsity, %d heads, %s', n_heads_total, model)
set key bottom right font ',12'
plot x w l dt 2 lc rgb '#777777' t 'predicted = exact', \
     'report.dat' u (100 * $4):(100 * $6) w p pt 7 ps 1.2 lc rgb c_exact t 'elements: A < eps/N vs Phi((tau - mu)/sigma)', \
     ''           u (100 * $5):(100 * $7) w p pt 5 ps 1.2 lc rgb c_block t 'blocks: max < eps/N vs score < log(eps B/N)'
