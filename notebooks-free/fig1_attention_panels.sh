#!/bin/sh
# Fig. 1: one head's exact attention, A_s, A_v, A_h, recomposition, skeleton mask and
# vertical-slash mask, the mask-vs-oracle overlay, and the labelled montage.
#   LAYER=14 HEAD=0 notebooks-free/fig1_attention_panels.sh   ->  out/figures/fig1/montage.png
# Without LAYER and HEAD: the head with the highest exact sparsity in the report (the clearest
# skeleton). SIZE is the side of each panel PNG, THUMB that of each montage panel.
set -eu
cd "$(dirname "$0")/.."
. notebooks-free/data.sh
if [ -z "${LAYER:-}" ] || [ -z "${HEAD:-}" ]; then
    # results.csv columns: layer,head,kv_head,n_tokens,exact_sparsity,...
    set -- $(awk -F, 'NR > 1 && $5 > best { best = $5; l = $1; h = $2 } END { print l, h }' \
             "${RESULTS%.h5}.csv")
    LAYER=$1 HEAD=$2
fi
"$SKEL" render "$RESULTS" --layer "$LAYER" --head "$HEAD" -o "$OUT/fig1" --size "${SIZE:-1024}" \
        --thumb "${THUMB:-384}" --quiet
echo "$OUT/fig1/montage.png (layer $LAYER, head $HEAD)"
