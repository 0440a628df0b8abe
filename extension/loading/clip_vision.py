"""unCLIP image embedder from the checkpoint: open_clip / OpenAI ``visual.*`` weights -> HF CLIPVisionModelWithProjection.

Both original embedders (open_clip's ``FrozenOpenCLIPImageEmbedder`` for -h, OpenAI ``clip``'s ``ClipImageEmbedder``
for -l) store the same VisionTransformer layout under ``embedder.model.visual.``::

    conv1.weight, class_embedding, positional_embedding, ln_pre.*, ln_post.*, proj [width, embed_dim],
    transformer.resblocks.N.{ln_1, attn.in_proj_weight/bias [3*width, ...], attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}

The mapping below is verified numerically against open_clip's own VisionTransformer in tests/loading/test_loading_vision.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelLoadError
from .checkpoint import StateDict

VISUAL_PREFIX = "embedder.model.visual."

_TOP = {
    "class_embedding": "vision_model.embeddings.class_embedding",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "ln_post.weight": "vision_model.post_layernorm.weight",
    "ln_post.bias": "vision_model.post_layernorm.bias",
}
_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def convert_visual(sd: StateDict, prefix: str = VISUAL_PREFIX) -> StateDict:
    """Pop ``prefix``-keys out of ``sd`` and return them renamed for ``CLIPVisionModelWithProjection``.

    Entries are removed from ``sd`` as they are converted, so the fused q/k/v tensor of each block is freed as soon as
    its three parts exist. Raises ModelLoadError on a key this mapping does not know (never guesses).
    """
    out: StateDict = {}
    keys = [k for k in sd if k.startswith(prefix)]
    if not keys:
        raise ModelLoadError("the checkpoint has no image embedder weights (embedder.model.visual.*)")
    for key in keys:
        t = sd.pop(key)
        k = key[len(prefix) :]
        if k in _TOP:
            out[_TOP[k]] = t
        elif k == "proj":
            out["visual_projection.weight"] = t.t().contiguous()
        elif k.startswith("transformer.resblocks."):
            idx, rest = k[len("transformer.resblocks.") :].split(".", 1)
            base = f"vision_model.encoder.layers.{idx}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = "weight" if rest.endswith("weight") else "bias"
                q, kk, v = (c.clone() for c in t.chunk(3, dim=0))
                out[base + f"self_attn.q_proj.{kind}"] = q
                out[base + f"self_attn.k_proj.{kind}"] = kk
                out[base + f"self_attn.v_proj.{kind}"] = v
            else:
                mod, _, param = rest.rpartition(".")
                if mod not in _BLOCK:
                    raise ModelLoadError(f"unexpected image embedder weight {key}")
                out[base + f"{_BLOCK[mod]}.{param}"] = t
        else:
            raise ModelLoadError(f"unexpected image embedder weight {key}")
        del t
    return out


def build_image_encoder(
    weights: StateDict, config_folder: str | Path, *, dtype: torch.dtype, device: torch.device
) -> torch.nn.Module:
    """Create ``CLIPVisionModelWithProjection`` from ``config_folder`` (on meta, no random init) and assign ``weights``."""
    from accelerate import init_empty_weights
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig.from_pretrained(str(config_folder))
    with init_empty_weights():
        model = CLIPVisionModelWithProjection(config)
    expected = model.state_dict()
    for k, t in weights.items():
        if k in expected and tuple(expected[k].shape) != tuple(t.shape):
            raise ModelLoadError(
                f"the image embedder does not match this model type: {k} has shape {tuple(t.shape)}, "
                f"expected {tuple(expected[k].shape)}"
            )
    weights = {k: t.to(dtype) if t.is_floating_point() else t for k, t in weights.items()}
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelLoadError(
            f"the image embedder weights are incomplete (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    materialize_buffers(model)
    return model.to(device=device, dtype=dtype).eval()


def materialize_buffers(model: torch.nn.Module) -> None:
    """Give meta buffers (position_ids under some transformers versions) real values."""
    for name, buf in list(model.named_buffers()):
        if buf.is_meta and name.endswith("position_ids"):
            mod = model.get_submodule(name.rsplit(".", 1)[0])
            mod.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
