# common.gp: terminal, fonts and colours shared by every chart. `skel plot` copies the scripts
# next to the data files and runs them there; edit the copies and rerun `gnuplot NAME.gp` to restyle.
# params.gp (written by skel plot) defines: model, n_tokens, eps, n_heads_total, heads (words
# "L_H" of the chosen heads), head_labels (same order, words "L<l>/H<h>"), block, sink, local,
# layers_present (words, ascending).
load 'params.gp'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1200,800 font "DejaVu Sans,15" linewidth 1.5 noenhanced
} else {
    set terminal png size 1200,800 font "DejaVuSans,13" noenhanced
}
set border lw 1
set grid lc rgb '#dddddd'
set key noenhanced
# Okabe-Ito colours (colour-blind safe): exact, threshold, block / skeleton, oracle.
c_exact = '#0072b2'
c_thr   = '#e69f00'
c_block = '#009e73'
c_skel  = '#0072b2'
c_orac  = '#d55e00'
set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
# A round tic step near x: 1, 2 or 5 times a power of ten (so tick labels never crowd).
nice(x) = x <= 0 ? 1 : (nice_e = 10.0 ** floor(log10(x)), nice_f = x / nice_e, \
          (nice_f < 1.5 ? 1 : nice_f < 3.5 ? 2 : nice_f < 7.5 ? 5 : 10) * nice_e)
