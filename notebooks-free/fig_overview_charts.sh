#!/bin/sh
# The new charts: predicted vs exact sparsity, the layer x head heat map of sparsity, and mask
# density vs recall per head (with the oracle at the same recall).
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
"$SKEL" plot "$RESULTS" -o "$OUT/charts" --quiet
ls "$OUT/charts/predicted_vs_exact.png" "$OUT/charts/heatmap_sparsity.png" "$OUT/charts/density_vs_recall.png"
