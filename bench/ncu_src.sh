#!/bin/sh
# ncu_src.sh BINARY ARGS...: one GPU call's profile of the kernels matching $NCU_K (a regex): the stall
# reasons per issued instruction, the scheduler and memory sections, and the source page (SASS, with
# the warp-stall samples of each instruction) as CSV, all packed into $OUT/prof_$NCU_TAG.tgz (one file:
# the device tool brings back only a few; keep text extracts in git, not the archive, as
# bench/gpu-logs/s6_*prof*.txt are). NCU_SKIP / NCU_COUNT: launches skipped / profiled. NCU_K
# matches base names (e.g. ^rows_kernel, not short_rows_kernel or sample_rows_kernel).
OUT=${OUT:-gpu-out}
TAG=${NCU_TAG:-prof}
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p "$OUT" /tmp/ncu_$TAG
timeout ${NCU_TIMEOUT:-240} ncu --set none --section WarpStateStats --section SourceCounters --section SchedulerStats \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$,smsp__inst_executed.sum' \
    -k "regex:${NCU_K:-.}" --launch-skip "${NCU_SKIP:-0}" --launch-count "${NCU_COUNT:-1}" \
    -o /tmp/ncu_$TAG/prof -f "$@" >/tmp/ncu_$TAG/run.log 2>&1
echo "ncu ($TAG) rc=$?"
ncu -i /tmp/ncu_$TAG/prof.ncu-rep --page details --print-details all >/tmp/ncu_$TAG/details.txt 2>&1
ncu -i /tmp/ncu_$TAG/prof.ncu-rep --page source --csv --print-source sass >/tmp/ncu_$TAG/src.csv 2>&1
tar czf "$OUT/prof_$TAG.tgz" -C /tmp/ncu_$TAG run.log details.txt src.csv
grep -E "^  [a-zA-Z_].*\(|Duration|Issued Warp Per|Eligible Warps|Warp Cycles Per Issued|stalled_(long|short|wait|barrier|math|mio|not_sel|lg_th|tex|dispatch|no_inst|branch|membar|sleep|selected|drain|imc)[a-z_]*_per_issue_active" /tmp/ncu_$TAG/details.txt |
    awk '$NF != "0" && $NF != "0.00"' | sed 's/(.*//; s/smsp__average_warps_issue_stalled_//; s/_per_issue_active.ratio//; s/ \+/ /g' | head -${NCU_LINES:-60}
