"""Image variations with Stable unCLIP 2.1 (sd21-unclip-h / sd21-unclip-l).

The mechanism, step by step (:func:`generate`):

1. each input image is fitted to the CLIP encoder's square and encoded once → one image embedding per input;
2. the embeddings are mixed (normalised weighted average, or slerp for two images);
3. the mix is noise-augmented at ``noise_level`` (normalise, add noise on the ``squaredcos_cap_v2`` schedule,
   un-normalise), with augmentation noise drawn from each output's seed;
4. the sinusoidal embedding of ``noise_level`` is appended → the UNet's ``class_labels``, added to its timestep
   embedding at every step; classifier-free guidance's unconditional branch gets the all-zero vector;
5. sampling starts from pure noise (not from the input's latents: the output keeps content and style, not outline);
   with ``keep_composition`` s > 0 it starts, as img2img does at denoising strength 1 − s, from the first input's
   VAE latents noised to the start timestep (``scheduler.add_noise``) and runs only the steps after it;
   the prompt, if any, keeps its usual cross-attention role, written in the WebUI's syntax (emphasis, 75-token
   chunks, BREAK: ``engine/text_encoding.py``).

diffusers' ``StableUnCLIPImg2ImgPipeline.__call__`` does 3–5 too, but offers no per-image seeds, no stop between
steps, no embedding mix, no fixed-noise interpolation and no WebUI prompt syntax; this module re-uses its components
and writes the loop and the prompt encoding.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from PIL import Image, ImageOps

from .. import infotext
from ..errors import ParamError
from ..params import FRAMES, REIMAGINE, WEBUI_KEYS
from ..prompts import check_prompt
from . import PreviewFn, ProgressFn, Result, StopFn, format_number, model_identity, seed_list, version
from .samplers import make_scheduler, resolved_schedule, seed_noise
from .text_encoding import encode_weighted, pad_to_same_length
from .vae import decode_images, encode_mean

MIN_SIDE = 64  # pixels: the smallest output width/height (README: 64-2048, multiples of 8)


class EmbeddingEdit(Protocol):
    """A change of the (mixed) image embedding before noise augmentation, e.g. a text diff
    (``extension/engine/text_diff.py``), with the infotext entries that record it."""

    def apply(self, pipe: Any, embed: torch.Tensor) -> torch.Tensor: ...

    def infotext(self) -> dict[str, Any]: ...


@dataclass
class VariationRequest:
    """Everything one variation job needs. Field names are the API names of :data:`params.REIMAGINE`."""

    images: list[Image.Image]
    weights: list[float] | None = None
    prompt: str = ""
    negative_prompt: str = ""
    noise_level: int = REIMAGINE["noise_level"].default
    keep_composition: float = REIMAGINE["keep_composition"].default
    steps: int = REIMAGINE["steps"].default
    cfg_scale: float = REIMAGINE["cfg_scale"].default
    sampler_name: str = REIMAGINE["sampler_name"].default
    scheduler: str = REIMAGINE["scheduler"].default
    width: int = 0
    height: int = 0
    fit: str = REIMAGINE["fit"].default
    mix: str = REIMAGINE["mix"].default
    n_iter: int = 1
    batch_size: int = 1
    seed: int = -1
    edit: EmbeddingEdit | None = None  # applied to the mix, before noise augmentation

    @classmethod
    def from_controls(
        cls,
        values: Mapping[str, Any],
        images: Sequence[Image.Image] = (),
        weights: Sequence[float] | None = None,
        edit: EmbeddingEdit | None = None,
    ) -> VariationRequest:
        """The one way a request is made from Reimagine controls (the tab, the REST API and the CLI all call this).

        ``values``: control values by the names of :data:`params.REIMAGINE` (missing ones take the default, other
        names are ignored), checked against the table; with ``images`` the whole request is checked
        (:meth:`validated`), without them (settings to be given images later) only the values."""
        settings = REIMAGINE.validate({name: value for name, value in values.items() if name in REIMAGINE.params})
        request = cls(images=list(images), weights=None if weights is None else list(weights), edit=edit, **settings)
        return request.validated() if images else request

    def validated(self) -> VariationRequest:
        """A copy with every value checked against the parameter table (raises :class:`ParamError`)."""
        values = REIMAGINE.validate({name: getattr(self, name) for name in REIMAGINE.params})
        check_prompt(values["prompt"])
        check_prompt(values["negative_prompt"], "the negative prompt")
        if not self.images:
            raise ParamError("at least one input image is required")
        weights = list(self.weights) if self.weights is not None else [1.0] * len(self.images)
        if len(weights) != len(self.images):
            raise ParamError(f"got {len(weights)} weight(s) for {len(self.images)} image(s); give one weight per image")
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ParamError(f"weights must be non-negative numbers with a positive sum, got {weights}")
        if values["mix"] == "slerp" and len(self.images) != 2:
            raise ParamError(f"mix mode slerp needs exactly 2 images, got {len(self.images)}")
        if (values["width"] == 0) != (values["height"] == 0):
            raise ParamError("give both width and height, or neither (0 = keep the input's aspect ratio)")
        for side in ("width", "height"):
            if values[side] and (values[side] % 8 or values[side] < MIN_SIDE):
                raise ParamError(
                    f"{side} must be 0 (auto) or a multiple of 8 from {MIN_SIDE} to 2048, got {values[side]}"
                )
        return replace(self, weights=weights, **values)


# ---------------------------------------------------------------------------------------------------------------------
# Steps of the mechanism, each small and testable


def native_size(pipe: Any) -> int:
    """The side of the square the model was trained at (768 for unCLIP 2.1)."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def output_size(request: VariationRequest, pipe: Any) -> tuple[int, int]:
    """Explicit width/height, or the first input's aspect ratio at the model's native area, in multiples of 64."""
    if request.width and request.height:
        return request.width, request.height
    side = native_size(pipe)
    aspect = request.images[0].width / request.images[0].height
    width = max(64, round(side * math.sqrt(aspect) / 64) * 64)
    height = max(64, round(side / math.sqrt(aspect) / 64) * 64)
    return width, height


def fit_for_clip(image: Image.Image, size: int, fit: str) -> Image.Image:
    """Fit ``image`` into the encoder's ``size``² square: ``squash`` (as trained), ``crop`` (center) or ``pad``."""
    image = image.convert("RGB")
    if fit == "crop":
        return ImageOps.fit(image, (size, size), Image.BICUBIC)
    if fit == "pad":
        padded = ImageOps.pad(image, (size, size), Image.BICUBIC, color=_mean_color(image))
        return padded
    return image.resize((size, size), Image.BICUBIC)


def _mean_color(image: Image.Image) -> tuple[int, int, int]:
    r, g, b = image.resize((1, 1), Image.BOX).getpixel((0, 0))
    return (r, g, b)


@torch.no_grad()
def encode_image(pipe: Any, image: Image.Image, fit: str) -> torch.Tensor:
    """The CLIP image embedding of one input image, shape ``[1, D]``."""
    size = pipe.feature_extractor.crop_size["height"]
    fitted = fit_for_clip(image, size, fit)
    pixels = pipe.feature_extractor(images=fitted, do_resize=False, do_center_crop=False, return_tensors="pt")
    pixel_values = pixels.pixel_values.to(device=pipe._execution_device, dtype=pipe.image_encoder.dtype)
    return pipe.image_encoder(pixel_values).image_embeds


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of directions, linear interpolation of lengths."""
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    unit_a, unit_b = a / norm_a, b / norm_b
    cos = (unit_a * unit_b).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    if float(angle.abs().max()) < 1e-4:
        direction = (1 - t) * unit_a + t * unit_b
    else:
        direction = (torch.sin((1 - t) * angle) * unit_a + torch.sin(t * angle) * unit_b) / torch.sin(angle)
    return direction * ((1 - t) * norm_a + t * norm_b)


def mix_embeddings(embeds: Sequence[torch.Tensor], weights: Sequence[float], mode: str) -> torch.Tensor:
    """Combine per-image embeddings: normalised weighted average, or slerp between two by their weights."""
    total = float(sum(weights))
    if mode == "slerp":
        return slerp(embeds[0], embeds[1], weights[1] / total)
    return sum(w / total * e for w, e in zip(weights, embeds))


def augment_embedding(pipe: Any, embed: torch.Tensor, noise_level: int, noise: torch.Tensor) -> torch.Tensor:
    """Noise-augment ``embed`` ([B, D]) at ``noise_level`` and append the level's embedding → ``class_labels``."""
    from diffusers.models.embeddings import get_timestep_embedding

    levels = torch.full((embed.shape[0],), noise_level, device=embed.device, dtype=torch.long)
    normalizer = pipe.image_normalizer.to(embed.device)
    noised = normalizer.scale(embed)
    noised = pipe.image_noising_scheduler.add_noise(noised, timesteps=levels, noise=noise)
    noised = normalizer.unscale(noised)
    level_embedding = get_timestep_embedding(levels, embed.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0)
    return torch.cat([noised, level_embedding.to(noised.dtype)], dim=1)


def _noise(seeds: Sequence[int], shape: tuple[int, ...], offset: int = 0) -> torch.Tensor:
    """Reproducible CPU noise, one row per seed (independent of device and batch size)."""
    rows = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s + offset)) for s in seeds]
    return torch.stack(rows)


# The augmentation noise uses a seed offset so it is not the same stream as the initial latent noise.
_AUGMENT_SEED_OFFSET = 0x5EED


def augmentation_noise(seeds: Sequence[int], dim: int) -> torch.Tensor:
    """The embedding-augmentation noise of each output, ``[len(seeds), dim]``, reproducible from its seed."""
    return _noise(seeds, (dim,), _AUGMENT_SEED_OFFSET)


@torch.no_grad()
def encode_text(pipe: Any, prompt: str, negative_prompt: str, batch: int, guided: bool) -> torch.Tensor:
    """Prompt embeddings ``[2B or B, 77·k, C]`` (unconditional first when guided), in the WebUI's prompt syntax:
    emphasis, 75-token chunks, BREAK (``engine/text_encoding.py``)."""
    device = pipe._execution_device

    def encode_chunk(ids: torch.Tensor) -> tuple[torch.Tensor, None]:
        return pipe.text_encoder(ids)[0], None  # SD 2.x: the penultimate-layer cut, as diffusers' encode_prompt

    def encode(text: str) -> torch.Tensor:
        return encode_weighted(pipe.tokenizer, encode_chunk, text, device)[0]

    cond = encode(prompt)
    rows = [cond]
    if guided:
        uncond = encode(negative_prompt)
        if uncond.shape[1] != cond.shape[1]:
            cond, uncond = pad_to_same_length(cond, uncond, encode(""))
        rows = [uncond, cond]
    dtype = pipe.text_encoder.dtype
    return torch.cat([row.to(dtype).repeat(batch, 1, 1) for row in rows])


@torch.no_grad()
def denoise(
    pipe: Any,
    scheduler: Any,
    latents: torch.Tensor,
    text_embeds: torch.Tensor,
    class_labels: torch.Tensor,
    cfg_scale: float,
    steps: int,
    generators: list[torch.Generator],
    progress: ProgressFn | None,
    should_stop: StopFn | None,
    preview: PreviewFn | None = None,
    image_latents: torch.Tensor | None = None,
    start: int = 0,
) -> torch.Tensor | None:
    """Run the sampler from the noise ``latents``; returns ``None`` if stopped before the last step.
    ``preview(step, latents)`` gets the step's :func:`denoised_estimate`. With ``image_latents`` (keep composition)
    the run starts at step ``start``: the image latents noised with ``latents`` to that step's timestep
    (``scheduler.add_noise``), as diffusers' img2img pipelines do."""
    guided = cfg_scale > 1.0
    scheduler.set_timesteps(steps, device=latents.device)
    timesteps = scheduler.timesteps
    if image_latents is None:
        latents = latents * scheduler.init_noise_sigma
    else:
        timesteps = timesteps[start * scheduler.order :]
        if len(timesteps) == 0:
            return image_latents.expand_as(latents).clone()  # keep composition 1: nothing left to denoise
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start * scheduler.order)
        begin = timesteps[:1].repeat(latents.shape[0])
        latents = scheduler.add_noise(image_latents.expand_as(latents).to(latents.dtype), latents, begin)
    labels = torch.cat([torch.zeros_like(class_labels), class_labels]) if guided else class_labels
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    total = len(timesteps)
    for index, timestep in enumerate(timesteps):
        if should_stop is not None and should_stop():
            return None
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, timestep)
        prediction = pipe.unet(model_input, timestep, encoder_hidden_states=text_embeds, class_labels=labels).sample
        if guided:
            uncond, cond = prediction.chunk(2)
            prediction = uncond + cfg_scale * (cond - uncond)
        output = scheduler.step(prediction, timestep, latents, **step_kwargs)
        latents = output.prev_sample
        if progress is not None:
            progress(index + 1, total)
        if preview is not None:
            preview(index + 1, denoised_estimate(scheduler, output, latents))
    return latents


def denoised_estimate(scheduler: Any, output: Any, latents: torch.Tensor) -> torch.Tensor:
    """What the step predicts the clean latents to be (the WebUI previews that, not the noisy latents): the step
    output's ``pred_original_sample`` (Euler, DDIM, ...), DPM-Solver++'s last x0 model output, else ``latents``."""
    estimate = getattr(output, "pred_original_sample", None)
    if estimate is None and str(getattr(scheduler.config, "algorithm_type", "")).endswith("dpmsolver++"):
        outputs = getattr(scheduler, "model_outputs", None) or [None]
        estimate = outputs[-1]
    return latents if estimate is None else estimate


def decode(pipe: Any, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode latents to PIL images, NaN-guarded (``engine/vae.py``; the config's ``force_upcast`` is not
    followed, as diffusers' SD 2.x pipelines do not)."""
    return decode_images(pipe, latents, trust_config=False)


def infotext_items(request: VariationRequest) -> dict[str, Any]:
    """The table's infotext keys → values of ``request`` (:data:`params.REIMAGINE`), the WebUI's own keys first:
    numbers as the WebUI writes them, the schedule resolved, the mix mode only for a mix, controls that are off left
    out (``None``)."""
    values = {name: getattr(request, name) for name in REIMAGINE.params}
    values["scheduler"] = resolved_schedule(request.sampler_name, request.scheduler)
    if len(request.images) <= 1:
        values["mix"] = None
    items = REIMAGINE.infotext_items(values)
    items = {key: format_number(value) if isinstance(value, float) else value for key, value in items.items()}
    first = [REIMAGINE[name].infotext for name in WEBUI_KEYS]
    return {**{key: items.pop(key) for key in first}, **items}


def build_infotext(request: VariationRequest, pipe: Any, seed: int, size: tuple[int, int], extra=None) -> str:
    """The WebUI-format infotext of one output: the table's keys (:func:`infotext_items`), size, model, mix weights
    and the edit's keys."""
    model = model_identity(pipe)
    items = infotext_items(replace(request, seed=seed))
    webui = [REIMAGINE[name].infotext for name in WEBUI_KEYS]
    params: dict[str, Any] = {key: items.pop(key) for key in webui}
    params.update({"Size": f"{size[0]}x{size[1]}", "Model hash": model.hash or None, "Model": model.name or None})
    params.update(items)
    mixed = len(request.images) > 1
    params["Mix weights"] = ", ".join(format_number(w) for w in request.weights) if mixed else None
    params.update(request.edit.infotext() if request.edit is not None else {})
    params.update(extra or {})
    params["Reimagine"] = version()
    return infotext.build(request.prompt, request.negative_prompt, params)


# ---------------------------------------------------------------------------------------------------------------------
# The two jobs


def start_step(steps: int, keep_composition: float) -> int:
    """The first step a keep-composition run samples: diffusers' img2img rule (``StableDiffusionImg2ImgPipeline
    .get_timesteps``) at denoising strength 1 − ``keep_composition``."""
    strength = round(1.0 - keep_composition, 9)
    return steps - min(int(steps * strength), steps)


@dataclass
class Setup:
    """What both jobs prepare before their first image (:func:`prepare`)."""

    width: int
    height: int
    device: Any
    scheduler: Any
    text_embeds: torch.Tensor
    latent_shape: tuple[int, int, int]
    image_latents: torch.Tensor | None  # keep composition: the first input's VAE latents, else None
    start: int  # the first sampled step (0 without keep composition)
    steps: int  # the steps each image samples


@torch.no_grad()
def prepare(pipe: Any, request: VariationRequest, batch: int) -> Setup:
    """The shared preamble of :func:`iter_batches` and :func:`interpolate` for a validated ``request``: output size,
    scheduler, prompt embeddings for ``batch`` images, latent shape and (keep composition) the start latents."""
    width, height = output_size(request, pipe)
    guided = request.cfg_scale > 1.0
    scheduler = make_scheduler(dict(pipe.scheduler.config), request.sampler_name, request.scheduler)
    text_embeds = encode_text(pipe, request.prompt, request.negative_prompt, batch, guided)
    latent_shape = (pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    image_latents, start = None, 0
    if request.keep_composition > 0:  # the first (primary) input, also for a mix
        image_latents = encode_mean(pipe, request.images[0], width, height, trust_config=False)
        start = start_step(request.steps, request.keep_composition)
    scheduler.set_timesteps(request.steps)
    steps = len(scheduler.timesteps[start * scheduler.order :])
    device = pipe._execution_device  # the GPU also under CPU offload (the UNet itself may sit in RAM)
    return Setup(width, height, device, scheduler, text_embeds, latent_shape, image_latents, start, steps)


def iter_batches(
    pipe: Any,
    request: VariationRequest,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    preview: PreviewFn | None = None,
) -> Iterator[Result]:
    """Make the variations batch by batch: one :class:`Result` per batch (``n_iter`` of them).

    ``progress(step, steps)`` and ``preview(step, latents)`` count the steps of the current batch. A batch that
    ``should_stop`` cuts short yields a ``Result`` with ``interrupted=True`` and no images; the caller decides whether
    to go on with the next batch (the WebUI's Skip) or to stop iterating (Interrupt). The CLIP encode happens once,
    before the first batch.
    """
    request = request.validated()
    setup = prepare(pipe, request, request.batch_size)
    device = setup.device

    # 1-2: one CLIP encode per input image, then the mix.
    with torch.no_grad():
        embeds = [encode_image(pipe, image, request.fit) for image in request.images]
        image_embed = mix_embeddings(embeds, request.weights, request.mix)
        if request.edit is not None:
            image_embed = request.edit.apply(pipe, image_embed)
    width, height, scheduler, text_embeds = setup.width, setup.height, setup.scheduler, setup.text_embeds
    latent_shape = setup.latent_shape
    all_seeds = seed_list(request.seed, request.n_iter * request.batch_size)

    for batch_index in range(request.n_iter):
        seeds = all_seeds[batch_index * request.batch_size : (batch_index + 1) * request.batch_size]
        with torch.no_grad():
            # 3-4: augmentation noise from each output's seed, so a seed reproduces its image.
            augment_noise = augmentation_noise(seeds, image_embed.shape[-1]).to(device, image_embed.dtype)
            class_labels = augment_embedding(
                pipe, image_embed.expand(len(seeds), -1), request.noise_level, augment_noise
            )
            # 5: start from pure noise (keep composition: noised into the first input's latents, in denoise).
            latents = _noise(seeds, latent_shape).to(device, text_embeds.dtype)
            generators = [torch.Generator("cpu").manual_seed(s + 1) for s in seeds]
            seed_noise(scheduler, seeds)
            latents = denoise(
                pipe,
                scheduler,
                latents,
                text_embeds,
                class_labels,
                request.cfg_scale,
                request.steps,
                generators,
                progress,
                should_stop,
                preview,
                setup.image_latents,
                setup.start,
            )
            if latents is None:
                yield Result(interrupted=True)
                continue
            images = decode(pipe, latents)
        infotexts = [build_infotext(request, pipe, seed, (width, height)) for seed in seeds]
        yield Result(images=images, infotexts=infotexts, seeds=list(seeds), steps=setup.steps)


def generate(
    pipe: Any,
    request: VariationRequest,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    skip_batch: StopFn | None = None,
    preview: PreviewFn | None = None,
) -> Result:
    """Make ``n_iter × batch_size`` variations of the (mixed) input image(s); a stop returns the finished batches.
    When ``skip_batch()`` says so after a stop, only that batch is abandoned and the next one runs (the WebUI's
    Skip)."""
    request = request.validated()
    done = 0  # steps of the finished batches

    def overall_progress(step: int, steps: int) -> None:
        if progress is not None:
            progress(done + step, request.n_iter * steps)

    result = Result()

    def overall_preview(step: int, latents: torch.Tensor) -> None:
        if preview is not None:
            preview(done + step, latents)

    batches = iter_batches(pipe, request, progress=overall_progress, should_stop=should_stop, preview=overall_preview)
    for batch in batches:
        if batch.interrupted:
            if skip_batch is not None and skip_batch():
                continue
            result.interrupted = True
            break
        done += batch.steps
        result.images.extend(batch.images)
        result.infotexts.extend(batch.infotexts)
        result.seeds.extend(batch.seeds)
    return result


@dataclass
class InterpolationRequest:
    """A strip of ``frames`` images from ``image_a`` to ``image_b`` (slerp of embeddings, fixed noise)."""

    image_a: Image.Image
    image_b: Image.Image
    frames: int = FRAMES.default
    variation: VariationRequest | None = None  # generation settings; its images/weights/n_iter are ignored

    @classmethod
    def from_controls(
        cls, values: Mapping[str, Any], image_a: Image.Image, image_b: Image.Image, frames: Any = None
    ) -> InterpolationRequest:
        """The one way a strip request is made from Reimagine controls (tab, REST, CLI), checked (:meth:`settings`):
        ``values`` as :meth:`VariationRequest.from_controls` (mix, weights and batch shape do not apply)."""
        variation = VariationRequest.from_controls(values)
        request = cls(image_a, image_b, FRAMES.default if frames is None else frames, variation)
        request.settings()
        return request

    def settings(self) -> VariationRequest:
        """The checked generation settings of every frame (a slerp of the two images, one image per frame);
        raises :class:`ParamError` for a bad value or frame count."""
        FRAMES.coerce(self.frames)
        return replace(
            self.variation or VariationRequest(images=[]),
            images=[self.image_a, self.image_b],
            weights=None,
            mix="slerp",
            n_iter=1,
            batch_size=1,
        ).validated()


@torch.no_grad()
def interpolate(
    pipe: Any,
    request: InterpolationRequest,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    preview: PreviewFn | None = None,
) -> Result:
    """Frames ``0 … frames−1`` morphing from image A to image B; the initial latent and augmentation noise are the
    same in every frame, so only the embedding moves."""
    frames = FRAMES.coerce(request.frames)
    settings = request.settings()
    seed = seed_list(settings.seed, 1)[0]
    settings = replace(settings, seed=seed)

    setup = prepare(pipe, settings, 1)
    width, height, scheduler, text_embeds = setup.width, setup.height, setup.scheduler, setup.text_embeds
    seed_noise(scheduler, [seed])  # every frame the same Brownian noise, as the same start noise
    embed_a, embed_b = (encode_image(pipe, image, settings.fit) for image in settings.images)
    initial_latents = _noise([seed], setup.latent_shape).to(setup.device, text_embeds.dtype)
    augment_noise = augmentation_noise([seed], embed_a.shape[-1]).to(setup.device, embed_a.dtype)
    steps_per_frame = setup.steps  # what each frame's progress counts

    result = Result()
    for frame in range(frames):
        t = frame / (frames - 1)
        class_labels = augment_embedding(pipe, slerp(embed_a, embed_b, t), settings.noise_level, augment_noise)

        def frame_progress(step: int, _total: int, _frame: int = frame) -> None:
            if progress is not None:
                progress(_frame * steps_per_frame + step, frames * steps_per_frame)

        def frame_preview(step: int, latents: torch.Tensor, _frame: int = frame) -> None:
            if preview is not None:
                preview(_frame * steps_per_frame + step, latents)

        latents = denoise(
            pipe,
            scheduler,
            initial_latents.clone(),
            text_embeds,
            class_labels,
            settings.cfg_scale,
            settings.steps,
            [torch.Generator("cpu").manual_seed(seed + 1)],
            frame_progress,
            should_stop,
            frame_preview,
            setup.image_latents,
            setup.start,
        )
        if latents is None:
            result.interrupted = True
            break
        result.images.extend(decode(pipe, latents))
        result.seeds.append(seed)
        # A strip is no weighted mix: its position replaces the mix keys.
        extra = {
            "Mix weights": None,
            "Mix mode": None,
            "Interpolation": f"{frame + 1}/{frames}",
            "Interpolation t": f"{t:.3f}",
        }
        result.infotexts.append(build_infotext(settings, pipe, seed, (width, height), extra))
    return result
