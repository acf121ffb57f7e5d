#!/usr/bin/env bash
# One-shot GPU check for a machine with a GPU, Python (numpy, PyTorch) and no .NET: unpacks the self-contained test
# publish carried as publish/gpu.tar.gz (it holds the `diffuse` binary too), then runs the GPU test suite, times
# the CIFAR-10 U-Net with `diffuse bench`, and compares `diffuse unet` / `diffuse generate` on CUDA with the CPU
# backend. See bench/gpu/README.md. Logs go to $OUT (the device tool brings that folder back). About 3–6 minutes;
# each step has its own time limit so that one hang cannot use up the whole run. Exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
failed=()
step() { echo; echo "== $1"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv,noheader 2>&1 \
  | tee "$out/nvidia-smi.txt"

step "unpack publish/gpu.tar.gz"
tar -xzf publish/gpu.tar.gz -C publish || { echo "cannot unpack publish/gpu.tar.gz (was it carried?)"; exit 1; }
bin="$PWD/publish/tests"

# The GPU kernels are ILGPU's: it writes PTX and the driver loads it, so nothing but the driver is needed.

# Everything under tests/.../Gpu except BenchCommandTests (it starts `dotnet diffuse.dll`), plus the kernel tests, sampler goldens and U-Net parity, whose theories run on "cpu" and "cuda". -failSkips: on this machine a test that
# skips for want of a GPU is a failure.
step "GPU test suite (log: tests.log, trx: tests.trx)"
timeout 240 "$bin/Diffusion.Kernels.Tests" -noColor -noLogo -failSkips -trx "$out/tests.trx" \
  -filter "/*/Diffusion.Kernels.Tests.Gpu/(!BenchCommandTests)/*" \
  -filter "/*/Diffusion.Kernels.Tests.Kernels" \
  -filter "/*/*/SamplerGoldenTests" \
  -filter "/*/*/UNet2DParityTests" >"$out/tests.log" 2>&1 || failed+=("tests (exit $?)")
fails=$(grep -c '\[FAIL\]' "$out/tests.log")
if [ "$fails" -gt 0 ]; then
  echo "$fails failed; the first 20, then each distinct first line of a failure message with its count:"
  grep '\[FAIL\]' "$out/tests.log" | head -n 20
  grep -A1 '\[FAIL\]' "$out/tests.log" | grep -v -e '\[FAIL\]' -e '^--$' | cut -c1-220 | sort | uniq -c | sort -rn | head -n 15
fi
grep -E 'Total: [0-9]+' "$out/tests.log" || echo "no test summary: see tests.log"

# Each row is first checked against the CPU backend (normalised error); a mismatch makes bench exit non-zero.
step "diffuse bench: U-Net forward, eager and CUDA graph (bench-unet.json)"
timeout 90 "$bin/diffuse" bench --device cuda --ops unet,unet_graph --batch 1,64 --json "$out/bench-unet.json" \
  2>&1 | tee "$out/bench-unet.log" || failed+=("diffuse bench (exit $?)")

step "diffuse unet and generate: CUDA against the CPU backend (log: cuda-vs-cpu.log)"
timeout 120 python3 bench/gpu/cuda_vs_cpu.py --diffuse "$bin/diffuse" --log "$out/cuda-vs-cpu.log" \
  || failed+=("cuda_vs_cpu.py (exit $?)")

echo
if [ ${#failed[@]} -eq 0 ]; then
  echo "GPU check: all steps passed"
else
  echo "GPU check: failed: ${failed[*]}"
  exit 1
fi
