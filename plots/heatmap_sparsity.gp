# Exact sparsity over layer and head as a heat map. Cells without a head are blank.
# Data: heatmap.dat (layer head exact_sparsity_percent, NaN where the file has no such head).
load 'common.gp'
set output 'heatmap_sparsity.png'
set xlabel 'head'
set ylabel 'layer'
set cblabel 'exact sparsity (%)'
set cbrange [*:*]
set title sprintf('exact sparsity per head, %s, N = %d', model, n_tokens)
unset grid
# Integer ticks only, thinned when there are many heads or layers.
stats 'heatmap.dat' u 1:2 nooutput
set ytics 0, (STATS_max_x > 31 ? 4 : 1) out nomirror
set xtics 0, (STATS_max_y > 31 ? 4 : 1) out nomirror
set xrange [-0.5:STATS_max_y + 0.5]
set yrange [-0.5:STATS_max_x + 0.5]
plot 'heatmap.dat' u 2:1:3 w image t ''
