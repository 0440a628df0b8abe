"""Prompts encoded the WebUI's way: emphasis, 75-token chunks, BREAK (AUTOMATIC1111 v1.10.1
``modules/sd_hijack_clip.py`` ``FrozenCLIPEmbedderWithCustomWordsBase.forward`` and ``modules/sd_emphasis.py``).

Each 77-token chunk of :func:`prompts.tokenize_prompt` goes through the text encoder on its own; the chunks' hidden
states are concatenated along the token axis ([1, 77·k, C]); the "Original" emphasis (the WebUI's default) scales each
token's hidden state by its weight, then restores the chunk's mean. SDXL's pooled embedding comes from the first
chunk, unweighted, as in the WebUI. :func:`encode_prompts` builds an SDXL pipeline's (the refiner's) conditioning
from it; unCLIP's is ``engine.unclip.encode_text``. Written here because the WebUI's code needs its own model
wrappers and compel's syntax differs (see ``extension/prompts.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from ..errors import NonFiniteError
from ..prompts import PromptError, tokenize_prompt

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
    embeds = torch.cat(states, dim=1)
    if not bool(torch.isfinite(embeds).all()):  # e.g. weights whose emphasis mean is 0, or over fp16's range
        raise PromptError(
            "the prompt's emphasis weights make its text conditioning NaN or infinite (a weight too large, weights "
            "that cancel out, or brackets nested too deeply): lower or remove them"
        )
    return embeds, pooled


NAN_MESSAGE = (
    "A tensor with NaNs was produced while sampling ({where}); the all-black image was not saved. Try fp32 weights "
    "(Settings → Reimagine, or --no-half in the WebUI), fewer steps or a lower CFG scale."
)


def check_latents(pipe: Any, latents: torch.Tensor, where: str = "UNet") -> None:
    """Raise :class:`NonFiniteError` for latents with NaN/inf values, before they are decoded into a black image.
    A host may set ``pipe.reimagine_nan_check`` to its own check (the WebUI's ``devices.test_for_nans``, which
    ``--disable-nan-check`` turns off)."""
    own = getattr(pipe, "reimagine_nan_check", None)
    if own is not None:
        own(latents, where)
    elif not bool(torch.isfinite(latents).all()):
        raise NonFiniteError(NAN_MESSAGE.format(where=where))


def pad_to_same_length(a: torch.Tensor, b: torch.Tensor, empty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give ``a`` and ``b`` [1, 77·k, C] the same number of chunks by appending ``empty`` (the empty prompt's one
    chunk) to the shorter, as the WebUI's "Pad prompt/negative prompt" setting does (``pad_cond_uncond``,
    modules/sd_samplers_cfg_denoiser.py): a prompt and negative prompt of different lengths then share one UNet batch."""
    chunks = max(a.shape[1], b.shape[1]) // empty.shape[1]

    def padded(x: torch.Tensor) -> torch.Tensor:
        missing = chunks - x.shape[1] // empty.shape[1]
        return torch.cat([x, empty.to(x.dtype).repeat(1, missing, 1)], dim=1) if missing else x

    return padded(a), padded(b)


class PromptEmbeds(NamedTuple):
    """The refiner's text conditioning for one request (negatives are None without CFG)."""

    embeds: torch.Tensor
    negative: torch.Tensor | None
    pooled: torch.Tensor
    negative_pooled: torch.Tensor | None

    def repeat(self, batch: int) -> dict[str, torch.Tensor | None]:
        """The ``__call__`` keyword arguments for ``batch`` rows."""

        def rows(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.repeat(batch, *([1] * (tensor.ndim - 1)))

        return {
            "prompt_embeds": rows(self.embeds),
            "negative_prompt_embeds": rows(self.negative),
            "pooled_prompt_embeds": rows(self.pooled),
            "negative_pooled_prompt_embeds": rows(self.negative_pooled),
        }


@torch.no_grad()
def encode_prompts(pipe: Any, prompt: str, negative_prompt: str, guided: bool) -> PromptEmbeds:
    """Encode the refiner prompt once, in the WebUI's prompt syntax (``engine/text_encoding.py``): each encoder's
    penultimate hidden states (the refiner has only OpenCLIP-bigG, ``text_encoder_2``; an SDXL base adds CLIP-L,
    concatenated on the channel axis as diffusers' ``encode_prompt`` does), pooled from ``text_encoder_2``'s first
    chunk."""
    device = pipe._execution_device
    encoders = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))
    pairs = [(getattr(pipe, t), getattr(pipe, e)) for t, e in encoders if getattr(pipe, e, None) is not None]

    def chunk_encoder(encoder: Any) -> ChunkEncoder:
        def encode_chunk(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = encoder(ids, output_hidden_states=True)
            return out.hidden_states[-2], out[0]

        return encode_chunk

    def encode(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [encode_weighted(tokenizer, chunk_encoder(encoder), text, device) for tokenizer, encoder in pairs]
        return torch.cat([z for z, _ in encoded], dim=-1), encoded[-1][1]

    embeds, pooled = encode(prompt)
    negative = negative_pooled = None
    if guided:
        negative, negative_pooled = encode(negative_prompt)
        if negative.shape[1] != embeds.shape[1]:
            embeds, negative = pad_to_same_length(embeds, negative, encode("")[0])
    dtype = pairs[-1][1].dtype

    def cast(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(dtype)

    return PromptEmbeds(cast(embeds), cast(negative), cast(pooled), cast(negative_pooled))
