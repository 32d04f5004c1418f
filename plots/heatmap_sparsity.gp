# Exact sparsity over layer and head as a heat map: one row per layer the results file holds
# (a dump may hold a few layers of many), labelled with the layer's number. Cells without a head
# are blank. The colour is 100 - exact sparsity, the percentage of elements a head needs, on a log
# scale: exact sparsity of long contexts crowds within a few percent of 100, where a linear scale
# would paint most heads the same colour.
# Data: heatmap.dat (row layer head exact_sparsity_percent, NaN where the file has no such head).
load 'common.gp'
set output 'heatmap_sparsity.png'
set xlabel 'head'
set ylabel 'layer'
set cblabel 'elements needed: 100 - exact sparsity (%), log scale'
set cbrange [*:*]
set logscale cb
set cbtics (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
set title sprintf('exact sparsity per head, %s, N = %d, eps = %g', model, n_tokens, eps)
unset grid
stats 'heatmap.dat' u 1:3 nooutput
n_rows = words(layers_present)
set xtics 0, (STATS_max_y > 31 ? 4 : 1) out nomirror
set ytics () out nomirror
do for [r = 1:n_rows] {
    if (n_rows <= 32 || (r - 1) % 4 == 0) { set ytics add (word(layers_present, r) r - 1) }
}
set xrange [-0.5:STATS_max_y + 0.5]
set yrange [-0.5:n_rows - 0.5]
plot 'heatmap.dat' u 3:1:(100 - $4) w image t ''
