"""The script hooks: latent mode in ``post_sample``, pixel mode in ``postprocess_image``, and the bookkeeping hooks
around them."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from ...errors import ParamError, ReimagineError
from ..host import shared_host
from .controls import (
    BEFORE_SUFFIX,
    FALLBACK_BASE,
    FALLBACK_HIRES,
    FALLBACK_LATENTS,
    RUN_ATTR,
    TITLE,
    XYZ_ATTR,
    Run,
    find_model,
    meant_to_run,
    parse_args,
    run_of,
)
from .progress import job_text, live_preview, reporter, should_stop
from .report import clear_keys, fail, refiner_keys, set_keys, warn, without_keys

_EXTRA_NETWORK = re.compile(r"<\w+:[^>]+>")  # <lora:name:1.0>: the WebUI's extra-network syntax, not prompt text

NAN_LATENTS = (
    "the refiner produced NaN latents (an fp16 overflow in its UNet; try --no-half or an fp32 refiner); the base "
    "image is kept"
)


VIDEO_BASE = (
    "the base model makes video (Wan on Forge Neo): the post-pass refines still images and would refine each frame "
    "on its own, after the video is assembled, so it does not run"
)


def base_makes_video(p: Any) -> bool:
    """Whether the WebUI's model is a video model: Forge Neo's ``sd_model.is_wan`` (Wan 2.x). Neo then treats the
    batch as the frames of one video, assembled before ``postprocess_image`` (docs/webui-contract.md §12)."""
    from modules import shared

    model = getattr(shared, "sd_model", None) or getattr(p, "sd_model", None)
    return bool(getattr(model, "is_wan", False))


def _plain(prompt: Any) -> str:
    """A WebUI prompt without extra-network tags (``<lora:x:1>``), which are not text for the refiner."""
    return re.sub(r"\s{2,}", " ", _EXTRA_NETWORK.sub("", str(prompt or ""))).strip()


def base_settings(p: Any, index: int) -> Any:
    """The base generation's settings for image ``index`` of the batch (blank refiner controls inherit them)."""
    from ...engine.refiner import BaseSettings

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


def request_for(run: Run, p: Any, index: int, **fields: Any) -> Any:
    """The engine request for image ``index`` (the values were checked once, in :func:`process`)."""
    from ...engine.refiner import RefineRequest

    return RefineRequest.from_checked(run.values, base_settings(p, index), **fields)


def process(p: Any, *args: Any) -> None:
    """Read and check the arguments; find the model (a missing one is reported now, before anything runs)."""
    run = Run()
    setattr(p, RUN_ATTR, run)
    clear_keys(p, error_too=True)  # X/Y/Z cells share one extra_generation_params dict
    try:
        values = parse_args(args, getattr(p, XYZ_ATTR, None))  # the job's one check of the values
    except ParamError as error:
        if meant_to_run(args):
            warn(p, f"invalid arguments for {TITLE!r}: {error}")
        return
    if not values["enabled"]:
        return
    if base_makes_video(p):
        warn(p, VIDEO_BASE)
        return
    run.values = values
    try:
        run.choice = find_model(values["model"])
    except ReimagineError as error:
        warn(p, str(error))


def process_batch(p: Any, *args: Any, batch_number: int = 0, **kwargs: Any) -> None:
    """Safety net: a previous batch whose post-pass job was not ended (its last image never reached us)."""
    run = run_of(p)
    if run is not None and run.active:
        run.jobs.end_before(batch_number)


def postprocess_batch_list(p: Any, pp: Any, *args: Any, batch_number: int = 0, **kwargs: Any) -> None:
    """Remember how many images this batch has (the last one ends the post-pass job)."""
    run = run_of(p)
    if run is not None and run.active:
        run.jobs.sizes[batch_number] = len(pp.images)


def post_sample(p: Any, ps: Any, *args: Any) -> None:
    """Latent mode: refine an SDXL base's latents before the WebUI decodes them (once)."""
    run = run_of(p)
    if run is None or not run.active:
        return
    run.jobs.add(p)
    samples = ps.samples
    if run.failed or run.values["mode"] == "Pixel":
        return  # pixel mode in postprocess_image
    if getattr(samples, "already_decoded", False):
        run.fallback = FALLBACK_HIRES  # the WebUI decoded the Hires pass's latents inside sample_hr_pass
        return
    if not hasattr(samples, "ndim") or samples.ndim != 4 or samples.shape[1] != 4 or not base_is_sdxl(p):
        run.fallback = FALLBACK_BASE
        return
    batch = int(getattr(p, "iteration", 0))
    if should_stop():
        return
    run.jobs.end(batch)  # the sampling job is over; ours runs now, the WebUI's nextjob after decoding ends it
    originals = _decode_originals(p, samples) if run.values["keep_original"] else None
    try:
        refined = _refine_latents(p, run, samples)
    except Exception as error:  # noqa: BLE001 - never break the generation
        fail(p, run, error)
        set_keys(p, None)
        return
    if refined is None:
        return
    latents, items = refined
    if not bool(latents.isfinite().all()):  # the WebUI would raise NansException on them and lose the generation
        fail(p, run, ReimagineError(NAN_LATENTS))
        set_keys(p, None)
        return
    ps.samples = latents.to(device=samples.device, dtype=samples.dtype)
    run.latent_batches.add(batch)
    if originals is not None:
        run.latent_originals[batch] = originals
    set_keys(p, items)


def _refine_latents(p: Any, run: Run, samples: Any) -> tuple[Any, dict[str, str]] | None:
    """Refine the batch's latents (one engine call per run of equal prompts); None = not refined (latents that do
    not fit this refiner, or stopped)."""
    from ...engine.refiner import latents_fit_refiner, planned_steps, refine

    seeds = [int(seed) for seed in (getattr(p, "seeds", None) or [])] or [int(getattr(p, "seed", 0) or 0)]
    count = samples.shape[0]
    seeds = (seeds * count)[:count] if len(seeds) < count else seeds[:count]
    groups: list[list[int]] = []  # runs of images with the same prompts: one engine call each
    keys = [(base.prompt, base.negative_prompt) for base in (base_settings(p, index) for index in range(count))]
    for index, key in enumerate(keys):
        if groups and keys[groups[-1][0]] == key:
            groups[-1].append(index)
        else:
            groups.append([index])
    planned = planned_steps(run.values["steps"], run.values["strength"])
    total = max(1, planned * len(groups))
    pieces: list[Any] = []
    items: dict[str, str] = {}
    job = {"width": samples.shape[-1] * 8, "height": samples.shape[-2] * 8, "batch_size": max(map(len, groups))}
    with job_text(), shared_host().pipeline(run.choice, "refiner", job) as pipe:
        if not latents_fit_refiner(samples, "sdxl", pipe):
            run.fallback = FALLBACK_LATENTS
            return None
        for number, group in enumerate(groups):
            request = request_for(
                run,
                p,
                group[0],
                latents=samples[group[0] : group[-1] + 1].detach(),
                latent_family="sdxl",
                seeds=seeds[group[0] : group[-1] + 1],
                return_latents=True,
            )
            result = refine(
                pipe,
                request,
                progress=reporter(number * planned, total),
                should_stop=should_stop,
                preview=live_preview(number * planned),
            )
            if result.interrupted or result.latents is None:
                return None  # stopped: the batch stays as the base made it
            pieces.append(result.latents)
            if not items:
                items = refiner_keys(result, run)
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
    run = run_of(p)
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
        if run.failed or should_stop():
            set_keys(p, None)
            return
        original = pp.image
        try:
            refined = _refine_image(p, run, original, index)
        except Exception as error:  # noqa: BLE001 - never break the generation
            fail(p, run, error)
            refined = None
        if refined is None:
            set_keys(p, None)
            return
        image, items = refined
        if run.values["keep_original"]:
            _keep_original(p, run, original, index)
        pp.image = image
        set_keys(p, items)
        with contextlib.suppress(Exception):
            shared_host().control().preview(image)  # the finished image (when live previews are on)
    finally:
        run.jobs.image_done(batch, index, len(getattr(p, "seeds", None) or [0]))


def _refine_image(p: Any, run: Run, image: Any, index: int) -> tuple[Any, dict[str, str]] | None:
    """One image through the engine in pixel mode; None = stopped."""
    from ...engine.refiner import planned_steps, refine

    seeds = list(getattr(p, "seeds", None) or [])
    seed = int(seeds[index]) if index < len(seeds) else int(getattr(p, "seed", 0) or 0)
    planned = planned_steps(run.values["steps"], run.values["strength"])
    images = run.jobs.size(int(getattr(p, "iteration", 0)), len(seeds) or 1)
    request = request_for(run, p, index, images=[image], seeds=[seed], mode="Pixel")
    job = {"width": image.width, "height": image.height, "batch_size": 1}
    with job_text(), shared_host().pipeline(run.choice, "refiner", job) as pipe:
        result = refine(
            pipe,
            request,
            progress=reporter(index * planned, max(1, planned * images)),
            should_stop=should_stop,
            preview=live_preview(index * planned),
        )
        if result.interrupted or not result.images:
            return None
        refined = result.images[0]
        return refined, refiner_keys(result, run)


def _keep_original(p: Any, run: Run, image: Any, index: int) -> None:
    """Save the pre-refiner image with a ``-before-refiner`` suffix (when the WebUI saves samples) and keep it for
    the gallery."""
    from modules import images, processing, shared

    with without_keys(p):
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
    run = run_of(p)
    if run is None:
        return
    run.jobs.end_seen(int(getattr(p, "n_iter", 1) or 1))
    if run.originals:
        processed.images.extend(image for image, _ in run.originals)
        processed.infotexts.extend(text for _, text in run.originals)
