# Fig. 3: from decomposition to mask, one PNG per chosen head: s (by offset i - j), v (by key j)
# and h (by query i) as line plots, next to the block mask it gives.
# Data: fig3_<L>_<H>_svh.dat (index s v h; when N > 4096 each line is the maximum over a bin of
#       indices, so spikes survive), fig3_<L>_<H>_mask.dat (key query kept-fraction, NaN above the
#       diagonal).
load 'common.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1500,800 font "DejaVu Sans,14" linewidth 1.5 noenhanced
} else {
    set terminal png size 1500,800 font "DejaVuSans,12" noenhanced
}
do for [k = 1:words(heads)] {
    hd = word(heads, k)
    set output sprintf('fig3_%s.png', hd)
    svh = sprintf('fig3_%s_svh.dat', hd)
    set multiplot title sprintf('Fig. 3: %s %s, decomposition log A = s[i-j] + v[j] + h[i] and the mask', model, word(head_labels, k))
    set lmargin 12
    set xrange [0:n_tokens]
    unset title
    set origin 0, 0.62
    set size 0.58, 0.32
    set ylabel 's[m]'
    set xlabel 'offset m = i - j'
    plot svh u 1:2 w l lc rgb c_exact t ''
    set origin 0, 0.32
    set ylabel 'v[j]'
    set xlabel 'key j'
    plot svh u 1:3 w l lc rgb c_thr t ''
    set origin 0, 0.02
    set ylabel 'h[i]'
    set xlabel 'query i'
    plot svh u 1:4 w l lc rgb c_block t ''
    set origin 0.58, 0.02
    set size 0.42, 0.92
    set lmargin 10
    set size ratio -1
    set xrange [0:n_tokens]
    set yrange [n_tokens:0]
    set xlabel 'key j'
    set ylabel 'query i'
    set cbrange [0:1]
    set palette defined (0 '#d6d6d6', 1 '#212121')
    set cblabel 'kept fraction of the cell'
    set title 'block mask'
    plot sprintf('fig3_%s_mask.dat', hd) u 1:2:3 w image t ''
    unset size
    set size noratio
    set yrange [*:*]
    unset title
    unset multiplot
    set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
}
