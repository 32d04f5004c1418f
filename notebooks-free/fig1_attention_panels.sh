#!/bin/sh
# Fig. 1: one head's exact attention, A_s, A_v, A_h, recomposition, skeleton mask and
# vertical-slash mask, the mask-vs-oracle overlay, and the labelled montage.
#   LAYER=0 HEAD=0 notebooks-free/fig1_attention_panels.sh   ->  out/figures/fig1/montage.png
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
"$SKEL" render "$RESULTS" --layer "${LAYER:-0}" --head "${HEAD:-0}" -o "$OUT/fig1" --size "${SIZE:-1024}"
