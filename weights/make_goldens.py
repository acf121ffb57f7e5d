#!/usr/bin/env python3
"""Regenerates EVERY golden file in weights/goldens/ (deterministic, ~10 s, 2 cores):

    /usr/bin/python3 weights/make_goldens.py

(Debian's python3 with torch 1.13 CPU + numpy; no diffusers/safetensors packages needed.)
Writes:
  unet_tiny.safetensors  + unet_tiny_config.json     tiny multi-head UNet, weights stored
  unet_tiny2.safetensors + unet_tiny2_config.json    tiny variant (1 head, pad 0, centered input, ...)
  unet_cifar10.safetensors + unet_cifar10_config.json google/ddpm-cifar10-32 architecture,
                                                      synthetic weights (seed 42, NOT stored)
  sampler_<case>.safetensors                          scheduler trajectories with a toy model
  schedules.safetensors                               float64 betas / alphas_cumprod of the schedules used
  sampler_cases.json                                  index: case -> scheduler config, steps, eta, seeds
  torch_randn.safetensors                             torch.randn values of torch's CPU generator (several seeds, lengths)
  torch_pipeline_<case>.safetensors                   whole pipelines drawn with torch's generator, as diffusers draws
  torch_pipeline_cases.json                           index: case -> scheduler, steps, eta, seed, batch, model
  diffusers_ddim_test_unet.safetensors + _config.json the dummy UNet of diffusers' DDIMPipeline fast test, weights stored
  README.md                                           what every file holds (generated; key/shape tables)
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference_schedulers as rs  # noqa: E402
import safetensors_io as st  # noqa: E402
import synthetic_weights as sw  # noqa: E402
from reference_unet import CIFAR10_CONFIG, UNet2DModel, full_config  # noqa: E402

OUT = os.path.join(HERE, "goldens")

TINY_CONFIG = {
    "_class_name": "UNet2DModel",
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 24, 32],
    "layers_per_block": 1,
    "mid_block_scale_factor": 1.414,
    "downsample_padding": 1,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "norm_num_groups": 4,
    "norm_eps": 1e-5,
    "add_attention": True,
}

TINY2_CONFIG = {
    "_class_name": "UNet2DModel",
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 2,
    "center_input_sample": True,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "down_block_types": ["AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"],
    "block_out_channels": [8, 8, 16],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 0,
    "act_fn": "silu",
    "attention_head_dim": None,
    "norm_num_groups": 4,
    "norm_eps": 1e-6,
    "add_attention": True,
}

README_FILES = []  # (filename, description, {key: (dtype, shape)})


ST_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "uint8": "U8"}


def shapes_of(tensors):
    out = {}
    for k, v in tensors.items():
        a = np.asarray(v)
        out[k] = (ST_NAMES.get(str(a.dtype), str(a.dtype)), list(a.shape))
    return out


def save(name, tensors, meta, description):
    path = os.path.join(OUT, name)
    st.write(path, tensors, meta)
    README_FILES.append((name, description, shapes_of(tensors), os.path.getsize(path)))


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def synthetic_model(config, seed):
    model = UNet2DModel(config).eval()
    sd = {k: torch.from_numpy(sw.generate(k, v.shape, seed)) for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    return model


def run_with_intermediates(model, sample, timesteps, which):
    """Forward pass; also captures outputs of named submodules (hidden state only)."""
    caps = {}
    hooks = []
    for name in which:
        mod = model.get_submodule(name)

        def hook(_m, _inp, out, name=name):
            caps[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        y = model(sample, timesteps)
    for h in hooks:
        h.remove()
    return y, caps


def unet_golden(tag, config, weight_seed, sample_seed, batch, hw, timesteps, store_weights, debug_modules):
    model = synthetic_model(config, weight_seed)
    c = config["in_channels"]
    n = batch * c * hw[0] * hw[1]
    sample = sw.gaussian("sample", n, sample_seed).reshape(batch, c, *hw)
    ts = np.asarray(timesteps, dtype=np.float32)
    y, caps = run_with_intermediates(model, torch.from_numpy(sample), torch.from_numpy(ts), debug_modules)
    tensors = {}
    if store_weights:
        tensors.update({k: v.numpy() for k, v in model.state_dict().items()})
    tensors["sample"] = sample
    tensors["timesteps"] = ts
    tensors["output"] = y.numpy().astype(np.float32)
    for k, v in caps.items():
        tensors["debug." + k] = v.numpy().astype(np.float32)
    meta = {
        "config": json.dumps(config, sort_keys=True),
        "weights": ("stored in this file" if store_weights else "NOT stored: ") +
                   f"synthetic_weights.generate(name, shape, seed={weight_seed}) for every state_dict key",
        "weight_seed": str(weight_seed),
        "sample": f"synthetic_weights.gaussian('sample', {n}, seed={sample_seed}).reshape({batch},{c},{hw[0]},{hw[1]})",
        "sample_seed": str(sample_seed),
        "timesteps": json.dumps([float(t) for t in ts]),
        "dtype": "float32 torch CPU forward, torch.set_num_threads(2)",
        "debug": "debug.<module> = hidden-state output of that submodule (down blocks: the block's output "
                 "sample, not the skip tuple); time_embedding = emb after linear_2",
    }
    write_json(f"unet_{tag}_config.json", config)
    out = y.numpy()
    print(f"unet_{tag}: output mean {out.mean():+.4f} std {out.std():.4f} max|.| {np.abs(out).max():.4f}")
    return tensors, meta


# ----------------------------------------------------------------------------- samplers

SAMPLE_SHAPE = (2, 1, 6, 5)
QUAD_BETAS = [0.001 + 0.199 * (i / 99.0) ** 2 for i in range(100)]

SCHEDULES = {
    "linear": {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_train_timesteps": 1000},
    "scaled_linear_0.00085_0.012": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                                    "num_train_timesteps": 1000},
    "squaredcos_cap_v2": {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000},
    "trained_quadratic_T100": {"trained_betas": QUAD_BETAS, "num_train_timesteps": 100},
}

# name, scheduler class, config overrides, num_inference_steps, eta, seed, description
SAMPLER_CASES = [
    ("ddim_linear_leading_offset1_eta0", "DDIMScheduler", {"steps_offset": 1}, 10, 0.0, 101,
     "DDIM eta 0, linear betas, leading spacing + steps_offset 1, clip_sample, set_alpha_to_one"),
    ("ddim_cos_trailing_eta0", "DDIMScheduler", {"beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "trailing"},
     10, 0.0, 102, "DDIM eta 0, squaredcos_cap_v2, trailing spacing, clip_sample"),
    ("ddim_linear_eta05", "DDIMScheduler", {"clip_sample": False}, 10, 0.5, 103,
     "DDIM eta 0.5 (noise every step), linear, leading, no clipping"),
    ("ddim_sample_pred", "DDIMScheduler", {"prediction_type": "sample"}, 10, 0.0, 104,
     "DDIM eta 0, prediction_type sample (eps derived from UNCLIPPED x0), clip_sample"),
    ("ddim_v_pred_trailing", "DDIMScheduler",
     {"prediction_type": "v_prediction", "timestep_spacing": "trailing", "clip_sample": False}, 10, 0.0, 105,
     "DDIM eta 0, v_prediction, trailing, no clipping"),
    ("ddim_scaled_linear_sd", "DDIMScheduler",
     {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "set_alpha_to_one": False,
      "steps_offset": 1, "clip_sample": False}, 10, 0.0, 106,
     "DDIM eta 0, scaled_linear 0.00085..0.012 (Stable Diffusion style), set_alpha_to_one False, steps_offset 1"),
    ("ddim_linspace_7", "DDIMScheduler", {"timestep_spacing": "linspace"}, 7, 0.0, 107,
     "DDIM eta 0, linspace 7 steps: prev timestep = t - 1000//7 = t - 142, NOT the next listed timestep "
     "(diffusers quirk); round-half-even timesteps"),
    ("ddpm_eps_fixed_small_clip", "DDPMScheduler", {}, 20, 0.0, 201,
     "DDPM epsilon, fixed_small, clip_sample, 20 steps leading (last t = 0: no noise)"),
    ("ddpm_v_fixed_large_trailing", "DDPMScheduler",
     {"prediction_type": "v_prediction", "variance_type": "fixed_large", "clip_sample": False,
      "timestep_spacing": "trailing"}, 20, 0.0, 202,
     "DDPM v_prediction, fixed_large, no clipping, trailing (last t = 49 > 0: noise with std sqrt(1 - abar_49))"),
    ("ddpm_trained_betas_T100", "DDPMScheduler",
     {"num_train_timesteps": 100, "trained_betas": QUAD_BETAS, "steps_offset": 1}, 10, 0.0, 203,
     "DDPM epsilon fixed_small clip, trained_betas (stored as `trained_betas`), T=100, leading+offset 1 "
     "(last t = 1 > 0: noise with std 1e-10 from the 1e-20 clamp)"),
    ("dpmpp2m_20", "DPMSolverMultistepScheduler", {}, 20, 0.0, 301,
     "DPM-Solver++(2M) defaults, linear, linspace, 20 steps, final sigma 0 (first-order last step)"),
    ("dpmpp2m_8", "DPMSolverMultistepScheduler", {}, 8, 0.0, 302,
     "DPM-Solver++(2M) defaults, 8 steps (< 15: lower_order_final)"),
    ("dpmpp2m_cos_v_10", "DPMSolverMultistepScheduler",
     {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}, 10, 0.0, 303,
     "DPM-Solver++(2M), squaredcos_cap_v2, v_prediction, 10 steps"),
    ("euler_a_20", "EulerAncestralDiscreteScheduler", {}, 20, 0.0, 401,
     "Euler ancestral, linear, linspace (fractional float32 timesteps), 20 steps, noise every step"),
    ("euler_a_v_leading_10", "EulerAncestralDiscreteScheduler",
     {"prediction_type": "v_prediction", "timestep_spacing": "leading", "steps_offset": 1}, 10, 0.0, 402,
     "Euler ancestral, v_prediction, leading + steps_offset 1 (init_noise_sigma = sqrt(max sigma^2 + 1))"),
]


def sampler_golden(case):
    name, cls, overrides, n, eta, seed, desc = case
    sched = rs.DDIM(overrides, eta=eta) if cls == "DDIMScheduler" else rs.SCHEDULERS[cls](overrides)
    sched.set_timesteps(n)
    count = int(np.prod(SAMPLE_SHAPE))
    g = sw.gaussian("x_init", count, seed).reshape(SAMPLE_SHAPE)
    x_init = (g.astype(np.float64) * sched.init_noise_sigma).astype(np.float32)
    noises = np.stack([sw.gaussian(f"noise/{i}", count, seed).reshape(SAMPLE_SHAPE) for i in range(n)])
    res = rs.run_sampler(sched, n, x_init, noises)
    uses_noise = bool(res["noise_used"].any())
    tensors = {
        "x_init": x_init,
        "timesteps": res["timesteps"],
        "x": res["x"],
        "model_input": res["model_input"],
        "model_output": res["model_output"],
        "x0_pred": res["x0_pred"],
        "noise_used": res["noise_used"],
    }
    if uses_noise:
        tensors["noise"] = noises
    if hasattr(sched, "sigmas"):
        tensors["sigmas"] = sched.sigmas.astype(np.float64)
    if sched.config.get("trained_betas") is not None:
        tensors["trained_betas"] = np.asarray(sched.config["trained_betas"], dtype=np.float64)
    cfg_json = rs.config_json(sched.config)
    meta = {
        "case": name,
        "description": desc,
        "scheduler_config": cfg_json,
        "num_inference_steps": str(n),
        "eta": repr(float(eta)),
        "seed": str(seed),
        "init_noise_sigma": repr(float(sched.init_noise_sigma)),
        "x_init": f"float32(gaussian('x_init', {count}, seed={seed}) * init_noise_sigma) reshaped {list(SAMPLE_SHAPE)}",
        "noise": (f"noise[i] = gaussian('noise/{{i}}', {count}, seed={seed}); used at step i iff noise_used[i]"
                  if uses_noise else "no noise used"),
        "toy_model": "s = t/1000; m = float32(s*x + (1 - s)*(tanh(0.5*x) + 0.1*sin(x*t/100))) in float64 from "
                     "float32 x = model_input[i] and float32 t = timesteps[i]",
        "loop": "for i: model_input[i] = scale_model_input(x[i]); model_output[i] = toy(model_input[i], "
                "timesteps[i]); x[i+1] = step(...) rounded to float32",
    }
    print(f"{name}: steps {n}, |x_final| max {np.abs(res['x'][-1]).max():.4f}, "
          f"|x| max over traj {np.abs(res['x']).max():.3f}")
    return tensors, meta, {"scheduler_config": json.loads(cfg_json), "num_inference_steps": n, "eta": eta,
                           "seed": seed, "description": desc, "file": f"sampler_{name}.safetensors",
                           "trained_betas_in_file": sched.config.get("trained_betas") is not None}


# ----------------------------------------------------------------------------- torch's generator

RANDN_SEEDS = [0, 1, 3, 42, 2**32 + 5, 2**63 + 12345]
# Drawn one after another from one generator: under 16 values torch uses its float64 Box-Muller and keeps the
# spare value across calls (1 and 7 leave one), from 16 on the float32 AVX2 blocks of 16 (17, 31, 100 recompute a
# partial last block).
RANDN_LENGTHS = [1, 7, 15, 16, 17, 31, 100]
RANDN_LONG_SHAPE = (2, 3, 32, 32)
RANDN_LONG_SEED = 2**32 + 5


def check_avx2_randn():
    """torch.randn's float path differs in the last bits between its AVX2 kernel and the scalar one; the goldens
    must come from the AVX2 kernel (what torch runs on every x86-64 CPU with AVX2, AVX-512 included)."""
    with open("/proc/cpuinfo") as f:
        assert " avx2 " in f.read(), "torch_randn goldens need a CPU with AVX2 (torch's AVX2 normal kernel)"
    assert os.environ.get("ATEN_CPU_CAPABILITY", "avx2") in ("avx2", "avx512"), "unset ATEN_CPU_CAPABILITY"


def randn_golden():
    check_avx2_randn()
    tensors = {}
    for seed in RANDN_SEEDS:
        g = torch.Generator().manual_seed(seed)
        tensors[f"seed_{seed}"] = torch.cat([torch.randn(n, generator=g) for n in RANDN_LENGTHS]).numpy()
    g = torch.Generator().manual_seed(RANDN_LONG_SEED)
    tensors[f"seed_{RANDN_LONG_SEED}.long"] = torch.randn(RANDN_LONG_SHAPE, generator=g).numpy().reshape(-1)
    meta = {"seeds": json.dumps(RANDN_SEEDS), "lengths": json.dumps(RANDN_LENGTHS),
            "long": json.dumps({"seed": RANDN_LONG_SEED, "shape": list(RANDN_LONG_SHAPE)})}
    return tensors, meta


# name, scheduler class, config overrides, steps, eta, seed, batch, model ("tiny": unet_tiny's weights at
# 16x16, or "toy": reference_schedulers.toy_model), sample shape (C, H, W)
TORCH_PIPELINE_CASES = [
    ("ddpm_b1", "DDPMScheduler", {}, 10, 0.0, 0, 1, "tiny", (3, 16, 16)),
    ("ddpm_b2", "DDPMScheduler", {}, 10, 0.0, 2**32 + 1, 2, "tiny", (3, 16, 16)),
    ("ddim_eta0_b2", "DDIMScheduler", {}, 10, 0.0, 3, 2, "tiny", (3, 16, 16)),
    ("ddim_eta1_b1", "DDIMScheduler", {}, 10, 1.0, 4, 1, "tiny", (3, 16, 16)),
    ("ddim_eta05_b2", "DDIMScheduler", {}, 10, 0.5, 5, 2, "tiny", (3, 16, 16)),
    ("euler_a_b2_toy", "EulerAncestralDiscreteScheduler", {}, 10, 0.0, 6, 2, "toy", (1, 6, 5)),
    ("dpmpp2m_b2_toy", "DPMSolverMultistepScheduler", {}, 8, 0.0, 7, 2, "toy", (1, 6, 5)),
    # 3 x 1 x 1 x 5 = 15 values, an odd count under 16: torch's float64 path, a spare value carried from each draw to the next.
    ("ddpm_small_toy", "DDPMScheduler", {"steps_offset": 1}, 10, 0.0, 8, 3, "toy", (1, 1, 5)),
]


def draws_noise(cls, sched, i, eta):
    """Whether diffusers' step i calls randn_tensor: DDPM for t > 0, DDIM iff eta > 0, Euler ancestral always."""
    return {"DDPMScheduler": lambda: sched.timesteps[i] > 0, "DDIMScheduler": lambda: eta > 0,
            "EulerAncestralDiscreteScheduler": lambda: True, "DPMSolverMultistepScheduler": lambda: False}[cls]()


def torch_pipeline_golden(case, tiny_model):
    """diffusers' DDPMPipeline/DDIMPipeline draw order with generator=torch.manual_seed(seed): x_T = randn of the
    whole (B, C, H, W), then one whole-batch randn per step that draws. No model consumes random numbers, so
    drawing every step's noise right after x_T gives the same sequence."""
    name, cls, overrides, n, eta, seed, batch, model_name, chw = case
    check_avx2_randn()
    sched = rs.DDIM(overrides, eta=eta) if cls == "DDIMScheduler" else rs.SCHEDULERS[cls](overrides)
    sched.set_timesteps(n)
    shape = (batch, *chw)
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(shape, generator=g).numpy()
    x_init = (x_t.astype(np.float64) * sched.init_noise_sigma).astype(np.float32)
    noises = np.stack([torch.randn(shape, generator=g).numpy() if draws_noise(cls, sched, i, eta)
                       else np.zeros(shape, np.float32) for i in range(n)])
    if model_name == "tiny":
        def model(x32, t):
            with torch.no_grad():
                return tiny_model(torch.from_numpy(x32), torch.tensor([float(t)], dtype=torch.float32)).numpy()
    else:
        model = rs.toy_model
    res = rs.run_sampler(sched, n, x_init, noises, model=model)
    # x_init is randn of the seed (torch_randn checks that part): the steps are what these files add.
    tensors = {"x_first_step": res["x"][1], "x_final": res["x"][-1], "timesteps": res["timesteps"]}
    cfg_json = rs.config_json(sched.config)
    meta = {"scheduler_class": cls, "scheduler_config": cfg_json, "num_inference_steps": str(n), "eta": str(eta),
            "seed": str(seed), "batch": str(batch), "model": model_name,
            "noise": "torch.manual_seed(seed): x_T = randn((B, C, H, W)), then randn((B, C, H, W)) at each step "
                     "that draws (DDPM t > 0, DDIM eta > 0, Euler ancestral always, DPM-Solver++ never)"}
    print(f"torch_pipeline_{name}: |x_final| max {np.abs(res['x'][-1]).max():.4f}")
    return tensors, meta, {"scheduler_class": cls, "scheduler_config": json.loads(cfg_json), "num_inference_steps": n,
                           "eta": eta, "seed": seed, "batch": batch, "model": model_name, "sample_shape": list(chw),
                           "file": f"torch_pipeline_{name}.safetensors"}


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(OUT, f))

    # a) tiny UNets, weights stored
    dbg = ["time_embedding", "down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block",
           "up_blocks.0", "up_blocks.1"]
    t, m = unet_golden("tiny", TINY_CONFIG, 1, 7, 3, (16, 12), [1, 500, 999], True, dbg)
    save("unet_tiny.safetensors", t, m,
         "Tiny UNet2DModel (config unet_tiny_config.json): 3 levels [16,24,32], layers_per_block 1, "
         "attention_head_dim 8 (3 heads at 24 ch, 4 heads at 32 ch and in the mid block), norm_num_groups 4, mid_block_scale_factor 1.414, "
         "flip_sin_to_cos True, freq_shift 0, downsample_padding 1; NON-square 16x12 input, batch 3, "
         "timesteps [1, 500, 999]. Weights stored (synthetic, seed 1).")
    t, m = unet_golden("tiny2", TINY2_CONFIG, 2, 8, 3, (16, 12), [0, 37.25, 999], True,
                       ["time_embedding", "mid_block"])
    save("unet_tiny2.safetensors", t, m,
         "Tiny UNet2DModel variant (unet_tiny2_config.json): [8,8,16], layers_per_block 2 (3 resnets per up block), attention_head_dim "
         "null (1 head), downsample_padding 0 (pad right/bottom), center_input_sample true, flip_sin_to_cos false, "
         "freq_shift 1, out_channels 2, norm_eps 1e-6, attention at the full-resolution level; 16x12 input, batch 3, timesteps [0, 37.25, 999] "
         "FRACTIONAL timestep 37.25. Weights stored (synthetic, seed 2).")

    # b) cifar10 architecture, synthetic weights not stored
    t, m = unet_golden("cifar10", CIFAR10_CONFIG, 42, 7, 2, (32, 32), [10, 700], False,
                       ["time_embedding", "mid_block"])
    save("unet_cifar10.safetensors", t, m,
         "google/ddpm-cifar10-32 architecture (unet_cifar10_config.json, 35,746,307 params) with synthetic "
         "weights synthetic_weights.generate(name, shape, 42) (NOT stored); sample = gaussian('sample', 6144, 7) "
         "as (2,3,32,32); timesteps [10, 700].")

    # c) samplers
    sched_t = {}
    for key, cfg in SCHEDULES.items():
        full = dict(rs.COMMON_DEFAULTS)
        full.update(cfg)
        sched_t[key + ".betas"] = rs.make_betas(full)
        sched_t[key + ".alphas_cumprod"] = rs.alphas_cumprod_of(full)
    save("schedules.safetensors", sched_t, {k: json.dumps(v) for k, v in SCHEDULES.items()},
         "float64 betas and alphas_cumprod (cumprod of 1 - betas) of every beta schedule used by the sampler "
         "goldens; metadata maps the key prefix to its config (trained_quadratic_T100: betas 0.001 + 0.199*(i/99)^2).")
    index = {}
    for case in SAMPLER_CASES:
        t, m, entry = sampler_golden(case)
        save(entry["file"], t, m, case[6])
        index[case[0]] = entry
    write_json("sampler_cases.json", index)

    # d) torch's generator: raw randn values, then whole pipelines drawn as diffusers draws
    t, m = randn_golden()
    save("torch_randn.safetensors", t, m,
         "torch.randn (float32) of torch.Generator().manual_seed(seed): per seed, lengths " +
         f"{RANDN_LENGTHS} drawn one after another from one generator and concatenated (seed_<seed>); "
         f"seed_{RANDN_LONG_SEED}.long = randn({RANDN_LONG_SHAPE}) of a fresh generator.")
    tiny = synthetic_model(TINY_CONFIG, 1)
    index = {}
    for case in TORCH_PIPELINE_CASES:
        t, m, entry = torch_pipeline_golden(case, tiny)
        save(entry["file"], t, m, f"{case[1]} {case[3]} steps, eta {case[4]}, seed {case[5]}, batch {case[6]}, "
             f"model {case[7]}: x after the first step, x_final")
        index[case[0]] = entry
    write_json("torch_pipeline_cases.json", index)

    # e) diffusers' tests/pipelines/ddim/test_ddim.py::test_inference: its dummy UNet exactly as
    #    torch.manual_seed(0) initialises it (check_against_diffusers_tests.py's DDIM_TEST config), stored so the
    #    C# pipeline can be held to the slice diffusers publishes for DDIMPipeline(generator=manual_seed(0)).
    torch.manual_seed(0)
    ddim_test_config = full_config({"_class_name": "UNet2DModel", "block_out_channels": [4, 8], "layers_per_block": 1,
                                    "norm_num_groups": 4, "sample_size": 8, "in_channels": 3, "out_channels": 3,
                                    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
                                    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]})
    ddim_test_unet = UNet2DModel(ddim_test_config).eval()
    save("diffusers_ddim_test_unet.safetensors", {k: v.detach().numpy() for k, v in ddim_test_unet.state_dict().items()},
         {"config": json.dumps(ddim_test_config, sort_keys=True)},
         "The dummy UNet2DModel of diffusers' DDIMPipeline fast test (tests/pipelines/ddim/test_ddim.py), initialised "
         "by torch right after torch.manual_seed(0); config in diffusers_ddim_test_unet_config.json.")
    write_json("diffusers_ddim_test_unet_config.json", ddim_test_config)

    write_readme()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"total goldens size: {total / 1e6:.3f} MB")
    assert total < 2_100_000


README_HEAD = """# Golden files (generated — do not edit)

Regenerate everything with **one command** from the repository root:

    /usr/bin/python3 weights/make_goldens.py

(Debian python3 + torch 1.13 CPU + numpy; float32 torch forward with `torch.set_num_threads(2)`; deterministic.)
Sources: `weights/reference_unet.py` (diffusers UNet2DModel re-implementation, diffusers key names),
`weights/synthetic_weights.py` (seeded weights/noise, ported bit-exactly to
`src/Diffusion.Kernels/Models/SyntheticWeights.cs`), `weights/reference_schedulers.py` (DDPM, DDIM,
DPM-Solver++(2M), Euler ancestral in float64), `weights/safetensors_io.py`.

## Formats and conventions

* All `.safetensors` files are standard safetensors (header padded with spaces to a multiple of 8).
  Every file's `__metadata__` explains its inputs (seeds, configs as JSON strings).
* **U-Net goldens** (`unet_*.safetensors`): non-weight keys are exactly `sample` (B,C,H,W float32),
  `timesteps` (B, float32), `output` (B,out,H,W float32), plus `debug.<module>` intermediates
  (hidden-state output of that submodule: `debug.time_embedding` = emb after `linear_2`,
  `debug.down_blocks.i` = the block's output sample, `debug.mid_block`, `debug.up_blocks.i`).
  In `unet_tiny*.safetensors` all other keys are the model weights under diffusers names
  (`conv_in.weight`, `down_blocks.1.attentions.0.to_q.weight`, ... — load them as a diffusers
  `diffusion_pytorch_model.safetensors`, ignoring `sample`/`timesteps`/`output`/`debug.*`).
  `unet_cifar10.safetensors` holds NO weights: build them with
  `SyntheticWeights.Generate(name, shape, 42)` for every parameter of the cifar10 config.
* **Sampler goldens** (`sampler_<case>.safetensors`, index in `sampler_cases.json`): a toy model
  replaces the U-Net so trajectories are independent of it:

      s = t/1000;   m = float32( s*x + (1 - s) * (tanh(0.5*x) + 0.1*sin(x*t/100)) )

  evaluated in float64 from float32 `x = model_input[i]` and float32 `t = timesteps[i]`.
  Loop: `model_input[i] = scale_model_input(x[i])` (identity except Euler: x/sqrt(sigma^2+1));
  `model_output[i] = toy(model_input[i], timesteps[i])`; `x[i+1] = float32(step(model_output[i], x[i], noise[i]))`
  with all schedule scalars in float64 and the elementwise step in float64 from float32 tensors.
  `x[0] == x_init`; `x[n]` is the final sample. `x0_pred[i]` = predicted x0 used in step i (after clipping;
  the DPM++ history holds these float32 values). `noise[i]` = `SyntheticWeights.Gaussian("noise/{i}", 60, seed)`
  (only present when some step uses noise; `noise_used[i]` (u8) says whether step i adds it).
  `x_init = float32(Gaussian("x_init", 60, seed) * init_noise_sigma)`. For checking schedule code,
  for DPM/Euler, `sigmas` (float64, n+1, last = 0) let you check schedule code directly;
  `schedules.safetensors` holds float64 `betas`/`alphas_cumprod` of every beta schedule used.
  Scheduler configs use diffusers keys (`scheduler_config` in `__metadata__` and in `sampler_cases.json`);
  absent keys take diffusers defaults (DDPM/DDIM: spacing `leading`, clip_sample true; DPM/Euler: `linspace`).
  `lambda_min_clipped: null` means -inf (JSON has no infinity). `eta` (DDIM) is a step argument, stored
  beside the config. Seeds: `seed` in `__metadata__`/`sampler_cases.json` drives both `x_init` and `noise`.
* **torch's generator** (`torch_randn.safetensors`, `torch_pipeline_<case>.safetensors`, index in
  `torch_pipeline_cases.json`): raw `torch.randn` float32 values of `torch.Generator().manual_seed(seed)` (the
  AVX2 kernel torch runs on any x86-64 CPU with AVX2; the script refuses to run on another), and whole
  pipelines whose noise torch drew in diffusers' order: x_T = `randn((B, C, H, W))`, then one `randn((B, C, H, W))`
  per step that draws (DDPM t > 0, DDIM eta > 0, Euler ancestral always, DPM-Solver++ never), through the
  reference schedulers above with the tiny U-Net (`unet_tiny.safetensors`' weights, 16x16) or the toy model.
  Each holds `x_first_step`, `x_final` and `timesteps`.

## Expected tolerances

* U-Net `output` vs C# float32 kernels: **max abs error <= 1e-4** (tiny and cifar10); `debug.*` similar.
  Outputs are O(1) (see the per-file std below).
* Synthetic weights / `Uniform`: bit-exact. `Gaussian`: bit-exact on glibc, else <= 1e-6 abs.
* Sampler trajectories (`x`): <= 1e-4 abs + 1e-4 relative (C# uses float32 coefficients and float32
  arithmetic; our reference is float64 math rounded to float32 each step). Timesteps: exact.
  `alphas_cumprod`/`sigmas`: <= 1e-12 relative in double (diffusers itself is float32 there, ~1e-6).
* `torch_randn`: bit-exact. `torch_pipeline_*`: the noise is bit-exact, so only float32 arithmetic
  differs: <= 1e-4 abs (tiny U-Net), as for the sampler trajectories (toy).

## Files
"""


def write_readme():
    lines = [README_HEAD]
    for name, desc, shapes, size in README_FILES:
        lines.append(f"### `{name}` ({size / 1024:.1f} KiB)\n\n{desc}\n")
        is_unet = name.startswith("unet_")
        non_weight = {k: v for k, v in shapes.items() if not is_unet or "." not in k or k.startswith("debug.")}
        weights = {k: v for k, v in shapes.items() if k not in non_weight}
        lines.append("| key | dtype | shape |\n|---|---|---|")
        for k, (dt, sh) in non_weight.items():
            lines.append(f"| `{k}` | {dt} | {sh} |")
        if weights:
            lines.append(f"| *{len(weights)} weight tensors* | F32 | diffusers names, e.g. "
                         f"`{next(iter(weights))}` {weights[next(iter(weights))][1]} |")
        lines.append("")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
