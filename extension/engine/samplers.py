"""The WebUI's sampler and schedule names (``sampler_names.py``) mapped to diffusers schedulers — the mechanism for
both engines."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ..errors import ParamError
from ..sampler_names import SAMPLER_NAMES, SAMPLERS, SCHEDULE_NAMES, SCHEDULES

# Config keys that the sampler/schedule choice owns: a model's config says nothing about them (SDXL's config carries
# ``use_karras_sigmas: false`` only because its default scheduler is Euler). Everything else in the model's config
# (prediction type, betas, timestep spacing, steps offset, clip_sample, set_alpha_to_one, ...) describes the model.
_SAMPLER_KEYS = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "algorithm_type",
    "solver_order",
    "solver_type",
)


OPTIONAL_PACKAGES = {"DPMSolverSDEScheduler": "torchsde"}  # diffusers scheduler -> the package it needs


def make_scheduler(model_config: dict[str, Any], sampler: str, schedule: str = "Automatic"):
    """Build the diffusers scheduler for a WebUI ``sampler``/``schedule`` pair on a model's scheduler config."""
    import diffusers

    spec = SAMPLERS.get(sampler)
    if spec is None:
        raise ParamError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLER_NAMES)}")
    if schedule not in SCHEDULES:
        raise ParamError(f"unknown schedule type {schedule!r}; expected one of {', '.join(SCHEDULE_NAMES)}")
    resolved = resolved_schedule(sampler, schedule)
    if resolved not in spec.schedules:
        raise ParamError(
            f"sampler {sampler!r} does not support schedule type {resolved!r}; "
            f"use Automatic or one of {', '.join(spec.schedules)}"
        )

    scheduler_class = getattr(diffusers, spec.scheduler_class)
    accepted = inspect.signature(scheduler_class.__init__).parameters
    # The model's whole config, less the sampler's keys, as diffusers' ``from_config(pipe.scheduler.config)`` does it:
    # values the model's file did not set (``_use_default_values``) are the old class's defaults, not the model's.
    skipped = set(_SAMPLER_KEYS) | set(model_config.get("_use_default_values", ()))
    config = {key: value for key, value in model_config.items() if key in accepted and key not in skipped}
    config.update(spec.config)
    config.update(SCHEDULES[resolved])
    try:
        return scheduler_class.from_config(config)
    except ImportError:  # diffusers' stand-in class when an optional package is missing
        package = OPTIONAL_PACKAGES.get(spec.scheduler_class, "an optional package")
        raise ParamError(
            f"sampler {sampler!r} needs the Python package {package}, which is not installed "
            f"(pip install {package}, as the WebUI does); or choose another sampler"
        ) from None


def resolved_schedule(sampler: str, schedule: str) -> str:
    """The schedule that ``Automatic`` stands for with this sampler (for the infotext)."""
    return SAMPLERS[sampler].schedules[0] if schedule == "Automatic" else schedule


def seed_noise(scheduler: Any, seeds: Sequence[int]) -> None:
    """Seed an SDE sampler's Brownian noise from the images' seeds, as the WebUI does for DPM++ SDE (k-diffusion's
    ``BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=<this batch's seeds>)`` in modules/sd_samplers_common.py
    ``create_noise_sampler``). diffusers' DPMSolverSDEScheduler takes the seed (one per image) from its
    ``noise_sampler_seed`` attribute and draws a random one when it is None; other schedulers have none."""
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = [int(seed) for seed in seeds]
        scheduler.noise_sampler = None  # the next step builds the tree anew from these seeds
