"""Constants shared by the tiny-model builders (tests/tiny_models.py)."""

from __future__ import annotations

import torch

KINDS = ("unclip-h", "unclip-l", "sdxl-base", "sdxl-refiner")
EMBEDDER_TEXT_WIDTH = {"unclip-h": 1024, "unclip-l": 768}  # the real widths of embedder.model.ln_final.weight
IMAGE_EMBED_DIM = {"unclip-h": 32, "unclip-l": 24}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx")
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
Tensors = dict[str, torch.Tensor]
