#!/bin/sh
# Fig. 6b: attention cost (PFLOP) per method against context length. One dump and analysis per
# length: SmolLM2-135M on Pride and Prejudice at 1K, 2K, 4K and 8K tokens (its trained context),
# layers 0, 14 and 29, when `make model corpus` has fetched them; otherwise synthetic dumps.
# Also draws recall-density sweeps of head 14/4 at 8K.
set -eu
cd "$(dirname "$0")/.."
SKEL=${SKEL:-bin/skel}
OUT=${OUT:-out/figures}
MODEL=${MODEL:-data/model/SmolLM2-135M-Instruct.Q4_1.gguf}
TEXT=${TEXT:-data/text/prideprejudice.txt}
mkdir -p out "$OUT"
files=""
for n in 1024 2048 4096 8192; do
    dump=out/cost-$n.h5
    res=out/cost-$n-results.h5
    if [ ! -f "$dump" ]; then
        if [ -f "$MODEL" ] && [ -f "$TEXT" ]; then
            "$SKEL" dump --model "$MODEL" --text "$TEXT" --n-tokens $n --layers 0,14,29 -o "$dump" --quiet
        else
            "$SKEL" synth -o "$dump" --tokens $n --layers 2 --q-heads 4 --kv-heads 1 --dim 64 --seed 1
        fi
    fi
    sweep=""
    [ $n = 8192 ] && sweep=--sweep
    [ -f "$res" ] || "$SKEL" analyze "$dump" -o "$res" $sweep --quiet
    files="$res $files"  # the longest first: its heads give the per-head charts
done
heads=14:4
[ -f "$MODEL" ] && [ -f "$TEXT" ] || heads=1:0
# shellcheck disable=SC2086
"$SKEL" plot $files -o "$OUT/cost" --heads $heads --quiet
echo "$OUT/cost/attention_cost.png"
echo "$OUT/cost/recall_density_$(echo $heads | tr : _).png"
