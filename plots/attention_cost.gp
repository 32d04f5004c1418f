# Fig. 6b: attention cost (PFLOP) per method against context length. Each results file given to
# skel plot is one context length; the cost is QK^T and PV over the causal pairs in each method's
# kept blocks, summed over the heads analysed (mask estimation itself not counted).
# Data: cost.dat (one index per method, in the order of the key; columns n_tokens pflop).
load 'common.gp'
set output 'attention_cost.png'
set title sprintf("Fig. 6b: attention cost per method, %s\neach method at its default setting, so recalls differ (see the recall_density sweeps)", model)
set xlabel 'context length N (tokens)'
set ylabel 'attention PFLOP (QK^T and PV, kept blocks)'
set logscale xy
set format y '%.0e'
set key top left
plot 'cost.dat' index 0 u 1:2 w lp pt 4 lw 2 dt 2 lc rgb '#000000' t 'dense (causal)', \
     ''         index 1 u 1:2 w lp pt 7 lw 2 lc rgb c_skel t 'SparseSkeleton', \
     ''         index 2 u 1:2 w lp pt 5 lc rgb '#e69f00' t 'vertical-slash', \
     ''         index 3 u 1:2 w lp pt 9 lc rgb '#009e73' t 'XAttention', \
     ''         index 4 u 1:2 w lp pt 3 lc rgb '#f0e442' t 'FlexPrefill', \
     ''         index 5 u 1:2 w lp pt 11 lc rgb '#cc79a7' t 'Lambda-shape', \
     ''         index 6 u 1:2 w lp pt 13 lc rgb '#56b4e9' t 'TriangleMix', \
     ''         index 7 u 1:2 w lp pt 6 dt 3 lc rgb c_orac t 'oracle (same recall as SparseSkeleton)'
