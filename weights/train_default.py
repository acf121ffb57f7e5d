#!/usr/bin/env python3
"""Train, checkpoint and export the embedded default model of Diffusion.Kernels.

A small diffusers-compatible UNet2DModel (weights/reference_unet.py, exact diffusers
state_dict names) learns to denoise Fashion-MNIST (Debian package dataset-fashion-mnist)
on a laptop CPU: 28x28 grayscale images padded to 32x32 with the background value and
scaled to [-1, 1], epsilon prediction, DDPM linear beta schedule over 1000 steps.

Why a linear schedule rather than squaredcos_cap_v2: it is the DDPM default (and what
the google/ddpm-* pipelines use), so every sampler the C# side implements handles it;
squaredcos_cap_v2 caps its last beta at 0.999, which leaves alpha_bar(999) ~ 2e-9, and
converting an epsilon prediction to x0 at that step divides by sqrt(alpha_bar) ~ 5e-5,
which samplers without clipping (DPM-Solver++) amplify into garbage.

Training is budgeted in wall-clock minutes and is exactly resumable: data order comes
from (seed, epoch), noise/timesteps/flips from one torch.Generator whose state is saved
with the model, its EMA and the optimizer in an atomically replaced checkpoint.

    # train (or continue) for up to 110 minutes, politely
    nice -n 10 /usr/bin/python3 weights/train_default.py --minutes 110 [--resume]
    # start a new run from exported weights (model and EMA both), e.g. when the
    # checkpoint that produced them is gone; its optimizer state starts afresh
    nice -n 10 /usr/bin/python3 weights/train_default.py --init-from weights/default
    # export the EMA weights of the latest checkpoint as a diffusers pipeline folder
    /usr/bin/python3 weights/train_default.py --export
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_unet  # noqa: E402
import safetensors_io  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CKPT_DIR = os.path.join(HERE, "checkpoints")
EXPORT_DIR = os.path.join(HERE, "default")

UNET_CONFIG = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.27.2",
    "sample_size": 32,
    "in_channels": 1,
    "out_channels": 1,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    # 32x32 -> 16x16 -> 8x8: attention only at 8x8 (third level) and in the mid block,
    # where 64 tokens keep it cheap.
    "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 32,
    "norm_num_groups": 8,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
    "num_train_timesteps": None,
}

SCHEDULER_CONFIG = {
    "_class_name": "DDPMScheduler",
    "_diffusers_version": "0.27.2",
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
    "variance_type": "fixed_small",
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "prediction_type": "epsilon",
    "thresholding": False,
    "dynamic_thresholding_ratio": 0.995,
    "sample_max_value": 1.0,
    "timestep_spacing": "leading",
    "steps_offset": 0,
    "rescale_betas_zero_snr": False,
}

MODEL_INDEX = {
    "_class_name": "DDPMPipeline",
    "_diffusers_version": "0.27.2",
    "scheduler": ["diffusers", "DDPMScheduler"],
    "unet": ["diffusers", "UNet2DModel"],
}


# ----------------------------------------------------------------------------- data

def read_idx(path):
    """Reads a (gzipped) IDX file of unsigned bytes into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    assert magic >> 8 == 0x08, f"{path}: not an unsigned-byte IDX file"
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split):
    """split 'train' or 't10k' -> (images uint8 (N, 32, 32) padded with background 0, labels (N,))."""
    images = read_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz"))
    # Fashion-MNIST's background is 0 (black); pad 2 pixels on every side with it.
    padded = np.zeros((images.shape[0], 32, 32), dtype=np.uint8)
    padded[:, 2:30, 2:30] = images
    return padded, labels.astype(np.int64)


def to_model_range(images_u8):
    """uint8 (N, 32, 32) -> float32 (N, 1, 32, 32) in [-1, 1]."""
    return torch.from_numpy(images_u8).float().div(127.5).sub(1.0).unsqueeze(1)


def epoch_permutation(seed, epoch, n):
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


# ----------------------------------------------------------------------------- schedule

def linear_alphas_cumprod(cfg=SCHEDULER_CONFIG):
    betas = torch.linspace(cfg["beta_start"], cfg["beta_end"], cfg["num_train_timesteps"], dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


# ----------------------------------------------------------------------------- training

def make_model():
    return reference_unet.UNet2DModel(UNET_CONFIG)


def ema_decay(step, max_decay):
    # diffusers EMAModel warmup form: short runs would otherwise average in random init.
    return min(max_decay, (1 + step) / (10 + step))


def lr_at(step, args):
    return args.lr * min(1.0, (step + 1 - args.first_step) / args.warmup)


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path, model, ema, opt, step, gen, args, wall_s):
    atomic_save({
        "step": step,
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "args": vars(args),
        "unet_config": UNET_CONFIG,
        "train_wall_s": wall_s,
    }, path)


def init_from_export(folder, model, ema):
    """Loads an exported pipeline folder's EMA weights into both model and EMA; returns its step count.

    The step count carries on so that the EMA warm-up and LR warm-up do not restart as if from random
    init; the optimizer's moments do start afresh (they were not exported), hence a short LR warm-up."""
    weights = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
    tensors, meta = safetensors_io.read(weights)
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    ema.load_state_dict(state, strict=True)
    return int(meta.get("training_steps", 0))


def train(args):
    torch.set_num_threads(args.threads)
    args.first_step = 0  # the step this run's LR warm-up counts from
    os.makedirs(args.ckpt_dir, exist_ok=True)
    latest = os.path.join(args.ckpt_dir, "latest.pt")
    log_path = os.path.join(args.ckpt_dir, "train_log.tsv")

    images, _ = load_fashion_mnist("train")
    data = to_model_range(images)
    n = data.shape[0]
    steps_per_epoch = n // args.batch_size  # drop the ragged tail of each epoch

    torch.manual_seed(args.seed)
    model = make_model()
    ema = make_model()
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed + 1)
    step, wall_before = 0, 0.0

    if args.resume and os.path.exists(latest):
        ck = torch.load(latest)
        saved = ck["args"]
        for k in ("seed", "batch_size", "lr", "warmup", "ema_decay", "weight_decay", "grad_clip"):
            if saved[k] != getattr(args, k):
                sys.exit(f"--resume: {k}={getattr(args, k)} differs from the checkpoint's {saved[k]}")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        step, wall_before = ck["step"], ck["train_wall_s"]
        # The run's lineage stays the checkpoint's, so the evaluation report still says where it started.
        args.first_step = saved.get("first_step", 0)
        args.init_from = saved.get("init_from")
        print(f"resumed at step {step} ({wall_before / 60:.1f} min trained before)", flush=True)
    elif args.resume:
        print("--resume: no checkpoint yet, starting fresh", flush=True)
    elif os.path.exists(latest):
        sys.exit(f"{latest} exists: pass --resume to continue it, or move it away to start over")
    if args.init_from and step == 0:
        step = args.first_step = init_from_export(args.init_from, model, ema)
        print(f"initialised model and EMA from {args.init_from} (trained {step} steps)", flush=True)

    n_params = reference_unet.param_count(model)
    print(f"UNet2DModel {n_params:,} parameters; batch {args.batch_size}, {steps_per_epoch} steps/epoch", flush=True)
    alphas_cumprod = linear_alphas_cumprod().float()
    T = alphas_cumprod.shape[0]

    new_log = not os.path.exists(log_path) or step == 0
    log = open(log_path, "w" if new_log else "a")
    if new_log:
        log.write("step\tepoch\tloss\tlr\tsec_per_step\ttrain_wall_min\n")

    start = time.time()
    last_ckpt = start
    budget_s = args.minutes * 60
    loss_acc, loss_n, t_log = 0.0, 0, time.time()
    perm_epoch, perm = -1, None
    model.train()
    while True:
        now = time.time()
        if now - start >= budget_s or (args.max_steps and step >= args.max_steps):
            break
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(args.seed, epoch, n), epoch
        idx = perm[pos * args.batch_size:(pos + 1) * args.batch_size]
        x0 = data[idx]
        flip = torch.rand(x0.shape[0], generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, T, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        ab = alphas_cumprod[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise

        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        loss = F.mse_loss(model(xt, t.float()), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step += 1

        d = ema_decay(step, args.ema_decay)
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)

        loss_acc += loss.item()
        loss_n += 1
        if step % args.log_every == 0:
            sps = (time.time() - t_log) / loss_n
            wall = wall_before + time.time() - start
            line = f"{step}\t{epoch}\t{loss_acc / loss_n:.5f}\t{lr_at(step - 1, args):.2e}\t{sps:.3f}\t{wall / 60:.2f}"
            log.write(line + "\n")
            log.flush()
            print(line, flush=True)
            loss_acc, loss_n, t_log = 0.0, 0, time.time()
        if time.time() - last_ckpt >= args.ckpt_minutes * 60:
            save_checkpoint(latest, model, ema, opt, step, gen, args, wall_before + time.time() - start)
            last_ckpt = time.time()

    save_checkpoint(latest, model, ema, opt, step, gen, args, wall_before + time.time() - start)
    log.close()
    print(f"stopped at step {step}; checkpoint {latest}", flush=True)


# ----------------------------------------------------------------------------- export

def export(args):
    latest = args.checkpoint or os.path.join(args.ckpt_dir, "latest.pt")
    ck = torch.load(latest)
    assert ck["unet_config"] == UNET_CONFIG, "checkpoint was trained with a different UNET_CONFIG"
    model = make_model()
    model.load_state_dict(ck["ema"], strict=True)  # proves the names/shapes match the reference UNet
    tensors = {k: v.detach().float().contiguous().numpy() for k, v in model.state_dict().items()}

    out = args.out
    os.makedirs(os.path.join(out, "unet"), exist_ok=True)
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    weights = os.path.join(out, "unet", "diffusion_pytorch_model.safetensors")
    safetensors_io.write(weights + ".tmp", tensors, {
        "format": "pt",
        "source": "weights/train_default.py (EMA weights)",
        "training_steps": str(ck["step"]),
    })
    os.replace(weights + ".tmp", weights)

    def dump(obj, *parts):
        with open(os.path.join(out, *parts), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    dump(MODEL_INDEX, "model_index.json")
    dump(UNET_CONFIG, "unet", "config.json")
    dump(SCHEDULER_CONFIG, "scheduler", "scheduler_config.json")

    # Round trip: the file we wrote reloads strictly and reproduces the model's output.
    back, _ = safetensors_io.read(weights)
    check = make_model()
    check.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([3.0, 900.0])), check(x, torch.tensor([3.0, 900.0])))
    size = os.path.getsize(weights)
    print(f"exported step {ck['step']} EMA weights ({reference_unet.param_count(model):,} parameters, "
          f"{size / 1e6:.1f} MB) to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=110, help="wall-clock training budget of this invocation")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many total steps (0: no limit)")
    ap.add_argument("--resume", action="store_true", help="continue <ckpt-dir>/latest.pt exactly")
    ap.add_argument("--init-from", help="start from an exported pipeline folder's weights instead of random init")
    ap.add_argument("--export", action="store_true", help="export EMA weights to weights/default/ and exit")
    ap.add_argument("--checkpoint", help="checkpoint to export (default <ckpt-dir>/latest.pt)")
    ap.add_argument("--ckpt-dir", default=CKPT_DIR, help="where latest.pt and train_log.tsv live")
    ap.add_argument("--out", default=EXPORT_DIR, help="pipeline folder to export to")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--warmup", type=int, default=300, help="linear LR warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.export:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
