#!/usr/bin/env python3
"""Deterministic synthetic weights / inputs / noise, re-implemented bit-exactly in C#
(src/Diffusion.Kernels/Models/SyntheticWeights.cs).  Lets goldens for the 143 MB
google/ddpm-cifar10-32 architecture be produced without committing weights.

SPEC (all integer arithmetic is on unsigned 64-bit, i.e. mod 2^64)
-----------------------------------------------------------------
splitmix64 next():
    state = state + 0x9E3779B97F4A7C15
    z = state
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    return z ^ (z >> 31)

fnv1a64(name): h = 0xcbf29ce484222325; for each byte b of UTF-8(name): h = (h ^ b) * 0x100000001b3

Stream for (name, seed): initial state = seed XOR fnv1a64(name); the i-th draw
(i = 0, 1, 2, ...) is the i-th call of next().
    u_i = (next() >> 40) * 2^-24          in [0, 1), exactly representable (24 bits)
    r_i = 2*u_i - 1                        in [-1, 1), exact in float32 and float64

Generate(name, shape, seed) -> float32[prod(shape)], row-major (C order), element i uses r_i.
Rule, evaluated in float64 then rounded once to float32 (round-to-nearest-even):
    1. name contains "norm" (norm1, norm2, group_norm, conv_norm_out, ...):
           ends with ".weight": 1.0 + 0.25 * r_i
           otherwise (".bias"): 0.25 * r_i
    2. else if len(shape) >= 2 (conv / linear weight):
           fan_in = prod(shape[1:])  (e.g. in*kh*kw for conv, in for linear)
           scale = 1.0 / sqrt(fan_in)      (IEEE division of 1.0 by correctly rounded sqrt)
           r_i * scale
    3. else (1-D: conv / linear bias, anything else): 0.1 * r_i
       (0.1 is the float64 literal 0.1)

Uniform(name, count, seed) -> float32[count]: r_i (exact).

Gaussian(name, count, seed) -> float32[count]: element i uses the draws 2i and 2i+1:
    u1 = u_{2i}, u2 = u_{2i+1}
    g  = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * pi * u2)     (float64, pi = Math.PI; then -> float32)
    1 - u1 lies in [2^-24, 1], so log is finite.  Only the cosine branch is used
    (one normal per pair of draws).  log/cos are libm calls: Python uses
    `math.log`/`math.cos` (glibc on Linux), as does .NET on Linux, so results are
    bit-exact there; on other libms a 1-ulp float64 difference can very rarely
    flip the last float32 bit -> compare Gaussian values with atol 1e-6.

Seeds used by the goldens: weights seed 42, sample "sample" seed 7 (see make_goldens.py).
"""
import math

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
MASK = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


class SplitMix64:
    """Scalar reference (used by tests of the vectorised version)."""

    def __init__(self, state):
        self.state = state & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def raw_draws(name, count, seed):
    """First `count` outputs of splitmix64 seeded with seed ^ fnv1a64(name), as uint64."""
    s0 = np.uint64((seed ^ fnv1a64(name)) & MASK)
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = s0 + i * GAMMA  # state after i increments (wraps mod 2^64)
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
    return z


def uniform01(name, count, seed):
    """u_i in [0,1) as float64."""
    return (raw_draws(name, count, seed) >> np.uint64(40)).astype(np.float64) * (2.0 ** -24)


def uniform(name, count, seed):
    """r_i = 2u-1 in [-1,1) as float32 (exact)."""
    return (2.0 * uniform01(name, count, seed) - 1.0).astype(np.float32)


def gaussian(name, count, seed):
    u = uniform01(name, 2 * count, seed)
    out = np.empty(count, dtype=np.float32)
    two_pi = 2.0 * math.pi
    for i in range(count):  # scalar libm calls for cross-language bit-exactness
        out[i] = math.sqrt(-2.0 * math.log(1.0 - u[2 * i])) * math.cos(two_pi * u[2 * i + 1])
    return out


def generate(name, shape, seed):
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape)) if shape else 1
    r = 2.0 * uniform01(name, n, seed) - 1.0
    if "norm" in name:
        v = 1.0 + 0.25 * r if name.endswith(".weight") else 0.25 * r
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = r * (1.0 / math.sqrt(fan_in))
    else:
        v = 0.1 * r
    return v.astype(np.float32).reshape(shape)


def synthetic_state_dict(shapes, seed):
    """shapes: {name: shape} (e.g. from a torch state_dict) -> {name: float32 ndarray}."""
    return {k: generate(k, s, seed) for k, s in shapes.items()}


if __name__ == "__main__":
    # vectorised == scalar reference
    seed = 42
    name = "down_blocks.0.resnets.0.conv1.weight"
    sm = SplitMix64(seed ^ fnv1a64(name))
    ref = [sm.next() for _ in range(5)]
    assert [int(x) for x in raw_draws(name, 5, seed)] == ref
    # splitmix64 known answer: seed 0 -> first output 0xE220A8397B1DCDAF
    assert SplitMix64(0).next() == 0xE220A8397B1DCDAF
    assert fnv1a64("") == 0xCBF29CE484222325 and fnv1a64("a") == 0xAF63DC4C8601EC8C
    print("fnv1a64('sample') =", hex(fnv1a64("sample")))
    print("raw_draws('sample', 3, 7) =", [hex(int(x)) for x in raw_draws("sample", 3, 7)])
    print("uniform('sample', 4, 7) =", uniform("sample", 4, 7).tolist())
    print("gaussian('sample', 4, 7) =", gaussian("sample", 4, 7).tolist())
    print("generate(conv_in.weight,(128,3,3,3),42)[:4] =", generate("conv_in.weight", (128, 3, 3, 3), 42).ravel()[:4].tolist())
    print("generate(conv_in.bias,(128,),42)[:4] =", generate("conv_in.bias", (128,), 42)[:4].tolist())
    print("generate(conv_norm_out.weight,(128,),42)[:4] =", generate("conv_norm_out.weight", (128,), 42)[:4].tolist())
    g = gaussian("noise", 20000, 1)
    assert abs(g.mean()) < 0.03 and abs(g.std() - 1) < 0.03, (g.mean(), g.std())
    print("synthetic_weights self-test OK")
