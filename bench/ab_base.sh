#!/bin/sh
# ab_base.sh REV NAME: a base folder for bench/gpu_decomp_ab.sh from a git revision: bench/NAME.tmp with
# REV's cuda/decomp.cu and every cuda/*.cuh it has (a base built against the tree's headers fails when
# their interfaces have moved on, as chol.cuh's did in session 7). *.tmp is ignored by git; pass the
# folder to the device tool's carry.
#   sh bench/ab_base.sh HEAD head && sh bench/gpu_decomp_ab.sh 8192,131072 bench/head.tmp
[ $# -eq 2 ] || { echo "usage: sh bench/ab_base.sh REV NAME" >&2; exit 2; }
dir=bench/$2.tmp
rm -rf "$dir" && mkdir -p "$dir" || exit 1
git show "$1:cuda/decomp.cu" >"$dir/decomp.cu" || { echo "ab_base: $1 has no cuda/decomp.cu" >&2; exit 1; }
for h in $(git ls-tree --name-only "$1" cuda/ | grep '\.cuh$'); do git show "$1:$h" >"$dir/$(basename "$h")"; done
echo "$dir: $(ls "$dir" | tr '\n' ' ')"
