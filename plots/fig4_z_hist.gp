# Fig. 4: distribution of the logits z = q.k / sqrt(d) over causal pairs of the chosen heads,
# with the normal density of the same mean and variance (log-normal attention, section 3.2).
# Data: fig4_<L>_<H>_z.dat, index 0: z density (histogram), index 1: z normal_density.
load 'common.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 500 * words(heads) + 100, 560 font "DejaVu Sans,14" linewidth 1.5 noenhanced
} else {
    set terminal png size 500 * words(heads) + 100, 560 font "DejaVuSans,12" noenhanced
}
set output 'fig4_z_hist.png'
set multiplot layout 1, words(heads) title sprintf('Fig. 4: z histograms, %s', model)
set style fill solid 0.5 noborder
set xlabel 'z'
set ylabel 'density'
set yrange [0:*]
set key top left reverse Left samplen 2 font ',11'
set offsets 0, 0, graph 0.3, 0
do for [k = 1:words(heads)] {
    set title word(head_labels, k)
    f = sprintf('fig4_%s_z.dat', word(heads, k))
    plot f index 0 u 1:2 w boxes lc rgb c_exact t 'z histogram', \
         f index 1 u 1:2 w l lw 2 lc rgb c_orac t 'normal, same mean, var'
}
unset multiplot
