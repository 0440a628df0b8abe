"""What the tab's buttons do, without gradio: Generate (variations or interpolation), Refine with SDXL, Vary again.

Each job runs inside the tab host's ``run`` (``extension.ui.surface.TabSurface``: queue, progress bar, error display),
reports to the host's :class:`Control` and returns the output panel's four values
``(gallery, generation_info_json, infotext_html, log_html)``.

Live previews: every engine call gets ``control.latent_preview(family)``, so the preview follows the sampling at the
host's interval (the WebUI's "Live preview display period"); a finished batch is saved and shown at once.

Batch count: every batch is one engine call, so a finished batch is saved and shown as the live preview at once,
Skip abandons only the current batch, and "interrupt after the current batch" (the WebUI's first Interrupt click
during a multi-batch run) is honoured between batches. Interrupt stops after the current step; what finished is kept.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..engine.preview import SD, SDXL
from ..errors import ParamError, ReimagineError
from ..images import gallery_entry, normalized
from ..loading.discovery import REFINER_KINDS, UNCLIP_KINDS
from ..params import REIMAGINE, TEXT_DIFF, WEBUI_KEYS
from . import ip_adapter
from .host import Control, Host

IP_ADAPTER_CONTROLS = ("image_strength", "variation_strength")
"""The tab's IP-Adapter controls (``params.IP_ADAPTER``; the backend follows the chosen model)."""
VARIATION_KINDS = UNCLIP_KINDS + ip_adapter.IP_ADAPTER_KINDS
"""What the tab's model dropdown offers: unCLIP models and "checkpoint + IP-Adapter" choices."""

MAX_INPUTS = 4
"""Input image slots of the tab (each with a weight)."""

MODE_VARIATIONS = "Variations"
MODE_INTERPOLATION = "Interpolation"
MODES = (MODE_VARIATIONS, MODE_INTERPOLATION)


def input_names() -> list[str]:
    """The Generate handler's inputs after the task id, in order (the tab passes components in this order)."""
    images = [name for i in range(1, MAX_INPUTS + 1) for name in (f"image_{i}", f"weight_{i}")]
    return ["mode", "model", *images, *REIMAGINE.params, "frames", *TEXT_DIFF.params, *IP_ADAPTER_CONTROLS]


@dataclass
class GenerationInfo:
    """The run's parameters and per-image infotexts: the output panel's ``generation_info`` JSON (shape of the
    WebUI's ``Processed.js()``, which its 💾/🗃️ buttons read) and the ``p`` handed to ``images.save_image``."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1
    all_prompts: list[str] = field(default_factory=list)
    all_negative_prompts: list[str] = field(default_factory=list)
    all_seeds: list[int] = field(default_factory=list)
    all_subseeds: list[int] = field(default_factory=list)
    subseed: int = -1
    subseed_strength: float = 0
    width: int = 0
    height: int = 0
    sampler_name: str = ""
    scheduler: str = ""
    cfg_scale: float = 0
    steps: int = 0
    batch_size: int = 1
    n_iter: int = 1
    noise_level: int = 0
    sd_model_name: str = ""
    sd_model_hash: str = ""
    infotexts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    index_of_first_image: int = 0
    job_timestamp: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    clip_skip: int = 1
    restore_faces: bool = False
    face_restoration_model: str | None = None
    seed_resize_from_w: int = -1
    seed_resize_from_h: int = -1
    denoising_strength: float | None = None
    is_using_inpainting_conditioning: bool = False
    batch_index: int = 0
    iteration: int = 0

    def add(self, images: Sequence[Any], infotexts: Sequence[str], seeds: Sequence[int]) -> None:
        """Record finished images."""
        self.infotexts.extend(infotexts)
        self.all_seeds.extend(seeds)
        self.all_subseeds.extend(seeds)
        self.all_prompts.extend([self.prompt] * len(infotexts))
        self.all_negative_prompts.extend([self.negative_prompt] * len(infotexts))
        if images and not self.width:
            self.width, self.height = images[0].size

    def js(self) -> str:
        """The JSON the output panel keeps."""
        return json.dumps(asdict(self), default=str)


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    """The WebUI's rendering of an infotext (``ui_common.plaintext_to_html``)."""
    content = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"


def error_html(message: str) -> str:
    """A user error, styled like the WebUI's."""
    return f"<div class='error'>{html.escape(message)}</div>"


INTERRUPTED_NOTE = "Interrupted: the images that finished are shown."


def _note(finished: int, planned: int, interrupted: bool) -> str:
    """The log line of a stopped run (a stable sentence, so the WebUI can translate it, then the counts)."""
    if interrupted:
        return f"<p class='reimagine-note'><span>{INTERRUPTED_NOTE}</span> <span>{finished} / {planned}</span></p>"
    return ""


@dataclass
class Outputs:
    """Accumulates one run's outputs and renders the panel's four values."""

    info: GenerationInfo
    gallery: list[Any] = field(default_factory=list)
    interrupted: bool = False
    planned: int = 0
    error: str = ""

    def values(self) -> tuple[list[Any], str, str, str]:
        """``(gallery, generation_info, infotext_html, log_html)``."""
        first = plaintext_to_html(self.info.infotexts[0]) if self.info.infotexts else ""
        log = _note(len(self.gallery), self.planned, self.interrupted)
        if self.error:
            log = error_html(self.error) + log
        return self.gallery, self.info.js(), first, log


# ---------------------------------------------------------------------------------------------------------------------
# Reading the tab's values


@dataclass
class TabValues:
    """The Generate handler's inputs, by name (see :func:`input_names`)."""

    mode: str
    model: str | None
    images: list[Any]
    weights: list[float]
    settings: dict[str, Any]
    frames: int
    edit: Any = None  # a text_diff.TextDiff when "To text" is filled
    edit_frames: int = 1
    ip_options: Any = None  # engine.ip_adapter.IPAdapterOptions (used with a "checkpoint + IP-Adapter" model)

    @classmethod
    def from_args(cls, args: Sequence[Any]) -> TabValues:
        """Map the handler's positional arguments (without the task id) to names and check them."""
        names = input_names()
        if len(args) != len(names):
            raise TypeError(f"expected {len(names)} inputs, got {len(args)}")
        values = dict(zip(names, args))
        images: list[Any] = []
        weights: list[float] = []
        for i in range(1, MAX_INPUTS + 1):
            image = values.pop(f"image_{i}")
            weight = values.pop(f"weight_{i}")
            if image is not None:
                images.append(normalized(image) if hasattr(image, "convert") else image)  # upright, 8-bit RGB
                try:
                    weights.append(float(weight))
                except (TypeError, ValueError):
                    raise ParamError(f"the weight of image {i} must be a number, got {weight!r}") from None
        mode = values.pop("mode") or MODE_VARIATIONS
        if mode not in MODES:
            raise ParamError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        model = values.pop("model")
        frames = values.pop("frames")
        text_values = TEXT_DIFF.validate({name: values.pop(name) for name in TEXT_DIFF.params})
        from ..engine.ip_adapter import IPAdapterOptions

        ip_options = IPAdapterOptions(*(values.pop(name) for name in IP_ADAPTER_CONTROLS)).validated()
        settings = REIMAGINE.validate({k: v for k, v in values.items() if k in REIMAGINE.params})
        try:
            frames = int(frames)
        except (TypeError, ValueError):
            raise ParamError(f"frames must be an integer, got {frames!r}") from None
        from ..engine.text_diff import TextDiff

        edit = TextDiff.from_controls(text_values)
        return cls(mode, model, images, weights, settings, frames, edit, text_values["text_diff_frames"], ip_options)


def _info_for(request: Any, seed: int, pipe: Any, ip_options: Any = None) -> GenerationInfo:
    """The panel's generation info of a run of ``request`` (an ``engine.unclip.VariationRequest``) with first seed
    ``seed``: the WebUI's own keys as its fields, the table's other infotext keys (``engine.unclip.infotext_items``),
    the mix weights and the edit as ``extra_generation_params`` (with ``ip_options``: the IP-Adapter backend's)."""
    from ..engine import format_number, model_identity
    from ..engine.unclip import infotext_items

    identity = model_identity(pipe)
    items = infotext_items(replace(request, seed=seed))
    webui = {REIMAGINE[name].infotext for name in WEBUI_KEYS}
    extra = {key: value for key, value in items.items() if key not in webui and value is not None}
    if len(request.images) > 1:
        extra["Mix weights"] = ", ".join(format_number(w) for w in request.weights)
    if request.edit is not None:
        extra.update(request.edit.infotext())
    return GenerationInfo(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        seed=seed,
        sampler_name=request.sampler_name,
        scheduler=items[REIMAGINE["scheduler"].infotext],
        cfg_scale=request.cfg_scale,
        steps=request.steps,
        batch_size=request.batch_size,
        n_iter=request.n_iter,
        noise_level=request.noise_level,
        sd_model_name=identity.name,
        sd_model_hash=identity.hash,
        extra_generation_params=ip_adapter.extra_params(extra, pipe, ip_options),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Generate


@dataclass
class Engine:
    """The engine functions the jobs call (replaceable in tests)."""

    iter_batches: Callable[..., Any] | None = None
    interpolate: Callable[..., Any] | None = None
    refine: Callable[..., Any] | None = None

    def resolved(self) -> Engine:
        """Fill unset functions with the real engine's."""
        from ..engine import unclip as reimagine

        iter_batches = self.iter_batches or reimagine.iter_batches
        interpolate = self.interpolate or reimagine.interpolate
        refine = self.refine
        if refine is None:
            from ..engine import refiner as refine_module

            refine = refine_module.refine
        return Engine(iter_batches, interpolate, refine)


def generate(host: Host, args: Sequence[Any], engine: Engine | None = None) -> tuple[list[Any], str, str, str]:
    """The Generate button: variations of the (mixed) input images, or an interpolation strip."""
    engine = (engine or Engine()).resolved()
    control = host.control()
    outputs = Outputs(GenerationInfo())
    ip_adapter.forget_latents(host)  # "Refine with SDXL" finds the latents of this job's last batch only
    try:
        values = TabValues.from_args(args)
        if values.mode == MODE_INTERPOLATION:
            _interpolation(host, control, values, engine, outputs)
        else:
            _variations(host, control, values, engine, outputs)
    except ReimagineError as error:
        outputs.error = str(error)
    return outputs.values()


def _variations(host: Host, control: Control, values: TabValues, engine: Engine, outputs: Outputs) -> None:
    from ..engine import seed_list
    from ..engine.unclip import VariationRequest

    if not values.images:
        raise ParamError("Add at least one input image.")
    request = VariationRequest.from_controls(values.settings, values.images, values.weights, values.edit)
    choice = host.find(values.model, VARIATION_KINDS)
    ip = ip_adapter.is_ip_adapter(choice)
    if values.edit is not None and values.edit_frames > 1:
        if ip:
            raise ParamError("Edit by text with Frames > 1 (a strip) needs an unCLIP model; use Frames 1 here")
        return _text_strip(host, control, values, request, choice, outputs)
    role, iter_batches = (
        (ip_adapter.ROLE, ip_adapter.batches(values.ip_options)) if ip else ("unclip", engine.iter_batches)
    )
    first_seed = seed_list(request.seed, 1)[0]
    outputs.planned = request.n_iter * request.batch_size
    control.begin(request.n_iter, request.steps, f"Batch 1 of {request.n_iter}")
    with host.pipeline(choice, role, _job_size(request.width, request.height, request.batch_size)) as pipe:
        outputs.info = _info_for(request, first_seed, pipe, values.ip_options if ip else None)
        # One engine request for all batches: the input images are CLIP-encoded once.
        batches = iter_batches(
            pipe,
            replace(request, seed=first_seed),
            progress=control.step,
            should_stop=control.should_stop_step,
            preview=control.latent_preview(SD),
        )
        for batch, result in enumerate(batches):
            _collect(host, control, outputs, result)
            ip_adapter.keep_latents(host, result)  # an SDXL base's: "Refine with SDXL" refines them in latent mode
            skipped = result.interrupted and control.skipped and not control.interrupted
            last = batch + 1 == request.n_iter
            if (result.interrupted and not skipped) or (not last and (control.interrupted or control.stopping)):
                outputs.interrupted = True
                break
            control.clear_skip()
            control.next_job("" if last else f"Batch {batch + 2} of {request.n_iter}")


def _text_strip(host: Host, control: Control, values: TabValues, request: Any, choice: Any, outputs: Outputs) -> None:
    """Edit by text with Frames > 1: a strip from amount 0 to Amount, one seed (extension/engine/text_diff.py)."""
    from ..engine import seed_list
    from ..engine.text_diff import text_diff_strip

    seed = seed_list(request.seed, 1)[0]
    outputs.planned = values.edit_frames
    control.begin(1, values.edit_frames * request.steps, "Edit by text")
    with host.pipeline(choice, "unclip", _job_size(request.width, request.height, 1)) as pipe:
        outputs.info = _info_for(request, seed, pipe)
        result = text_diff_strip(
            pipe,
            replace(request, seed=seed),
            values.edit,
            values.edit_frames,
            progress=control.step,
            should_stop=lambda: control.should_stop_step() or control.stopping,
        )
        _collect(host, control, outputs, result)
        outputs.interrupted = bool(result.interrupted)


def _collect(host: Host, control: Control, outputs: Outputs, result: Any) -> None:
    if not result.images:
        return
    outputs.info.add(result.images, result.infotexts, result.seeds)
    outputs.gallery.extend(host.save(list(result.images), list(result.infotexts), outputs.info))
    control.preview(result.images[-1])


def _interpolation(host: Host, control: Control, values: TabValues, engine: Engine, outputs: Outputs) -> None:
    from ..engine import seed_list
    from ..engine.unclip import InterpolationRequest

    if len(values.images) < 2:
        raise ParamError("Interpolation needs two input images: put image A into slot 1 and image B into slot 2.")
    image_a, image_b = values.images[:2]
    request = InterpolationRequest.from_controls(values.settings, image_a, image_b, values.frames)
    settings = replace(request.variation, n_iter=1, batch_size=1, seed=seed_list(request.variation.seed, 1)[0])
    request = replace(request, variation=settings)
    choice = host.find(values.model, VARIATION_KINDS)
    ip = ip_adapter.is_ip_adapter(choice)
    outputs.planned = values.frames
    control.begin(1, values.frames * settings.steps, "Interpolation")
    role = ip_adapter.ROLE if ip else "unclip"
    with host.pipeline(choice, role, _job_size(settings.width, settings.height, 1)) as pipe:
        outputs.info = _info_for(settings, settings.seed, pipe, values.ip_options if ip else None)
        outputs.info.extra_generation_params["Interpolation frames"] = values.frames
        strip = ip_adapter.strip(values.ip_options) if ip else engine.interpolate
        result = strip(
            pipe,
            request,
            progress=control.step,
            should_stop=lambda: control.should_stop_step() or control.stopping,
            preview=control.latent_preview(SD),
        )
        _collect(host, control, outputs, result)
        outputs.interrupted = bool(result.interrupted)


# ---------------------------------------------------------------------------------------------------------------------
# Refine with SDXL, Vary again, reuse seed


def _job_size(width: Any, height: Any, batch: int) -> dict[str, Any]:
    """What the memory plan needs to know of a job (``device.memory.job_for``); a missing side = the native one."""
    return {"width": width, "height": height, "batch_size": batch}


def refine_size(size: tuple[int, int], area: int = 1024 * 1024) -> tuple[int, int]:
    """``size`` scaled to ``area`` pixels (the refiner's native 1024² class), sides multiples of 64."""
    width, height = size
    scale = (area / (width * height)) ** 0.5
    return max(64, round(width * scale / 64) * 64), max(64, round(height * scale / 64) * 64)


def selected_infotext(generation_info: str, index: int) -> str:
    """The infotext of gallery image ``index`` from the panel's JSON ("" when unknown)."""
    try:
        texts = json.loads(generation_info)["infotexts"]
        return texts[index] if 0 <= index < len(texts) else ""
    except (ValueError, KeyError, TypeError):
        return ""


def selected_seed(generation_info: str, index: int) -> int | None:
    """The seed of gallery image ``index`` (the ♻️ button), or None."""
    try:
        seeds = json.loads(generation_info)["all_seeds"]
    except (ValueError, KeyError, TypeError):
        return None
    if not seeds:
        return None
    return int(seeds[index if 0 <= index < len(seeds) else 0])


def refine_selected(
    host: Host,
    gallery: Any,
    index: Any,
    generation_info: str,
    model: str | None,
    strength: Any,
    steps: Any,
    engine: Engine | None = None,
) -> tuple[list[Any], str, str, str]:
    """The "Refine with SDXL" button: the selected output through the SDXL refiner post-pass: in latent mode when it is
    an SDXL base's output of the last batch (its latents were kept: no VAE round trip, the base's size), else in pixel
    mode at the 1024² class (an SDXL base's older output says why: ``Pixel (latents not kept)``). The batch stays in
    the gallery and the refined image is added after it (the tab's JavaScript then selects it), as the WebUI keeps a
    batch visible; the generation info grows to match, so selecting any image still shows its own infotext and
    seed."""
    engine = (engine or Engine()).resolved()
    control = host.control()
    outputs = Outputs(GenerationInfo())
    try:
        position = int(index or 0)
        image = host.gallery_image(gallery, position)
        if image is None:
            raise ParamError("Generate an image first (or select one in the gallery), then refine it.")
        text = selected_infotext(generation_info, position) or image.info.get("parameters", "")
        outputs.info, outputs.planned = GenerationInfo(), 1
        latents = ip_adapter.kept_latents(host, text)
        fallback = ip_adapter.LATENTS_NOT_KEPT if latents is None and ip_adapter.from_sdxl_adapter(text) else ""
        _refine_images(
            host, control, [(image, text)], model, strength, steps, engine, outputs,
            resize=latents is None, latents=latents, fallback=fallback,
        )  # fmt: skip
    except ReimagineError as error:
        outputs.error = str(error)
    refined, info, shown, log = outputs.values()
    kept = [gallery_entry(item) for item in (gallery or [])]
    return [*kept, *refined], _appended_info(generation_info, len(kept), info), shown, log


def _appended_info(before: str, count: int, added: str) -> str:
    """The panel's generation info for ``count`` kept images followed by the ones of ``added``: the kept images'
    infotexts and seeds (padded to ``count``), then the new ones; everything else as before."""
    try:
        merged = json.loads(before)
        if not isinstance(merged, dict):
            raise ValueError
    except (TypeError, ValueError):
        merged = {}
    new = json.loads(added)
    if not merged:
        merged = {**new, "infotexts": [], "all_seeds": []}
    for key in ("infotexts", "all_seeds", "all_subseeds", "all_prompts", "all_negative_prompts"):
        old = list(merged.get(key) or [])[:count]
        fill = "" if key in ("infotexts", "all_prompts", "all_negative_prompts") else -1
        merged[key] = old + [fill] * (count - len(old)) + list(new.get(key) or [])
    return json.dumps(merged, default=str)


def refine_uploaded(
    host: Host, images: Sequence[tuple[Any, str]], model: str | None, controls: dict[str, Any], engine: Engine | None
) -> tuple[list[Any], str, str, str]:
    """The standalone "Refine" tab: every uploaded image through the refiner (pixel mode, sizes kept)."""
    engine = (engine or Engine()).resolved()
    control = host.control()
    outputs = Outputs(GenerationInfo(), planned=len(images))
    try:
        if not images:
            raise ParamError("Add at least one image to refine.")
        _refine_images(host, control, images, model, None, None, engine, outputs, resize=False, controls=controls)
    except ReimagineError as error:
        outputs.error = str(error)
    return outputs.values()


def _refine_images(
    host: Host,
    control: Control,
    images: Sequence[tuple[Any, str]],
    model: str | None,
    strength: Any,
    steps: Any,
    engine: Engine,
    outputs: Outputs,
    *,
    resize: bool,
    controls: dict[str, Any] | None = None,
    latents: Any = None,
    fallback: str = "",
) -> None:
    """Refine ``images`` one by one (pixel mode), or, given the kept SDXL ``latents`` of the one image, those (latent
    mode); ``fallback``: why an image that could have run in latent mode runs in pixel mode (its infotext says so)."""
    from ..engine.refiner import RefineRequest, planned_steps

    values = dict(controls or {})
    if strength is not None:
        values["strength"] = strength
    if steps is not None:
        values["steps"] = steps
    requests = []  # every request is built (and checked) before the model loads
    for image, text in images:
        image = normalized(image)  # upright (EXIF), 16-bit scaled to 8-bit, RGB
        if resize:
            image = image.resize(refine_size(image.size, host.refine_area), _lanczos())
            text = _with_size(text, image.size)
        seed = values.get("seed", -1)
        inputs: dict[str, Any] = {"images": [image], "mode": "Pixel"}
        if latents is not None:
            inputs = {"latents": latents, "latent_family": "sdxl", "mode": "Latent"}
        requests.append(RefineRequest.from_controls(values, text or None, seed, **inputs))
    choice = host.find(model, REFINER_KINDS)
    control.begin(len(requests), max(planned_steps(requests[0].steps, requests[0].strength), 1), "Refine with SDXL")
    outputs.info.sd_model_name = choice.stem
    sizes = [image.size for request in requests for image in request.images]
    if latents is not None:
        sizes.append((latents.shape[-1] * 8, latents.shape[-2] * 8))
    largest = max(sizes, key=lambda size: size[0] * size[1])
    with host.pipeline(choice, "refiner", _job_size(*largest, 1)) as pipe:
        for number, request in enumerate(requests):
            if control.interrupted or (control.stopping and number > 0):
                outputs.interrupted = True
                break
            control.clear_skip()
            result = engine.refine(
                pipe,
                request,
                progress=control.step,
                should_stop=control.should_stop_step,
                preview=control.latent_preview(SDXL),
            )
            if fallback:
                mode = f"{getattr(result, 'mode', 'Pixel')} ({fallback})"
                result.infotexts = [ip_adapter.with_refiner_mode(text, mode) for text in result.infotexts]
            _collect(host, control, outputs, result)
            if result.interrupted and not (control.skipped and not control.interrupted):
                outputs.interrupted = True
                break
            control.next_job()


def _with_size(text: str, size: tuple[int, int]) -> str:
    """``text`` with its ``Size`` set to the resized image's (the refined image keeps that size)."""
    from .. import infotext

    if not text:
        return text
    params = infotext.parse(text)
    prompt, negative = params.pop("Prompt"), params.pop("Negative prompt")
    if "Size" in params:
        params["Size"] = f"{size[0]}x{size[1]}"
    return infotext.build(prompt, negative, params)


def _lanczos() -> Any:
    from PIL import Image

    return getattr(Image, "Resampling", Image).LANCZOS


def match_aspect(image: Any, width: Any, height: Any, maximum: int) -> tuple[int, int] | None:
    """The "Match input aspect" button: keep the width (or the height, when the width is 0 = automatic) and set the other side
    from the first input image's aspect ratio, in multiples of 64; None when there is nothing to match."""
    if image is None:
        return None
    width, height = int(width or 0), int(height or 0)
    aspect = image.width / image.height

    def side(value: float) -> int:
        return int(min(maximum, max(64, round(value / 64) * 64)))

    if width:
        return width, side(width / aspect)
    if height:
        return side(height * aspect), height
    return None
