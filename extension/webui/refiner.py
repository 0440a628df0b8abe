"""The SDXL refiner post-pass inside txt2img / img2img: everything ``ReimagineRefinerScript`` (scripts/reimagine.py)
delegates to. The engine is :mod:`extension.engine.refiner`; this module maps it onto the WebUI's script hooks.

Where it runs (webui-api.md §3):

- **Latent mode** in ``post_sample``: the base is SDXL (``sd_model.is_sdxl``, A1111 and Forge) and the samples are
  still latents (no Hires fix: ``getattr(ps.samples, "already_decoded", False)`` is False). The refined latents replace
  ``ps.samples``; the WebUI then decodes them once, as it would have anyway.
- **Pixel mode** in ``postprocess_image``: every other case (SD 1.x/2.x bases, Hires fix, Pixel chosen). It runs on
  each final image after Hires fix and face restoration, before saving, so the refined image is what is saved, shown
  and put into the grid.

Arguments (the components of :func:`ui`, in the order of :data:`extension.params.REFINER`) come either positionally
or, from the API, as one dict of named values (``{"enabled": true, "model": ..., "strength": ...}``; ``enabled``
defaults to true there) or ``[enabled, {...}]``. The WebUI wraps every script hook in ``try/except`` + a log line
(``setup`` and ``process`` included), so no exception of ours can reach an API caller or the page: a problem the user
must know about (unknown argument name, missing or wrong model, a failing pass) becomes the infotext key
``Refiner post-pass error`` (in the image's PNG, the page's generation info and the API's ``info``), a comment under
the image in the page, and a line in the WebUI log; the generation goes on without the post-pass.

Progress: the WebUI counts one job per batch (two with Hires fix). The first ``post_sample`` of a run adds one job per
batch for the post-pass, and each batch's post-pass ends with one ``state.nextjob()``; its steps are reported as
``sampling_step`` / ``sampling_steps``. Interrupt and Skip stop the pass between steps; the image stays unrefined.

Memory: the refiner is loaded through the shared host (:meth:`extension.runtime.host.Host.pipeline`): the WebUI's
checkpoint leaves the GPU only when both would not fit and is always put back when the hook returns (other
extensions' hooks, e.g. ADetailer's, need it), never reloaded; the refiner stays resident or is offloaded after each
call according to the setting "Reimagine and refiner models between runs".
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, ParamError, ReimagineError
from ..loading.discovery import REFINER_KINDS, ModelChoice, closest
from ..params import REFINER, REFINER_ENGINE_PARAMS, REFINER_INFOTEXT_PREFIX, REFINER_MODES

TITLE = "Refiner post-pass"
"""The script's title: the key of ``alwayson_scripts`` in API requests (matched case-insensitively)."""
LABEL = "Refiner post-pass (SDXL)"
INFO = (
    "Runs the SDXL refiner over each finished image, after sampling, Hires fix and face restoration. It is separate "
    "from the WebUI's own Refiner (which swaps models during sampling): both can be on."
)
PREFIX = REFINER_INFOTEXT_PREFIX
ERROR_KEY = f"{PREFIX} error"
"""Infotext key of a warning: the post-pass was enabled but did not run (or stopped) for this image."""
SAME_SAMPLER = "Use same sampler"
SAME_SCHEDULER = "Use same scheduler"
SAME_CFG = 0.0
CFG_LABEL = f"{REFINER['cfg_scale'].label} (0 = same as the base)"
PLACEHOLDERS = {"prompt": "blank = the base prompt", "negative_prompt": "blank = the base negative prompt"}
"""UI values meaning "inherit the base's": the WebUI's own Hires fix spells them the same way."""
BEFORE_SUFFIX = "-before-refiner"
CONFIG_ROOT_ENV = "REIMAGINE_CONFIG_ROOT"
"""Environment variable: a folder of config-only diffusers folders used instead of the bundled ``extension/configs``
(tests and the acceptance harness use the tiny models' configs)."""
XYZ_AXES: dict[str, str] = {
    "strength": f"{PREFIX} strength",
    "steps": f"{PREFIX} steps",
    "model": f"{PREFIX} model",
}
"""X/Y/Z plot axis labels, by parameter name."""
RUN_ATTR = "reimagine_refiner_run"
XYZ_ATTR = "reimagine_refiner_xyz"
_EXTRA_NETWORK = re.compile(r"<\w+:[^>]+>")  # <lora:name:1.0>: the WebUI's extra-network syntax, not prompt text


# ---------------------------------------------------------------------------------------------------------------------
# Host, settings


def config_root_from_env() -> Path | None:
    """``$REIMAGINE_CONFIG_ROOT`` as a folder, if set (the one place that reads it)."""
    value = os.environ.get(CONFIG_ROOT_ENV, "").strip()
    return Path(value).expanduser() if value else None


def host() -> Any:
    """The process's WebUI host, shared with the Reimagine tab (one model list, one pipeline cache); it takes its
    config root from :func:`config_root_from_env`."""
    from .tab import host as shared_host  # not ``from . import host``: the submodule webui/host.py shadows it

    return shared_host()


def model_names() -> list[str]:
    """The SDXL refiner models offered (names as the dropdown and the API use them)."""
    return [choice.name for choice in host().models(REFINER_KINDS)]


def find_model(name: str) -> ModelChoice:
    """The offered refiner called ``name`` (also its file stem, or a WebUI-style ``name [hash]``); otherwise a
    ModelLoadError that says what is wrong: nothing selected, not found, or which kind of model the file is."""
    webui_host = host()
    try:
        return webui_host.find(name, REFINER_KINDS)
    except ModelLoadError as error:
        plain = re.sub(r"\s*\[[0-9a-fA-F]{6,}\]$", "", str(name or "").strip())
        if not plain:
            raise
        choice = closest(webui_host.models(REFINER_KINDS), plain)
        if choice is not None:
            return choice
        kind = _kind_of(webui_host, plain)
        if kind is not None and kind not in REFINER_KINDS:
            from ..loading import check_role

            check_role(kind, "refiner", plain)  # raises: "<name> is an SDXL base model; ... needs an SDXL refiner"
        raise error


def _kind_of(webui_host: Any, name: str) -> str | None:
    """The kind of the checkpoint file or diffusers folder called ``name`` in the model folders (error path only)."""
    from ..loading import discovery as models

    for folder in webui_host.model_folders():
        if not Path(folder).is_dir():
            continue
        for path in Path(folder).rglob("*"):
            if name not in (path.name, path.stem):
                continue
            if path.is_file() and path.suffix.lower() in models.CHECKPOINT_SUFFIXES:
                return models.file_kind(path, webui_host.config_root)
            if path.is_dir() and (path / "model_index.json").is_file():
                return models.folder_kind(path, webui_host.config_root)
    return None


def _to_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """UI spellings → table values: "Use same sampler"/"Use same scheduler"/CFG 0 mean inherit (None)."""
    values = dict(raw)
    if values.get("sampler_name") in (SAME_SAMPLER, ""):
        values["sampler_name"] = None
    if values.get("scheduler") in (SAME_SCHEDULER, ""):
        values["scheduler"] = None
    cfg = values.get("cfg_scale")
    with contextlib.suppress(TypeError, ValueError):
        if cfg is not None and cfg != "" and float(cfg) == SAME_CFG:
            values["cfg_scale"] = None
    return values


def _to_ui(name: str, value: Any) -> Any:
    """Table value → what the control shows."""
    if value is None:
        return {"sampler_name": SAME_SAMPLER, "scheduler": SAME_SCHEDULER, "cfg_scale": SAME_CFG}.get(name, value)
    return value


def parse_args(args: Sequence[Any]) -> dict[str, Any]:
    """The script's arguments → validated :data:`REFINER` values (raises :class:`ParamError`).

    Accepted: the positional list in :func:`ui` order (= the table's order), one dict of named values (``enabled``
    defaults to true: passing settings means "run it"), or ``[enabled, {named values}]``.
    """
    args = list(args)
    if args and isinstance(args[0], Mapping):
        raw: dict[str, Any] = {"enabled": True, **args[0]}
    elif len(args) >= 2 and isinstance(args[1], Mapping):
        raw = {"enabled": args[0], **args[1]}
    else:
        raw = dict(zip(REFINER.params, args))
    return REFINER.validate(_to_values(raw))


def _meant_to_run(args: Sequence[Any]) -> bool:
    """Whether arguments that failed validation were meant to switch the post-pass on (then the user is told)."""
    if not args:
        return False
    if isinstance(args[0], Mapping) or (len(args) >= 2 and isinstance(args[1], Mapping)):
        return True
    with contextlib.suppress(ParamError):
        return bool(REFINER["enabled"].coerce(args[0]))
    return True


# ---------------------------------------------------------------------------------------------------------------------
# The per-generation state kept on ``p``


@dataclass
class Run:
    """What one ``process_images`` call needs across hooks (a fresh object per call: X/Y/Z copies ``p`` shallowly)."""

    values: dict[str, Any] = field(default_factory=dict)
    choice: ModelChoice | None = None
    error: str | None = None
    failed: bool = False  # a pass failed: the remaining images stay unrefined (the error is in the infotext)
    jobs_added: bool = False
    accounted: set[int] = field(default_factory=set)  # batches whose post-pass job was ended (state.nextjob)
    batch_len: dict[int, int] = field(default_factory=dict)
    latent_batches: set[int] = field(default_factory=set)  # batches refined as latents in post_sample
    latent_originals: dict[int, list[Any]] = field(default_factory=dict)  # keep_original in latent mode
    originals: list[tuple[Any, str]] = field(default_factory=list)  # (image, infotext) shown after the results

    @property
    def active(self) -> bool:
        """Enabled, valid and with a model."""
        return self.choice is not None


def _run(p: Any) -> Run | None:
    run = getattr(p, RUN_ATTR, None)
    return run if isinstance(run, Run) else None


def _state() -> Any:
    from modules import shared

    return shared.state


def _should_stop() -> bool:
    state = _state()
    return bool(state.interrupted or state.skipped)


def _clear_keys(p: Any, *, error_too: bool = False) -> None:
    """Remove our infotext keys (the error key only with ``error_too``)."""
    params = p.extra_generation_params
    for key in [key for key in params if isinstance(key, str) and key.startswith(PREFIX)]:
        if key != ERROR_KEY or error_too:
            del params[key]


def _set_keys(p: Any, items: Mapping[str, str] | None) -> None:
    """Our keys for the images whose infotext is written next (None: this image is not refined)."""
    _clear_keys(p)
    if items:
        p.extra_generation_params.update(items)


@contextlib.contextmanager
def _without_keys(p: Any) -> Iterator[None]:
    """Temporarily none of our keys (the pre-refiner image's infotext)."""
    saved = {k: v for k, v in p.extra_generation_params.items() if isinstance(k, str) and k.startswith(PREFIX)}
    _clear_keys(p, error_too=True)
    try:
        yield
    finally:
        p.extra_generation_params.update(saved)


def _warn(p: Any, run: Run, message: str, *, exc_info: bool = False) -> None:
    """Tell the user the post-pass did not run: infotext key, a comment under the image, the log, a toast."""
    from modules import errors

    run.error = message
    p.extra_generation_params[ERROR_KEY] = message
    text = f"Refiner post-pass skipped: {message}"
    with contextlib.suppress(Exception):
        p.comment(text)
    errors.report(f"[sd-webui-reimagine] {text}", exc_info=exc_info)
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # outside a page request gradio would only repeat it as a Python warning
        import gradio as gr

        gr.Warning(text)  # a toast in the page, where gradio can reach the request


def _fail(p: Any, run: Run, error: BaseException) -> None:
    """A pass failed: warn (with the traceback unless it is a user-fixable error) and stop refining this run."""
    run.failed = True
    if isinstance(error, ReimagineError):
        _warn(p, run, str(error))
    else:
        _warn(p, run, f"{type(error).__name__}: {error}", exc_info=True)


# ---------------------------------------------------------------------------------------------------------------------
# What the base used


def _plain(prompt: Any) -> str:
    """A WebUI prompt without extra-network tags (``<lora:x:1>``), which are not text for the refiner."""
    return re.sub(r"\s{2,}", " ", _EXTRA_NETWORK.sub("", str(prompt or ""))).strip()


def _base(p: Any, index: int) -> Any:
    """The base generation's settings for image ``index`` of the batch (blank refiner controls inherit them)."""
    from ..engine.refiner import BaseSettings

    prompts = list(getattr(p, "prompts", None) or [getattr(p, "prompt", "")])
    negatives = list(getattr(p, "negative_prompts", None) or [getattr(p, "negative_prompt", "")])
    if getattr(p, "enable_hr", False) and getattr(p, "hr_prompts", None):  # what Hires fix last used
        prompts = list(p.hr_prompts)
        negatives = list(getattr(p, "hr_negative_prompts", None) or negatives)
    pick = min(index, len(prompts) - 1) if prompts else 0
    return BaseSettings(
        prompt=_plain(prompts[pick] if prompts else ""),
        negative_prompt=_plain(negatives[min(index, len(negatives) - 1)] if negatives else ""),
        cfg_scale=float(p.cfg_scale) if getattr(p, "cfg_scale", None) is not None else None,
        sampler_name=getattr(p, "sampler_name", None),
        scheduler=getattr(p, "scheduler", None),
    )


def base_is_sdxl(p: Any) -> bool:
    """Whether the WebUI's model is SDXL (same latent space as the refiner): ``is_sdxl`` in A1111 and Forge."""
    model = getattr(p, "sd_model", None)
    if model is None or not hasattr(model, "is_sdxl"):
        from modules import shared

        model = shared.sd_model
    return bool(getattr(model, "is_sdxl", False))


def _request(run: Run, p: Any, index: int, **fields: Any) -> Any:
    from ..engine.refiner import RefineRequest

    engine = {name: run.values[name] for name in REFINER_ENGINE_PARAMS}
    return RefineRequest(base=_base(p, index), **{**engine, **fields})


def _infotext_items(request: Any, pipe: Any, mode: str, run: Run) -> dict[str, str]:
    """The engine's ``Refiner post-pass …`` keys (+ keep_original when the table gives it a key)."""
    from ..engine.refiner import infotext_items

    items = infotext_items(request.resolved(), pipe, mode)
    key = REFINER["keep_original"].infotext
    if key and run.values.get("keep_original"):
        items[key] = "True"
    return items


# ---------------------------------------------------------------------------------------------------------------------
# Progress


def _add_jobs(p: Any, run: Run) -> None:
    """Once per run, after the WebUI has set its job count (Hires fix doubles it during the first sampling): one
    more job per batch for the post-pass."""
    if run.jobs_added:
        return
    run.jobs_added = True
    state = _state()
    if int(getattr(state, "job_count", 0) or 0) > 0:
        state.job_count += int(getattr(p, "n_iter", 1) or 1)


def _end_job(run: Run, batch: int) -> None:
    """The post-pass job of ``batch`` is over (whatever happened): one ``state.nextjob()``."""
    if run.jobs_added and batch not in run.accounted:
        run.accounted.add(batch)
        _state().nextjob()


@contextlib.contextmanager
def _job_text() -> Iterator[None]:
    """Say "Refiner post-pass (SDXL)" under the progress bar while the pass runs; the WebUI's text afterwards."""
    state = _state()
    saved = getattr(state, "textinfo", None)
    state.textinfo = LABEL
    try:
        yield
    finally:
        state.textinfo = saved


def _reporter(offset: int, total: int) -> Callable[[int, int], None]:
    def progress(step: int, _steps: int) -> None:
        state = _state()
        state.sampling_steps = total
        state.sampling_step = min(total, offset + step)

    return progress


# ---------------------------------------------------------------------------------------------------------------------
# Hooks


def process(p: Any, *args: Any) -> None:
    """Read and check the arguments; find the model (a missing one is reported now, before anything runs)."""
    run = Run()
    setattr(p, RUN_ATTR, run)
    _clear_keys(p, error_too=True)  # X/Y/Z cells share one extra_generation_params dict
    try:
        values = parse_args(args)
        overrides = getattr(p, XYZ_ATTR, None)
        if overrides:  # an X/Y/Z axis of ours switches the post-pass on for its cells
            values = REFINER.validate(_to_values({**values, **overrides, "enabled": True}))
    except ParamError as error:
        if _meant_to_run(args):
            _warn(p, run, f"invalid arguments for {TITLE!r}: {error}")
        return
    if not values["enabled"]:
        return
    run.values = values
    try:
        run.choice = find_model(values["model"])
    except ReimagineError as error:
        _warn(p, run, str(error))


def process_batch(p: Any, *args: Any, batch_number: int = 0, **kwargs: Any) -> None:
    """Safety net: a previous batch whose post-pass job was not ended (its last image never reached us)."""
    run = _run(p)
    if run is not None and run.active:
        for batch in range(batch_number):
            _end_job(run, batch)


def postprocess_batch_list(p: Any, pp: Any, *args: Any, batch_number: int = 0, **kwargs: Any) -> None:
    """Remember how many images this batch has (the last one ends the post-pass job)."""
    run = _run(p)
    if run is not None and run.active:
        run.batch_len[batch_number] = len(pp.images)


def post_sample(p: Any, ps: Any, *args: Any) -> None:
    """Latent mode: refine an SDXL base's latents before the WebUI decodes them (once)."""
    run = _run(p)
    if run is None or not run.active:
        return
    _add_jobs(p, run)
    samples = ps.samples
    if (
        run.failed
        or run.values["mode"] == "Pixel"
        or getattr(samples, "already_decoded", False)
        or not hasattr(samples, "ndim")
        or samples.ndim != 4
        or samples.shape[1] != 4
        or not base_is_sdxl(p)
    ):
        return  # pixel mode in postprocess_image
    batch = int(getattr(p, "iteration", 0))
    if _should_stop():
        return
    _end_job(run, batch)  # the sampling job is over; ours runs now, the WebUI's nextjob after decoding ends it
    originals = _decode_originals(p, samples) if run.values["keep_original"] else None
    try:
        refined = _refine_latents(p, run, samples)
    except Exception as error:  # noqa: BLE001 - never break the generation
        _fail(p, run, error)
        _set_keys(p, None)
        return
    if refined is None:
        return
    latents, items = refined
    ps.samples = latents.to(device=samples.device, dtype=samples.dtype)
    run.latent_batches.add(batch)
    if originals is not None:
        run.latent_originals[batch] = originals
    _set_keys(p, items)


def _refine_latents(p: Any, run: Run, samples: Any) -> tuple[Any, dict[str, str]] | None:
    """Refine the batch's latents (one engine call per run of equal prompts); None = not refined (latents that do
    not fit this refiner, or stopped)."""
    from ..engine.refiner import latents_fit_refiner, planned_steps, refine

    seeds = [int(seed) for seed in (getattr(p, "seeds", None) or [])] or [int(getattr(p, "seed", 0) or 0)]
    count = samples.shape[0]
    seeds = (seeds * count)[:count] if len(seeds) < count else seeds[:count]
    groups: list[list[int]] = []  # runs of images with the same prompts: one engine call each
    keys = [(base.prompt, base.negative_prompt) for base in (_base(p, index) for index in range(count))]
    for index, key in enumerate(keys):
        if groups and keys[groups[-1][0]] == key:
            groups[-1].append(index)
        else:
            groups.append([index])
    planned = planned_steps(run.values["steps"], run.values["strength"])
    total = max(1, planned * len(groups))
    pieces: list[Any] = []
    items: dict[str, str] = {}
    with _job_text(), host().pipeline(run.choice, "refiner") as pipe:
        if not latents_fit_refiner(samples, "sdxl", pipe):
            return None
        for number, group in enumerate(groups):
            request = _request(
                run,
                p,
                group[0],
                latents=samples[group[0] : group[-1] + 1].detach(),
                latent_family="sdxl",
                seeds=seeds[group[0] : group[-1] + 1],
                return_latents=True,
            )
            result = refine(pipe, request, progress=_reporter(number * planned, total), should_stop=_should_stop)
            if result.interrupted or result.latents is None:
                return None  # stopped: the batch stays as the base made it
            pieces.append(result.latents)
            if not items:
                items = _infotext_items(request, pipe, result.mode, run)
    import torch

    return torch.cat(pieces), items


def _decode_originals(p: Any, samples: Any) -> list[Any] | None:
    """The base's images for "keep the pre-refiner image" in latent mode (one extra decode with the WebUI's VAE,
    before the post-pass needs the GPU)."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        from modules import processing

        if hasattr(processing, "decode_latent_batch"):
            decoded = processing.decode_latent_batch(p.sd_model, samples, target_device=torch.device("cpu"))
        else:
            decoded = processing.decode_first_stage(p.sd_model, samples)
        pixels = torch.clamp((torch.stack(list(decoded)).float() + 1.0) / 2.0, 0.0, 1.0)
        return [
            Image.fromarray((255.0 * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8)) for x in pixels.unbind(0)
        ]
    except Exception as error:  # noqa: BLE001 - the refined image matters more than the kept original
        from modules import errors

        errors.report(f"[sd-webui-reimagine] cannot decode the pre-refiner image: {error}", exc_info=True)
        return None


def postprocess_image(p: Any, pp: Any, *args: Any) -> None:
    """Pixel mode: refine the final image (after Hires fix and face restoration, before saving)."""
    run = _run(p)
    if run is None or not run.active:
        return
    batch = int(getattr(p, "iteration", 0))
    index = int(getattr(p, "batch_index", 0))
    try:
        if batch in run.latent_batches:
            originals = run.latent_originals.get(batch)
            if originals and index < len(originals):
                _keep_original(p, run, originals[index], index)
            return
        if run.failed or _should_stop():
            _set_keys(p, None)
            return
        original = pp.image
        try:
            refined = _refine_image(p, run, original, index)
        except Exception as error:  # noqa: BLE001 - never break the generation
            _fail(p, run, error)
            refined = None
        if refined is None:
            _set_keys(p, None)
            return
        image, items = refined
        if run.values["keep_original"]:
            _keep_original(p, run, original, index)
        pp.image = image
        _set_keys(p, items)
        with contextlib.suppress(Exception):
            _state().assign_current_image(image)
    finally:
        if index >= run.batch_len.get(batch, len(getattr(p, "seeds", None) or [0])) - 1:
            _end_job(run, batch)


def _refine_image(p: Any, run: Run, image: Any, index: int) -> tuple[Any, dict[str, str]] | None:
    """One image through the engine in pixel mode; None = stopped."""
    from ..engine.refiner import planned_steps, refine

    seeds = list(getattr(p, "seeds", None) or [])
    seed = int(seeds[index]) if index < len(seeds) else int(getattr(p, "seed", 0) or 0)
    planned = planned_steps(run.values["steps"], run.values["strength"])
    images = run.batch_len.get(int(getattr(p, "iteration", 0)), len(seeds) or 1)
    request = _request(run, p, index, images=[image], seeds=[seed], mode="Pixel")
    with _job_text(), host().pipeline(run.choice, "refiner") as pipe:
        result = refine(
            pipe, request, progress=_reporter(index * planned, max(1, planned * images)), should_stop=_should_stop
        )
        if result.interrupted or not result.images:
            return None
        refined = result.images[0]
        return refined, _infotext_items(request, pipe, result.mode, run)


def _keep_original(p: Any, run: Run, image: Any, index: int) -> None:
    """Save the pre-refiner image with a ``-before-refiner`` suffix (when the WebUI saves samples) and keep it for
    the gallery."""
    from modules import images, processing, shared

    with _without_keys(p):
        text = processing.create_infotext(
            p,
            p.prompts,
            p.seeds,
            p.subseeds,
            index=index,
            all_negative_prompts=getattr(p, "negative_prompts", None),
        )
    image.info["parameters"] = text
    if p.save_samples():
        images.save_image(
            image,
            p.outpath_samples,
            "",
            p.seeds[index],
            p.prompts[index],
            shared.opts.samples_format,
            info=text,
            p=p,
            suffix=BEFORE_SUFFIX,
        )
    run.originals.append((image, text))


def postprocess(p: Any, processed: Any, *args: Any) -> None:
    """Show the kept pre-refiner images after the results (images and infotexts stay index-aligned)."""
    run = _run(p)
    if run is None:
        return
    for batch in range(int(getattr(p, "n_iter", 1) or 1)):
        if batch in run.batch_len:
            _end_job(run, batch)
    if run.originals:
        processed.images.extend(image for image, _ in run.originals)
        processed.infotexts.extend(text for _, text in run.originals)


# ---------------------------------------------------------------------------------------------------------------------
# UI


class PasteKey(str):
    """An infotext key that is also its paste function.

    The WebUI calls a callable paste field with the parsed infotext; a ``str`` key is what "Send to img2img" matches
    against ``paste_field_names`` (both tabs' fields carry equal keys) and what Settings → "Disregard fields from
    pasted infotext" lists. Being both lets blank (inherited) values be restored as blank and still be copied.
    """

    def __new__(cls, key: str, function: Callable[[Mapping[str, Any]], Any]) -> PasteKey:
        obj = super().__new__(cls, key)
        obj.function = function
        return obj

    def __call__(self, params: Mapping[str, Any]) -> Any:
        return self.function(params)


def paste_value(name: str, params: Mapping[str, Any]) -> Any:
    """What pasting ``params`` (a parsed infotext) sets control ``name`` to; None = leave it unchanged.

    Without our keys the post-pass is switched off and nothing else changes. With them: every written value is
    restored; inherited ones (not written) go back to blank; the model is matched by name among the offered ones.
    """
    if PREFIX not in params:
        return False if name == "enabled" else None
    if name == "enabled":
        return True
    if name == "model":
        choice = closest(host().models(REFINER_KINDS), params.get(PREFIX))
        return choice.name if choice is not None else None
    found = REFINER.from_infotext(params)
    if name in found:
        return _to_ui(name, found[name])
    param = REFINER[name]
    if param.inherit or name in ("prompt", "negative_prompt"):
        return _to_ui(name, None) if param.inherit else ""
    return None


def paste_key(name: str) -> PasteKey:
    """The paste field key of control ``name``."""
    key = REFINER[name].infotext or f"{PREFIX} {name.replace('_', ' ')}"
    if name == "enabled":
        key = PREFIX
    return PasteKey(key, lambda params: paste_value(name, params))


def steps_note(steps: Any, strength: Any) -> str:
    """The honest step count shown under the sliders (HTML)."""
    from ..engine.refiner import planned_steps

    try:
        steps_i, strength_f = int(float(steps)), float(strength)
    except (TypeError, ValueError):
        return ""
    runs = planned_steps(steps_i, strength_f)
    if runs == 0:
        text = "Strength 0: the image is left unchanged (no refiner step runs)."
    else:
        text = f"Will run {runs} refiner step{'s' if runs != 1 else ''} on each image"
        if runs < steps_i:
            text += f" (strength {strength_f:g} leaves room for no more)"
        text += "; strength sets how much is repainted, not how many steps run."
    return f"<p class='reimagine-refiner-steps'>{html.escape(text)}</p>"


@contextlib.contextmanager
def _accordion(label: str, elem_id: str) -> Iterator[Any]:
    """The WebUI's InputAccordion (header checkbox = enabled); a gr.Accordion with a checkbox where it is missing."""
    import gradio as gr

    try:
        from modules.ui_components import InputAccordion
    except ImportError:
        InputAccordion = None  # noqa: N806
    if InputAccordion is not None:
        with InputAccordion(False, label=label, elem_id=elem_id) as enabled:
            yield enabled
        return
    with gr.Accordion(label, open=False, elem_id=elem_id):
        yield gr.Checkbox(label="Enable", value=False, elem_id=f"{elem_id}-checkbox")


def _row() -> Any:
    import gradio as gr

    try:
        from modules.ui_components import FormRow

        return FormRow()
    except ImportError:
        return gr.Row()


def ui(script: Any, is_img2img: bool) -> list[Any]:
    """Build the accordion; return the controls in :data:`REFINER` order (the positional API arguments)."""
    import gradio as gr

    def eid(name: str) -> str:
        return script.elem_id(name)

    names = model_names()
    components: dict[str, Any] = {}
    with _accordion(LABEL, eid("enabled")) as enabled:
        components["enabled"] = enabled
        gr.HTML(f"<p class='reimagine-refiner-info'>{html.escape(INFO)}</p>", elem_id=eid("info"))
        with _row():
            components["model"] = gr.Dropdown(
                label=REFINER["model"].label,
                choices=names,
                value=names[0] if names else None,
                elem_id=eid("model"),
            )
            script.refresh_button = _refresh_button(components["model"], eid("model_refresh"))
            components["mode"] = gr.Radio(
                label=REFINER["mode"].label,
                choices=list(REFINER_MODES),
                value=REFINER["mode"].default,
                elem_id=eid("mode"),
            )
        with _row():
            components["strength"] = _slider("strength", eid)
            components["steps"] = _slider("steps", eid)
        note = gr.HTML(steps_note(REFINER["steps"].default, REFINER["strength"].default), elem_id=eid("steps_note"))
        with _row():
            cfg = REFINER["cfg_scale"]
            components["cfg_scale"] = gr.Slider(
                minimum=0.0,
                maximum=cfg.maximum,
                step=cfg.step,
                value=SAME_CFG,
                label=CFG_LABEL,
                elem_id=eid("cfg_scale"),
            )
            components["sampler_name"] = gr.Dropdown(
                label=REFINER["sampler_name"].label,
                choices=[SAME_SAMPLER, *REFINER["sampler_name"].choices],
                value=SAME_SAMPLER,
                elem_id=eid("sampler_name"),
            )
            components["scheduler"] = gr.Dropdown(
                label=REFINER["scheduler"].label,
                choices=[SAME_SCHEDULER, *REFINER["scheduler"].choices],
                value=SAME_SCHEDULER,
                elem_id=eid("scheduler"),
            )
        for name, placeholder in PLACEHOLDERS.items():
            components[name] = gr.Textbox(
                label=REFINER[name].label, lines=2, placeholder=placeholder, value="", elem_id=eid(name)
            )
        with _row():
            components["aesthetic_score"] = _slider("aesthetic_score", eid)
            components["negative_aesthetic_score"] = _slider("negative_aesthetic_score", eid)
            components["keep_original"] = gr.Checkbox(
                label=REFINER["keep_original"].label,
                value=REFINER["keep_original"].default,
                elem_id=eid("keep_original"),
            )

    for trigger in (components["steps"], components["strength"]):
        trigger.change(
            fn=steps_note,
            inputs=[components["steps"], components["strength"]],
            outputs=[note],
            show_progress="hidden",
            queue=False,
        )
    controls = [components[name] for name in REFINER.params]
    keys = [paste_key(name) for name in REFINER.params]
    try:
        from modules.infotext_utils import PasteField
    except ImportError:  # before v1.8.0: plain pairs

        def PasteField(component: Any, target: Any) -> tuple:  # noqa: N802
            return (component, target)

    script.infotext_fields = [PasteField(control, key) for control, key in zip(controls, keys)]
    script.paste_field_names = [str(key) for key in dict.fromkeys(keys)]
    return controls


def _slider(name: str, eid: Callable[[str], str]) -> Any:
    import gradio as gr

    param = REFINER[name]
    return gr.Slider(
        minimum=param.minimum,
        maximum=param.maximum,
        step=param.step,
        value=param.default,
        label=param.label,
        elem_id=eid(name),
    )


def _refresh_button(dropdown: Any, elem_id: str) -> Any:
    """🔄 next to the model dropdown: rescan the model folders."""

    def refresh() -> None:
        host().models(REFINER_KINDS, refresh=True)

    def choices() -> dict[str, Any]:
        return {"choices": model_names()}

    try:
        from modules.ui_common import create_refresh_button
    except ImportError:
        return None
    return create_refresh_button(dropdown, refresh, choices, elem_id)


# ---------------------------------------------------------------------------------------------------------------------
# X/Y/Z plot


def _xyz_apply(name: str) -> Callable[[Any, Any, Any], None]:
    def apply(p: Any, value: Any, _values: Any) -> None:
        setattr(p, XYZ_ATTR, {**(getattr(p, XYZ_ATTR, None) or {}), name: value})  # a new dict: cells share p's

    return apply


def _xyz_confirm(name: str) -> Callable[[Any, Any], None]:
    def confirm(_p: Any, values: Sequence[Any]) -> None:
        if name == "model":
            offered = model_names()
            for value in values:
                if value not in offered:
                    raise RuntimeError(f"Unknown SDXL refiner model: {value} (offered: {', '.join(offered) or 'none'})")
            return
        for value in values:
            REFINER[name].coerce(value)

    return confirm


def register_xyz_axes() -> bool:
    """Add strength / steps / model axes to the built-in X/Y/Z plot script when it is loaded (idempotent).

    The script file ``scripts/xyz_grid.py`` is loaded as module ``xyz_grid.py`` (not in ``sys.modules``); it is found
    in ``scripts.scripts_data``, the usual way extensions add axes.
    """
    from modules import scripts

    module = next(
        (
            data.module
            for data in scripts.scripts_data
            if getattr(data.script_class, "__module__", "") == "xyz_grid.py"
            and hasattr(data.module, "AxisOption")
            and hasattr(data.module, "axis_options")
        ),
        None,
    )
    if module is None:
        return False
    present = {getattr(option, "label", None) for option in module.axis_options}
    types = {"strength": float, "steps": int, "model": str}
    for name, label in XYZ_AXES.items():
        if label in present:
            continue
        kwargs: dict[str, Any] = {"confirm": _xyz_confirm(name)}
        if name == "model":
            kwargs["choices"] = model_names
        module.axis_options.append(module.AxisOption(label, types[name], _xyz_apply(name), **kwargs))
    return True
