"""DALL·E 2 text diffs for Stable unCLIP: move an image embedding along the direction between two captions.

Ramesh et al. 2022, "Hierarchical Text-Conditional Image Generation with CLIP Latents", §3.3
(https://arxiv.org/abs/2204.06125): with ``z_i`` the CLIP image embedding and ``z_t0``, ``z_t`` the CLIP text
embeddings of a caption describing the image and of the wanted caption, ``d = normalize(z_t − z_t0)`` and
``z(θ) = slerp(z_i, d, θ)``; θ = 0 is the plain variation. Here ``z_i`` is the (mixed) image embedding, normalised
for the slerp and rescaled to its own norm afterwards, and the edit happens before noise augmentation. The text
embeddings must live in the image embeddings' space: for unCLIP-H that is the checkpoint's own OpenCLIP ViT-H/14
text tower (``loading/text_tower.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..errors import ParamError
from ..params import TEXT_DIFF, TEXT_DIFF_MAX_CHARS
from . import ProgressFn, Result, StopFn, seed_list
from .unclip import VariationRequest, generate, slerp

DEFAULT_AMOUNT = TEXT_DIFF["text_diff_amount"].default
MAX_TEXT_CHARS = TEXT_DIFF_MAX_CHARS
UNAVAILABLE = (
    "Edit by text needs a CLIP text tower in the image embeddings' space, which only the unCLIP single-file checkpoints "
    "(sd21-unclip-h / sd21-unclip-l .ckpt or .safetensors) carry; this model ({model}) has none. Load the single file "
    "instead of a diffusers folder or hub id."
)


def check_text(text: str, what: str, *, allow_empty: bool = False) -> str:
    """``text`` stripped; a :class:`ParamError` when it is empty (unless allowed), not a string or too long."""
    if not isinstance(text, str):
        raise ParamError(f"{what} must be text, got {type(text).__name__}")
    text = text.strip()
    if not text and not allow_empty:
        raise ParamError(f"{what} is empty; give the caption to move the image towards")
    if len(text) > MAX_TEXT_CHARS:
        raise ParamError(f"{what} is {len(text)} characters long; at most {MAX_TEXT_CHARS} are allowed")
    return text


def check_amount(amount: float, what: str = "text diff amount") -> float:
    """``amount`` as a float in [0, 1], else :class:`ParamError`."""
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise ParamError(f"{what} must be a number from 0 to 1, got {amount!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ParamError(f"{what} must be from 0 to 1, got {amount!r}")
    return value


@torch.no_grad()
def text_embedding(pipe: Any, text: str) -> torch.Tensor:
    """The projected, EOT-pooled CLIP text embedding of ``text``, ``[1, E]``, in the image embeddings' space.

    1. tokenize as the pipeline does (77 tokens, padded, truncated);
    2. the model's text tower (``loading/text_tower.py``): unCLIP-H, the text encoder + its last block, ``ln_final``
       and ``text_projection``; unCLIP-L, OpenAI CLIP's own text tower from the image embedder.
    """
    tower = getattr(pipe, "reimagine_text_tower", None)
    if tower is None:
        name = getattr(getattr(pipe, "reimagine_info", None), "name", None) or "this model"
        raise ParamError(UNAVAILABLE.format(model=name))
    tokens = pipe.tokenizer(
        [text],
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return tower.embed(pipe, tokens.input_ids)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``x`` divided by its L2 norm along the last dimension."""
    return x / x.norm(dim=-1, keepdim=True)


def text_diff(z_image: torch.Tensor, z_from: torch.Tensor, z_to: torch.Tensor, theta: float) -> torch.Tensor:
    """``slerp(normalize(z_image), normalize(z_to − z_from), θ)`` at the norm of ``z_image``; θ = 0 returns
    ``z_image`` itself (the plain variation, bit for bit)."""
    theta = check_amount(theta)
    if theta == 0.0:
        return z_image
    direction = normalize(z_to.to(z_image.dtype) - z_from.to(z_image.dtype))
    edited = slerp(normalize(z_image), direction.expand_as(z_image), theta)  # both unit: slerp keeps length 1
    return normalize(edited) * z_image.norm(dim=-1, keepdim=True)


@dataclass(frozen=True)
class TextDiff:
    """An :class:`engine.unclip.EmbeddingEdit`: the text diff from ``from_text`` (empty = the empty caption) to
    ``to_text`` by ``amount``."""

    to_text: str
    from_text: str = ""
    amount: float = DEFAULT_AMOUNT

    def validated(self) -> TextDiff:
        return TextDiff(
            to_text=check_text(self.to_text, "'To text'"),
            from_text=check_text(self.from_text, "'From text'", allow_empty=True),
            amount=check_amount(self.amount),
        )

    def apply(self, pipe: Any, embed: torch.Tensor) -> torch.Tensor:
        if self.amount == 0.0:
            return embed
        z_to = text_embedding(pipe, self.to_text).to(embed.device)
        z_from = text_embedding(pipe, self.from_text).to(embed.device)
        return text_diff(embed, z_from, z_to, self.amount)

    def infotext(self) -> dict[str, Any]:
        key = {param.name: param.infotext for param in TEXT_DIFF}
        return {
            key["text_diff_from"]: self.from_text or None,
            key["text_diff_to"]: self.to_text,
            key["text_diff_amount"]: f"{self.amount:g}",
        }

    @classmethod
    def from_controls(
        cls, values: Mapping[str, Any], *, blank_is_off: bool = True, names: Mapping[str, str] | None = None
    ) -> TextDiff | None:
        """The one way an edit is made from :data:`params.TEXT_DIFF` control values (the tab, a pasted infotext, the
        REST API, the CLI), checked: ``None`` (the edit is off) when "To text" is missing, or blank with
        ``blank_is_off``. ``names`` spells the fields in messages as the caller's user knows them (default: the
        table's labels); other names in ``values`` (``text_diff_frames``) are ignored."""
        names = {**{p.name: f"'{p.label}'" for p in TEXT_DIFF}, **(names or {})}
        to_text = values.get("text_diff_to")
        if to_text is None or (blank_is_off and isinstance(to_text, str) and not to_text.strip()):
            return None
        amount = values.get("text_diff_amount")
        diff = cls(
            to_text=check_text(to_text, names["text_diff_to"]),
            from_text=check_text(values.get("text_diff_from") or "", names["text_diff_from"], allow_empty=True),
            amount=check_amount(DEFAULT_AMOUNT if amount is None else amount, names["text_diff_amount"]),
        )
        for text in (diff.to_text, diff.from_text):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ParamError("the texts of an edit by text must be valid Unicode text (a lone surrogate)") from None
        return diff


@dataclass(frozen=True)
class TextIngredient:
    """ "Text as an ingredient": the caption's embedding, rescaled to the mix's norm, as one more weighted entry of the
    mix (whose images' weights sum to 1 after their normalised average): ``(z_mix + w·ẑ_text·|z_mix|) / (1 + w)``."""

    text: str
    weight: float = 1.0

    def apply(self, pipe: Any, embed: torch.Tensor) -> torch.Tensor:
        weight = float(self.weight)
        if not math.isfinite(weight) or weight < 0:
            raise ParamError(f"text ingredient weight must be a non-negative number, got {self.weight!r}")
        z_text = normalize(text_embedding(pipe, check_text(self.text, "text ingredient")).to(embed.device, embed.dtype))
        return (embed + weight * z_text * embed.norm(dim=-1, keepdim=True)) / (1.0 + weight)

    def infotext(self) -> dict[str, Any]:
        return {"Text ingredient": self.text, "Text ingredient weight": f"{self.weight:g}"}


def strip_amounts(frames: int, amount_max: float) -> list[float]:
    """θ of each frame: ``0 … amount_max`` in ``frames`` equal steps."""
    if not isinstance(frames, int) or frames < 2:
        raise ParamError(f"a text diff strip needs at least 2 frames, got {frames!r}")
    amount_max = check_amount(amount_max, "text diff maximum amount")
    return [amount_max * k / (frames - 1) for k in range(frames)]


def text_diff_strip(
    pipe: Any,
    request: VariationRequest,
    diff: TextDiff,
    frames: int,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> Result:
    """Frames with θ from 0 to ``diff.amount``; one seed for all, so the start noise and the augmentation noise (both
    drawn from the seed) are the same in every frame and only the embedding moves."""
    diff = diff.validated()
    amounts = strip_amounts(frames, diff.amount)
    seed = seed_list(request.seed, 1)[0]
    base = replace(request, n_iter=1, batch_size=1, seed=seed)
    result = Result()
    for k, theta in enumerate(amounts):

        def frame_progress(step: int, total: int, _k: int = k) -> None:
            if progress is not None:
                progress(_k * total + step, len(amounts) * total)

        frame = generate(
            pipe, replace(base, edit=replace(diff, amount=theta)), progress=frame_progress, should_stop=should_stop
        )
        if frame.interrupted or not frame.images:
            result.interrupted = True
            break
        result.images.extend(frame.images)
        result.seeds.extend(frame.seeds)
        result.infotexts.extend(frame.infotexts)
    return result
