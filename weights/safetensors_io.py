#!/usr/bin/env python3
"""Minimal safetensors reader/writer on numpy (no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors):
    u64 little-endian N | N bytes of UTF-8 JSON header | raw little-endian tensor bytes
Header: {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}, ...}; offsets are relative to the byte after the
header.  We pad the header with spaces so that 8 + N is a multiple of 8 (so
every data section starts 8-aligned, as the reference writer does).  Tensors are
written in sorted-name order, contiguous, no gaps.

Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
numpy has no bfloat16: `read` returns BF16 tensors widened to float32 (exact);
`write` accepts bf16 data as a BF16Array wrapper holding the raw uint16 bits.
"""
import json
import struct

import numpy as np

_NP2ST = {
    np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("<i2"): "I16",
    np.dtype("i1"): "I8", np.dtype("u1"): "U8", np.dtype("bool"): "BOOL",
}
_ST2NP = {v: k for k, v in _NP2ST.items()}


class BF16Array:
    """Raw bfloat16 payload: `bits` is a uint16 array (upper half of float32)."""

    def __init__(self, bits):
        self.bits = np.ascontiguousarray(bits, dtype="<u2")

    @staticmethod
    def from_float32(x):
        """Round-to-nearest-even float32 -> bf16 bits (NaN kept NaN)."""
        u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
        rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        nan = np.isnan(np.asarray(x, dtype=np.float32))
        rounded = np.where(nan, (u >> 16) | 0x40, rounded)
        return BF16Array(rounded.astype("<u2"))

    def to_float32(self):
        return (self.bits.astype("<u4") << 16).view("<f4")


def write(path, tensors, metadata=None):
    """tensors: {name: np.ndarray | BF16Array}; metadata: {str: str} (values must be str)."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise TypeError(f"metadata value for {k!r} must be str")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, BF16Array):
            dtype, shape, raw = "BF16", list(t.bits.shape), t.bits.tobytes()
        else:
            a = np.asarray(t)
            a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
            if a.dtype not in _NP2ST:
                raise TypeError(f"{name}: unsupported dtype {a.dtype}")
            dtype, shape, raw = _NP2ST[a.dtype], list(a.shape), a.tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - (8 + len(hb)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read(path, keep_bf16=False):
    """Returns (tensors: {name: np.ndarray}, metadata: {str: str})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = data[base + b: base + e]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            bits = np.frombuffer(buf, dtype="<u2").reshape(shape)
            out[name] = BF16Array(bits.copy()) if keep_bf16 else BF16Array(bits).to_float32().reshape(shape)
        else:
            out[name] = np.frombuffer(buf, dtype=_ST2NP[info["dtype"]]).reshape(shape).copy()
    return out, meta


if __name__ == "__main__":
    import os
    import tempfile

    p = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    src = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int64),
           "c": np.ones((1,), np.float16), "d": np.zeros((0, 2), np.float64),
           "e": BF16Array.from_float32(np.array([1.5, -3.0, 1e-3], np.float32))}
    write(p, src, {"k": "v"})
    got, meta = read(p)
    assert meta == {"k": "v"}
    for k in "abcd":
        assert got[k].dtype == np.asarray(src[k]).dtype and np.array_equal(got[k], src[k]), k
    assert np.allclose(got["e"], [1.5, -3.0, 1e-3], rtol=1e-2)
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    assert (8 + n) % 8 == 0
    print("safetensors_io self-test OK")
