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
                                           [--peer-isa match|native]

DIFFUSION_CPU_TIER (avx512|avx2|v128) is passed through to our backend and printed. With it set, --peer-isa defaults
to match: the peers that can be held to an ISA are capped at our tier, through variables set before their libraries
load (in this process before `import torch`, and inherited by the C# process):
    tier     oneDNN (ONEDNN_MAX_CPU_ISA,  ATen kernels          MKL (libtorch)            OpenBLAS (PyTorch)
             DNNL_MAX_CPU_ISA)            (ATEN_CPU_CAPABILITY)  (MKL_ENABLE_INSTRUCTIONS)  (OPENBLAS_CORETYPE)
    avx512   AVX512_CORE                  left alone             AVX512                    left alone
    avx2     AVX2                         avx2                   AVX2                      Haswell
    v128     SSE41                        default                SSE4_2                    Nehalem
ATEN_CPU_CAPABILITY and OPENBLAS_CORETYPE select rather than cap, so the avx512 row leaves them to the library (torch
1.13's ATen keeps AVX-512 opt-in and runs AVX2 on its own). ONNX Runtime cannot be restricted: MLAS picks its kernels
from cpuid when it loads and has no override, so it runs its own best code (AVX-512F on an AVX-512 CPU) in every row.
Without DIFFUSION_CPU_TIER the default is native: every peer on its own choice, the environment left as it is.
Either way the header names what each peer was told and what it reported running: ATen's dispatch level
(at::get_cpu_capability in libtorch, torch.__config__ in PyTorch), the ISA and convolution kernels oneDNN's verbose mode
prints during the untimed check forwards, MKL's verbose header, and OpenBLAS's core (openblas_get_corename).
The first run builds bench/SideBySide (restoring ~1 GB of ONNX Runtime and libtorch packages) and exports the models
(~1 min).
"""
import argparse
import contextlib
import ctypes
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "diffusion-kernels",
                             "side-by-side")
TIER_VARIABLE = "DIFFUSION_CPU_TIER"

# --peer-isa match: for each tier of ours, the variables that cap the peers' libraries at the same vector ISA. They
# are caps, never raises: a library left on its own choice where that is already at or below our tier.
#   ONEDNN_MAX_CPU_ISA   oneDNN's convolutions (3.7 in libtorch 2.10, 2.6 in torch 1.13, which reads this name and
#   DNNL_MAX_CPU_ISA     the older DNNL_ one; both are set for builds older still): AVX512_CORE / AVX2 / SSE41. SSE41
#                        is oneDNN's only 128-bit level, and it has no FMA (our v128 tier uses FMA, as NEON has).
#   ATEN_CPU_CAPABILITY  which build of ATen's vectorised kernels (elementwise ops, norms, softmax) dispatches:
#                        avx2 / default (the baseline x86-64 build: SSE2, 128-bit). It selects rather than caps, so
#                        the avx512 tier leaves it alone: torch 1.13 keeps AVX-512 opt-in (it was slower than AVX2,
#                        pytorch#80252) and setting it would change that peer, not restrict it.
#   MKL_ENABLE_INSTRUCTIONS  the MKL inside libtorch 2.10 (its matmuls): AVX512 / AVX2 / SSE4_2.
#   OPENBLAS_CORETYPE    Debian's OpenBLAS under torch 1.13 (its matmuls): Haswell (AVX2) / Nehalem (SSE); it selects
#                        too, so the avx512 tier leaves it to the CPU's own choice.
# ONNX Runtime has none: MLAS picks its kernels from cpuid and xgetbv when it loads (MLAS_PLATFORM's constructor in
# onnxruntime/core/mlas/lib/platform.cpp), with no environment or session option to lower them.
PEER_CAPS = {
    "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "DNNL_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
    "v128": {"ONEDNN_MAX_CPU_ISA": "SSE41", "DNNL_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default",
             "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "OPENBLAS_CORETYPE": "Nehalem"},
}
# Which of them each peer's libraries read, for its header line; libtorch's as its process saw them (PeerIsa.cs).
LIBTORCH_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
PYTORCH_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")


def parse_args():
    tier = os.environ.get(TIER_VARIABLE, "").strip().lower()
    tier = "" if tier == "auto" else tier
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of blocks; each round times every runtime once")
    parser.add_argument("--block", type=int, default=5, help="forwards per block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards per runtime and batch")
    parser.add_argument("--cache", default=DEFAULT_CACHE)
    parser.add_argument("--peer-isa", choices=("match", "native"), default="match" if tier else "native",
                        help=f"match: cap libtorch's and PyTorch's ISA at {TIER_VARIABLE}'s tier (ONNX Runtime cannot "
                             f"be capped); native: leave every peer on its own choice. Default: match when "
                             f"{TIER_VARIABLE} is set, native otherwise.")
    args = parser.parse_args()
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: '{args.batches}' is not a comma-separated list of integers")
    if args.threads < 1 or args.rounds < 1 or args.block < 1 or args.warmup < 0 or min(args.batches) < 1:
        parser.error("--threads, --rounds, --block and every batch must be positive, --warmup not negative")
    if tier and tier not in PEER_CAPS:
        parser.error(f"{TIER_VARIABLE}='{tier}' is not a tier (expected {', '.join(PEER_CAPS)} or auto)")
    if args.peer_isa == "match" and not tier:
        parser.error(f"--peer-isa match needs {TIER_VARIABLE}={'|'.join(PEER_CAPS)}: the tier to match")
    args.tier = tier
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.peer_isa == "match":
        # Before torch loads: OpenBLAS reads its variable when the library loads, oneDNN and ATen theirs at first use.
        # The C# process inherits them, so libtorch there reads the same caps.
        os.environ.update(PEER_CAPS[ARGS.tier])

import numpy as np  # noqa: E402
import torch  # noqa: E402

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
        self.printed = []  # what native code printed to stdout between answers: oneDNN's and MKL's verbose lines
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
            self.printed.append(line)

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
    return sorted({os.path.realpath(p) for p in paths if p.startswith("/")})


def openblas_core(paths):
    """The kernel set OpenBLAS chose (or was told by OPENBLAS_CORETYPE), asked of the loaded library itself."""
    for path in paths:
        try:
            corename = ctypes.CDLL(path).openblas_get_corename
        except (OSError, AttributeError):
            continue
        corename.restype = ctypes.c_char_p
        return corename().decode()
    return "not OpenBLAS"


@contextlib.contextmanager
def native_stdout():
    """Collects what native code prints to file descriptor 1 (oneDNN's verbose lines) while the block runs."""
    lines = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 1)
        try:
            yield lines
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers a file; flush before stdout goes back
            os.dup2(saved, 1)
            os.close(saved)
            f.seek(0)
            lines.extend(f.read().decode(errors="replace").splitlines())


def onednn_seen(lines):
    """'isa "Intel SSE4.1", convolutions jit:sse41 jit_1x1:sse41' from oneDNN verbose lines (2.6's and 3.x's)."""
    isa, kernels = "not reported", set()
    for line in lines:
        fields = line.strip().split(",")
        if fields[0] != "onednn_verbose":
            continue
        if ",isa:" in line:  # the name itself may hold commas ("Intel AVX-512 with AVX512BW, AVX512VL, and ...")
            isa = line.split(",isa:", 1)[1].strip()
        if "exec" in fields:
            i = fields.index("exec")  # onednn_verbose,[v1,primitive,]exec,cpu,KIND,IMPLEMENTATION,...
            if fields[i + 2:i + 3] == ["convolution"]:
                kernels.add(fields[i + 3])
    return f"oneDNN isa \"{isa}\", convolutions {' '.join(sorted(kernels)) or 'none seen'}"


def mkl_seen(lines):
    """MKL's own words for the code path it runs, from its verbose header ('... architecture X, Lnx ...')."""
    for line in lines:
        if line.startswith("MKL_VERBOSE") and " architecture " in line:
            return f'MKL "{line.split(" architecture ", 1)[1].split(", Lnx")[0].strip()}"'
    return "MKL: no call seen"


def aten_seen_pytorch():
    shown = [line for line in torch.__config__.show().splitlines() if "CPU capability usage:" in line]
    return shown[0].split(":", 1)[1].strip() if shown else "not reported"


def mlas_native():
    """The kernels MLAS's cpuid checks pick on this CPU (platform.cpp: AVX-512F, else FMA3, else AVX, else SSE2)."""
    flags = cpu_flags()
    return ("AVX-512F" if "avx512f" in flags else "FMA3/AVX2" if {"avx2", "fma"} <= flags else
            "AVX" if "avx" in flags else "SSE2")


def restriction(args, environment, variables):
    """'restricted to v128 (A=x, B=y)' or 'native (A=(unset), ...)': what the peer's process was told."""
    told = ", ".join(f"{v}={environment.get(v, '(unset)')}" for v in variables)
    return f"restricted to {args.tier} ({told})" if args.peer_isa == "match" else f"native ({told})"


def cpuinfo(field):
    """The first value of a /proc/cpuinfo field ("model name", "flags"), or "" where there is none."""
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith(field)), "")


def cpu_flags():
    return set(cpuinfo("flags").split())


def cpu_line():
    model, flags = cpuinfo("model name") or "?", cpu_flags()
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "asimd") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(shown) or 'none of avx2/fma/avx512*'}"


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def main(args):
    batches = args.batches
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
        diffs, pytorch_printed = {}, []
        for b in batches:
            # Our output goes to a file of this run's own: another run may share the cache folder.
            with tempfile.NamedTemporaryFile(suffix=".f32") as out:
                diffs.update({(name, b): d for name, d in bench.ask(f"check {b} {out.name}").items()})
                ours = np.fromfile(out.name, dtype=np.float32).reshape(b, 3, 32, 32)
            # These untimed forwards run with oneDNN's verbose mode on: its lines name the ISA and kernels it ran.
            verbose = torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON)
            with torch.no_grad(), native_stdout() as printed, verbose:
                outputs = {name: modules[name](b)(*inputs[b]).numpy() for name in (EAGER, TRACED)}
            pytorch_printed += printed
            for name, output in outputs.items():
                diffs[(name, b)] = float(np.max(np.abs(output - ours)))

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
    print(f"threads: libtorch intra-op {info['libtorch_threads']}, PyTorch {torch.get_num_threads()}")
    blas = loaded_blas()
    print(f"ISA (--peer-isa {args.peer_isa}; 'seen': what each library reported running in the untimed check forwards):")
    print(f"- ours: {info['device']}; {TIER_VARIABLE}={info['tier']}")
    print(f"- ONNX Runtime: native, cannot be restricted (MLAS picks its kernels from cpuid, no runtime override): "
          f"{mlas_native()} on this CPU")
    print(f"- libtorch: {restriction(args, info['peer_environment'], LIBTORCH_VARIABLES)}; "
          f"seen: ATen {info['libtorch_aten_capability']}, {onednn_seen(bench.printed)}, {mkl_seen(bench.printed)}")
    print(f"- PyTorch: {restriction(args, os.environ, PYTORCH_VARIABLES)}; seen: ATen {aten_seen_pytorch()}, "
          f"{onednn_seen(pytorch_printed)}, OpenBLAS core {openblas_core(blas)}")
    print(f"PyTorch BLAS: {', '.join(blas) or 'no BLAS library mapped'}")
    if not any("openblas" in p for p in blas):
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
    main(ARGS)
