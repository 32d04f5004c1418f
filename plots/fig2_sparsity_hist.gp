# Fig. 2: how sparse the heads are, as in the paper: (a) the exact sparsity (eq. 1), (b) the
# threshold sparsity (A < eps/N), (c) the block sparsity (block max < eps/N), each a histogram over
# all heads, in percent. Each panel has its own x range and bin width: exact sparsity of long
# contexts sits within a few percent of 100, where a shared 0-100 axis would draw one bar.
# Data: report.dat (columns: layer head exact threshold block predicted predicted_block
#       mask_density mask_recall oracle_density min_rowblock_recall).
load 'common.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1650,560 font "DejaVu Sans,14" linewidth 1.5 noenhanced
} else {
    set terminal png size 1650,560 font "DejaVuSans,12" noenhanced
}
set output 'fig2_sparsity_hist.png'
set multiplot layout 1, 3 title sprintf('Fig. 2: sparsity over %d heads, %s, N = %d, eps = %g', \
    n_heads_total, model, n_tokens, eps)
set style fill transparent solid 0.45 border
set ylabel 'number of heads'
set yrange [0:*]
set ytics nomirror
set offsets 0, 0, graph 0.08, 0  # headroom above the tallest bar
bin(x) = bw * floor(x / bw) + bw / 2.0
cols = '3 4 5'
colours = c_exact.' '.c_thr.' '.c_block
titles = "'(a) exact sparsity (eq. 1)' '(b) threshold sparsity (A < eps/N)' '(c) block sparsity (block max < eps/N)'"
units = "'% of causal elements' '% of causal elements' '% of causal blocks'"
do for [k = 1:3] {
    c = int(word(cols, k))
    stats 'report.dat' u (100 * column(c)) nooutput
    span = STATS_max - STATS_min
    bw = nice((span > 0.2 ? span : 0.2) / 15)
    xlo = bw * floor(STATS_min / bw) - bw
    xhi = bw * ceil(STATS_max / bw) + bw
    set xrange [(xlo < 0 ? 0 : xlo):(xhi > 100 ? 100 : xhi)]
    set xtics nice((xhi - xlo) / 5)
    set boxwidth bw * 0.9
    set title word(titles, k)
    set xlabel sprintf('sparsity (%s); bins of %g', word(units, k), bw)
    plot 'report.dat' u (bin(100 * column(c))):(1.0) smooth freq w boxes lc rgb word(colours, k) t ''
}
unset multiplot
