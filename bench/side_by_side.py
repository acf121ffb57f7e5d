#!/usr/bin/env python3
"""One U-Net forward in our CPU backend, ONNX Runtime, libtorch and PyTorch, same weights and input, in one run.

The google/ddpm-cifar10-32 architecture with the project's synthetic weights (seed 42, weights/synthetic_weights.py)
and a seeded Gaussian sample at t=500 go, per batch size, into a cache folder as
  - a diffusers folder (config.json + safetensors) for our library,
  - an ONNX model from torch.onnx.export of weights/reference_unet.py, for ONNX Runtime,
  - a TorchScript module from torch.jit.trace of the same module, for libtorch and for "PyTorch traced",
  - the sample as raw float32.
Two long-lived processes then time them: bench/SideBySide (C#) hosts our CpuBackend in-process, ONNX Runtime 1.31
(C# API, ORT_ENABLE_ALL, intra-op threads = --threads) and libtorch 2.10 (TorchSharp-cpu 0.107); this process hosts
PyTorch (eager and traced, no_grad). Every runtime is warmed up, then blocks of --block forwards alternate between
runtimes for --rounds rounds (the order rotates each round), so a burst of load from other tenants spreads over all of
them. Each peer's output is checked against ours (max abs difference). It prints one Markdown table: median and
min–max per forward, ratio (peer median / ours: > 1 means we are faster), GFLOP/s from our counted FLOPs.

Run from the repository root with Debian's Python (torch 1.13; install libopenblas0-pthread first, or torch falls
back to the slow reference BLAS):

    /usr/bin/python3 bench/side_by_side.py [--batches 1,8] [--threads 2] [--rounds 6] [--block 5] [--cache DIR]

DIFFUSION_CPU_TIER (avx512|avx2|v128) is passed through to our backend and printed. The first run builds
bench/SideBySide (restoring ~1 GB of ONNX Runtime and libtorch packages) and exports the models (~1 min).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "weights"))

import reference_unet  # noqa: E402
import safetensors_io  # noqa: E402
import synthetic_weights  # noqa: E402

TIMESTEP = 500
WEIGHT_SEED = 42
SAMPLE_SEED = 7
# Bump when what goes into the cache changes, so an old cache is rebuilt rather than trusted.
CACHE_RECIPE = 1
OURS, ORT, LIBTORCH, EAGER, TRACED = "ours", "onnxruntime", "libtorch", "pytorch-eager", "pytorch-traced"
CSHARP = (OURS, ORT, LIBTORCH)
LABELS = {
    OURS: "Diffusion.Kernels (CpuBackend, in-process)",
    ORT: "ONNX Runtime {ort}, C# API, ORT_ENABLE_ALL (torch.onnx.export, opset 17)",
    LIBTORCH: "libtorch {libtorch} via TorchSharp-cpu 0.107 (torch.jit.trace)",
    EAGER: "PyTorch {torch}, eager",
    TRACED: "PyTorch {torch}, torch.jit.trace",
}


def build_model():
    model = reference_unet.UNet2DModel(reference_unet.CIFAR10_CONFIG)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    state = synthetic_weights.synthetic_state_dict(shapes, WEIGHT_SEED)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()}, strict=True)
    return model.eval(), state


def sample_for(batch):
    count = batch * 3 * 32 * 32
    return synthetic_weights.gaussian("sample", count, SAMPLE_SEED).astype(np.float32).reshape(batch, 3, 32, 32)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def atomically(path, write, what):
    """Writes a missing cache file through a temporary name, so a run sharing the cache never reads half a file."""
    if os.path.exists(path):
        return
    print(f"{what} {path}", file=sys.stderr)
    temporary = f"{path}.{os.getpid()}.tmp"
    write(temporary)
    os.replace(temporary, path)


def prepare_cache(cache, batches, model, state):
    """Writes whatever of the cache is missing (all of it if another recipe made it); returns {batch: sample}."""
    stamp_path = os.path.join(cache, "recipe.json")
    stamp = {"recipe": CACHE_RECIPE, "torch": torch.__version__, "weight_seed": WEIGHT_SEED, "sample_seed": SAMPLE_SEED}
    if not os.path.exists(stamp_path) or read_json(stamp_path) != stamp:
        for pattern in ("recipe.json", "model/*", "sample_b*.f32", "unet_b*.onnx", "unet_b*.pt"):
            for path in glob.glob(os.path.join(cache, pattern)):
                os.remove(path)
    model_dir = os.path.join(cache, "model")
    os.makedirs(model_dir, exist_ok=True)
    atomically(os.path.join(model_dir, "config.json"),
               lambda p: write_json(p, reference_unet.CIFAR10_CONFIG), "writing")
    atomically(os.path.join(model_dir, "diffusion_pytorch_model.safetensors"), lambda p: safetensors_io.write(p, state),
               "writing")
    samples = {}
    for batch in batches:
        samples[batch] = sample = sample_for(batch)
        x, t = torch.from_numpy(sample), torch.full((batch,), float(TIMESTEP))
        atomically(os.path.join(cache, f"sample_b{batch}.f32"), sample.tofile, "writing")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's and tracer's warnings are about control flow we do not have
            atomically(os.path.join(cache, f"unet_b{batch}.onnx"),
                       lambda p: torch.onnx.export(model, (x, t), p, input_names=["sample", "timestep"],
                                                   output_names=["out"], opset_version=17, do_constant_folding=True),
                       "exporting")
            atomically(os.path.join(cache, f"unet_b{batch}.pt"), lambda p: torch.jit.trace(model, (x, t)).save(p),
                       "tracing")
    atomically(stamp_path, lambda p: write_json(p, stamp), "writing")
    return samples


class CSharpBench:
    """bench/SideBySide, started once; each request is one line in, one JSON line out."""

    def __init__(self, cache, threads, batches):
        project = os.path.join(ROOT, "bench", "SideBySide")
        subprocess.run(["dotnet", "build", project, "-c", "Release", "--nologo", "-v", "q"], check=True,
                       stdout=subprocess.DEVNULL)
        dll = os.path.join(project, "bin", "Release", "net10.0", "linux-x64", "SideBySide.dll")
        self.process = subprocess.Popen(["dotnet", dll, cache, str(threads), ",".join(map(str, batches))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._answer()

    def _answer(self):
        # Native libraries may print to stdout too; the answer is the next JSON line.
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"bench/SideBySide exited ({self.process.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self):
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def torch_block(module, x, t, count):
    ms = []
    with torch.no_grad():
        for _ in range(count):
            start = time.perf_counter()
            module(x, t)
            ms.append((time.perf_counter() - start) * 1000)
    return ms


def loaded_blas():
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.split()[-1].lower()}
    return ", ".join(sorted(os.path.realpath(p) for p in paths if p.startswith("/"))) or "no BLAS library mapped"


def cpu_line():
    model, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "asimd") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(shown) or 'none of avx2/fma/avx512*'}"


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of blocks; each round times every runtime once")
    parser.add_argument("--block", type=int, default=5, help="forwards per block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards per runtime and batch")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                        "diffusion-kernels", "side-by-side"))
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.threads < 1 or args.rounds < 1 or args.block < 1 or args.warmup < 0 or min(batches) < 1:
        parser.error("--threads, --rounds, --block and every batch must be positive, --warmup not negative")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    model, state = build_model()
    samples = prepare_cache(args.cache, batches, model, state)
    traced = {b: torch.jit.load(os.path.join(args.cache, f"unet_b{b}.pt")).eval() for b in batches}
    inputs = {b: (torch.from_numpy(samples[b]), torch.full((b,), float(TIMESTEP))) for b in batches}
    modules = {EAGER: lambda b: model, TRACED: lambda b: traced[b]}

    load_before = loadavg()
    bench = CSharpBench(args.cache, args.threads, batches)
    try:
        diffs = {}
        for b in batches:
            # Our output goes to a file of this run's own: another run may share the cache folder.
            with tempfile.NamedTemporaryFile(suffix=".f32") as out:
                diffs.update({(name, b): d for name, d in bench.ask(f"check {b} {out.name}").items()})
                ours = np.fromfile(out.name, dtype=np.float32).reshape(b, 3, 32, 32)
            with torch.no_grad():
                for name in (EAGER, TRACED):
                    diffs[(name, b)] = float(np.max(np.abs(modules[name](b)(*inputs[b]).numpy() - ours)))

        def block(name, b, count):
            if name in CSHARP:
                return bench.ask(f"time {name} {b} {count}")["ms"]
            return torch_block(modules[name](b), *inputs[b], count)

        runtimes = [OURS, ORT, LIBTORCH, EAGER, TRACED]
        for b in batches:
            for name in runtimes:
                block(name, b, args.warmup)
        times = {(name, b): [] for name in runtimes for b in batches}
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds}, load {loadavg()}", file=sys.stderr)
            order = runtimes[r % len(runtimes):] + runtimes[:r % len(runtimes)]
            for b in batches:
                for name in order:
                    time.sleep(0.2)  # lets the previous runtime's spinning worker threads go to sleep
                    times[(name, b)] += block(name, b, args.block)
    finally:
        bench.close()
    load_after = loadavg()

    info = bench.info
    flops = info["flops_per_image"]
    versions = {"ort": info["onnxruntime"], "libtorch": info["libtorch"], "torch": torch.__version__}
    print(f"DDPM CIFAR-10 U-Net (35.7M parameters, synthetic weights seed {WEIGHT_SEED}), one forward at t={TIMESTEP}, "
          f"{args.threads} threads everywhere")
    print(f"CPU: {cpu_line()}")
    print(f"load: {load_before} before, {load_after} after")
    print(f"ours: {info['device']}; DIFFUSION_CPU_TIER={info['tier']}; libtorch intra-op threads: {info['libtorch_threads']}, "
          f"PyTorch: {torch.get_num_threads()}")
    blas = loaded_blas()
    print(f"PyTorch BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if "openblas" not in blas:
        print("warning: PyTorch is not using OpenBLAS (apt-get install libopenblas0-pthread); its times are not representative")
    print(f"FLOPs per image, counted op by op by our ProfilingBackend (convs as direct): {flops / 1e9:.2f} GFLOP")
    print(f"{args.warmup} warm-up forwards each, then {args.rounds} rounds of alternating blocks of {args.block}: "
          f"{args.rounds * args.block} timed forwards per runtime and batch")
    print()
    print("| runtime | batch | median ms | min–max ms | ratio (peer/ours) | GFLOP/s | max abs diff vs ours |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in batches:
        ours_median = statistics.median(times[(OURS, b)])
        for name in runtimes:
            ms = times[(name, b)]
            median = statistics.median(ms)
            ratio = "—" if name == OURS else f"{median / ours_median:.2f}×"
            diff = "—" if name == OURS else f"{diffs[(name, b)]:.2e}"
            print(f"| {LABELS[name].format(**versions)} | {b} | {median:.1f} | {min(ms):.1f}–{max(ms):.1f} | {ratio} | "
                  f"{b * flops / median / 1e6:.0f} | {diff} |")


if __name__ == "__main__":
    main()
