#!/usr/bin/env python3
"""Cross-checks the reference code against numbers published in diffusers' own test suite
(no diffusers install needed):  /usr/bin/python3 weights/check_against_diffusers_tests.py

* UNet: tests/pipelines/ddim/test_ddim.py::test_inference and
  tests/pipelines/ddpm/test_ddpm.py::test_inference build a dummy UNet2DModel right after
  torch.manual_seed(0) (our modules are created in diffusers' order, so the random init is
  identical), sample with torch.Generator().manual_seed(0) and compare a 3x3 image slice.
* Schedulers: tests/schedulers/test_scheduler_{ddim,ddpm,dpm_multi,euler_ancestral}.py full
  loops with the common dummy model m = x*t/(t+1) and dummy_sample_deter.
* diffuse itself (with --diffuse PATH, the built binary, e.g. src/Diffusion.Cli/bin/Release/net10.0/diffuse):
  the same two pipeline tests run through `diffuse generate --seed 0` (default --rng torch) on the dummy
  UNets exported to temporary diffusers folders; the slice of its --save-tensor output must match diffusers'.
Prints each value next to diffusers' expectation and exits non-zero on a mismatch.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_schedulers as rs  # noqa: E402
from reference_unet import UNet2DModel  # noqa: E402

torch.set_num_threads(2)
FAILED = []


def check(name, got, exp, tol):
    ok = abs(got - exp) < tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got:.6f} (diffusers test expects {exp}, tol {tol})")
    if not ok:
        FAILED.append(name)


def pipeline(unet_cfg, hw, sched, noise_in_step):
    torch.manual_seed(0)
    unet = UNet2DModel(unet_cfg).eval()
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn((1, 3, hw, hw), generator=g, dtype=torch.float32).double().numpy()
    for i, t in enumerate(sched.timesteps):
        with torch.no_grad():
            m = unet(torch.from_numpy(x).float(), torch.tensor([int(t)])).double().numpy()
        noise = torch.randn(m.shape, generator=g).double().numpy() if (noise_in_step and t > 0) else None
        x, _, _ = sched.step(m, i, x, noise)
        x = x.astype(np.float32).astype(np.float64)
    img = np.clip(x / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)
    return img[0, -3:, -3:, -1].flatten()


# diffusers' tests/pipelines/{ddim,ddpm}: the dummy UNet (built right after torch.manual_seed(0)), 2 steps, the
# image's last 3x3 pixels of the last channel, and the tolerance the test allows.
DDIM_TEST = (dict(block_out_channels=(4, 8), layers_per_block=1, norm_num_groups=4, sample_size=8, in_channels=3,
                  out_channels=3, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D")), 8,
             np.array([0.0, 9.979e-01, 0.0, 9.999e-01, 9.986e-01, 9.991e-01, 7.106e-04, 0.0, 0.0]), 1e-3)
DDPM_TEST = (dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=3, out_channels=3,
                  down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D")), 32,
             np.array([9.956e-01, 5.785e-01, 4.675e-01, 9.930e-01, 0.0, 1.000, 1.199e-03, 2.648e-04, 5.101e-04]), 1e-2)


def unet_checks():
    s = rs.DDIM({})
    s.set_timesteps(2)
    cfg, hw, exp, tol = DDIM_TEST
    sl = pipeline(cfg, hw, s, False)
    check("DDIMPipeline fast test slice max|diff|", float(np.abs(sl - exp).max()), 0.0, tol)
    s = rs.DDPM({})
    s.set_timesteps(2)
    cfg, hw, exp, tol = DDPM_TEST
    sl = pipeline(cfg, hw, s, True)
    check("DDPMPipeline fast test slice max|diff|", float(np.abs(sl - exp).max()), 0.0, tol)


def diffuse_checks(diffuse):
    """The pipeline tests through the diffuse binary: its own U-Net, sampler and torch-stream noise."""
    import safetensors_io as st
    for name, scheduler, (cfg, hw, exp, tol) in [("DDIMPipeline", "ddim", DDIM_TEST), ("DDPMPipeline", "ddpm", DDPM_TEST)]:
        torch.manual_seed(0)
        unet = UNet2DModel(cfg).eval()
        with tempfile.TemporaryDirectory() as folder:
            config = {"_class_name": "UNet2DModel", **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(config, f)
            st.write(os.path.join(folder, "diffusion_pytorch_model.safetensors"),
                     {k: v.detach().numpy() for k, v in unet.state_dict().items()})
            out = os.path.join(folder, "out.safetensors")
            run = subprocess.run([diffuse, "generate", "--model", folder, "--scheduler", scheduler, "--steps", "2",
                                  "--seed", "0", "--device", "cpu", "--out", os.path.join(folder, "out.png"),
                                  "--save-tensor", out], capture_output=True, text=True)
            if run.returncode != 0:
                check(f"diffuse {name} exit code ({run.stderr.strip()})", float(run.returncode), 0.0, 0.5)
                continue
            x = st.read(out)[0]["sample"].astype(np.float64)
        img = np.clip(x / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)
        sl = img[0, -3:, -3:, -1].flatten()
        check(f"diffuse generate --seed 0: {name} fast test slice max|diff|", float(np.abs(sl - exp).max()), 0.0, tol)


def deter():
    n = 4 * 3 * 8 * 8
    s = torch.arange(n).reshape(3, 8, 8, 4) / n
    return s.permute(3, 0, 1, 2).contiguous().double().numpy()


def dummy(x, t):
    return (x.astype(np.float32) * np.float32(t) / (np.float32(t) + 1)).astype(np.float64)


def loop(s, x, gen=None, noise_when=lambda t: False, rescale_sample=False):
    for i, t in enumerate(s.timesteps):
        if rescale_sample:  # the Euler test overwrites `sample` with the scaled model input
            x = np.asarray(s.scale_model_input(x, i)).astype(np.float32).astype(np.float64)
        m = dummy(x, t)
        noise = torch.randn(m.shape, generator=gen).double().numpy() if noise_when(t) else None
        x, _, _ = s.step(m, i, x, noise)
        x = x.astype(np.float32).astype(np.float64)
    return x


def scheduler_checks():
    for kw, exp in [({}, 172.0067), ({"prediction_type": "v_prediction"}, 52.5302),
                    ({"set_alpha_to_one": True, "beta_start": 0.01}, 149.8295),
                    ({"set_alpha_to_one": False, "beta_start": 0.01}, 149.0784)]:
        s = rs.DDIM({"clip_sample": True, **kw})
        s.set_timesteps(10)
        check(f"DDIM full loop {kw} sum|x|", float(np.abs(loop(s, deter())).sum()), exp, 1e-2)
    for kw, exp in [({}, 258.9606), ({"prediction_type": "v_prediction"}, 202.0296)]:
        s = rs.DDPM({"clip_sample": True, "variance_type": "fixed_small", **kw})
        s.set_timesteps(1000)
        x = loop(s, deter(), torch.manual_seed(0), lambda t: t > 0)
        check(f"DDPM 1000-step loop {kw} sum|x|", float(np.abs(x).sum()), exp, 1e-2)
    for kw, exp in [({}, 0.3301), ({"prediction_type": "v_prediction"}, 0.2251)]:
        s = rs.DPMSolverMultistep({"lower_order_final": False, "final_sigmas_type": "sigma_min", **kw})
        s.set_timesteps(10)
        check(f"DPM++2M full loop {kw} mean|x|", float(np.abs(loop(s, deter())).mean()), exp, 1e-3)
    for kw, exp in [({}, 152.3192), ({"prediction_type": "v_prediction"}, 108.4439)]:
        s = rs.EulerAncestral({"num_train_timesteps": 1100, **kw})
        s.set_timesteps(10)
        x = loop(s, deter() * s.init_noise_sigma, torch.manual_seed(0), lambda t: True, rescale_sample=True)
        check(f"EulerAncestral full loop {kw} sum|x|", float(np.abs(x).sum()), exp, 1e-2)
    s = rs.DDIM({"steps_offset": 1})
    check("DDIM steps_offset 1, 5 steps == [801,601,401,201,1]",
          float(np.abs(s.set_timesteps(5) - np.array([801, 601, 401, 201, 1])).max()), 0.0, 0.5)


if __name__ == "__main__":
    unet_checks()
    scheduler_checks()
    if "--diffuse" in sys.argv:
        diffuse_checks(sys.argv[sys.argv.index("--diffuse") + 1])
    print("FAILED: " + ", ".join(FAILED) if FAILED else "all checks passed")
    sys.exit(1 if FAILED else 0)
