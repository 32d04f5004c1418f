# data.sh: sourced by the figure scripts. Sets SKEL, DUMP, RESULTS and OUT, and makes DUMP and
# RESULTS when they are missing (each once; later scripts reuse them). DUMP defaults to
#   1. a real one: when `make model corpus` has fetched SmolLM2-135M and the texts, `skel dump`
#      runs the model on the first 4096 tokens of Pride and Prejudice and keeps layers 0, 14 and
#      29 (out/smollm2-pride-4k.h5; about 10 s on two cores), else
#   2. the bundled real sample (data/*.h5: 1792 tokens, layers 0, 9, 19, 29), else
#   3. a synthetic dump from `skel synth` (planted sinks, vertical keys and slashes).
SKEL=${SKEL:-bin/skel}
OUT=${OUT:-out/figures}
MODEL=${MODEL:-data/model/SmolLM2-135M-Instruct.Q4_1.gguf}
TEXT=${TEXT:-data/text/prideprejudice.txt}
if [ -z "${DUMP:-}" ]; then
    if [ -f "$MODEL" ] && [ -f "$TEXT" ]; then
        DUMP=out/smollm2-pride-4k.h5
        [ -f "$DUMP" ] || { mkdir -p out && "$SKEL" dump --model "$MODEL" --text "$TEXT" --n-tokens 4096 \
                                                --layers 0,14,29 -o "$DUMP" --quiet; }
    else
        DUMP=$(ls data/*.h5 2>/dev/null | head -n 1 || true)
    fi
    if [ -z "$DUMP" ]; then
        DUMP=out/synth.h5
        [ -f "$DUMP" ] || { mkdir -p out && "$SKEL" synth -o "$DUMP" --tokens 8192 --layers 2 --q-heads 4 \
                                                --kv-heads 1 --dim 64 --seed 1; }
    fi
fi
RESULTS=${RESULTS:-out/$(basename "$DUMP" .h5)-results.h5}
[ -f "$RESULTS" ] || "$SKEL" analyze "$DUMP" -o "$RESULTS" --quiet
mkdir -p "$OUT"
