"""Stand-in of modules/sd_schedulers.py: the "Schedule type" choices of A1111 v1.10.1 (name, label, aliases)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Scheduler:
    name: str
    label: str
    function: Any
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list | None = None


schedulers = [
    Scheduler("automatic", "Automatic", None),
    Scheduler("uniform", "Uniform", None, need_inner_model=True),
    Scheduler("karras", "Karras", None, default_rho=7.0),
    Scheduler("exponential", "Exponential", None),
    Scheduler("polyexponential", "Polyexponential", None, default_rho=1.0),
    Scheduler("sgm_uniform", "SGM Uniform", None, need_inner_model=True, aliases=["SGMUniform"]),
    Scheduler("kl_optimal", "KL Optimal", None),
    Scheduler("align_your_steps", "Align Your Steps", None),
    Scheduler("simple", "Simple", None, need_inner_model=True),
    Scheduler("normal", "Normal", None, need_inner_model=True),
    Scheduler("ddim", "DDIM", None, need_inner_model=True),
    Scheduler("beta", "Beta", None, need_inner_model=True),
]

schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
