#!/usr/bin/env python3
# ncu_table.py TITLE LOG...: per-kernel gpu__time_duration (us) from ncu logs (bench/gpu_decomp_ab.sh AB_NCU=1),
# one column a log, repeated launches joined by "/": the text extracts kept in bench/gpu-logs/.
import re,sys,collections
def parse(fn):
    d=collections.OrderedDict(); name=None
    for line in open(fn):
        m=re.match(r'^  (\S.*?) \(\d+, \d+, \d+\)x\(\d+, \d+, \d+\)',line)
        if m:
            name=m.group(1).replace('(anonymous namespace)::','').replace('<unnamed>::','').split("(")[0].replace("<0>","<false>").replace("<1>","<true>")[:44]; continue
        m=re.search(r'gpu__time_duration.sum\s+(\S+)\s+([\d.,]+)',line)
        if m and name:
            v=float(m.group(2).replace(',','')); v = v/1000 if m.group(1)=='ns' else (v*1000 if m.group(1)=='ms' else v)
            d.setdefault(name,[]).append(v); name=None
    return d
title=sys.argv[1]; files=sys.argv[2:]
ds=[parse(f) for f in files]
print(title); print('%-44s'%'kernel'+''.join('%18s'%f.split('/')[-1][-18:] for f in files))
keys=[]
for d in ds:
    keys += [k for k in d if k not in keys]
for k in keys:
    print('%-44s'%k+''.join('%18s'%'/'.join('%.1f'%x for x in d.get(k,[])) for d in ds))
