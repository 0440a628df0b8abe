"""CLIP text towers in the image embeddings' joint space, for Edit by text (``extension/engine/text_diff.py``).

Each tower is an ``nn.Module`` with ``embed(pipe, input_ids) -> [B, E]`` (:class:`TextTower`), set on the pipeline as
``pipe.reimagine_text_tower`` by the single-file loader (``None`` where the file has none).

unCLIP-H (:class:`TextHead`): SD 2.x conditions cross-attention on the PENULTIMATE layer of OpenCLIP ViT-H/14's text tower
(``layer: "penultimate"`` in Stability-AI/stablediffusion ``configs/stable-diffusion/v2-1-stable-unclip-h-inference.yaml``),
so diffusers' ``text_encoder`` has one block fewer than the checkpoint. The checkpoint still stores the whole tower
under ``cond_stage_model.model.*``: all blocks, ``ln_final`` and ``text_projection``. Since that text tower and the
image embedder are the same CLIP model (both ``ViT-H-14`` / ``laion2b_s32b_b79k``, frozen), the last block +
``ln_final`` + EOT pooling + ``text_projection`` on top of the text encoder give a text embedding in the space of the
image embeddings (open_clip ``CLIP.encode_text``, https://github.com/mlfoundations/open_clip).

unCLIP-L (:class:`WholeTextTower`): the image embedder is OpenAI CLIP ViT-L/14
(``v2-1-stable-unclip-l-inference.yaml``: ``ClipImageEmbedder``, ``model: ViT-L/14``), and the checkpoint keeps that
whole CLIP model under ``embedder.model.*``, its text tower included (OpenAI ``CLIP.encode_text``,
https://github.com/openai/CLIP, ``clip/model.py``). It is built as a transformers ``CLIPTextModelWithProjection``
(quick_gelu, one head per 64 channels, as OpenAI's ``build_model`` sizes it) and kept on the CPU in float32: one pass
over two captions, and no VRAM taken from the UNet.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import nn

OPEN_CLIP_TEXT_PREFIX = "cond_stage_model.model."
OPENAI_CLIP_PREFIX = "embedder.model."


class TextTower(Protocol):
    def embed(self, pipe: Any, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, 77]`` token ids (the pipeline's tokenizer) -> ``[B, E]`` projected text embeddings."""
        ...


class TextHead(nn.Module):
    """Last text block, final layer norm and projection; input: the text encoder's last hidden state (before its
    final layer norm, i.e. ``hidden_states[-1]``)."""

    def __init__(self, config: Any, projection_dim: int) -> None:
        from transformers.models.clip.modeling_clip import CLIPEncoderLayer

        super().__init__()
        self.last_block = CLIPEncoderLayer(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.hidden_size, projection_dim, bias=False)

    def embed(self, pipe: Any, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(pipe._execution_device)
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-1]
        self.to(device=hidden.device, dtype=hidden.dtype)
        return self(hidden, ids)

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """``[B, T, W]`` hidden states + ``[B, T]`` ids -> ``[B, E]`` projected embeddings pooled at the EOT token."""
        length = hidden.shape[1]
        causal = torch.full((length, length), torch.finfo(hidden.dtype).min, device=hidden.device, dtype=hidden.dtype)
        mask = causal.triu(1)[None, None]
        if "causal_attention_mask" in inspect.signature(self.last_block.forward).parameters:  # transformers 4
            x = self.last_block(hidden, None, mask)[0]
        else:  # transformers 5: one additive mask, and the layer returns the hidden states alone
            x = self.last_block(hidden, mask)
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


# open_clip / OpenAI ResidualAttentionBlock -> transformers CLIPEncoderLayer names. Hand-written because diffusers'
# converter (single_file_utils.convert_open_clip_checkpoint) only reads ``cond_stage_model.model.*`` and converts a whole
# text model, while unCLIP-H needs one block of it and unCLIP-L a tower under ``embedder.model.``.
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


def block_state(tensors: Mapping[str, torch.Tensor], block: str) -> dict[str, torch.Tensor]:
    """One open_clip block (keys under ``block``) as ``CLIPEncoderLayer`` tensors (q, k, v split from ``in_proj``)."""
    state = {new: tensors[block + old] for old, new in _BLOCK_NAMES.items()}
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        state[f"self_attn.{name}.weight"] = tensors[block + "attn.in_proj_weight"].chunk(3)[i]
        state[f"self_attn.{name}.bias"] = tensors[block + "attn.in_proj_bias"].chunk(3)[i]
    return state


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
    state = block_state(tensors, f"{prefix}transformer.resblocks.{blocks - 1}.")
    projection = tensors[prefix + "text_projection"]  # [W, E]: open_clip computes x @ text_projection
    head = TextHead(config, projection.shape[1])
    full = {f"last_block.{k}": v for k, v in state.items()}
    full["final_layer_norm.weight"] = tensors[prefix + "ln_final.weight"]
    full["final_layer_norm.bias"] = tensors[prefix + "ln_final.bias"]
    full["projection.weight"] = projection.t()
    head.load_state_dict({k: v.float() for k, v in full.items()})
    return head.to(device=device, dtype=dtype or torch.float32).eval().requires_grad_(False)


class WholeTextTower(nn.Module):
    """unCLIP-L's OpenAI CLIP text tower (``CLIPTextModelWithProjection``), on the CPU in float32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def embed(self, pipe: Any, input_ids: torch.Tensor) -> torch.Tensor:
        # pooled at the EOT token (the largest id), as OpenAI CLIP does: transformers' legacy eos_token_id=2 path
        return self.model(input_ids.to("cpu")).text_embeds


def whole_tower_tensors(sd: Mapping[str, torch.Tensor], prefix: str = OPENAI_CLIP_PREFIX) -> dict[str, torch.Tensor]:
    """The text side of the OpenAI CLIP under ``prefix`` (everything but ``visual.*`` and ``logit_scale``), or ``{}``
    when it has no complete text tower (the unCLIP-H embedder keeps no text blocks)."""
    wanted = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection")
    if count_blocks(sd, prefix) == 0 or any(prefix + k not in sd for k in wanted):
        return {}
    return {
        k[len(prefix) :]: v
        for k, v in sd.items()
        if k.startswith(prefix + "transformer.") or k[len(prefix) :] in wanted
    }


def build_whole_text_tower(tensors: Mapping[str, torch.Tensor]) -> WholeTextTower | None:
    """A :class:`WholeTextTower` from :func:`whole_tower_tensors` (sizes read from the shapes), or ``None``."""
    if not tensors:
        return None
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from .clip_vision import materialize_buffers

    vocab, width = tensors["token_embedding.weight"].shape
    blocks = count_blocks(tensors, "")
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=tensors["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=blocks,
        num_attention_heads=width // 64,  # OpenAI clip/model.py build_model: transformer_heads = width // 64
        max_position_embeddings=tensors["positional_embedding"].shape[0],
        hidden_act="quick_gelu",
        projection_dim=tensors["text_projection"].shape[1],
        layer_norm_eps=1e-5,
    )
    state = {
        "text_model.embeddings.token_embedding.weight": tensors["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": tensors["positional_embedding"],
        "text_model.final_layer_norm.weight": tensors["ln_final.weight"],
        "text_model.final_layer_norm.bias": tensors["ln_final.bias"],
        "text_projection.weight": tensors["text_projection"].t(),
    }
    for index in range(blocks):
        block = block_state(tensors, f"transformer.resblocks.{index}.")
        state.update({f"text_model.encoder.layers.{index}.{k}": v for k, v in block.items()})
    with init_empty_weights():  # no random init of ~120M parameters that are overwritten at once
        model = CLIPTextModelWithProjection(config)
    state = {k: v.float() for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if unexpected or any(not k.endswith("position_ids") for k in missing):
        return None
    materialize_buffers(model)
    return WholeTextTower(model.eval().requires_grad_(False))
