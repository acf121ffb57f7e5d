#!/usr/bin/env python3
"""Our `diffuse unet` against PyTorch on the same weights and input, in one run.

Builds the google/ddpm-cifar10-32 architecture with the project's synthetic weights (seed 42, see
weights/synthetic_weights.py) as a diffusers folder in a temporary directory, then for each batch size:
  - times `diffuse unet --repeat N` (median forward, uploads excluded, as printed by diffuse itself);
  - times weights/reference_unet.py under torch.no_grad() with the same thread count (median of N);
  - compares the two outputs (max abs difference).
and prints one Markdown table: shape, ours ms, PyTorch ms, ratio (PyTorch / ours: > 1 means we are faster),
max abs difference.

Run from the repository root with Debian's Python (torch 1.13; install libopenblas0-pthread first, or torch
falls back to the slow reference BLAS):

    /usr/bin/python3 bench/side_by_side.py [--batches 1,8] [--repeat 10] [--threads 2] [--device cpu]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "weights"))

import reference_unet  # noqa: E402
import safetensors_io  # noqa: E402
import synthetic_weights  # noqa: E402

TIMESTEP = 500
WEIGHT_SEED = 42


def build_diffuse():
    """Builds the CLI once; returns the command that runs it."""
    subprocess.run(["dotnet", "build", "-c", "Release", "--nologo", "-v", "q", os.path.join(ROOT, "src", "Diffusion.Cli")],
                   check=True, stdout=subprocess.DEVNULL)
    return ["dotnet", os.path.join(ROOT, "src", "Diffusion.Cli", "bin", "Release", "net10.0", "diffuse.dll")]


def write_model(folder, config):
    model = reference_unet.UNet2DModel(config)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    state = synthetic_weights.synthetic_state_dict(shapes, WEIGHT_SEED)
    safetensors_io.write(os.path.join(folder, "diffusion_pytorch_model.safetensors"), state)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()}, strict=True)
    return model.eval()


def time_ours(diffuse, folder, sample_path, out_path, repeat, device):
    result = subprocess.run(diffuse + ["unet", "--model", folder, "--input", sample_path, "--timestep", str(TIMESTEP),
                                       "--out", out_path, "--repeat", str(repeat), "--device", device, "--force"],
                            check=True, capture_output=True, text=True)
    match = re.search(r"forward: median ([0-9.]+) ms, best ([0-9.]+) ms", result.stderr)
    if not match:
        raise RuntimeError("diffuse printed no timing:\n" + result.stderr)
    device_line = next((l for l in result.stderr.splitlines() if l.startswith("device:")), "device: ?")
    return float(match.group(1)), device_line, safetensors_io.read(out_path)[0]["sample"]


def time_torch(model, sample, repeat):
    x = torch.from_numpy(sample)
    t = torch.full((sample.shape[0],), float(TIMESTEP))
    with torch.no_grad():
        out = model(x, t)  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            out = model(x, t)
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), out.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    diffuse = build_diffuse()
    rows = []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as folder:
        model = write_model(folder, reference_unet.CIFAR10_CONFIG)
        device_line = ""
        for batch in [int(b) for b in args.batches.split(",")]:
            count = batch * 3 * 32 * 32
            sample = synthetic_weights.gaussian("sample", count, 7).astype(np.float32).reshape(batch, 3, 32, 32)
            sample_path = os.path.join(folder, f"sample{batch}.safetensors")
            safetensors_io.write(sample_path, {"sample": sample})
            ours_ms, device_line, ours_out = time_ours(diffuse, folder, sample_path, os.path.join(folder, "out.safetensors"),
                                                       args.repeat, args.device)
            torch_ms, torch_out = time_torch(model, sample, args.repeat)
            diff = float(np.max(np.abs(ours_out - torch_out)))
            rows.append((f"({batch}, 3, 32, 32)", ours_ms, torch_ms, torch_ms / ours_ms, diff))

    blas = "openblas" if "openblas" in torch.__config__.show().lower() else "see torch.__config__.show()"
    print(f"DDPM CIFAR-10 U-Net (35.7M parameters), one forward at t={TIMESTEP}, median of {args.repeat}")
    print(f"ours: diffuse unet, {device_line}; PyTorch {torch.__version__} ({blas}), {torch.get_num_threads()} threads, no_grad")
    print()
    print("| input shape | ours ms | PyTorch ms | ratio (PyTorch/ours) | max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for shape, ours_ms, torch_ms, ratio, diff in rows:
        print(f"| {shape} | {ours_ms:.1f} | {torch_ms:.1f} | {ratio:.2f}× | {diff:.2e} |")


if __name__ == "__main__":
    main()
