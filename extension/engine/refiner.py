"""SDXL refiner post-pass: refine a finished image (pixel mode) or an SDXL base's latents (latent mode).

The mechanism, step by step (:func:`refine`):

1. blank controls inherit the base generation's values (prompt, negative prompt, CFG scale, sampler, schedule);
2. the refiner prompt is encoded once per request (the refiner has only the OpenCLIP-bigG encoder, ``text_encoder_2``);
3. the starting latents: in **latent mode** the SDXL base's latents as they are (same VAE latent space, scaling
   0.13025; no VAE decode/encode round trip); in **pixel mode** the image VAE-encoded with the refiner's VAE (any base
   works: SD 1.5, SD 2.x, SDXL, a Reimagine output). Latents of another family never go to the refiner
   (:func:`latents_fit_refiner`): Auto then falls back to pixel mode;
4. noise is added up to ``strength`` and the last ``steps`` steps of the schedule are denoised by the refiner UNet,
   conditioned on the prompt, the aesthetic score (positive branch) / negative aesthetic score (CFG branch) and the
   original size / crop (SDXL's added time ids);
5. one VAE decode, with a NaN guard: an fp16 VAE that overflows is upcast to fp32 and the decode retried.

**Steps.** ``steps`` is the number of sampling steps the refiner actually runs, whatever the strength (what
:func:`planned_steps` returns and the progress bar counts; Heun and DPM++ SDE evaluate the UNet twice per step, as in
the WebUI). They are the last ``steps`` steps of an ``N ≈ steps / strength``-step schedule, so strength alone sets how
much noise is added and steps alone how finely it is removed (the WebUI's img2img "fix steps" semantics, unlike its
default ``steps × strength``). ``N`` is capped at the model's 1000 training timesteps, so below strength
``steps / 1000`` fewer steps run; :func:`planned_steps` says how many.

**Strength.** 0–1, default 0.25. The refiner was trained on the low-noise end of the schedule (the first ~200 of 1000
timesteps, i.e. strength ≲ 0.2–0.3); above ~0.5 it repaints rather than refines and tends to distort. Strength 0 (or
so low that no step runs) returns the input unchanged without touching any model.

Built on diffusers' ``StableDiffusionXLImg2ImgPipeline.__call__`` (noising, timestep tail, added time ids with the
aesthetic score, CFG, the sampling loop; ``callback_on_step_end`` gives progress and a clean stop via ``_interrupt``),
called with ``output_type="latent"``. Written here, because diffusers lacks it: the honest step count, strength 0 as a
no-op, the latent-family check, the prompt encoded once per request, per-image seeds, sizes that are not multiples of
8, and VAE encode/decode with a NaN retry instead of always upcasting or returning a black image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from .. import infotext
from ..errors import ParamError
from ..params import REFINER, REFINER_ENGINE_PARAMS, REFINER_INFOTEXT_PREFIX, REIMAGINE, refiner_values_from_ui
from ..prompts import check_prompt
from . import PreviewFn, ProgressFn, Result, StopFn, format_number, model_identity, seed_list, version
from .samplers import SAMPLERS, SCHEDULES, make_scheduler, resolved_schedule, seed_noise
from .text_encoding import PromptEmbeds, encode_prompts
from .vae import decode_latents, vae_guarded

# The SDXL latent space (base and refiner share the VAE): 4 channels, scaling factor 0.13025.
SDXL_SCALING_FACTOR = 0.13025
SDXL_LATENT_FAMILIES = frozenset({"sdxl", "sdxl-base", "sdxl-refiner"})
MIN_SIDE = 64  # pixels; smaller images are refused
REFINER_UNET = "the SDXL refiner's UNet"  # names the model in the NaN check's message

# When the base gives nothing to inherit (a plain image on the command line): the WebUI's defaults.
FALLBACK_CFG_SCALE = 7.0
FALLBACK_SAMPLER = "DPM++ 2M"
FALLBACK_SCHEDULE = "Automatic"


@dataclass
class BaseSettings:
    """What the base generation used: blank refiner controls inherit these. ``infotext``, when given, is the base
    image's infotext; the refined image's infotext is that text with the refiner keys added."""

    prompt: str = ""
    negative_prompt: str = ""
    cfg_scale: float | None = None
    sampler_name: str | None = None
    scheduler: str | None = None
    infotext: str = ""

    @classmethod
    def from_infotext(cls, text: str | None) -> BaseSettings:
        """The settings written in a WebUI infotext (PNG ``parameters``); missing or unreadable values stay blank."""
        if not text:
            return cls()
        parsed = infotext.parse(text)
        try:
            cfg: float | None = float(parsed.get("CFG scale", ""))
        except ValueError:
            cfg = None
        return cls(
            prompt=parsed.get("Prompt", ""),
            negative_prompt=parsed.get("Negative prompt", ""),
            cfg_scale=cfg if cfg is not None and math.isfinite(cfg) else None,
            sampler_name=parsed.get("Sampler"),
            scheduler=parsed.get("Schedule type"),
            infotext=text,
        )


@dataclass
class RefineRequest:
    """One refiner post-pass job. Control names are the API names of :data:`params.REFINER`.

    Give ``images`` (pixel mode), ``latents`` of an SDXL base (``[B, 4, H/8, W/8]``, already multiplied by the VAE's
    scaling factor, i.e. what the UNet sees; ``latent_family="sdxl"``), or both (``mode`` decides). Blank ``prompt``,
    ``negative_prompt``, ``cfg_scale``, ``sampler_name`` and ``scheduler`` inherit from ``base``.
    """

    images: list[Image.Image] = field(default_factory=list)
    latents: torch.Tensor | None = None
    latent_family: str = ""  # "sdxl" for SDXL base latents; anything else is never fed to the refiner
    base: BaseSettings = field(default_factory=BaseSettings)
    prompt: str = REFINER["prompt"].default
    negative_prompt: str = REFINER["negative_prompt"].default
    strength: float = REFINER["strength"].default
    steps: int = REFINER["steps"].default
    mode: str = REFINER["mode"].default
    cfg_scale: float | None = None
    sampler_name: str | None = None
    scheduler: str | None = None
    aesthetic_score: float = REFINER["aesthetic_score"].default
    negative_aesthetic_score: float = REFINER["negative_aesthetic_score"].default
    seed: int = -1  # per-image seeds seed, seed+1, …; −1 = random
    seeds: list[int] | None = None  # explicit per-image seeds (overrides seed), e.g. the base's own seeds
    original_width: int = 0  # SDXL size conditioning; 0 = the image's size
    original_height: int = 0
    crop_top: int = 0  # SDXL crop conditioning (top-left corner of the crop, pixels)
    crop_left: int = 0
    return_latents: bool = False  # latent mode: return refined latents (Result.latents) instead of decoding
    checked: bool = field(default=False, init=False, repr=False, compare=False)  # validated(); a copy is not

    @classmethod
    def from_controls(
        cls, values: Mapping[str, Any], base: BaseSettings | str | None = None, seed: Any = -1, **fields: Any
    ) -> RefineRequest:
        """The one way a request is made from refiner controls (the txt2img hook, the tab's button, the REST API and
        the CLI all call this), validated.

        ``values``: control values by API name, as the UI or an API caller spells them ("Use same sampler", CFG 0 and
        blanks inherit; names outside the engine's controls are ignored); ``base``: the base generation's settings, or
        its infotext; ``seed``: −1 takes the base infotext's ``Seed``, else a random one. ``fields`` sets the rest
        (``images``, ``latents``, ``seeds``, ``mode``, ...).
        """
        engine = {name: value for name, value in values.items() if name in REFINER_ENGINE_PARAMS}
        return cls.from_checked(REFINER.validate(refiner_values_from_ui(engine)), base, seed, **fields)

    @classmethod
    def from_checked(
        cls, values: Mapping[str, Any], base: BaseSettings | str | None = None, seed: Any = -1, **fields: Any
    ) -> RefineRequest:
        """:meth:`from_controls` for ``values`` that ``REFINER.validate`` already returned (the WebUI hook checks
        them once per job, then makes one request per image): only the inputs (``fields``, seed) are checked."""
        base = base if isinstance(base, BaseSettings) else BaseSettings.from_infotext(base)
        seed = REIMAGINE["seed"].coerce(seed)
        if seed == -1:
            seed = infotext_seed(base.infotext, seed_list(-1, 1)[0])
        controls = {name: values[name] for name in REFINER_ENGINE_PARAMS}
        return cls(base=base, seed=seed, **{**controls, **fields})._inputs_checked()

    def validated(self) -> RefineRequest:
        """A copy with every value checked (raises :class:`ParamError`); the request itself once it is checked."""
        if self.checked:
            return self
        values = REFINER.validate({name: getattr(self, name) for name in REFINER_ENGINE_PARAMS})
        return replace(self, **{name: values[name] for name in REFINER_ENGINE_PARAMS})._inputs_checked()

    def _inputs_checked(self) -> RefineRequest:
        """A checked copy, once the inputs (images or latents, seed, size conditioning) are valid (the control
        values already are)."""
        if not self.images and self.latents is None:
            raise ParamError("nothing to refine: give at least one image (or SDXL latents)")
        for image in self.images:
            if min(image.size) < MIN_SIDE:
                raise ParamError(
                    f"images must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {image.width}x{image.height}"
                )
        if self.latents is not None and self.latents.ndim != 4:
            raise ParamError(
                f"latents must have shape [batch, channels, height, width], got {tuple(self.latents.shape)}"
            )
        seed = REIMAGINE["seed"].coerce(self.seed)
        for name in ("original_width", "original_height", "crop_top", "crop_left"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ParamError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        request = replace(self, seed=seed)
        request.checked = True
        return request

    def resolved(self) -> RefineRequest:
        """A validated copy with every blank control replaced by the base's value (or the WebUI default)."""
        request = self.validated()
        base = request.base
        sampler, schedule = request.sampler_name, request.scheduler
        if sampler is None:
            sampler, inherited_schedule = _inheritable_sampler(base.sampler_name)
            schedule = schedule or inherited_schedule
        schedule = schedule or _inheritable_schedule(sampler, base.scheduler)
        make_scheduler({}, sampler, schedule)  # an explicit unsupported pair is the user's error: say so now
        cfg_scale = request.cfg_scale if request.cfg_scale is not None else (base.cfg_scale or FALLBACK_CFG_SCALE)
        try:  # an inherited value is checked like a given one (an image's infotext may say anything)
            cfg_scale = REFINER["cfg_scale"].coerce(cfg_scale)
        except ParamError as error:
            raise ParamError(f"{error} (inherited from the base image's infotext: give cfg_scale)") from None
        prompt = request.prompt.strip() or base.prompt
        negative_prompt = request.negative_prompt.strip() or base.negative_prompt
        for text, given, what in (
            (prompt, request.prompt, "prompt"),
            (negative_prompt, request.negative_prompt, "negative prompt"),
        ):
            inherited = " (inherited from the base image's infotext)" if not given.strip() else ""
            check_prompt(text, f"the refiner {what}{inherited}")
        resolved = replace(
            request,
            prompt=prompt,
            negative_prompt=negative_prompt,
            cfg_scale=cfg_scale,
            sampler_name=sampler,
            scheduler=schedule,
        )
        resolved.checked = True
        return resolved


@dataclass
class RefineResult(Result):
    """:class:`reimagine.Result` plus the mode that ran, its ``Refiner post-pass …`` infotext pairs
    (:func:`infotext_items`, for the WebUI hook) and, with ``return_latents``, the refined latents."""

    mode: str = ""  # "Latent" or "Pixel"
    items: dict[str, str] = field(default_factory=dict)
    latents: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Inheritance of the base's sampler


def _inheritable_sampler(name: str | None) -> tuple[str, str | None]:
    """The base's sampler if our table has it (old names like ``DPM++ 2M Karras`` are split), else the fallback."""
    if name in SAMPLERS:
        return name, None
    for suffix in ("Karras", "Exponential"):
        if name and name.endswith(" " + suffix) and name[: -len(suffix) - 1] in SAMPLERS:
            return name[: -len(suffix) - 1], suffix
    return FALLBACK_SAMPLER, FALLBACK_SCHEDULE


def _inheritable_schedule(sampler: str, schedule: str | None) -> str:
    """The base's schedule type when ``sampler`` supports it, else Automatic."""
    if schedule in SCHEDULES and resolved_schedule(sampler, schedule) in SAMPLERS[sampler].schedules:
        return schedule
    return FALLBACK_SCHEDULE


# ---------------------------------------------------------------------------------------------------------------------
# Steps of the mechanism, each small and testable


def _tail_length(schedule_steps: int, strength: float) -> int:
    """How many steps diffusers' img2img runs of a ``schedule_steps`` schedule at ``strength`` (its own formula)."""
    return min(int(schedule_steps * strength), schedule_steps)


def schedule_length(steps: int, strength: float, train_timesteps: int = 1000) -> int:
    """``N``: the full schedule whose last ``steps`` steps the pass runs (smallest N with that tail, ≤ training
    timesteps)."""
    if strength <= 0:
        return 0
    n = max(steps, math.floor(min(steps / strength, train_timesteps + 1)) - 1)  # a denormal strength: inf
    while n < train_timesteps and _tail_length(n, strength) < steps:
        n += 1
    return min(n, train_timesteps)


def planned_steps(steps: int, strength: float, train_timesteps: int = 1000) -> int:
    """The number of refiner steps that will actually run (the UI shows this; 0 = the image is left unchanged)."""
    if strength <= 0 or steps <= 0:
        return 0
    return _tail_length(schedule_length(steps, strength, train_timesteps), strength)


def latents_fit_refiner(latents: torch.Tensor | None, family: str, pipe: Any) -> bool:
    """Whether ``latents`` can go straight into the refiner: an SDXL base's (by ``family`` tag: SD 1.5/2.x/unCLIP
    latents live in another VAE space even though they also have 4 channels), the refiner's channel count, not
    already decoded, and a refiner VAE of the SDXL latent space."""
    if latents is None or getattr(latents, "already_decoded", False) or family not in SDXL_LATENT_FAMILIES:
        return False
    if latents.ndim != 4 or latents.shape[1] != pipe.unet.config.in_channels:
        return False
    return abs(float(pipe.vae.config.scaling_factor) - SDXL_SCALING_FACTOR) < 1e-4


def choose_mode(request: RefineRequest, pipe: Any) -> str:
    """``"Latent"`` or ``"Pixel"``: what will run for ``request`` (Auto/Latent prefer latents that fit)."""
    if request.mode != "Pixel" and latents_fit_refiner(request.latents, request.latent_family, pipe):
        return "Latent"
    if request.images:
        return "Pixel"
    if request.mode == "Pixel":
        raise ParamError("pixel mode needs images; only latents were given")
    raise ParamError(
        f"these latents cannot be refined directly (family {request.latent_family or 'unknown'!r}, shape "
        f"{tuple(request.latents.shape) if request.latents is not None else None}; only SDXL base latents share the "
        "refiner's latent space): give the decoded images instead (pixel mode)"
    )


def image_to_pixels(image: Image.Image, multiple: int) -> torch.Tensor:
    """PIL image → ``[1, 3, H', W']`` in −1…1 (diffusers' own conversion), edge-padded to a multiple of ``multiple``
    instead of resized (the padding is cropped off after decoding)."""
    from diffusers.image_processor import VaeImageProcessor as Processor

    pixels = Processor.normalize(Processor.numpy_to_pt(Processor.pil_to_numpy(image.convert("RGB"))))
    pad_h, pad_w = -image.height % multiple, -image.width % multiple
    if pad_h or pad_w:
        pixels = torch.nn.functional.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    return pixels


@torch.no_grad()
def encode_image(pipe: Any, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
    """VAE-encode with the refiner's VAE → scaled latents ``[1, 4, H/8, W/8]`` (a sample of the latent distribution,
    drawn with ``generator`` as diffusers' img2img does)."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    vae = pipe.vae
    pixels = image_to_pixels(image, pipe.vae_scale_factor).to(pipe._execution_device)
    moments = vae_guarded(vae, lambda: vae.encode(pixels.to(vae.dtype)).latent_dist.parameters)
    latents = DiagonalGaussianDistribution(moments).sample(generator)
    return latents * vae.config.scaling_factor


def pixels_to_images(pipe: Any, pixels: torch.Tensor, size: tuple[int, int] | None = None) -> list[Image.Image]:
    """Decoded pixels → PIL images, cropped back to ``size`` (width, height) when the input was padded."""
    images = pipe.image_processor.postprocess(pixels.float(), output_type="pil")
    if size is not None and images[0].size != size:
        images = [image.crop((0, 0, *size)) for image in images]
    return images


@contextmanager
def _sampling_with(pipe: Any, scheduler: Any):
    """Use ``scheduler`` and no tqdm bar for one call; the pipeline's own are put back afterwards. (Not re-entrant
    for one pipeline: callers serialize jobs, as the WebUI's queue lock does.)"""
    saved_scheduler = pipe.scheduler
    saved_bar = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.scheduler = scheduler
    pipe.set_progress_bar_config(disable=True)
    try:
        yield
    finally:
        pipe.scheduler = saved_scheduler
        pipe._progress_bar_config = saved_bar


class _Stepper:
    """``callback_on_step_end`` for one ``__call__``: reports progress in refiner steps (and the step's latents to
    ``preview``) and asks diffusers to stop (``pipe._interrupt``, honoured by SDXL img2img since 0.22) when
    ``should_stop`` says so between steps."""

    def __init__(
        self,
        planned: int,
        offset: int,
        total: int,
        progress: ProgressFn | None,
        should_stop: StopFn | None,
        preview: PreviewFn | None = None,
    ):
        self.planned, self.offset, self.total = planned, offset, total
        self.progress, self.should_stop, self.preview = progress, should_stop, preview
        self.reported = 0
        self.stopped = False

    def __call__(self, pipe: Any, index: int, _timestep: Any, tensors: dict) -> dict:
        calls = max(int(pipe.num_timesteps), 1)  # 2 per step for second-order samplers
        done = min(self.planned, (index + 1) * self.planned // calls)
        if done > self.reported and self.progress is not None:
            self.progress(self.offset + done, self.total)
        if done > self.reported and self.preview is not None and tensors.get("latents") is not None:
            self.preview(self.offset + done, tensors["latents"])
        self.reported = done
        if index + 1 < calls and self.should_stop is not None and self.should_stop():
            pipe._interrupt = True
            self.stopped = True
        return {}


@torch.no_grad()
def denoise(
    pipe: Any,
    request: RefineRequest,
    latents: torch.Tensor,
    prompts: PromptEmbeds,
    seeds: Sequence[int],
    generators: list[torch.Generator],
    stepper: _Stepper,
) -> torch.Tensor | None:
    """Noise scaled ``latents`` to ``request.strength`` and run the refiner's ``planned_steps`` steps (diffusers'
    ``__call__`` with ``output_type="latent"``); ``None`` if stopped."""
    scheduler = make_scheduler(dict(pipe.scheduler.config), request.sampler_name, request.scheduler)
    seed_noise(scheduler, seeds)
    train_timesteps = int(pipe.scheduler.config.get("num_train_timesteps", 1000))
    height, width = (side * pipe.vae_scale_factor for side in latents.shape[-2:])
    original = (request.original_height or height, request.original_width or width)
    with _sampling_with(pipe, scheduler):
        refined = pipe(
            image=latents,
            strength=request.strength,
            num_inference_steps=schedule_length(request.steps, request.strength, train_timesteps),
            guidance_scale=request.cfg_scale,
            **prompts.repeat(len(seeds)),
            generator=generators,
            output_type="latent",
            original_size=original,
            target_size=(height, width),
            crops_coords_top_left=(request.crop_top, request.crop_left),
            negative_original_size=original,
            negative_crops_coords_top_left=(request.crop_top, request.crop_left),
            aesthetic_score=request.aesthetic_score,
            negative_aesthetic_score=request.negative_aesthetic_score,
            callback_on_step_end=stepper,
        ).images
    return None if stepper.stopped else refined


# ---------------------------------------------------------------------------------------------------------------------
# Infotext


def infotext_items(request: RefineRequest, pipe: Any, mode: str) -> dict[str, str]:
    """The ``Refiner post-pass …`` infotext pairs of a resolved request (the WebUI hook splices them into
    ``p.extra_generation_params``). Inherited values are left out: the base's own keys already say them."""
    base = request.base
    model = model_identity(pipe).name or "SDXL refiner"
    values: dict[str, Any] = {
        "model": model,
        "strength": format_number(request.strength),
        "steps": request.steps,
        "mode": mode,
        "prompt": request.prompt if request.prompt != base.prompt else None,
        "negative_prompt": request.negative_prompt if request.negative_prompt != base.negative_prompt else None,
        "cfg_scale": format_number(request.cfg_scale) if request.cfg_scale != base.cfg_scale else None,
        "sampler_name": request.sampler_name if request.sampler_name != base.sampler_name else None,
        "scheduler": request.scheduler if request.scheduler != (base.scheduler or "Automatic") else None,
        "aesthetic_score": format_number(request.aesthetic_score),
        "negative_aesthetic_score": format_number(request.negative_aesthetic_score),
    }
    return {key: str(value) for key, value in REFINER.infotext_items(values).items() if value is not None}


def build_infotext(request: RefineRequest, pipe: Any, mode: str, seed: int, size: tuple[int, int]) -> str:
    """The infotext of one refined image: the base's infotext with our keys added, or a new one."""
    items: dict[str, Any] = infotext_items(request, pipe, mode)
    if request.base.infotext:
        parsed = infotext.parse(request.base.infotext)
        prompt, negative = parsed.pop("Prompt"), parsed.pop("Negative prompt")
        params: dict[str, Any] = {k: v for k, v in parsed.items() if not k.startswith(REFINER_INFOTEXT_PREFIX)}
        if parsed.get("Seed") != str(seed):
            items[f"{REFINER_INFOTEXT_PREFIX} seed"] = seed
        params.update(items)
    else:  # a new infotext: the refiner prompts are its prompt lines
        prompt, negative = request.prompt, request.negative_prompt
        for name in ("prompt", "negative_prompt"):
            items.pop(REFINER[name].infotext, None)
        params = {"Seed": seed, "Size": f"{size[0]}x{size[1]}", **items}
    params["Reimagine"] = version()
    return infotext.build(prompt, negative, params)


# ---------------------------------------------------------------------------------------------------------------------
# The job


@torch.no_grad()
def refine(
    pipe: Any,
    request: RefineRequest,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    preview: PreviewFn | None = None,
) -> RefineResult:
    """Run the refiner post-pass over ``request``'s images (one at a time) or latents (one batch).

    ``progress(step, total)`` counts refiner steps, ``preview(step, latents)`` gets the SDXL latents of each step;
    ``should_stop()`` is checked between steps and images, and a stop returns the images that finished
    (``interrupted=True``)."""
    request = request.resolved()
    mode = choose_mode(request, pipe)
    count = request.latents.shape[0] if mode == "Latent" else len(request.images)
    if request.seeds is not None and len(request.seeds) != count:
        raise ParamError(f"got {len(request.seeds)} seed(s) for {count} image(s); give one seed per image")
    seeds = list(request.seeds) if request.seeds is not None else seed_list(request.seed, count)
    train_timesteps = int(pipe.scheduler.config.get("num_train_timesteps", 1000))
    planned = planned_steps(request.steps, request.strength, train_timesteps)
    result = RefineResult(mode=mode, items=infotext_items(request, pipe, mode))
    if mode == "Latent":
        _refine_latents(pipe, request, seeds, planned, result, progress, should_stop, preview)
    else:
        _refine_images(pipe, request, seeds, planned, result, progress, should_stop, preview)
    return result


def _refine_latents(pipe, request, seeds, planned, result, progress, should_stop, preview=None) -> None:
    """Latent mode: the whole batch in one call, decoded once (or returned as latents)."""
    latents = request.latents
    if planned > 0:
        if should_stop is not None and should_stop():
            result.interrupted = True
            return
        prompts = encode_prompts(pipe, request.prompt, request.negative_prompt, request.cfg_scale > 1.0)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        stepper = _Stepper(planned, 0, planned, progress, should_stop, preview)
        latents = denoise(pipe, request, latents, prompts, seeds, generators, stepper)
        if latents is None:
            result.interrupted = True
            return
    size = (request.latents.shape[-1] * pipe.vae_scale_factor, request.latents.shape[-2] * pipe.vae_scale_factor)
    if request.return_latents:
        result.latents = latents
    else:
        result.images = pixels_to_images(pipe, decode_latents(pipe, latents, REFINER_UNET))
    result.seeds = list(seeds)
    result.infotexts = [build_infotext(request, pipe, "Latent", seed, size) for seed in seeds]


def _refine_images(pipe, request, seeds, planned, result, progress, should_stop, preview=None) -> None:
    """Pixel mode: encode → refine → decode, one image at a time (images may differ in size)."""
    prompts = None
    for index, (image, seed) in enumerate(zip(request.images, seeds)):
        if planned > 0:
            if should_stop is not None and should_stop():
                result.interrupted = True
                return
            if prompts is None:
                prompts = encode_prompts(pipe, request.prompt, request.negative_prompt, request.cfg_scale > 1.0)
            generator = torch.Generator("cpu").manual_seed(seed)
            latents = encode_image(pipe, image, generator)
            total = planned * len(request.images)
            stepper = _Stepper(planned, index * planned, total, progress, should_stop, preview)
            latents = denoise(pipe, request, latents, prompts, [seed], [generator], stepper)
            if latents is None:
                result.interrupted = True
                return
            refined = pixels_to_images(pipe, decode_latents(pipe, latents, REFINER_UNET), image.size)[0]
        else:
            refined = image.copy()  # strength 0: nothing to do, the input unchanged
        result.images.append(refined)
        result.seeds.append(seed)
        result.infotexts.append(build_infotext(request, pipe, "Pixel", seed, image.size))


# ---------------------------------------------------------------------------------------------------------------------
# Seeds of refined images


def infotext_seed(text: str, fallback: int) -> int:
    """The ``Seed`` of a base infotext (a blank or seedless one: ``fallback``), for images refined with seed -1."""
    try:
        return REIMAGINE["seed"].coerce(infotext.parse(text)["Seed"]) if text else fallback
    except (KeyError, ParamError):
        return fallback
