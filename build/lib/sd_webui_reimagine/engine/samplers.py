"""The WebUI's sampler and schedule names, mapped to diffusers schedulers — the one table for both engines."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import ParamError


class SamplerSpec(NamedTuple):
    """A WebUI sampler: diffusers scheduler class, its extra config, the schedules it supports (first = Automatic)."""

    scheduler_class: str
    config: dict[str, Any]
    schedules: tuple[str, ...]


_UNIFORM = ("Uniform",)
_SIGMA_SCHEDULES = ("Uniform", "Karras", "Exponential")

# "Automatic" follows the WebUI: Karras for the DPM++ family, uniform spacing otherwise. Exponential spacing is offered
# where diffusers 0.31 implements it correctly (its multistep DPM/UniPC versions fail with it).
SAMPLERS: dict[str, SamplerSpec] = {
    "DPM++ 2M": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, ("Karras", "Uniform")
    ),
    "DPM++ 2M SDE": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, ("Karras", "Uniform")
    ),
    "DPM++ SDE": SamplerSpec("DPMSolverSDEScheduler", {}, ("Karras", "Uniform")),
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", {}, _UNIFORM),
    "Euler": SamplerSpec("EulerDiscreteScheduler", {}, _SIGMA_SCHEDULES),
    "Heun": SamplerSpec("HeunDiscreteScheduler", {}, _SIGMA_SCHEDULES),
    "LMS": SamplerSpec("LMSDiscreteScheduler", {}, ("Uniform", "Karras")),
    "DDIM": SamplerSpec("DDIMScheduler", {}, _UNIFORM),
    "UniPC": SamplerSpec("UniPCMultistepScheduler", {}, ("Uniform", "Karras")),
}

# Schedule (sigma spacing) → the diffusers config switch that selects it.
SCHEDULES: dict[str, dict[str, Any]] = {
    "Automatic": {},
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
}

SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)
SCHEDULE_NAMES: tuple[str, ...] = tuple(SCHEDULES)

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
