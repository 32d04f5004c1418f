# Exact sparsity over layer and head as a heat map. Cells without a head are blank.
# Data: heatmap.dat (layer head exact_sparsity_percent, NaN where the file has no such head).
load 'common.gp'
set output 'heatmap_sparsity.png'
set xlabel 'head'
set ylabel 'layer'
set cblabel 'exact sparsity (%)'
set cbrange [*:*]
set title sprintf('exact sparsity per head, %s, N = %d', model, n_tokens)
set xrange [-0.5:*]
set yrange [-0.5:*]
unset grid
plot 'heatmap.dat' u 2:1:3 w image t ''
