"""Prompts encoded the WebUI's way: emphasis, 75-token chunks, BREAK (AUTOMATIC1111 v1.10.1
``modules/sd_hijack_clip.py`` ``FrozenCLIPEmbedderWithCustomWordsBase.forward`` and ``modules/sd_emphasis.py``).

Each 77-token chunk of :func:`prompts.tokenize_prompt` goes through the text encoder on its own; the chunks' hidden
states are concatenated along the token axis ([1, 77·k, C]); the "Original" emphasis (the WebUI's default) scales each
token's hidden state by its weight, then restores the chunk's mean. SDXL's pooled embedding comes from the first
chunk, unweighted, as in the WebUI. Written here because the WebUI's code needs its own model wrappers and compel's
syntax differs (see ``extension/prompts.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..prompts import tokenize_prompt

# one chunk's token ids [1, 77] -> (hidden states [1, 77, C], pooled [1, P] or None)
ChunkEncoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def emphasis_original(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The WebUI's "Original" emphasis: ``z`` [B, T, C] times its token ``weights`` [B, T], rescaled to ``z``'s mean."""
    original_mean = z.mean()
    z = z * weights.to(z.dtype)[..., None]
    return z * (original_mean / z.mean())


@torch.no_grad()
def encode_weighted(
    tokenizer: object, encode_chunk: ChunkEncoder, text: str, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``text`` -> (hidden states [1, 77·k, C], pooled of the first chunk or None)."""
    states, pooled = [], None
    for index, (ids, weights) in enumerate(tokenize_prompt(tokenizer, text)):
        z, chunk_pooled = encode_chunk(torch.tensor([ids], device=device))
        states.append(emphasis_original(z, torch.tensor([weights], device=z.device)))
        if index == 0:
            pooled = chunk_pooled
    return torch.cat(states, dim=1), pooled


def pad_to_same_length(a: torch.Tensor, b: torch.Tensor, empty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give ``a`` and ``b`` [1, 77·k, C] the same number of chunks by appending ``empty`` (the empty prompt's one
    chunk) to the shorter, as the WebUI's "Pad prompt/negative prompt" setting does (``pad_cond_uncond``,
    modules/sd_samplers_cfg_denoiser.py): a prompt and negative prompt of different lengths then share one UNet batch."""
    chunks = max(a.shape[1], b.shape[1]) // empty.shape[1]

    def padded(x: torch.Tensor) -> torch.Tensor:
        missing = chunks - x.shape[1] // empty.shape[1]
        return torch.cat([x, empty.to(x.dtype).repeat(1, missing, 1)], dim=1) if missing else x

    return padded(a), padded(b)
