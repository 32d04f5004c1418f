# data.sh: sourced by the figure scripts. Sets SKEL, DUMP, RESULTS and OUT, and makes RESULTS with
# `skel analyze` when it is missing. DUMP defaults to a real dump in data/ when one exists, else to
# a synthetic dump written once by `skel synth` (planted sinks, columns and slashes).
SKEL=${SKEL:-bin/skel}
OUT=${OUT:-out/figures}
if [ -z "${DUMP:-}" ]; then
    DUMP=$(ls data/*.h5 2>/dev/null | head -n 1 || true)
    if [ -z "$DUMP" ]; then
        DUMP=out/synth.h5
        [ -f "$DUMP" ] || { mkdir -p out && "$SKEL" synth -o "$DUMP" --tokens 8192 --layers 2 --q-heads 4 \
                                                --kv-heads 1 --dim 64 --seed 1; }
    fi
fi
RESULTS=${RESULTS:-out/$(basename "$DUMP" .h5)-results.h5}
[ -f "$RESULTS" ] || "$SKEL" analyze "$DUMP" -o "$RESULTS"
mkdir -p "$OUT"
