# Fig. 4: distribution of the logits z = q.k / sqrt(d) over causal pairs of the chosen heads,
# with the normal density of the same mean and variance (log-normal attention, section 3.2).
# Top row: linear density, the bulk. Bottom row: log density, the tails, where a heavy right tail
# (the few keys that take most of the attention) departs from the normal curve.
# Data: fig4_<L>_<H>_z.dat, index 0: z density (histogram), index 1: z normal_density.
load 'common.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 500 * words(heads) + 100, 900 font "DejaVu Sans,14" linewidth 1.5 noenhanced
} else {
    set terminal png size 500 * words(heads) + 100, 900 font "DejaVuSans,12" noenhanced
}
set output 'fig4_z_hist.png'
set multiplot layout 2, words(heads) title sprintf('Fig. 4: z = q.k/sqrt(d) over causal pairs, %s, N = %d', model, n_tokens)
set style fill solid 0.5 noborder
set xlabel 'z'
set key top left reverse Left samplen 2 font ',11'
do for [k = 1:words(heads)] {
    f = sprintf('fig4_%s_z.dat', word(heads, k))
    set xrange [*:*]  # stats obeys the axis ranges in force
    set yrange [*:*]
    stats f index 0 u 1 nooutput
    set xrange [STATS_min - 0.5:STATS_max + 0.5]
    set xtics nice((STATS_max - STATS_min) / 5)
    set title word(head_labels, k)
    set ylabel 'density'
    set yrange [0:*]
    set offsets 0, 0, graph 0.3, 0
    plot f index 0 u 1:2 w boxes lc rgb c_exact t 'z histogram', \
         f index 1 u 1:2 w l lw 2 lc rgb c_orac t 'normal, same mean, var'
}
set logscale y
set format y '1e%T'
set offsets 0, 0, 0, 0
set key bottom center reverse Left samplen 2 font ',11'
do for [k = 1:words(heads)] {
    f = sprintf('fig4_%s_z.dat', word(heads, k))
    set xrange [*:*]
    set yrange [*:*]
    stats f index 0 u 1:($2 > 0 ? $2 : NaN) nooutput
    set xrange [STATS_min_x - 0.5:STATS_max_x + 0.5]
    set xtics nice((STATS_max_x - STATS_min_x) / 5)
    set yrange [STATS_min_y / 3:STATS_max_y * 3]
    set title sprintf('%s, log scale', word(head_labels, k))
    set ylabel 'density (log)'
    # points, not steps: far in the tails most bins are empty, and a step line would bridge them
    plot f index 0 u 1:($2 > 0 ? $2 : NaN) w p pt 7 ps 0.5 lc rgb c_exact t 'z histogram (non-empty bins)', \
         f index 1 u 1:2 w l lw 2 lc rgb c_orac t 'normal, same mean, var'
}
unset multiplot
