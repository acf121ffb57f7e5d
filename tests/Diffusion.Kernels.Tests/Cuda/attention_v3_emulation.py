#!/usr/bin/env python3
"""Lane-by-lane emulation of kernels/attention.cu version 3 (attention_v3), for machines without a GPU.

Mirrors the kernel's index arithmetic line for line — the staging of Q, K and V into the shared tiles, each lane's
fragment loads, the online softmax on the accumulator layout (with the quad shuffles), P reused as an A fragment,
and the store's (channel, query) mapping — and replaces mma.sync.m16n8k16 by its definition using the PTX ISA's
fragment layouts ("Matrix Fragments for mma.m16n8k16 with floating point type"). The 4 warps × 32 lanes of a block
are numpy axes, so each loop here is one loop of the kernel. Shared memory starts as NaN, so a fragment that reads
a half nobody staged poisons the result. Checks that every staged half and every output is written exactly once,
and compares the result with float64 attention of the float32 inputs (the GPU tests' tolerance) and with float64
attention of the fp16-rounded inputs (tighter: only P's rounding and float32 arithmetic remain).
What it cannot check: the hardware itself — register allocation, the real mma's internal accumulation order,
CUDA's expf (numpy's float32 exp stands in), barriers and memory ordering, bank conflicts, speed. Keep it in step
with the kernel when the kernel changes. Run by TensorCoreEmulationTests; needs numpy.
"""
import numpy as np

BQ = 64
KT = 32
DMAX = 256
THREADS = 128
PAD = 8
VLD = KT + PAD
WARPS = THREADS // 32
TOLERANCE = 3e-3  # CudaHalfPrecisionAndGraphTests.HalfTolerance

LANE = np.arange(32)
G = (LANE // 4)[None, :]  # (1, 32): broadcasts over the warp axis
T = (LANE % 4)[None, :]
WARP = np.arange(WARPS)[:, None]


def mma(d, a, b):
    """d (warps, 32, 4) float32 += A·B, A and B assembled from the lanes' registers by the PTX fragment layout.

    a: (warps, 32, 4 registers, 2 halves), b: (warps, 32, 2 registers, 2 halves); half 0 is the low 16 bits."""
    w = np.broadcast_to(WARP, (WARPS, 32))
    g = np.broadcast_to(G, (WARPS, 32))
    t = np.broadcast_to(T, (WARPS, 32))
    A = np.full((WARPS, 16, 16), np.nan)  # an element no lane supplies would stay NaN
    B = np.full((WARPS, 16, 8), np.nan)
    for h in range(2):
        A[w, g, 2 * t + h] = a[:, :, 0, h]
        A[w, g + 8, 2 * t + h] = a[:, :, 1, h]
        A[w, g, 2 * t + 8 + h] = a[:, :, 2, h]
        A[w, g + 8, 2 * t + 8 + h] = a[:, :, 3, h]
        B[w, 2 * t + h, g] = b[:, :, 0, h]
        B[w, 2 * t + 8 + h, g] = b[:, :, 1, h]
    D = A @ B  # products of halves are exact; the float64 sum stands in for the tensor core's float32 accumulation
    out = d.astype(np.float64)
    out[:, :, 0] += D[w, g, 2 * t]
    out[:, :, 1] += D[w, g, 2 * t + 1]
    out[:, :, 2] += D[w, g + 8, 2 * t]
    out[:, :, 3] += D[w, g + 8, 2 * t + 1]
    return out.astype(np.float32)


def load_pair(smem, index):
    """tc_load_pair for every lane: the 32-bit word at half offset index, as (..., 2) halves."""
    assert (index % 2 == 0).all(), "a 32-bit shared load must be 4-byte aligned"
    return np.stack([smem[index], smem[index + 1]], axis=-1)


def pack(lo, hi):
    """tc_pack_half2: cvt.rn.f16.f32 of two float32s (numpy's float32 → float16 also rounds to nearest even)."""
    return np.stack([np.asarray(lo, np.float32).astype(np.float16), np.asarray(hi, np.float32).astype(np.float16)], axis=-1)


def shfl_xor(x, mask):
    return x[:, LANE ^ mask]


def stage_rows(smem, base, ld, src, rows, token0, tokens, head_dim, d_pad, written):
    """attention_stage_rows<ROWS>: every e of the block-strided loop at once."""
    e = np.arange(rows * d_pad // 2)
    pass_ = e // 32
    row = (pass_ % (rows // 8)) * 8 + e % 8
    c = 2 * ((pass_ // (rows // 8)) * 4 + (e % 32) // 8)
    token = token0 + row
    ok_lo = (token < tokens) & (c < head_dim)
    ok_hi = (token < tokens) & (c + 1 < head_dim)
    lo = np.where(ok_lo, src[np.where(ok_lo, c * tokens + token, 0)], np.float32(0))
    hi = np.where(ok_hi, src[np.where(ok_hi, (c + 1) * tokens + token, 0)], np.float32(0))
    index = base + row * ld + c
    smem[index], smem[index + 1] = pack(lo, hi)[:, 0], pack(lo, hi)[:, 1]
    np.add.at(written, index, 1)
    np.add.at(written, index + 1, 1)


def attention_v3(qkv, batch, channels, heads, tokens):
    """The kernel on every block of the grid; qkv is the flat float32 (N, 3C, H, W) tensor."""
    head_dim = channels // heads
    assert head_dim <= DMAX, "the host runs version 2 for wider heads"
    d_pad = (head_dim + 15) & ~15
    ld = d_pad + PAD
    q_base, k_base = 0, BQ * ld
    v_base = k_base + KT * ld
    shared_halves = v_base + d_pad * VLD
    y = np.zeros(batch * channels * tokens, np.float32)
    y_writes = np.zeros(batch * channels * tokens, np.int64)
    scale = np.float32(1.0 / np.sqrt(head_dim))  # the host's (float)(1.0 / Math.Sqrt(headDim))
    row0 = WARP * 16  # (warps, 1)
    neg_inf = np.float32(-np.inf)

    for n in range(batch):
        for head in range(heads):
            q_off = (n * 3 * channels + head * head_dim) * tokens
            q = qkv[q_off:]
            k = qkv[q_off + channels * tokens:]
            v = qkv[q_off + 2 * channels * tokens:]
            for bx in range((tokens + BQ - 1) // BQ):
                q0 = bx * BQ
                smem = np.full(shared_halves, np.nan, np.float16)
                written = np.zeros(shared_halves, np.int64)
                o = np.zeros((WARPS, 32, DMAX // 8, 4), np.float32)
                row_max = np.full((WARPS, 32, 2), neg_inf, np.float32)
                row_sum = np.zeros((WARPS, 32, 2), np.float32)

                stage_rows(smem, q_base, ld, q, BQ, q0, tokens, head_dim, d_pad, written)
                q_region = (q_base + np.arange(BQ)[:, None] * ld + np.arange(d_pad)[None, :]).ravel()
                assert (written[q_region] == 1).all() and written.sum() == q_region.size, "Q staged exactly once"
                for key0 in range(0, tokens, KT):
                    written[:] = 0
                    stage_rows(smem, k_base, ld, k, KT, key0, tokens, head_dim, d_pad, written)
                    e = np.arange(d_pad * (KT // 2))
                    c = e // (KT // 2)
                    j = 2 * (e % (KT // 2))
                    key = key0 + j
                    ok_lo = (c < head_dim) & (key < tokens)
                    ok_hi = (c < head_dim) & (key + 1 < tokens)
                    lo = np.where(ok_lo, v[np.where(ok_lo, c * tokens + key, 0)], np.float32(0))
                    hi = np.where(ok_hi, v[np.where(ok_hi, c * tokens + key + 1, 0)], np.float32(0))
                    index = v_base + c * VLD + j
                    packed = pack(lo, hi)
                    smem[index], smem[index + 1] = packed[:, 0], packed[:, 1]
                    np.add.at(written, index, 1)
                    np.add.at(written, index + 1, 1)
                    k_region = k_base + np.arange(KT)[:, None] * ld + np.arange(d_pad)[None, :]
                    v_region = v_base + np.arange(d_pad)[:, None] * VLD + np.arange(KT)[None, :]
                    assert (written[k_region] == 1).all() and (written[v_region] == 1).all() \
                        and written.sum() == k_region.size + v_region.size, "K and V staged exactly once"

                    s = np.zeros((WARPS, 32, KT // 8, 4), np.float32)
                    for kk in range(0, d_pad, 16):
                        top = q_base + (row0 + G) * ld + kk + 2 * T
                        bottom = top + 8 * ld
                        a = np.stack([load_pair(smem, top), load_pair(smem, bottom), load_pair(smem, top + 8),
                                      load_pair(smem, bottom + 8)], axis=2)
                        for nt in range(KT // 8):
                            kidx = np.broadcast_to(k_base + (nt * 8 + G) * ld + kk + 2 * T, (WARPS, 32))
                            b = np.stack([load_pair(smem, kidx), load_pair(smem, kidx + 8)], axis=2)
                            s[:, :, nt] = mma(s[:, :, nt], a, b)

                    for r in range(2):
                        tile_max = np.full((WARPS, 32), neg_inf, np.float32)
                        for nt in range(KT // 8):
                            for e in range(2):
                                valid = np.broadcast_to(key0 + nt * 8 + 2 * T + e < tokens, (WARPS, 32))
                                score = np.where(valid, s[:, :, nt, 2 * r + e] * scale, neg_inf)
                                s[:, :, nt, 2 * r + e] = score
                                tile_max = np.fmax(tile_max, score)
                        tile_max = np.fmax(tile_max, shfl_xor(tile_max, 1))
                        tile_max = np.fmax(tile_max, shfl_xor(tile_max, 2))
                        new_max = np.fmax(row_max[:, :, r], tile_max)
                        rescale = np.exp(row_max[:, :, r] - new_max)
                        tile_sum = np.zeros((WARPS, 32), np.float32)
                        for nt in range(KT // 8):
                            for e in range(2):
                                p = np.exp(s[:, :, nt, 2 * r + e] - new_max)
                                s[:, :, nt, 2 * r + e] = p
                                tile_sum += p
                        row_sum[:, :, r] = row_sum[:, :, r] * rescale + tile_sum
                        row_max[:, :, r] = new_max
                        live = d_pad // 8  # nt · 8 < d_pad
                        o[:, :, :live, 2 * r] *= rescale[:, :, None]
                        o[:, :, :live, 2 * r + 1] *= rescale[:, :, None]

                    for ks in range(KT // 16):
                        a = np.stack([pack(s[:, :, 2 * ks, 0], s[:, :, 2 * ks, 1]), pack(s[:, :, 2 * ks, 2], s[:, :, 2 * ks, 3]),
                                      pack(s[:, :, 2 * ks + 1, 0], s[:, :, 2 * ks + 1, 1]),
                                      pack(s[:, :, 2 * ks + 1, 2], s[:, :, 2 * ks + 1, 3])], axis=2)
                        for nt in range(DMAX // 8):
                            if nt * 8 < d_pad:
                                column = np.broadcast_to(v_base + (nt * 8 + G) * VLD + ks * 16 + 2 * T, (WARPS, 32))
                                b = np.stack([load_pair(smem, column), load_pair(smem, column + 8)], axis=2)
                                o[:, :, nt] = mma(o[:, :, nt], a, b)

                for r in range(2):
                    row_sum[:, :, r] += shfl_xor(row_sum[:, :, r], 1)
                    row_sum[:, :, r] += shfl_xor(row_sum[:, :, r], 2)
                out = (n * channels + head * head_dim) * tokens
                for nt in range(DMAX // 8):
                    for e in range(4):
                        c = np.broadcast_to(nt * 8 + 2 * T + e % 2, (WARPS, 32))
                        query = np.broadcast_to(q0 + row0 + G + 8 * (e // 2), (WARPS, 32))
                        store = (c < head_dim) & (query < tokens)
                        index = out + c[store] * tokens + query[store]
                        np.add.at(y_writes, index, 1)
                        y[index] = (o[:, :, nt, e] / row_sum[:, :, e // 2])[store]
    assert (y_writes == 1).all(), "every output is written exactly once"
    return y


def attention_ref(qkv, batch, channels, heads, tokens):
    """Float64 attention, as Reference.Attention in the C# tests."""
    d = channels // heads
    x = qkv.astype(np.float64).reshape(batch, 3, heads, d, tokens)
    q, k, v = x[:, 0], x[:, 1], x[:, 2]
    s = np.einsum('nhct,nhcj->nhtj', q, k) / np.sqrt(d)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum('nhtj,nhcj->nhct', p, v).reshape(-1)


def normalised_error(got, expected):
    """KernelCheck.NormalisedError: max error over max |reference|."""
    return np.abs(got - expected).max() / np.abs(expected).max()


def check_fragment_layouts():
    """Each layout gives every element of A (16 × 16), B (16 × 8) and C (16 × 8) to exactly one (lane, register, half)."""
    g, t = LANE // 4, LANE % 4
    a = np.zeros((16, 16), int)
    b = np.zeros((16, 8), int)
    c = np.zeros((16, 8), int)
    for h in range(2):
        for row, col in [(g, 2 * t + h), (g + 8, 2 * t + h), (g, 2 * t + 8 + h), (g + 8, 2 * t + 8 + h)]:
            np.add.at(a, (row, col), 1)
        for row, col in [(2 * t + h, g), (2 * t + 8 + h, g)]:
            np.add.at(b, (row, col), 1)
        for row, col in [(g, 2 * t + h), (g + 8, 2 * t + h)]:
            np.add.at(c, (row, col), 1)
    assert (a == 1).all() and (b == 1).all() and (c == 1).all()


def main():
    check_fragment_layouts()
    rng = np.random.default_rng(0)
    cases = [
        # batch, channels, heads, tokens
        (1, 256, 1, 256),  # the CIFAR U-Net's 16×16 attention, d = 256
        (1, 256, 4, 64),   # d = 64, 4 heads
        (2, 80, 2, 40),    # batch 2; 40 tokens: a partial query tile and a partial key tile; d = 40 pads to 48
        (1, 36, 3, 25),    # d = 12, 25 tokens
    ]
    for (batch, channels, heads, tokens) in cases:
        # As the GPU tests: spread wide enough that softmax rows are far from uniform.
        qkv = rng.uniform(-2, 2, batch * 3 * channels * tokens).astype(np.float32)
        got = attention_v3(qkv, batch, channels, heads, tokens)
        exact = attention_ref(qkv, batch, channels, heads, tokens)
        rounded = attention_ref(qkv.astype(np.float16), batch, channels, heads, tokens)
        vs_rounded = normalised_error(got, rounded)
        vs_exact = normalised_error(got, exact)
        print(f"batch {batch}, {channels} channels, {heads} heads, {tokens} tokens: normalised error "
              f"{vs_rounded:.1e} vs fp16-input float64 attention, {vs_exact:.1e} vs float64 attention")
        assert vs_rounded < 1e-3, "the kernel's index mapping does not compute this attention"
        assert vs_exact < TOLERANCE, "fp16 rounding error above the tolerance the GPU tests use"
    print("OK")


if __name__ == "__main__":
    main()
