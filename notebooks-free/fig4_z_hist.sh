#!/bin/sh
# Fig. 4: z histograms of the heads in HEADS with the normal density of the same mean and variance.
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
"$SKEL" plot "$RESULTS" -o "$OUT/charts" ${HEADS:+--heads "$HEADS"} --quiet
echo "$OUT/charts/fig4_z_hist.png"
