#!/bin/sh
# Every figure script in turn, on the same dump and results (see data.sh), then the small copies
# shown in the READMEs: plots/examples/ (montage panels at THUMB=256, the charts as gnuplot wrote
# them). With EXAMPLES=0 the copies are left alone.
set -eu
cd "$(dirname "$0")/.."
for s in fig1_attention_panels fig2_sparsity_hist fig3_decomposition fig4_z_hist fig_overview_charts \
         fig6b_attention_cost; do
    echo "== $s"
    THUMB=${THUMB:-256} sh "notebooks-free/$s.sh"
done
if [ "${EXAMPLES:-1}" = 1 ]; then
    . notebooks-free/data.sh
    mkdir -p plots/examples
    cp "$OUT/fig1/montage.png" plots/examples/fig1_montage.png
    for c in fig2_sparsity_hist fig4_z_hist heatmap_sparsity density_vs_recall predicted_vs_exact; do
        cp "$OUT/charts/$c.png" "plots/examples/$c.png"
    done
    # Fig. 3 of the most sparse head (one of the default three), as in fig1_attention_panels.sh.
    best=$(awk -F, 'NR > 1 && $5 > b { b = $5; lh = $1 "_" $2 } END { print lh }' "${RESULTS%.h5}.csv")
    cp "$OUT/charts/fig3_$best.png" plots/examples/fig3_decomposition.png
    cp "$OUT/cost/attention_cost.png" plots/examples/fig6b_attention_cost.png
    cp "$OUT"/cost/recall_density_*.png plots/examples/recall_density.png
    ls -l plots/examples
fi
