"""PyTorch scaled_dot_product_attention forward (causal, bf16) on the rows gpu_bench wrote.

usage: python3 bench/sdpa_bench.py DIR N:d [N:d ...]
Prints one line per shape, `sdpa N d flash_ms cudnn_ms` (median of CUDA-event timings after a
warm-up; cudnn_ms is nan where that backend is not available), for tests/gpu_bench.c to read.
"""
import math
import sys

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def load(path, n, d):
    x = np.fromfile(path, dtype=np.float16).reshape(1, 1, n, d)
    return torch.from_numpy(x).to("cuda", dtype=torch.bfloat16)


def time_ms(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def main():
    d_ir = sys.argv[1]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    for arg in sys.argv[2:]:
        n, d = map(int, arg.split(":"))
        q, k, v = (load(f"{d_ir}/bench_{w}_{n}_{d}.f16", n, d) for w in "qkv")
        reps = 3 if n >= 1 << 20 else (5 if n >= 1 << 17 else 10)
        res = {}
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel(backend):
                    res[name] = time_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), reps)
            except Exception as e:  # a backend that does not run this shape
                print(f"sdpa {name} N={n} d={d}: not available ({str(e).splitlines()[0][:120]})", flush=True)
                res[name] = math.nan
        print(f"sdpa {n} {d} {res['flash']:.4f} {res['cudnn']:.4f}", flush=True)
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
