#!/usr/bin/env python3
"""Our CUDA kernels against PyTorch/cuDNN on the same GPU, in one run.

For every row `diffuse bench --device cuda --versions --json` reports (each op of the DDPM CIFAR-10 U-Net on its
real shapes, each kernel version, batch 1, 8, 64 and 256), the same op is timed in PyTorch with the same inputs layout,
the same number of rotated input copies (so neither side is timed out of L2 cache), CUDA events, warm-up and the
median of many runs:

  conv        F.conv2d, cuDNN with torch.backends.cudnn.benchmark = True; float32 with TF32 off AND on, and
              half vs half for our conv2d version 3 (fp16 tensor cores, float32 accumulate)
  group_norm  F.silu(F.group_norm(...))
  attention   qkv (B, 3C, H, W) → q, k, v heads → F.scaled_dot_product_attention → (B, C, H, W), as diffusers does;
              half vs half for our attention version 3
  linear      F.linear(F.silu(x) if SiLU else x)
  sampler     the fused sampler update written as PyTorch elementwise ops
  unet        the whole U-Net forward: ours eager (`diffuse unet --repeat N` and bench's row) and as a CUDA graph;
              PyTorch eager (weights/reference_unet.py, synthetic weights from weights/synthetic_weights.py, seed 42)
              and torch.compile when it works

It prints one table (op, shape, batch, ours, PyTorch, ratio = PyTorch ms / ours ms, so > 1 means we are faster,
TFLOP/s, % of peak) and appends it with device, driver, command and date to bench/RESULTS.md under "## GPU".
See bench/cudnn/README.md for the one-shot command sequence. No .NET is needed here: `diffuse` is a
self-contained publish.
"""
import argparse
import datetime
import shutil
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "weights"))
import reference_unet  # noqa: E402
import safetensors_io  # noqa: E402
import synthetic_weights  # noqa: E402

CIFAR10_CONFIG = {
    "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
    "time_embedding_type": "positional", "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}


# ----------------------------------------------------------------------------------------------------------------
# Timing

class Timer:
    """Median milliseconds of `fn(i)` over iterations, after warm-up; CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device, iterations, warmup):
        self.device, self.iterations, self.warmup = device, iterations, warmup

    def __call__(self, fn):
        for i in range(self.warmup):
            fn(i)
        self.sync()
        times = []
        for i in range(self.iterations):
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(i)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn(i)
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


class tf32:
    """Context manager: TF32 for cuDNN convolutions and cuBLAS matmuls on or off, restored afterwards."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = self.enabled
        torch.backends.cuda.matmul.allow_tf32 = self.enabled

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


# ----------------------------------------------------------------------------------------------------------------
# The same ops in PyTorch. Each builder returns fn(i) that runs copy i % copies, like our bench rotates its copies.

def rand(shape, device, dtype, scale=1.0, generator=None):
    return ((torch.rand(shape, generator=generator, device="cpu") * 2 - 1) * scale).to(device=device, dtype=dtype)


def build_conv(p, batch, copies, device, dtype):
    cin, cout, k, s = p["cin"], p["cout"], p["k"], p["stride"]
    pb, pe, h, w = p["padBegin"], p["padEnd"], p["h"], p["w"]
    weight = rand((cout, cin, k, k), device, dtype, 1 / (cin * k * k) ** 0.5)
    bias = rand((cout,), device, dtype, 0.1)
    xs = [rand((batch, cin, h, w), device, dtype) for _ in range(copies)]
    if pb == pe:
        return lambda i: F.conv2d(xs[i % copies], weight, bias, stride=s, padding=pb)
    # diffusers' Downsample2D with downsample_padding = 0 pads right/bottom explicitly, then convolves unpadded.
    return lambda i: F.conv2d(F.pad(xs[i % copies], (pb, pe, pb, pe)), weight, bias, stride=s)


def build_group_norm(p, batch, copies, device, dtype):
    c, h, w = p["c"], p["h"], p["w"]
    gamma, beta = 1 + rand((c,), device, dtype, 0.25), rand((c,), device, dtype, 0.25)
    xs = [rand((batch, c, h, w), device, dtype) + 3 for _ in range(copies)]
    return lambda i: F.silu(F.group_norm(xs[i % copies], p["groups"], gamma, beta, p["eps"]))


def build_attention(p, batch, copies, device, dtype):
    c, heads, h, w = p["c"], p["heads"], p["h"], p["w"]
    qkvs = [rand((batch, 3 * c, h, w), device, dtype) for _ in range(copies)]

    def run(i):
        qkv = qkvs[i % copies].reshape(batch, 3, heads, c // heads, h * w).permute(1, 0, 2, 4, 3)
        out = attend(qkv[0], qkv[1], qkv[2])  # (B, heads, T, d)
        return out.permute(0, 1, 3, 2).reshape(batch, c, h, w)
    return run


def attend(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # PyTorch 2: flash / memory-efficient kernels
        return F.scaled_dot_product_attention(q, k, v)
    return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1) @ v


def build_linear(p, batch, copies, device, dtype):
    fin, fout = p["in"], p["out"]
    ws = [rand((fout, fin), device, dtype, 1 / fin ** 0.5) for _ in range(copies)]
    b = rand((fout,), device, dtype, 0.1)
    xs = [rand((batch, fin), device, dtype, 3) for _ in range(copies)]
    act = F.silu if p["siluInput"] else (lambda x: x)
    return lambda i: F.linear(act(xs[i % copies]), ws[i % copies], b)


def build_sampler(p, batch, copies, device, dtype):
    shape = (batch, p["c"], p["h"], p["w"])
    t = [[rand(shape, device, dtype) for _ in range(4)] for _ in range(copies)]
    a, bm, clip, cs, cm, e, f, g, hh, nz = 1.02, -0.2, 1.0, 0.1, 0.98, 0.7, 0.3, 0.05, -0.1, 0.02

    def run(i):
        x, m, z, prev = t[i % copies]
        x0 = (a * x + bm * m).clamp(-clip, clip)
        eps = cs * x + cm * m
        return e * x0 + f * eps + g * x + hh * prev + nz * z
    return run


COMPILE = True

BUILDERS = {"conv": build_conv, "group_norm": build_group_norm, "attention": build_attention,
            "linear": build_linear, "sampler": build_sampler}


_SYNTHETIC = {}


def synthetic_cifar_state():
    """The synthetic weights our bench's U-Net rows use (weights/synthetic_weights.py, seed 42), generated once."""
    if not _SYNTHETIC:
        shapes = {k: tuple(v.shape) for k, v in reference_unet.UNet2DModel(CIFAR10_CONFIG).state_dict().items()}
        _SYNTHETIC.update(synthetic_weights.synthetic_state_dict(shapes, 42))
    return _SYNTHETIC


def cifar_unet(device, dtype):
    model = reference_unet.UNet2DModel(CIFAR10_CONFIG)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in synthetic_cifar_state().items()}, strict=True)
    return model.to(device=device, dtype=dtype).eval()


# ----------------------------------------------------------------------------------------------------------------
# Our side

def run_ours(diffuse, args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = shlex.split(diffuse) + ["bench", "--device", args.device, "--ops", args.ops, "--batch", args.batch,
               "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--json", out]
        if args.device == "cuda":
            cmd.append("--versions")
        print("+", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, text=True, capture_output=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if args.out_dir and os.path.exists(out):
            shutil.copy(out, os.path.join(args.out_dir, "diffuse-bench.json"))
        if proc.returncode != 0 or not os.path.exists(out):
            sys.exit(f"diffuse bench failed with exit code {proc.returncode}; a kernel that differs from the CPU backend is a bug to fix first")
        with open(out) as f:
            return json.load(f), " ".join(cmd)


def run_diffuse_unet(diffuse, device, batch, repeat, tmp, torch_device):
    """`diffuse unet --repeat N` on a synthetic model folder; returns (median ms, max |ours − PyTorch|) or None."""
    model_dir = os.path.join(tmp, "model")
    if not os.path.isdir(model_dir):
        os.makedirs(model_dir)
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump(CIFAR10_CONFIG, f)
        safetensors_io.write(os.path.join(model_dir, "diffusion_pytorch_model.safetensors"), synthetic_cifar_state())
    sample = synthetic_weights.uniform("sample", batch * 3 * 32 * 32, 7).reshape(batch, 3, 32, 32)
    inp, out = os.path.join(tmp, f"sample{batch}.safetensors"), os.path.join(tmp, f"out{batch}.safetensors")
    safetensors_io.write(inp, {"sample": sample})
    cmd = shlex.split(diffuse) + ["unet", "--model", model_dir, "--input", inp, "--timestep", "500", "--out", out,
           "--repeat", str(repeat), "--device", device, "--force"]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, text=True, capture_output=True)
    match = re.search(r"forward: median ([0-9.]+) ms", proc.stderr)
    if proc.returncode != 0 or not match:
        print(f"diffuse unet did not run (exit {proc.returncode}): {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    ours = safetensors_io.read(out)[0]["sample"]
    with torch.no_grad(), tf32(False):
        ref = cifar_unet(torch_device, torch.float32)(torch.from_numpy(sample).to(torch_device),
                                                       torch.tensor([500.0], device=torch_device)).cpu().numpy()
    return float(match.group(1)), float(np.abs(ours - ref).max())


# ----------------------------------------------------------------------------------------------------------------

def environment(device):
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": None, "device": "cpu", "driver": None}
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        info["device"] = torch.cuda.get_device_name(device)
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            text=True, capture_output=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            info["driver"] = "unknown (nvidia-smi unavailable)"
    return info


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--diffuse", default=os.path.join(REPO, "publish", "diffuse", "diffuse"),
                        help="the published diffuse binary (a command line, e.g. 'dotnet path/diffuse.dll', also works)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only to smoke-test this script")
    parser.add_argument("--ops", default="conv,attention,group_norm,linear,sampler,unet,unet_graph")
    parser.add_argument("--batch", default="1,8,64,256")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--unet-repeat", type=int, default=30)
    parser.add_argument("--results", default=os.path.join(REPO, "bench", "RESULTS.md"))
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it can take minutes per shape)")
    parser.add_argument("--out-dir", help="also copy the raw JSON, the report and RESULTS.md here (e.g. $OUT on the device machine)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
    global COMPILE
    COMPILE = not args.no_compile
    torch.backends.cudnn.benchmark = True
    timer = Timer(device, args.iterations, args.warmup)
    env = environment(device)
    ours, our_command = run_ours(args.diffuse, args)
    peak = ours.get("peak") or {}

    variants = [("fp32 TF32 off", torch.float32, False)]
    if device.type == "cuda":
        variants += [("fp32 TF32 on", torch.float32, True), ("fp16", torch.float16, False)]

    lines = []
    header = ("| op | shape | batch | ours (version) | ours ms | PyTorch | PyTorch ms | ratio | ours TFLOP/s | ours % peak |\n"
              "|---|---|---:|---|---:|---|---:|---:|---:|---:|")
    pytorch_cache = {}
    for row in ours["rows"]:
        op, batch, version, params = row["Op"], row["Batch"], row["Version"], row["Params"]
        half = "fp16" in version
        for label, dtype, allow_tf32 in variants:
            if half != (dtype == torch.float16):
                continue  # float32 kernels against float32 PyTorch (TF32 off and on), half against half
            key = ("unet" if op == "unet_graph" else op, row["Shape"] if op in BUILDERS else "", batch, label)
            if key not in pytorch_cache:
                with tf32(allow_tf32), torch.no_grad():
                    pytorch_cache[key] = time_pytorch(op, params, batch, row["Copies"], device, dtype, timer)
            theirs = pytorch_cache[key]
            if theirs is None:
                continue
            for name, ms in theirs:
                tflops = row["Gflops"] / 1e3 if row.get("Gflops") else None
                lines.append(f"| {op} | {row['Shape']} | {batch} | {version} | {row['Ms']:.4f} | {name} ({label}) | {ms:.4f} "
                             f"| {ms / row['Ms']:.2f} | {fmt(tflops, '.2f')} | {fmt(row.get('PercentOfPeak'), '.1f')} |")

    unet_lines = []
    if "unet" in args.ops.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            for batch in [int(b) for b in args.batch.split(",")]:
                result = run_diffuse_unet(args.diffuse, args.device, batch, args.unet_repeat, tmp, device)
                if result:
                    unet_lines.append(f"- `diffuse unet --repeat {args.unet_repeat}` batch {batch}: median {result[0]:.3f} ms per forward "
                                      f"(stopwatch incl. synchronise); max |ours − PyTorch eager float32| = {result[1]:.2e}")

    table = "\n".join([header] + lines)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    peaks = ", ".join(f"{k} {v / 1e12:.1f} T" + ("B/s" if "Bytes" in k else "FLOP/s") for k, v in peak.items() if v)
    report = (f"\n### {env['device']} — {now}\n\n"
              f"- Ours: {ours['device']}; peaks used for % of peak: {peaks or 'unknown'}\n"
              f"- PyTorch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, driver {env['driver']}; "
              f"cudnn.benchmark = True; TF32 default on this build: cudnn {torch.backends.cudnn.allow_tf32}, "
              f"matmul {torch.backends.cuda.matmul.allow_tf32} (both settings measured explicitly below)\n"
              f"- Commands: `{' '.join([sys.executable] + sys.argv)}` which ran `{our_command}`\n"
              f"- Medians of {args.iterations} runs after {args.warmup} warm-up runs, CUDA events, inputs rotated over "
              f"the same number of copies on both sides (column 'Copies' of the JSON). Ratio = PyTorch ms / ours ms (> 1: ours faster).\n"
              + "".join(line + "\n" for line in unet_lines) + "\n" + table + "\n")
    print(report)
    if not args.no_append:
        append_gpu_section(args.results, report)
        print(f"appended to {args.results}")
    if args.out_dir:
        with open(os.path.join(args.out_dir, "report.md"), "w") as f:
            f.write(report)
        if os.path.exists(args.results):
            shutil.copy(args.results, os.path.join(args.out_dir, "RESULTS.md"))


def time_pytorch(op, params, batch, copies, device, dtype, timer):
    """[(name, ms)] for the PyTorch implementations of one row, or None when the op has no PyTorch twin."""
    if op in BUILDERS:
        fn = BUILDERS[op](params, batch, copies, device, dtype)
        return [("cuDNN" if op == "conv" and device.type == "cuda" else "eager", timer(fn))]
    if op not in ("unet", "unet_graph"):
        return None
    model = cifar_unet(device, dtype)
    x = rand((batch, 3, 32, 32), device, dtype)
    t = torch.full((batch,), 500.0, device=device)
    results = [("eager", timer(lambda i: model(x, t)))]
    if COMPILE and device.type == "cuda" and hasattr(torch, "compile"):
        try:
            compiled = torch.compile(model, mode="reduce-overhead")  # Inductor kernels + CUDA graphs
            results.append(("torch.compile", timer(lambda i: compiled(x, t))))
        except Exception as e:  # noqa: BLE001 — a missing compiler toolchain must not lose the other numbers
            print(f"torch.compile unavailable: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    return results


def append_gpu_section(path, report):
    text = open(path).read() if os.path.exists(path) else "# Results\n\n## CPU\n\n## GPU\n"
    if "\n## GPU" not in text:
        text = text.rstrip("\n") + "\n\n## GPU\n"
    start = text.index("\n## GPU") + 1
    following = text.find("\n## ", start + 1)
    end = len(text) if following < 0 else following + 1
    text = text[:end].rstrip("\n") + "\n" + report + ("\n" + text[end:] if following >= 0 else "")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
