#!/bin/sh
# Fig. 2: histogram over heads of exact, threshold and block sparsity.
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
"$SKEL" plot "$RESULTS" -o "$OUT/charts" --quiet
echo "$OUT/charts/fig2_sparsity_hist.png"
