"""The part of the CLIP text tower that SD 2.x's text encoder leaves out, kept for text embeddings in CLIP's joint space.

SD 2.x conditions cross-attention on the PENULTIMATE layer of OpenCLIP ViT-H/14's text tower
(``layer: "penultimate"`` in Stability-AI/stablediffusion ``configs/stable-diffusion/v2-1-stable-unclip-h-inference.yaml``),
so diffusers' ``text_encoder`` has one block fewer than the checkpoint. The checkpoint still stores the whole tower
under ``cond_stage_model.model.*``: all blocks, ``ln_final`` and ``text_projection``. Since that text tower and the
image embedder are the same CLIP model (both ``ViT-H-14`` / ``laion2b_s32b_b79k``, frozen), the last block +
``ln_final`` + EOT pooling + ``text_projection`` on top of the text encoder give a text embedding in the space of the
image embeddings (open_clip ``CLIP.encode_text``, https://github.com/mlfoundations/open_clip).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

OPEN_CLIP_TEXT_PREFIX = "cond_stage_model.model."


class TextHead(nn.Module):
    """Last text block, final layer norm and projection; input: the text encoder's last hidden state (before its
    final layer norm, i.e. ``hidden_states[-1]``)."""

    def __init__(self, config: Any, projection_dim: int) -> None:
        from transformers.models.clip.modeling_clip import CLIPEncoderLayer

        super().__init__()
        self.last_block = CLIPEncoderLayer(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.hidden_size, projection_dim, bias=False)

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, T, W]`` hidden states + ``[B, T]`` ids -> ``[B, E]`` projected embeddings pooled at the EOT token."""
        length = hidden.shape[1]
        causal = torch.full((length, length), torch.finfo(hidden.dtype).min, device=hidden.device, dtype=hidden.dtype)
        x = self.last_block(hidden, None, causal.triu(1)[None, None])[0]
        x = self.final_layer_norm(x)
        # EOT pooling as CLIP does it: the end-of-text token has the largest id in the vocabulary.
        pooled = x[torch.arange(x.shape[0], device=x.device), input_ids.to(x.device).argmax(dim=-1)]
        return self.projection(pooled)


def count_blocks(sd: Mapping[str, Any], prefix: str = OPEN_CLIP_TEXT_PREFIX) -> int:
    """Number of ``transformer.resblocks.N`` under ``prefix``."""
    pattern = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def head_tensors(sd: Mapping[str, torch.Tensor], prefix: str = OPEN_CLIP_TEXT_PREFIX) -> dict[str, torch.Tensor]:
    """The open_clip tensors the head needs (last block, ``ln_final``, ``text_projection``), or ``{}`` if any is
    missing. Call before the text encoder's conversion takes the keys out of ``sd``."""
    blocks = count_blocks(sd, prefix)
    last = f"{prefix}transformer.resblocks.{blocks - 1}."
    wanted = [k for k in sd if k.startswith(last)]
    wanted += [f"{prefix}ln_final.weight", f"{prefix}ln_final.bias", f"{prefix}text_projection"]
    if blocks == 0 or any(k not in sd for k in wanted):
        return {}
    out = {k: sd[k] for k in wanted}
    out["blocks"] = torch.tensor(blocks)
    return out


# open_clip ResidualAttentionBlock -> transformers CLIPEncoderLayer names. Hand-written because diffusers' converter
# (single_file_utils.convert_open_clip_checkpoint) converts a whole text model, and we need one block of it.
_BLOCK_NAMES = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}


def build_text_head(
    tensors: Mapping[str, torch.Tensor],
    text_encoder: Any,
    *,
    prefix: str = OPEN_CLIP_TEXT_PREFIX,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> TextHead | None:
    """A :class:`TextHead` from :func:`head_tensors`, or ``None`` when the checkpoint has no complete tower above the
    ``text_encoder`` (it must have exactly one block more than the encoder)."""
    if not tensors:
        return None
    config = text_encoder.config
    blocks = int(tensors["blocks"])
    if blocks != config.num_hidden_layers + 1:
        return None
    last = f"{prefix}transformer.resblocks.{blocks - 1}."
    state = {new: tensors[last + old] for old, new in _BLOCK_NAMES.items()}
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):  # open_clip packs q, k, v in one in_proj
        state[f"self_attn.{name}.weight"] = tensors[last + "attn.in_proj_weight"].chunk(3)[i]
        state[f"self_attn.{name}.bias"] = tensors[last + "attn.in_proj_bias"].chunk(3)[i]
    projection = tensors[prefix + "text_projection"]  # [W, E]: open_clip computes x @ text_projection
    head = TextHead(config, projection.shape[1])
    full = {f"last_block.{k}": v for k, v in state.items()}
    full["final_layer_norm.weight"] = tensors[prefix + "ln_final.weight"]
    full["final_layer_norm.bias"] = tensors[prefix + "ln_final.bias"]
    full["projection.weight"] = projection.t()
    head.load_state_dict({k: v.float() for k, v in full.items()})
    return head.to(device=device, dtype=dtype or torch.float32).eval().requires_grad_(False)
