#!/bin/sh
# Fig. 3: s, v, h line plots next to the mask, for the heads in HEADS (L:H,L:H; default: the
# least, median and most sparse heads).
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
"$SKEL" plot "$RESULTS" -o "$OUT/charts" ${HEADS:+--heads "$HEADS"} --quiet
ls "$OUT"/charts/fig3_*.png
