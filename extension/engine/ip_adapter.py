"""Image variations on the user's own SD 1.5 / SDXL checkpoint with an IP-Adapter (h94/IP-Adapter).

The adapter sits in diffusers' pipeline (``loading/ip_adapter.py``: ``load_ip_adapter`` from the state dict); this
module only decides WHICH image embedding the pipeline is handed (``ip_adapter_image_embeds``), so the whole unCLIP
toolbox — weighted mix, slerp, text diffs, per-image seeds — drives it unchanged. :class:`IPAdapterVariation`, step by
step:

1. each input image is fitted to the encoder's square and encoded once: the projected embedding ``[1, D]`` (plain
   adapters) or the penultimate hidden states ``[1, T, H]`` (``plus`` adapters), as diffusers' ``encode_image``;
2. the features are mixed (normalised weighted average, or slerp of two) and, for plain adapters, edited by a text
   diff; text diffs on ``plus`` adapters are refused (hidden states are not in CLIP's joint space);
3. **Variation strength** ``v``: per output, noise from its seed is added to the features,
   ``f + v · |f| / √D · n`` (per token for hidden states) — our analogue of unCLIP's noise level;
4. classifier-free guidance's unconditional features: zeros (plain) or the encoder's hidden states of an all-zero
   image (plus), as diffusers' ``encode_image``;
5. **Image strength** is the adapter scale (``set_ip_adapter_scale``), 0 = the prompt alone;
6. the prompt (WebUI syntax: emphasis, chunks, BREAK: ``engine/text_encoding.py``) and the features go to diffusers'
   own ``__call__``: txt2img from pure noise, or with **Keep composition** ``k`` > 0 the img2img pipeline built from
   the same components, starting from the first input's latents at denoising strength ``1 − k`` (as the unCLIP
   engine: ``(1 − k)`` × the steps are sampled; ``k`` = 1 returns the input itself through the VAE);
7. the latents are decoded, NaN-guarded (``engine/vae.py``); an SDXL base's batch also hands its latents on
   (:class:`IPAdapterResult`), so that "Refine with SDXL" can refine them in latent mode, as the txt2img post-pass does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image, ImageOps

from ..errors import ParamError
from ..params import BACKEND_LABELS, FRAMES, IP_ADAPTER
from . import PreviewFn, ProgressFn, Result, StopFn, format_number, seed_list
from .samplers import make_scheduler, seed_noise
from .text_encoding import encode_prompts, encode_weighted, pad_to_same_length
from .unclip import (
    InterpolationRequest,
    VariationRequest,
    build_infotext,
    fit_for_clip,
    mix_embeddings,
    output_size,
)
from .vae import decode_images, encode_mean

PLUS_TEXT_DIFF = (
    "Edit by text needs a plain IP-Adapter (ip-adapter_sd15, ip-adapter_sdxl_vit-h): {adapter} is a 'plus' adapter, "
    "which takes the encoder's hidden states, where text diffs do not apply"
)
NO_TEXT_TOWER = (
    "Edit by text with IP-Adapter needs the OpenCLIP ViT-H text tower, which only sd21-unclip-h carries: keep "
    "sd21-unclip-h (.ckpt/.safetensors) in models/Stable-diffusion and no encoder in models/clip_vision, so that its "
    "embedder is the image encoder"
)
_VARIATION_SEED_OFFSET = 0x1DA  # the variation noise is not the latent noise stream of the same seed


@dataclass
class IPAdapterResult(Result):
    """A batch's :class:`Result` plus, for an SDXL base, its latents before decoding (the UNet's space, on the CPU,
    one row per image) tagged ``latent_family="sdxl"`` (what ``engine/refiner.py`` ``RefineRequest`` takes)."""

    latents: torch.Tensor | None = field(default=None, repr=False)
    latent_family: str = ""


def latent_family(pipe: Any) -> str:
    """``"sdxl"`` for an SDXL base (the refiner's latent space), ``"sd1"`` otherwise."""
    return "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd1"


@dataclass
class IPAdapterOptions:
    """The IP-Adapter backend's own controls."""

    image_strength: float = IP_ADAPTER["image_strength"].default  # the adapter scale: 0 = the prompt alone
    variation_strength: float = IP_ADAPTER["variation_strength"].default  # noise on the image features

    def validated(self) -> IPAdapterOptions:
        """The same options checked against :data:`params.IP_ADAPTER` (:class:`ParamError` otherwise)."""
        return IPAdapterOptions(
            IP_ADAPTER["image_strength"].coerce(self.image_strength),
            IP_ADAPTER["variation_strength"].coerce(self.variation_strength),
        )


# ---------------------------------------------------------------------------------------------------------------------
# Steps of the mechanism


def uses_hidden_states(pipe: Any) -> bool:
    """Whether the loaded adapter takes hidden states (plus) rather than the projected embedding (plain)."""
    return bool(getattr(getattr(pipe, "reimagine_adapter", None), "uses_hidden_states", False))


def _pixels(pipe: Any, image: Image.Image, fit: str) -> torch.Tensor:
    size = pipe.feature_extractor.crop_size["height"]
    fitted = fit_for_clip(image, size, fit)
    pixels = pipe.feature_extractor(images=fitted, do_resize=False, do_center_crop=False, return_tensors="pt")
    return pixels.pixel_values.to(device=pipe._execution_device, dtype=pipe.image_encoder.dtype)


@torch.no_grad()
def image_features(pipe: Any, image: Image.Image, fit: str) -> torch.Tensor:
    """Step 1: ``[1, D]`` image embedding (plain) or ``[1, T, H]`` penultimate hidden states (plus)."""
    pixels = _pixels(pipe, image, fit)
    if uses_hidden_states(pipe):
        return pipe.image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
    return pipe.image_encoder(pixels).image_embeds


@torch.no_grad()
def unconditional_features(pipe: Any, like: torch.Tensor) -> torch.Tensor:
    """Step 4: zeros (plain), or the hidden states of an all-zero pixel input (plus), as diffusers does."""
    if not uses_hidden_states(pipe):
        return torch.zeros_like(like)
    size = pipe.feature_extractor.crop_size["height"]
    zeros = torch.zeros((1, 3, size, size), device=like.device, dtype=pipe.image_encoder.dtype)
    return pipe.image_encoder(zeros, output_hidden_states=True).hidden_states[-2].to(like.dtype)


def variation_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise ``[len(seeds), *shape]``, reproducible from each output's seed."""
    rows = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s + _VARIATION_SEED_OFFSET)) for s in seeds]
    return torch.stack(rows)


def vary_features(features: torch.Tensor, strength: float, seeds: Sequence[int]) -> torch.Tensor:
    """Step 3: one row per seed, ``f + strength · |f| / √D · n`` (``features`` ``[1, ...]``, norm over the last axis)."""
    rows = features.expand(len(seeds), *features.shape[1:])
    if strength == 0:
        return rows.clone()
    noise = variation_noise(seeds, tuple(features.shape[1:])).to(features.device, features.dtype)
    scale = features.norm(dim=-1, keepdim=True) / math.sqrt(features.shape[-1])
    return rows + strength * scale * noise


def adapter_embeds(cond: torch.Tensor, uncond: torch.Tensor, guided: bool) -> list[torch.Tensor]:
    """What ``ip_adapter_image_embeds`` takes for one adapter: ``[B(+B), 1, ...]``, unconditional rows first."""
    rows = cond[:, None]
    if guided:
        rows = torch.cat([uncond.expand_as(cond)[:, None], rows])
    return [rows]


@torch.no_grad()
def prompt_kwargs(pipe: Any, prompt: str, negative_prompt: str, batch: int, guided: bool) -> dict[str, Any]:
    """Step 6's text conditioning as ``__call__`` keyword arguments, in the WebUI syntax. SD 1.x: CLIP-L's last
    hidden states (the WebUI's default CLIP skip 1, as diffusers' ``encode_prompt``); SDXL: both encoders'
    penultimate states and the pooled embedding (``text_encoding.encode_prompts``)."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return dict(encode_prompts(pipe, prompt, negative_prompt, guided).repeat(batch))
    device = pipe._execution_device

    def encode(text: str) -> torch.Tensor:
        return encode_weighted(pipe.tokenizer, lambda ids: (pipe.text_encoder(ids)[0], None), text, device)[0]

    cond, negative = encode(prompt), None
    if guided:
        negative = encode(negative_prompt)
        if negative.shape[1] != cond.shape[1]:
            cond, negative = pad_to_same_length(cond, negative, encode(""))
    dtype = pipe.text_encoder.dtype
    return {
        "prompt_embeds": cond.to(dtype).repeat(batch, 1, 1),
        "negative_prompt_embeds": None if negative is None else negative.to(dtype).repeat(batch, 1, 1),
    }


def fresh_scheduler(pipe: Any, sampler: str, schedule: str) -> Any:
    """A new scheduler for ``sampler``/``schedule`` on the model's config: a copy of one built once per pipeline
    (``make_scheduler``'s ``from_config`` costs more than a whole tiny-model step; a copy is independent state)."""
    import copy

    templates = pipe.__dict__.setdefault("_reimagine_schedulers", {})
    key = (sampler, schedule)
    if key not in templates:
        templates[key] = make_scheduler(dict(pipe.scheduler.config), sampler, schedule)
    return copy.deepcopy(templates[key])


def img2img_pipeline(pipe: Any) -> Any:
    """The img2img pipeline on the same components (made once, kept as ``pipe.reimagine_img2img``)."""
    cached = getattr(pipe, "reimagine_img2img", None)
    if cached is None:
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

        xl = getattr(pipe, "text_encoder_2", None) is not None
        cls = StableDiffusionXLImg2ImgPipeline if xl else StableDiffusionImg2ImgPipeline
        extra = {} if xl else {"requires_safety_checker": False}
        cached = cls(**pipe.components, **extra)
        cached.reimagine_info = getattr(pipe, "reimagine_info", None)
        pipe.reimagine_img2img = cached
    return cached


def composition_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The first input, centre-cropped to the output's aspect ratio and resized to it (what img2img starts from)."""
    return ImageOps.fit(image.convert("RGB"), size, Image.BICUBIC)


class _Steps:
    """``callback_on_step_end``: progress / preview per step, and a stop between steps (``pipe._interrupt``)."""

    def __init__(self, progress: ProgressFn | None, should_stop: StopFn | None, preview: PreviewFn | None) -> None:
        self.progress, self.should_stop, self.preview = progress, should_stop, preview
        self.stopped = False

    def __call__(self, pipe: Any, index: int, _timestep: Any, tensors: dict) -> dict:
        total = max(int(pipe.num_timesteps), 1)
        if self.progress is not None:
            self.progress(index + 1, total)
        if self.preview is not None and tensors.get("latents") is not None:
            self.preview(index + 1, tensors["latents"])
        if index + 1 < total and self.should_stop is not None and self.should_stop():
            pipe._interrupt = True
            self.stopped = True
        return {}


@contextmanager
def _sampling_with(pipe: Any, scheduler: Any, scale: float, embeds: list[torch.Tensor]):
    """For one call: ``scheduler``, the adapter ``scale``, no tqdm bar, and ``embeds`` handed to the UNet row for row.
    (diffusers' ``prepare_ip_adapter_image_embeds`` repeats what it is given for every prompt row — one embedding
    per call, in 0.31 to 0.42 alike; ours has one row per output, each with its own variation noise.)"""
    saved_scheduler, saved_bar = pipe.scheduler, dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.scheduler = scheduler
    pipe.set_progress_bar_config(disable=True)
    pipe.set_ip_adapter_scale(scale)

    def rows_as_given(_image: Any, _embeds: Any, device: torch.device, *_args: Any) -> list[torch.Tensor]:
        return [rows.to(device) for rows in embeds]

    pipe.prepare_ip_adapter_image_embeds = rows_as_given  # this instance only, for this call
    try:
        yield
    finally:
        del pipe.prepare_ip_adapter_image_embeds
        pipe.scheduler = saved_scheduler
        pipe._progress_bar_config = saved_bar


# ---------------------------------------------------------------------------------------------------------------------
# The job


class IPAdapterVariation:
    """``IPAdapterVariation(pipe)(request, options)`` -> :class:`Result`: ``n_iter × batch_size`` variations."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def check(self, request: VariationRequest) -> None:
        """Refuse what this adapter cannot do (a text diff on a plus adapter)."""
        if request.edit is not None and uses_hidden_states(self.pipe):
            raise ParamError(PLUS_TEXT_DIFF.format(adapter=self.pipe.reimagine_adapter.name))

    def text_source(self) -> Any:
        """What a text diff reads its CLIP text tower from: the unCLIP-H checkpoint the encoder came from
        (``loading/unclip_text.py``), else a :class:`ParamError` saying how to get one."""
        source = getattr(self.pipe, "reimagine_text_source", None)
        if source is None:
            raise ParamError(NO_TEXT_TOWER)
        return source

    def features(self, request: VariationRequest) -> torch.Tensor:
        """Steps 1-2: the mixed (and edited) image features ``[1, ...]``."""
        pipe = self.pipe
        with torch.no_grad():
            encoded = [image_features(pipe, image, request.fit) for image in request.images]
            mixed = mix_embeddings(encoded, request.weights, request.mix)
            if request.edit is not None:
                mixed = request.edit.apply(self.text_source(), mixed)
        return mixed

    def iter_batches(
        self,
        request: VariationRequest,
        options: IPAdapterOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        preview: PreviewFn | None = None,
    ) -> Iterator[Result]:
        """One :class:`Result` per batch, as ``engine/unclip.py`` ``iter_batches`` (``progress``/``preview`` count the
        current batch's steps; a stopped batch yields ``interrupted=True`` and the caller decides whether to go on)."""
        pipe = self.pipe
        request = request.validated()
        options = (options or IPAdapterOptions()).validated()
        self.check(request)
        width, height = output_size(request, pipe)
        guided = request.cfg_scale > 1.0
        all_seeds = seed_list(request.seed, request.n_iter * request.batch_size)

        # 1-2: encode once, mix, edit
        features = self.features(request)
        uncond = unconditional_features(pipe, features)
        # 6: txt2img, or img2img on the same components
        keep = request.keep_composition
        runner = img2img_pipeline(pipe) if keep > 0 else pipe
        call: dict[str, Any] = {"num_inference_steps": request.steps, "guidance_scale": request.cfg_scale}
        if keep > 0:
            call.update(image=composition_image(request.images[0], (width, height)), strength=round(1.0 - keep, 9))
        else:
            call.update(width=width, height=height)
        extra = infotext_items(pipe, options)
        planned = planned_steps(request.steps, keep)

        for batch in range(request.n_iter):
            seeds = all_seeds[batch * request.batch_size : (batch + 1) * request.batch_size]
            # 3-4: per-seed variation noise; the unconditional rows first
            embeds = adapter_embeds(vary_features(features, options.variation_strength, seeds), uncond, guided)
            scheduler = fresh_scheduler(pipe, request.sampler_name, request.scheduler)
            seed_noise(scheduler, seeds)
            steps = _Steps(progress, should_stop, preview)
            # 5-6: adapter scale, diffusers' own loop
            if planned == 0:  # Keep composition 1: nothing to sample, the input itself
                start = encode_mean(pipe, call["image"], width, height)
                latents = start.expand(len(seeds), *start.shape[1:])
            else:
                latents = self._sample(runner, request, call, scheduler, options, embeds, seeds, steps, guided)
            if steps.stopped:
                yield Result(interrupted=True)
                continue
            # 7: decode
            images = decode_images(pipe, latents)
            infotexts = [build_infotext(request, pipe, s, (width, height), extra) for s in seeds]
            family = latent_family(pipe)
            kept = latents.detach().to("cpu").contiguous() if family == "sdxl" else None
            yield IPAdapterResult(images, infotexts, list(seeds), steps=planned, latents=kept, latent_family=family)

    def _sample(self, runner, request, call, scheduler, options, embeds, seeds, steps, guided) -> torch.Tensor:  # noqa: ANN001
        """Steps 5-6: one diffusers call with the adapter scale and these rows of image features."""
        pipe = self.pipe
        with _sampling_with(runner, scheduler, options.image_strength, embeds), torch.no_grad():
            return runner(
                **call,
                **prompt_kwargs(pipe, request.prompt, request.negative_prompt, len(seeds), guided),
                ip_adapter_image_embeds=embeds,
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                output_type="latent",
                callback_on_step_end=steps,
            ).images

    def __call__(
        self,
        request: VariationRequest,
        options: IPAdapterOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        preview: PreviewFn | None = None,
    ) -> Result:
        """All ``n_iter × batch_size`` variations; a stop returns the finished batches (``interrupted=True``)."""
        request = request.validated()
        per_batch = planned_steps(request.steps, request.keep_composition)
        total = request.n_iter * per_batch
        result = Result()

        def overall(step: int, _steps: int) -> None:
            if progress is not None:
                progress(result.steps + step, total)

        def overall_preview(step: int, latents: Any) -> None:
            if preview is not None:
                preview(result.steps + step, latents)

        for batch in self.iter_batches(
            request, options, progress=overall, should_stop=should_stop, preview=overall_preview
        ):
            if batch.interrupted:
                result.interrupted = True
                break
            result.images.extend(batch.images)
            result.infotexts.extend(batch.infotexts)
            result.seeds.extend(batch.seeds)
            result.steps += batch.steps
        return result


def ip_adapter_batches(options: IPAdapterOptions) -> Callable[..., Iterator[Result]]:
    """An ``iter_batches(pipe, request, *, progress, should_stop, preview)`` with the unCLIP engine's signature, for
    callers that take the engine as a function (``cli/vary.py`` ``make_outputs``, ``runtime/jobs.py``)."""

    def batches(pipe: Any, request: VariationRequest, **callbacks: Any) -> Iterator[Result]:
        return IPAdapterVariation(pipe).iter_batches(request, options, **callbacks)

    return batches


def planned_steps(steps: int, keep_composition: float) -> int:
    """Sampling steps one batch runs: all of them, or img2img's ``int(steps · (1 − k))`` (diffusers'
    ``get_timesteps``)."""
    if keep_composition <= 0:
        return steps
    return min(int(steps * round(1.0 - keep_composition, 9)), steps)


def infotext_items(pipe: Any, options: IPAdapterOptions) -> dict[str, Any]:
    """The backend's infotext pairs (unCLIP's noise level does not apply here)."""
    adapter = getattr(pipe, "reimagine_adapter", None)
    return {
        "Noise level": None,
        "Backend": BACKEND_LABELS["ip-adapter"],
        "IP-Adapter": getattr(adapter, "name", None),
        "Image strength": format_number(options.image_strength),
        "Variation strength": format_number(options.variation_strength) if options.variation_strength else None,
    }


def interpolate(
    pipe: Any,
    request: InterpolationRequest,
    options: IPAdapterOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    preview: PreviewFn | None = None,
) -> Result:
    """A slerp strip from image A to image B: frame k is the variation of ``slerp(f_A, f_B, k / (frames − 1))`` with
    the same seed (same start noise and variation noise), so only the image features move."""
    frames = FRAMES.coerce(request.frames)
    settings = replace(
        request.variation or VariationRequest(images=[]),
        images=[request.image_a, request.image_b],
        mix="slerp",
        n_iter=1,
        batch_size=1,
    )
    settings = replace(settings, seed=seed_list(settings.seed, 1)[0])
    variation = IPAdapterVariation(pipe)
    checked = settings.validated()
    per_frame = planned_steps(checked.steps, checked.keep_composition)
    result = Result()
    for frame in range(frames):
        t = frame / (frames - 1)

        def frame_progress(step: int, _total: int, _frame: int = frame) -> None:
            if progress is not None:
                progress(_frame * per_frame + step, frames * per_frame)

        def frame_preview(step: int, latents: Any, _frame: int = frame) -> None:
            if preview is not None:
                preview(_frame * per_frame + step, latents)

        frame_request = replace(settings, weights=[1.0 - t, t])
        done = variation(
            frame_request,
            options,
            progress=frame_progress,
            should_stop=should_stop,
            preview=frame_preview,
        )
        if done.interrupted:
            result.interrupted = True
            break
        result.images.extend(done.images)
        result.seeds.extend(done.seeds)
        position = {"Mix weights": None, "Mix mode": None, "Interpolation": f"{frame + 1}/{frames}"}
        position["Interpolation t"] = f"{t:.3f}"
        extra = {**infotext_items(pipe, options or IPAdapterOptions()), **position}
        size = output_size(frame_request.validated(), pipe)
        result.infotexts.extend(build_infotext(frame_request.validated(), pipe, s, size, extra) for s in done.seeds)
    return result
