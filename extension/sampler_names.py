"""The WebUI's sampler and schedule names and the diffusers scheduler each stands for — the one table for both
engines, the parameter tables (``params.py``) and the UI. Plain data: the mechanism that builds a scheduler from it is
``engine/samplers.py``."""

from __future__ import annotations

from typing import Any, NamedTuple


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
