#!/usr/bin/env python3
"""ncu_windows.py SRC_CSV [KERNEL_INDEX] [WINDOW] [MIN_SHARE]: reads ncu's source page (SASS, as
bench/ncu_src.sh exports it: `ncu -i REP --page source --csv --print-source sass`) and prints, for one
kernel, its warp-stall samples by reason and by opcode, then per window of WINDOW consecutive SASS
instructions (default 128) with at least MIN_SHARE of the samples (default 0.005): the share of the
samples, the share of the executed instructions, the most frequent opcodes and the top stall reasons.
The windows follow the code's layout, so a phase of a kernel (a loop's body, a prologue) shows as a
run of windows."""
import collections
import csv
import sys


def kernels(path):
    out, cur = [], None
    for r in csv.reader(open(path)):
        if r and r[0] == "Kernel Name":
            cur = [r[1], None, []]
            out.append(cur)
        elif cur is not None and r and r[0] == "Address":
            cur[1] = r
        elif cur is not None and cur[1] and len(r) == len(cur[1]):
            cur[2].append(r)
    return out


def opcode(row):
    t = row[1].split()
    return (t[1] if t[0].startswith("@") else t[0]).split(".")[0]


def main():
    path = sys.argv[1]
    which = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    min_share = float(sys.argv[4]) if len(sys.argv) > 4 else 0.005
    name, head, body = kernels(path)[which]
    ix = {k: i for i, k in enumerate(head)}
    S, E = ix["Warp Stall Sampling (All Samples)"], ix["Instructions Executed"]
    stalls = [k for k in head if k.startswith("stall_") and "Not Issued" not in k]
    tot = sum(int(r[S]) for r in body) or 1
    tot_e = sum(int(r[E]) for r in body) or 1
    print(name[:100], f"samples {tot} warp instructions {tot_e}")
    by_reason = collections.Counter()
    for r in body:
        for k in stalls:
            by_reason[k[6:]] += int(r[ix[k]])
    print(" ".join(f"{k}={v / tot:.2f}" for k, v in by_reason.most_common(10)))
    by_op, by_op_e = collections.Counter(), collections.Counter()
    for r in body:
        by_op[opcode(r)] += int(r[S])
        by_op_e[opcode(r)] += int(r[E])
    print("by opcode (% samples / % instructions):",
          " ".join(f"{k}={v / tot * 100:.1f}/{by_op_e[k] / tot_e * 100:.1f}" for k, v in by_op.most_common(20)))
    for i in range(0, len(body), width):
        w = body[i:i + width]
        s = sum(int(r[S]) for r in w)
        if s / tot < min_share:
            continue
        e = sum(int(r[E]) for r in w)
        ops = collections.Counter(opcode(r) for r in w)
        why = collections.Counter()
        for r in w:
            for k in stalls:
                why[k[6:]] += int(r[ix[k]])
        print(f"{i:5d} {s / tot * 100:5.1f}% e{e / tot_e * 100:5.1f}% " +
              " ".join(f"{k}:{v}" for k, v in ops.most_common(6)) + " | " +
              " ".join(f"{k}{v * 100 // max(s, 1)}" for k, v in why.most_common(3)))


if __name__ == "__main__":
    main()
