#!/usr/bin/env python3
"""Reference re-implementation of diffusers' UNet2DModel in plain torch.nn.

Written from the formulas (not copied) so it runs without the `diffusers`
package.  The state_dict keys are EXACTLY diffusers' (current, post-0.15)
names, e.g.

    time_embedding.linear_1.weight
    down_blocks.1.attentions.0.to_q.weight
    down_blocks.0.downsamplers.0.conv.weight
    mid_block.resnets.0.conv_shortcut.weight   (only when in != out)
    mid_block.attentions.0.group_norm.weight
    up_blocks.2.attentions.1.to_out.0.bias
    up_blocks.0.upsamplers.0.conv.weight
    conv_norm_out.weight / conv_out.weight

so a diffusers `diffusion_pytorch_model.safetensors` loads with
`model.load_state_dict(tensors, strict=True)`.

Constructed from a config dict with the same keys as diffusers' config.json.
Supported: DownBlock2D / AttnDownBlock2D, UpBlock2D / AttnUpBlock2D,
UNetMidBlock2D (+ attention unless add_attention is False), positional time
embedding, act_fn silu, resnet_time_scale_shift "default", no class embedding.

Subtleties faithfully reproduced (checked against diffusers unet_2d.py /
unet_2d_blocks.py / resnet.py / attention_processor.py):
  * attention_head_dim None -> head dim = block channels -> 1 head.
    heads = channels // attention_head_dim; scale = 1/sqrt(attention_head_dim).
  * the MID block passes output_scale_factor = mid_block_scale_factor to BOTH
    its resnets and its attention (out = (residual + h) / factor).  Down/up
    block resnets and attentions use factor 1.
  * attention GroupNorm uses norm_num_groups (attn_norm_num_groups if given)
    and norm_eps; norms of resnets use norm_eps too.
  * downsample_padding 0 -> F.pad(x, (0,1,0,1)) then 3x3 stride-2 conv pad 0.
  * upsampler: nearest x2 (F.interpolate scale_factor=2) then 3x3 conv pad 1.
  * up block i: num_layers = layers_per_block + 1; resnet j input channels =
    (prev_output_channel if j == 0 else out) + (in_channels if j == last else out)
    where in_channels = reversed_channels[min(i+1, n-1)].
  * timestep embedding: exponent = -ln(10000) * k / (half - freq_shift),
    emb = t * exp(exponent); [sin, cos], swapped to [cos, sin] if flip_sin_to_cos.

Run `python3 weights/reference_unet.py` for a self-test (prints the
google/ddpm-cifar10-32 parameter count, asserted to be 35,746,307).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULTS = {
    "sample_size": None,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
}

CIFAR10_CONFIG = {
    "_class_name": "UNet2DModel",
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "freq_shift": 1,
    "flip_sin_to_cos": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [128, 256, 256, 256],
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 0,
    "act_fn": "silu",
    "attention_head_dim": None,
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
}
CIFAR10_PARAM_COUNT = 35_746_307


def full_config(config):
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in config.items()})
    return cfg


def timestep_embedding(timesteps, dim, flip_sin_to_cos, freq_shift, max_period=10000.0):
    """timesteps: (B,) float tensor -> (B, dim) float32."""
    assert timesteps.dim() == 1
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * k / (half - freq_shift))
    arg = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_ch, out_ch, temb_ch, groups, eps, output_scale_factor=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0) if in_ch != out_ch else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        sc = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (sc + h) / self.output_scale_factor


class AttentionBlock(nn.Module):
    """diffusers Attention(..., residual_connection=True, _from_deprecated_attn_block=True)."""

    def __init__(self, ch, head_dim, groups, eps, rescale_output_factor=1.0):
        super().__init__()
        assert ch % head_dim == 0, f"channels {ch} not divisible by attention_head_dim {head_dim}"
        self.heads = ch // head_dim
        self.head_dim = head_dim
        self.group_norm = nn.GroupNorm(groups, ch, eps=eps, affine=True)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])  # to_out.1 is Dropout (no params)
        self.rescale_output_factor = rescale_output_factor

    def forward(self, x):
        B, C, H, W = x.shape
        residual = x
        t = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)

        def split(z):  # (B, HW, C) -> (B, heads, HW, d)
            return z.reshape(B, H * W, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        o = torch.matmul(probs, v).transpose(1, 2).reshape(B, H * W, C)
        o = self.to_out[0](o)
        o = o.transpose(1, 2).reshape(B, C, H, W)
        return (o + residual) / self.rescale_output_factor


class Downsample2D(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, attn, num_layers, in_ch, out_ch, temb_ch, groups, eps, head_dim,
                 add_downsample, downsample_padding, attn_groups):
        super().__init__()
        res, att = [], []
        for i in range(num_layers):  # interleaved creation = diffusers' RNG order under torch.manual_seed
            res.append(ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, groups, eps))
            if attn:
                att.append(AttentionBlock(out_ch, head_dim, attn_groups, eps))
        self.resnets = nn.ModuleList(res)
        self.attentions = nn.ModuleList(att) if attn else None
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch, downsample_padding)]) if add_downsample else None

    def forward(self, x, temb):
        outs = []
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
            outs.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            outs.append(x)
        return x, outs


class UpBlock(nn.Module):
    def __init__(self, attn, num_layers, in_ch, prev_out_ch, out_ch, temb_ch, groups, eps, head_dim,
                 add_upsample, attn_groups):
        super().__init__()
        res, att = [], []
        for i in range(num_layers):  # interleaved creation = diffusers' RNG order
            res_skip = in_ch if i == num_layers - 1 else out_ch
            res_in = prev_out_ch if i == 0 else out_ch
            res.append(ResnetBlock2D(res_in + res_skip, out_ch, temb_ch, groups, eps))
            if attn:
                att.append(AttentionBlock(out_ch, head_dim, attn_groups, eps))
        self.resnets = nn.ModuleList(res)
        self.attentions = nn.ModuleList(att) if attn else None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_upsample else None

    def forward(self, x, skips, temb):
        # skips: list, consumed from the end
        for i, r in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, ch, temb_ch, groups, eps, head_dim, scale, add_attention, attn_groups):
        super().__init__()
        r0 = ResnetBlock2D(ch, ch, temb_ch, groups, eps, scale)  # creation order resnet, attention, resnet
        a0 = AttentionBlock(ch, head_dim, attn_groups, eps, scale) if add_attention else None
        r1 = ResnetBlock2D(ch, ch, temb_ch, groups, eps, scale)
        self.resnets = nn.ModuleList([r0, r1])
        self.attentions = nn.ModuleList([a0]) if add_attention else None

    def forward(self, x, temb):
        x = self.resnets[0](x, temb)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x, temb)


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = full_config(config)
        self.config = cfg
        assert cfg["time_embedding_type"] == "positional", "only positional time embedding supported"
        assert cfg["act_fn"] in ("silu", "swish"), "only silu supported"
        assert cfg["resnet_time_scale_shift"] == "default"
        assert cfg.get("class_embed_type") is None and cfg.get("num_class_embeds") is None
        ch = list(cfg["block_out_channels"])
        n = len(ch)
        assert len(cfg["down_block_types"]) == n and len(cfg["up_block_types"]) == n
        c0 = ch[0]
        temb = 4 * c0
        groups = cfg["norm_num_groups"]
        eps = cfg["norm_eps"]
        attn_groups = cfg["attn_norm_num_groups"] if cfg["attn_norm_num_groups"] is not None else groups
        ahd = cfg["attention_head_dim"]
        lpb = cfg["layers_per_block"]

        self.conv_in = nn.Conv2d(cfg["in_channels"], c0, 3, 1, 1)
        self.time_embedding = TimestepEmbedding(c0, temb)

        self.down_blocks = nn.ModuleList()
        out = c0
        for i, t in enumerate(cfg["down_block_types"]):
            inp, out = out, ch[i]
            assert t in ("DownBlock2D", "AttnDownBlock2D"), t
            self.down_blocks.append(DownBlock(
                t == "AttnDownBlock2D", lpb, inp, out, temb, groups, eps,
                ahd if ahd is not None else out, i != n - 1, cfg["downsample_padding"], attn_groups))

        self.mid_block = MidBlock(ch[-1], temb, groups, eps, ahd if ahd is not None else ch[-1],
                                  cfg["mid_block_scale_factor"], cfg["add_attention"], attn_groups)

        self.up_blocks = nn.ModuleList()
        rch = list(reversed(ch))
        out = rch[0]
        for i, t in enumerate(cfg["up_block_types"]):
            prev, out = out, rch[i]
            inp = rch[min(i + 1, n - 1)]
            assert t in ("UpBlock2D", "AttnUpBlock2D"), t
            self.up_blocks.append(UpBlock(
                t == "AttnUpBlock2D", lpb + 1, inp, prev, out, temb, groups, eps,
                ahd if ahd is not None else out, i != n - 1, attn_groups))

        self.conv_norm_out = nn.GroupNorm(groups if groups is not None else min(c0 // 4, 32), c0, eps=eps)
        self.conv_out = nn.Conv2d(c0, cfg["out_channels"], 3, 1, 1)

    def forward(self, sample, timesteps):
        """sample (B,C,H,W) float32; timesteps: scalar, (1,) or (B,) -> eps prediction (B,out,H,W)."""
        cfg = self.config
        if cfg["center_input_sample"]:
            sample = 2 * sample - 1.0
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.float32)
        timesteps = timesteps.reshape(-1).to(sample.device)
        timesteps = timesteps.float() * torch.ones(sample.shape[0], dtype=torch.float32, device=sample.device)
        emb = timestep_embedding(timesteps, cfg["block_out_channels"][0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        emb = self.time_embedding(emb.to(sample.dtype))

        x = self.conv_in(sample)
        skips = [x]
        for b in self.down_blocks:
            x, outs = b(x, emb)
            skips.extend(outs)
        x = self.mid_block(x, emb)
        for b in self.up_blocks:
            x = b(x, skips, emb)
        assert not skips
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def _self_test():
    torch.manual_seed(0)
    m = UNet2DModel(CIFAR10_CONFIG)
    n = param_count(m)
    print(f"google/ddpm-cifar10-32 parameter count: {n:,}")
    assert n == CIFAR10_PARAM_COUNT, n
    keys = list(m.state_dict().keys())
    print(f"{len(keys)} tensors; e.g. {keys[:3]} ... {keys[-3:]}")
    for k in ["down_blocks.1.attentions.0.to_out.0.weight", "down_blocks.0.downsamplers.0.conv.weight",
              "mid_block.attentions.0.group_norm.bias", "up_blocks.2.attentions.2.to_q.weight",
              "up_blocks.0.upsamplers.0.conv.bias", "up_blocks.1.resnets.2.conv_shortcut.weight",
              "time_embedding.linear_2.weight", "conv_norm_out.weight"]:
        assert k in keys, k
    with torch.no_grad():
        y = m(torch.randn(2, 3, 32, 32), torch.tensor([10.0, 700.0]))
    assert y.shape == (2, 3, 32, 32)
    # tiny non-square multi-head config
    tiny = UNet2DModel({"block_out_channels": [32, 64, 64], "layers_per_block": 1,
                        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
                        "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
                        "norm_num_groups": 8, "attention_head_dim": 16})
    with torch.no_grad():
        y = tiny(torch.randn(3, 3, 16, 12), torch.tensor([1.0, 500.0, 999.0]))
    assert y.shape == (3, 3, 16, 12)
    print("self-test OK")


if __name__ == "__main__":
    _self_test()
