# Fig. 3: from decomposition to mask, one PNG per chosen head: s (by offset i - j), v (by key j)
# and h (by query i) as line plots, next to the block mask it gives. Grey bands: the sinks
# (j < sink), the local window (i - j < local) and the rows with no interior (i < sink + local),
# where the exact Lambda-shape is used instead of the fit; the y ranges follow the fitted part,
# so a large value extrapolated into a grey band is clipped rather than flattening the rest.
# Data: fig3_<L>_<H>_svh.dat (index s v h; when N > 4096 each line is the maximum over a bin of
#       indices, so spikes survive), fig3_<L>_<H>_mask.dat (key query kept-fraction, NaN above the
#       diagonal).
load 'common.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1500,820 font "DejaVu Sans,14" linewidth 1.5 noenhanced
} else {
    set terminal png size 1500,820 font "DejaVuSans,12" noenhanced
}
xstep = nice(n_tokens / 8.0)
do for [k = 1:words(heads)] {
    hd = word(heads, k)
    set output sprintf('fig3_%s.png', hd)
    svh = sprintf('fig3_%s_svh.dat', hd)
    set multiplot title sprintf('Fig. 3: %s %s, decomposition log A = s[i-j] + v[j] + h[i] and the mask', model, word(head_labels, k))
    set label 99 sprintf('grey: sinks (j < %d), local window (i - j < %d), rows without interior (i < %d): exact Lambda-shape used there', \
        sink, local, sink + local) at screen 0.01, screen 0.015 font ',11' tc rgb '#555555'
    set lmargin 12
    set xrange [0:n_tokens]
    set xtics xstep
    unset title
    cols = '2 3 4'
    edges = sprintf('%d %d %d', local, sink, sink + local)
    ylabels = "'s[m]' 'v[j]' 'h[i]'"
    xlabels = "'offset m = i - j' 'key j' 'query i'"
    colours = c_exact.' '.c_thr.' '.c_block
    do for [p = 1:3] {
        c = int(word(cols, p))
        edge = int(word(edges, p))
        set yrange [*:*]  # stats obeys the axis ranges in force
        stats svh u ($1 >= edge ? column(c) : NaN) nooutput
        pad = 0.05 * (STATS_max - STATS_min) + 1e-3
        set yrange [STATS_min - pad:STATS_max + pad]
        set ytics nice((STATS_max - STATS_min) / 4)
        set object 1 rect from 0, graph 0 to edge, graph 1 fc rgb '#e4e4e4' fs solid noborder behind
        set origin 0, 0.66 - 0.31 * (p - 1)
        set size 0.58, 0.30
        set ylabel word(ylabels, p)
        set xlabel word(xlabels, p) offset 0, 0.5
        plot svh u 1:c w l lc rgb word(colours, p) t ''
    }
    unset object 1
    unset label 99
    set origin 0.58, 0.04
    set size 0.42, 0.90
    set lmargin 10
    set size ratio -1
    set xrange [0:n_tokens]
    set yrange [n_tokens:0]
    set xtics nice(n_tokens / 4.0)
    set ytics nice(n_tokens / 4.0)
    set xlabel 'key j' offset 0, 0
    set ylabel 'query i'
    set cbrange [0:1]
    set palette defined (0 '#d6d6d6', 1 '#212121')
    set cblabel 'kept fraction of the cell'
    set title sprintf('block mask (block %d)', block)
    plot sprintf('fig3_%s_mask.dat', hd) u 1:2:3 w image t ''
    unset size
    set size noratio
    set yrange [*:*]
    set ytics autofreq
    unset title
    unset multiplot
    set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
}
