"""Every sampler is built on the model's own scheduler config (oracle: the model's scheduler_config.json files in
extension/configs/, and diffusers' own ``DDIMScheduler.from_config`` on that config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from extension.engine.samplers import make_scheduler
from extension.sampler_names import SAMPLERS

CONFIGS = Path(__file__).resolve().parents[2] / "extension" / "configs"
MODELS = ("unclip-h", "unclip-l", "sdxl-base", "sdxl-refiner")

# Keys that describe the model, never the sampler: the scheduler the user picks must keep them as the model says.
MODEL_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "timestep_spacing",
    "steps_offset",
    "clip_sample",
    "clip_sample_range",
    "set_alpha_to_one",
    "sample_max_value",
    "interpolation_type",
    "rescale_betas_zero_snr",
    "thresholding",
)


def _model_config(model: str) -> dict:
    """The model's scheduler_config.json as written on disk (as diffusers' ``from_pretrained`` reads it)."""
    return json.loads((CONFIGS / model / "scheduler" / "scheduler_config.json").read_text())


def _loaded_config(model: str) -> dict:
    """What ``pipe.scheduler.config`` holds: the file loaded by its own class (defaults filled in)."""
    import diffusers

    raw = _model_config(model)
    return dict(getattr(diffusers, raw["_class_name"]).from_config(raw).config)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sampler_keeps_the_model_config(model: str, sampler: str) -> None:
    raw = _model_config(model)
    for schedule in SAMPLERS[sampler].schedules:
        config = make_scheduler(_loaded_config(model), sampler, schedule).config
        for key in MODEL_KEYS:
            if key in raw and key in config:
                assert config[key] == raw[key], f"{sampler}/{schedule} on {model}: {key}={config[key]!r}"


@pytest.mark.parametrize("model", ["unclip-h", "sdxl-refiner"])
def test_sampler_choice_overrides_only_its_own_keys(model: str) -> None:
    """The schedule switch comes from the choice, not from the model (SDXL's config says use_karras_sigmas=false)."""
    karras = make_scheduler(_loaded_config(model), "DPM++ 2M", "Karras").config
    assert karras["use_karras_sigmas"] is True and karras["algorithm_type"] == "dpmsolver++"
    uniform = make_scheduler(_loaded_config(model), "Euler", "Uniform").config
    assert uniform["use_karras_sigmas"] is False


def _two_step_ddim(scheduler, sample: torch.Tensor) -> torch.Tensor:
    """Two DDIM steps with a fixed stand-in model output (a deterministic function of the sample and timestep)."""
    scheduler.set_timesteps(2)
    for t in scheduler.timesteps:
        model_output = 0.9 * sample + 0.002 * float(t)
        sample = scheduler.step(model_output, t, sample).prev_sample
    return sample


@pytest.mark.parametrize("model", ["unclip-h", "unclip-l"])
def test_ddim_matches_diffusers_on_the_model_config(model: str) -> None:
    """Oracle: diffusers' DDIMScheduler built from the model's scheduler_config.json (no clipping, ᾱ_final = ᾱ_0)."""
    from diffusers import DDIMScheduler

    sample = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0)) * 2.0
    expected = _two_step_ddim(DDIMScheduler.from_config(_model_config(model)), sample.clone())
    ours = _two_step_ddim(make_scheduler(_loaded_config(model), "DDIM", "Automatic"), sample.clone())
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
