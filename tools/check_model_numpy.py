# Independent numpy reference in the HF convention: un-permute Wq/Wk (inverse of llama.cpp's
# convert permute), rotate_half RoPE, compare with skel dump (half layout) and the interleaved dump.
import numpy as np, gguf, h5py
from gguf.quants import dequantize
r = gguf.GGUFReader('/work/wt-model/data/model/SmolLM2-135M-Instruct.Q4_1.gguf')
T = {t.name: t for t in r.tensors}
def W(n):
    t = T[n]; a = dequantize(t.data, t.tensor_type).astype(np.float64)
    return a.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else a.ravel()
def unpermute(w, nh):  # gguf rows (h, i, j) -> hf rows (h, j, i)
    return w.reshape(nh, w.shape[0] // nh // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
f = h5py.File('/tmp/d_half.h5'); fi = h5py.File('/tmp/d_int.h5')
toks = f['tokens'][:]; N = len(toks); D = 576; Hq, Hkv, d = 9, 3, 64
print(dict(f.attrs), f['/'].attrs['rope_layout'], fi['/'].attrs['rope_layout'])
inv = 1e5 ** (-np.arange(0, d, 2) / d)
ang = np.arange(N)[:, None] * inv[None]; cos = np.cos(np.concatenate([ang, ang], 1)); sin = np.sin(np.concatenate([ang, ang], 1))
def rope(x):  # (N, H, d) rotate_half
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return x * cos[:, None] + np.concatenate([-x2, x1], -1) * sin[:, None]
def rms(x, w): return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w
x = W('token_embd.weight')[toks]
for l in range(30):
    h = rms(x, W(f'blk.{l}.attn_norm.weight'))
    q = (h @ unpermute(W(f'blk.{l}.attn_q.weight'), Hq).T).reshape(N, Hq, d)
    k = (h @ unpermute(W(f'blk.{l}.attn_k.weight'), Hkv).T).reshape(N, Hkv, d)
    v = (h @ W(f'blk.{l}.attn_v.weight').T).reshape(N, Hkv, d)
    q, k = rope(q), rope(k)
    if str(l) in f['layers']:
        for name, ref in (('q', q), ('k', k)):
            got = f[f'layers/{l}/{name}'][:].transpose(1, 0, 2)
            print(l, name, 'half  max|diff| %.2e  max|ref| %.2f' % (np.abs(got - ref).max(), np.abs(ref).max()))
            # interleaved dump = same values with each head's coordinates (j d/2 + i) -> (2 i + j)
            gi = fi[f'layers/{l}/{name}'][:].transpose(1, 0, 2)
            perm = np.array([(c % 2) * (d // 2) + c // 2 for c in range(d)])
            print(l, name, 'inter max|diff| %.2e' % np.abs(gi - ref[..., perm]).max())
        print(l, 'v max|diff| %.2e' % np.abs(fi[f'layers/{l}/v'][:].transpose(1, 0, 2) - v).max())
    kk = np.repeat(k, Hq // Hkv, 1); vv = np.repeat(v, Hq // Hkv, 1)
    s = np.einsum('ihc,jhc->hij', q, kk) / np.sqrt(d)
    s[:, np.triu(np.ones((N, N), bool), 1)] = -np.inf
    a = np.exp(s - s.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
    o = np.einsum('hij,jhc->ihc', a, vv).reshape(N, Hq * d)
    x = x + o @ W(f'blk.{l}.attn_output.weight').T
    h = rms(x, W(f'blk.{l}.ffn_norm.weight'))
    g = h @ W(f'blk.{l}.ffn_gate.weight').T; u = h @ W(f'blk.{l}.ffn_up.weight').T
    x = x + (g / (1 + np.exp(-g)) * u) @ W(f'blk.{l}.ffn_down.weight').T
lg = rms(x, W('output_norm.weight')) @ W('token_embd.weight').T
np.save('/tmp/ref_logits.npy', lg)
print('argmax last', lg[-1].argmax(), 'nll', [float(np.log(np.exp(lg[i]-lg[i].max()).sum())+lg[i].max()-lg[i][toks[i+1]]) for i in range(N-1)][:5])
