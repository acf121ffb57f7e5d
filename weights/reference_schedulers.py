#!/usr/bin/env python3
"""Reference samplers (numpy float64) following diffusers' scheduler formulas.

Written from the formulas of diffusers (>= 0.27) DDPMScheduler, DDIMScheduler,
DPMSolverMultistepScheduler and EulerAncestralDiscreteScheduler; configs use the
diffusers config keys and defaults.  Only the options listed per class are
supported (others raise).  Precision model used for the goldens:

  * every schedule quantity (betas, alphas_cumprod, sigmas, coefficients) is float64;
  * tensors (sample x, model output m, noise z, x0 history) are float32; one step is
    evaluated in float64 from the float32 inputs and its result rounded to float32.

  diffusers itself keeps betas/alphas_cumprod in float32 (torch.linspace(...,
  dtype=float32), cumprod in float32) and casts DPM/Euler sigmas to float32, so
  diffusers' trajectories differ from these by ~1e-6 relative; the goldens are
  the float64 math, which is what a C# port computing schedules in double reproduces.

Known diffusers subtleties reproduced here (and noted where they bite):
  1. DDPM/DDIM: the "previous" timestep is ALWAYS t - T // n (T = num_train_timesteps,
     n = num_inference_steps), not the next entry of `timesteps`.  For leading
     spacing (and trailing when n divides T) these coincide; for linspace or
     trailing with n not dividing T they do not (case ddim_linspace_7 shows it).
     If prev < 0, alpha_prod_prev = 1 (DDPM: `one`; DDIM: final_alpha_cumprod =
     1 if set_alpha_to_one else alphas_cumprod[0]).
  2. DDPM adds noise iff t > 0 (the CURRENT timestep): with steps_offset 1 the
     last step (t=1, prev<0) adds noise with fixed_small std sqrt(1e-20) (the
     variance is clamped to >= 1e-20) and with fixed_large std sqrt(beta_t) where
     beta_t = 1 - alphas_cumprod[t] / 1.
  3. DDIM "sample" prediction: pred_epsilon is derived from the UNCLIPPED x0
     (computed before clip_sample clamps x0).  v_prediction likewise.
  4. Timestep rounding uses numpy's round-half-to-even (C#: Math.Round default,
     MidpointRounding.ToEven); linspace values are numpy's i*((stop-start)/(num-1))+start
     with the last element forced to stop.
  5. DPM-Solver++(2M): timesteps = linspace(0, T-1, n+1).round()[::-1][:-1] (n+1
     points, drop the last = 0); sigmas = sqrt((1-ab)/ab) at those t, then a final
     sigma 0 (final_sigmas_type "zero"; "sigma_min" appends sqrt((1-ab_0)/ab_0) instead and is
     supported only to reproduce diffusers' own scheduler tests).  Step 0 is first order (no history), the
     final step is ALWAYS first order because final_sigmas_type == "zero"
     (lower_order_final also for n < 15); for solver_order 2, lower_order_second
     changes nothing.  The first-order step to sigma 0 returns x0 exactly.
  6. Euler ancestral with "linspace" spacing uses FRACTIONAL timesteps:
     np.linspace(0, T-1, n, dtype=float32)[::-1] (computed in float64 and cast to
     float32); sigma(t) = np.interp(t, arange(T), sigmas_table) on those float32
     values; the model receives the float32 timestep.  init_noise_sigma =
     max(sigmas) for linspace/trailing, sqrt(max^2+1) for leading.
     Noise is drawn at EVERY step (sigma_up = 0 at the final step).
  7. squaredcos_cap_v2 betas are min(1 - abar((i+1)/T)/abar(i/T), 0.999) with
     abar(t) = cos((t+0.008)/1.008*pi/2)^2 in float64 (diffusers then casts to float32).
"""
import json
import math

import numpy as np

# ----------------------------------------------------------------------------- schedules


def np_linspace(start, stop, num):
    """numpy.linspace, spelled out (C# ports should copy this exactly)."""
    return np.linspace(start, stop, num, dtype=np.float64)


def make_betas(cfg):
    T = cfg["num_train_timesteps"]
    if cfg.get("trained_betas") is not None:
        b = np.asarray(cfg["trained_betas"], dtype=np.float64)
        assert b.shape == (T,)
        return b
    s = cfg["beta_schedule"]
    if s == "linear":
        return np_linspace(cfg["beta_start"], cfg["beta_end"], T)
    if s == "scaled_linear":
        return np_linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, T) ** 2
    if s == "squaredcos_cap_v2":
        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=np.float64)
    raise ValueError(f"beta_schedule {s}")


def alphas_cumprod_of(cfg):
    return np.cumprod(1.0 - make_betas(cfg))


def discrete_timesteps(T, n, spacing, steps_offset):
    """DDPM / DDIM set_timesteps (int64, descending)."""
    if spacing == "linspace":
        ts = np_linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    elif spacing == "leading":
        ratio = T // n
        ts = (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64)
        ts += steps_offset
    elif spacing == "trailing":
        ratio = T / n
        ts = np.round(np.arange(T, 0, -ratio)).astype(np.int64)
        ts -= 1
    else:
        raise ValueError(spacing)
    return ts


COMMON_DEFAULTS = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "prediction_type": "epsilon", "timestep_spacing": "leading", "steps_offset": 0,
}


def _cfg(defaults, config, class_name, unsupported):
    cfg = dict(COMMON_DEFAULTS)
    cfg.update(defaults)
    cfg.update(config)
    cfg["_class_name"] = class_name
    for k, bad in unsupported.items():
        if k in cfg and cfg[k] != bad:
            raise NotImplementedError(f"{class_name}: {k}={cfg[k]!r} not supported (only {bad!r})")
    return cfg


def _x0_eps(pred_type, m, x, a, b):
    """(x0, eps) from model output for x_t = sqrt(a) x0 + sqrt(b) eps, b = 1 - a."""
    sa, sb = a ** 0.5, b ** 0.5
    if pred_type == "epsilon":
        return (x - sb * m) / sa, m
    if pred_type == "sample":
        return m, (x - sa * m) / sb
    if pred_type == "v_prediction":
        return sa * x - sb * m, sa * m + sb * x
    raise ValueError(pred_type)


# ----------------------------------------------------------------------------- DDPM


class DDPM:
    """DDPMScheduler: variance_type fixed_small | fixed_large; clip_sample; no thresholding."""

    def __init__(self, config):
        self.config = _cfg({"variance_type": "fixed_small", "clip_sample": True, "clip_sample_range": 1.0,
                            "thresholding": False, "rescale_betas_zero_snr": False},
                           config, "DDPMScheduler", {"thresholding": False, "rescale_betas_zero_snr": False})
        assert self.config["variance_type"] in ("fixed_small", "fixed_large")
        self.alphas_cumprod = alphas_cumprod_of(self.config)
        self.init_noise_sigma = 1.0

    def set_timesteps(self, n):
        c = self.config
        assert n <= c["num_train_timesteps"]
        self.num_inference_steps = n
        self.timesteps = discrete_timesteps(c["num_train_timesteps"], n, c["timestep_spacing"], c["steps_offset"])
        return self.timesteps

    def scale_model_input(self, x, i):
        return x

    def prev_t(self, t):
        return t - self.config["num_train_timesteps"] // self.num_inference_steps

    def step(self, m, i, x, noise):
        """m, x, noise: float64 arrays.  Returns (prev_sample, x0, noise_used: bool)."""
        c = self.config
        t = int(self.timesteps[i])
        pt = self.prev_t(t)
        a_t = self.alphas_cumprod[t]
        a_p = self.alphas_cumprod[pt] if pt >= 0 else 1.0
        b_t, b_p = 1 - a_t, 1 - a_p
        cur_alpha = a_t / a_p
        cur_beta = 1 - cur_alpha
        x0, _ = _x0_eps(c["prediction_type"], m, x, a_t, b_t)
        if c["clip_sample"]:
            r = c["clip_sample_range"]
            x0 = np.clip(x0, -r, r)
        coef_x0 = (a_p ** 0.5 * cur_beta) / b_t
        coef_x = cur_alpha ** 0.5 * b_p / b_t
        prev = coef_x0 * x0 + coef_x * x
        used = t > 0
        if used:
            var = max(b_p / b_t * cur_beta, 1e-20)
            if c["variance_type"] == "fixed_large":
                var = cur_beta
            prev = prev + var ** 0.5 * noise
        return prev, x0, used


# ----------------------------------------------------------------------------- DDIM


class DDIM:
    """DDIMScheduler: eta, set_alpha_to_one, clip_sample, all prediction types; no thresholding."""

    def __init__(self, config, eta=0.0):
        self.config = _cfg({"clip_sample": True, "clip_sample_range": 1.0, "set_alpha_to_one": True,
                            "thresholding": False, "rescale_betas_zero_snr": False},
                           config, "DDIMScheduler", {"thresholding": False, "rescale_betas_zero_snr": False})
        self.eta = eta
        self.alphas_cumprod = alphas_cumprod_of(self.config)
        self.final_alpha_cumprod = 1.0 if self.config["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0

    def set_timesteps(self, n):
        c = self.config
        self.num_inference_steps = n
        self.timesteps = discrete_timesteps(c["num_train_timesteps"], n, c["timestep_spacing"], c["steps_offset"])
        return self.timesteps

    def scale_model_input(self, x, i):
        return x

    def step(self, m, i, x, noise):
        c = self.config
        t = int(self.timesteps[i])
        pt = t - c["num_train_timesteps"] // self.num_inference_steps
        a_t = self.alphas_cumprod[t]
        a_p = self.alphas_cumprod[pt] if pt >= 0 else self.final_alpha_cumprod
        b_t, b_p = 1 - a_t, 1 - a_p
        x0, eps = _x0_eps(c["prediction_type"], m, x, a_t, b_t)  # eps from UNCLIPPED x0
        if c["clip_sample"]:
            r = c["clip_sample_range"]
            x0 = np.clip(x0, -r, r)
        variance = (b_p / b_t) * (1 - a_t / a_p)
        std = self.eta * variance ** 0.5
        prev = a_p ** 0.5 * x0 + (1 - a_p - std ** 2) ** 0.5 * eps
        used = self.eta > 0
        if used:
            prev = prev + std * noise
        return prev, x0, used


# ----------------------------------------------------------------------------- DPM-Solver++ (2M)


class DPMSolverMultistep:
    """DPMSolverMultistepScheduler, algorithm_type dpmsolver++, solver_type midpoint, solver_order 1|2,
    final_sigmas_type zero (default) | sigma_min, no karras/lu sigmas, lambda_min_clipped -inf, no thresholding."""

    def __init__(self, config):
        self.config = _cfg({"solver_order": 2, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",
                            "lower_order_final": True, "euler_at_final": False, "use_karras_sigmas": False,
                            "use_lu_lambdas": False, "final_sigmas_type": "zero", "lambda_min_clipped": -math.inf,
                            "thresholding": False, "timestep_spacing": "linspace", "variance_type": None,
                            "rescale_betas_zero_snr": False},
                           config, "DPMSolverMultistepScheduler",
                           {"algorithm_type": "dpmsolver++", "solver_type": "midpoint", "use_karras_sigmas": False,
                            "use_lu_lambdas": False, "thresholding": False,
                            "euler_at_final": False, "rescale_betas_zero_snr": False, "variance_type": None})
        assert self.config["solver_order"] in (1, 2)
        assert self.config["final_sigmas_type"] in ("zero", "sigma_min")
        assert self.config["lambda_min_clipped"] == -math.inf
        self.alphas_cumprod = alphas_cumprod_of(self.config)
        self.init_noise_sigma = 1.0

    def set_timesteps(self, n):
        c = self.config
        T = c["num_train_timesteps"]
        last = T  # lambda_min_clipped = -inf -> clipped_idx = 0
        sp = c["timestep_spacing"]
        if sp == "linspace":
            ts = np_linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif sp == "leading":
            ratio = last // (n + 1)
            ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
            ts += c["steps_offset"]
        elif sp == "trailing":
            ratio = T / n
            ts = np.arange(last, 0, -ratio).round().copy().astype(np.int64)
            ts -= 1
        else:
            raise ValueError(sp)
        table = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        sig = np.interp(ts.astype(np.float64), np.arange(0, T, dtype=np.float64), table)
        if c["final_sigmas_type"] == "zero":
            last_sigma = 0.0
        else:  # "sigma_min"
            last_sigma = ((1 - self.alphas_cumprod[0]) / self.alphas_cumprod[0]) ** 0.5
        self.sigmas = np.concatenate([sig, [last_sigma]])  # diffusers: .astype(np.float32)
        self.timesteps = ts
        self.num_inference_steps = len(ts)
        self.history = []  # converted model outputs (x0 predictions), float32
        self.lower_order_nums = 0
        return ts

    def scale_model_input(self, x, i):
        return x

    @staticmethod
    def alpha_sigma(sigma):
        alpha = 1.0 / (sigma ** 2 + 1) ** 0.5
        return alpha, sigma * alpha

    def step(self, m, i, x, noise=None):
        c = self.config
        n = len(self.timesteps)
        lower_order_final = (i == n - 1) and (
            c["euler_at_final"] or (c["lower_order_final"] and n < 15) or c["final_sigmas_type"] == "zero")
        a_s0, s_s0 = self.alpha_sigma(self.sigmas[i])
        # convert_model_output (dpmsolver++ -> data prediction x0)
        pt = c["prediction_type"]
        if pt == "epsilon":
            x0 = (x - s_s0 * m) / a_s0
        elif pt == "sample":
            x0 = m
        elif pt == "v_prediction":
            x0 = a_s0 * x - s_s0 * m
        else:
            raise ValueError(pt)
        x0 = x0.astype(np.float32).astype(np.float64)  # history tensor is float32
        self.history = (self.history + [x0])[-c["solver_order"]:]
        sigma_next = self.sigmas[i + 1]
        if c["solver_order"] == 1 or self.lower_order_nums < 1 or lower_order_final:
            if sigma_next == 0.0:
                prev = x0.copy()  # limit of the formula: sigma_t = 0, alpha_t = 1, exp(-h) = 0
            else:
                a_t, s_t = self.alpha_sigma(sigma_next)
                h = (math.log(a_t) - math.log(s_t)) - (math.log(a_s0) - math.log(s_s0))
                prev = (s_t / s_s0) * x - (a_t * (math.exp(-h) - 1.0)) * x0
        else:
            a_t, s_t = self.alpha_sigma(sigma_next)
            a_s1, s_s1 = self.alpha_sigma(self.sigmas[i - 1])
            lam_t = math.log(a_t) - math.log(s_t)
            lam_s0 = math.log(a_s0) - math.log(s_s0)
            lam_s1 = math.log(a_s1) - math.log(s_s1)
            m0, m1 = self.history[-1], self.history[-2]
            h, h0 = lam_t - lam_s0, lam_s0 - lam_s1
            r0 = h0 / h
            d0, d1 = m0, (1.0 / r0) * (m0 - m1)
            prev = (s_t / s_s0) * x - (a_t * (math.exp(-h) - 1.0)) * d0 - 0.5 * (a_t * (math.exp(-h) - 1.0)) * d1
        if self.lower_order_nums < c["solver_order"]:
            self.lower_order_nums += 1
        return prev, x0, False


# ----------------------------------------------------------------------------- Euler ancestral


class EulerAncestral:
    """EulerAncestralDiscreteScheduler: prediction epsilon | v_prediction; spacing linspace|leading|trailing."""

    def __init__(self, config):
        self.config = _cfg({"timestep_spacing": "linspace", "rescale_betas_zero_snr": False},
                           config, "EulerAncestralDiscreteScheduler", {"rescale_betas_zero_snr": False})
        self.alphas_cumprod = alphas_cumprod_of(self.config)

    def set_timesteps(self, n):
        c = self.config
        T = c["num_train_timesteps"]
        sp = c["timestep_spacing"]
        if sp == "linspace":
            ts = np_linspace(0, T - 1, n).astype(np.float32)[::-1].copy()
        elif sp == "leading":
            ratio = T // n
            ts = (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.float32)
            ts += c["steps_offset"]
        elif sp == "trailing":
            ratio = T / n
            ts = np.arange(T, 0, -ratio).round().copy().astype(np.float32)
            ts -= 1
        else:
            raise ValueError(sp)
        table = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        sig = np.interp(ts.astype(np.float64), np.arange(0, T, dtype=np.float64), table)
        self.sigmas = np.concatenate([sig, [0.0]])  # diffusers: .astype(np.float32)
        self.timesteps = ts
        self.num_inference_steps = n
        mx = self.sigmas.max()
        self.init_noise_sigma = mx if sp in ("linspace", "trailing") else (mx ** 2 + 1) ** 0.5
        return ts

    def scale_model_input(self, x, i):
        return x / (self.sigmas[i] ** 2 + 1) ** 0.5

    def step(self, m, i, x, noise):
        c = self.config
        sigma = self.sigmas[i]
        if c["prediction_type"] == "epsilon":
            x0 = x - sigma * m
        elif c["prediction_type"] == "v_prediction":
            x0 = m * (-sigma / (sigma ** 2 + 1) ** 0.5) + (x / (sigma ** 2 + 1))
        else:
            raise NotImplementedError(c["prediction_type"])
        s_from, s_to = self.sigmas[i], self.sigmas[i + 1]
        s_up = (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5
        s_down = (s_to ** 2 - s_up ** 2) ** 0.5
        deriv = (x - x0) / sigma
        prev = x + deriv * (s_down - sigma)
        prev = prev + noise * s_up
        return prev, x0, True


SCHEDULERS = {"DDPMScheduler": DDPM, "DDIMScheduler": DDIM,
              "DPMSolverMultistepScheduler": DPMSolverMultistep,
              "EulerAncestralDiscreteScheduler": EulerAncestral}


# ----------------------------------------------------------------------------- toy model


def toy_model(x32, t):
    """Deterministic stand-in for the U-Net (same signature: sample, timestep -> eps-like output).

        s = t / 1000
        eps(x, t) = s*x + (1 - s) * (tanh(0.5*x) + 0.1*sin(x*t/100))

    x: float32 array, t: the timestep as float32 (integer timesteps are exact).  Evaluated
    in float64 from the float32 values, operations exactly in the order written
    ((x*t)/100), result rounded to float32.  Shaped like a denoiser for data near 0
    (eps ~ x at t ~ T), so predicted x0 stays O(1) for every schedule; the tanh/sin terms
    make it nonlinear and t-dependent.
    """
    x = np.asarray(x32, dtype=np.float32).astype(np.float64)
    t = float(np.float32(t))
    s = t / 1000.0
    return (s * x + (1.0 - s) * (np.tanh(0.5 * x) + 0.1 * np.sin(x * t / 100.0))).astype(np.float32)


def run_sampler(sched, n, x_init32, noises32, model=None):
    """Runs the full loop with `model(x32, t) -> float32 output` (toy_model by default).
    Returns dict of stacked float32 arrays + timesteps/sigmas."""
    model = model or toy_model
    ts = sched.set_timesteps(n)
    x = np.asarray(x_init32, np.float32)
    xs, mins, mouts, x0s, used = [x], [], [], [], []
    for i in range(len(ts)):
        mi = np.asarray(sched.scale_model_input(x.astype(np.float64), i)).astype(np.float32)
        m = model(mi, ts[i])
        prev, x0, u = sched.step(m.astype(np.float64), i, x.astype(np.float64), noises32[i].astype(np.float64))
        x = prev.astype(np.float32)
        xs.append(x)
        mins.append(mi)
        mouts.append(m)
        x0s.append(np.asarray(x0).astype(np.float32))
        used.append(u)
    return {"x": np.stack(xs), "model_input": np.stack(mins), "model_output": np.stack(mouts),
            "x0_pred": np.stack(x0s), "noise_used": np.array(used, dtype=np.uint8),
            "timesteps": np.asarray(ts, dtype=np.float64)}


def config_json(cfg):
    return json.dumps({k: (None if (isinstance(v, float) and math.isinf(v)) else v)
                       for k, v in cfg.items() if k != "trained_betas"}, sort_keys=True)


if __name__ == "__main__":
    s = DDIM({"steps_offset": 1})
    print("DDIM leading+1 10:", s.set_timesteps(10).tolist())
    print("DDIM trailing 10:", DDIM({"timestep_spacing": "trailing"}).set_timesteps(10).tolist())
    print("DDIM linspace 7:", DDIM({"timestep_spacing": "linspace"}).set_timesteps(7).tolist())
    d = DPMSolverMultistep({})
    print("DPM 8:", d.set_timesteps(8).tolist(), d.sigmas.round(4).tolist())
    e = EulerAncestral({})
    print("Euler 5:", e.set_timesteps(5).tolist(), e.init_noise_sigma)
    print("cos ab[-1]", alphas_cumprod_of({**COMMON_DEFAULTS, "beta_schedule": "squaredcos_cap_v2"})[-1])
