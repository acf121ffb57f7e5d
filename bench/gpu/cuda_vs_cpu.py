#!/usr/bin/env python3
"""
The published `diffuse` on CUDA against itself on the CPU, end to end, for bench/gpu/check.sh:

  unet      `diffuse unet` on the DDPM CIFAR-10 U-Net (synthetic weights, seed 42, as bench/cudnn/compare.py and
            `diffuse bench` use) at timestep 500, for each batch: max |cuda - cpu| of the output and the median ms
            per forward on the GPU (`--repeat`).
  generate  `diffuse generate` with the default Fashion-MNIST model (weights/default), DDIM, the same seed on both
            devices: max |cuda - cpu| of the final samples (`--save-tensor`) and the wall time of each run.

The CPU backend is the reference because every kernel test already holds it to PyTorch and float64; compare.py
does the GPU-against-PyTorch comparison. Needs numpy, and torch only for the U-Net's tensor shapes.
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

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bench", "cudnn"))
sys.path.insert(0, os.path.join(REPO, "weights"))
import safetensors_io  # noqa: E402
import synthetic_weights  # noqa: E402


def run(cmd, log):
    """Runs a diffuse command, appending its command line and output to the log; returns (exit code, stderr)."""
    log.write("+ " + " ".join(cmd) + "\n")
    log.flush()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    log.write(proc.stdout + proc.stderr)
    log.flush()
    if proc.returncode != 0:
        device = cmd[cmd.index("--device") + 1]
        print(f"  diffuse {cmd[1]} --device {device}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}", flush=True)
    return proc.returncode, proc.stderr


def read_sample(path):
    return safetensors_io.read(path)[0]["sample"]


def check_unet(diffuse, device, batches, repeat, tmp, log):
    import compare  # bench/cudnn/compare.py: the CIFAR-10 config and its synthetic weights (imports torch)

    model = os.path.join(tmp, "cifar10-synthetic")
    os.makedirs(model)
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump(compare.CIFAR10_CONFIG, f)
    safetensors_io.write(os.path.join(model, "diffusion_pytorch_model.safetensors"), compare.synthetic_cifar_state())

    ok = True
    for batch in batches:
        sample = synthetic_weights.uniform("sample", batch * 3 * 32 * 32, 7).reshape(batch, 3, 32, 32)
        inp = os.path.join(tmp, f"sample{batch}.safetensors")
        safetensors_io.write(inp, {"sample": sample})
        outputs = {}
        for dev, runs in (("cpu", 1), (device, repeat)):
            out = os.path.join(tmp, f"unet{batch}-{dev}.safetensors")
            code, stderr = run([diffuse, "unet", "--model", model, "--input", inp, "--timestep", "500", "--out", out,
                                "--repeat", str(runs), "--device", dev, "--force"], log)
            if code != 0:
                ok = False
                break
            outputs[dev] = (read_sample(out), re.search(r"forward: median ([0-9.]+) ms", stderr))
        else:
            (reference, _), (ours, timing) = outputs["cpu"], outputs[device]
            ms = f"{float(timing.group(1)):.3f} ms/forward (median of {repeat})" if timing else "no timing printed"
            print(f"unet batch {batch:3d}: {device} {ms}, max |{device} - cpu| {np.abs(ours - reference).max():.2e} "
                  f"(max |cpu| {np.abs(reference).max():.2f})", flush=True)
    return ok


def check_generate(diffuse, device, batch, steps, tmp, log):
    outputs = {}
    for dev in ("cpu", device):
        tensor = os.path.join(tmp, f"generate-{dev}.safetensors")
        start = time.perf_counter()
        code, _ = run([diffuse, "generate", "--model", os.path.join(REPO, "weights", "default"), "--scheduler", "ddim",
                       "--steps", str(steps), "--seed", "3", "--batch", str(batch), "--device", dev,
                       "--save-tensor", tensor, "--out", os.path.join(tmp, f"generate-{dev}.png"), "--force"], log)
        if code != 0:
            return False
        outputs[dev] = (read_sample(tensor), time.perf_counter() - start)
    (reference, cpu_s), (ours, ours_s) = outputs["cpu"], outputs[device]
    print(f"generate ddim {steps} steps, batch {batch}: {device} {ours_s:.2f} s, cpu {cpu_s:.2f} s (whole process), "
          f"max |{device} - cpu| {np.abs(ours - reference).max():.2e}", flush=True)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--diffuse", default=os.path.join(REPO, "publish", "tests", "diffuse"))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only to try the script")
    parser.add_argument("--batch", default="1,64", help="U-Net batch sizes")
    parser.add_argument("--repeat", type=int, default=30, help="timed U-Net forwards per batch")
    parser.add_argument("--generate-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--log", help="file for the full diffuse output (default: stderr)")
    args = parser.parse_args()

    log = open(args.log, "a") if args.log else sys.stderr
    with tempfile.TemporaryDirectory() as tmp:
        ok = check_unet(args.diffuse, args.device, [int(b) for b in args.batch.split(",")], args.repeat, tmp, log)
        ok = check_generate(args.diffuse, args.device, args.generate_batch, args.steps, tmp, log) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
