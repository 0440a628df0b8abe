"""The WebUI's sampler and schedule names, mapped to diffusers schedulers — the one table for both engines."""

from __future__ import annotations

import inspect
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

# Config keys of a model's own scheduler that describe the *model* (not the sampler) and carry over.
_MODEL_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "timestep_spacing",
    "steps_offset",
    "rescale_betas_zero_snr",
)


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
    config = {key: model_config[key] for key in _MODEL_KEYS if key in model_config and key in accepted}
    config.update(spec.config)
    config.update(SCHEDULES[resolved])
    return scheduler_class.from_config(config)


def resolved_schedule(sampler: str, schedule: str) -> str:
    """The schedule that ``Automatic`` stands for with this sampler (for the infotext)."""
    return SAMPLERS[sampler].schedules[0] if schedule == "Automatic" else schedule
