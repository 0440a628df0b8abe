"""Stand-in of modules/sd_samplers.py: the sampler names of A1111 v1.10.1 (k-diffusion, timestep, LCM)."""

from __future__ import annotations

from collections import namedtuple

SamplerData = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])

_k_diffusion = [
    ("DPM++ 2M", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", ["k_dpmpp_sde"], {"scheduler": "karras", "second_order": True, "brownian_noise": True}),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": True}),
    (
        "DPM++ 2M SDE Heun",
        ["k_dpmpp_2m_sde_heun"],
        {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"},
    ),
    ("DPM++ 2S a", ["k_dpmpp_2s_a"], {"scheduler": "karras", "uses_ensd": True, "second_order": True}),
    (
        "DPM++ 3M SDE",
        ["k_dpmpp_3m_sde"],
        {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True},
    ),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", ["k_euler"], {}),
    ("LMS", ["k_lms"], {}),
    ("Heun", ["k_heun"], {"second_order": True}),
    ("DPM2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": True, "second_order": True}),
    (
        "DPM2 a",
        ["k_dpm_2_a"],
        {"scheduler": "karras", "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True},
    ),
    ("DPM fast", ["k_dpm_fast"], {"uses_ensd": True}),
    ("DPM adaptive", ["k_dpm_ad"], {"uses_ensd": True}),
    ("Restart", ["restart"], {"scheduler": "karras", "second_order": True}),
]
_timesteps = [
    ("DDIM", ["ddim"], {}),
    ("DDIM CFG++", ["ddim_cfgpp"], {}),
    ("PLMS", ["plms"], {}),
    ("UniPC", ["unipc"], {}),
]
_lcm = [("LCM", ["k_lcm"], {})]

all_samplers = [
    SamplerData(name, None, aliases, options) for name, aliases, options in _k_diffusion + _timesteps + _lcm
]
all_samplers_map = {x.name: x for x in all_samplers}
samplers = list(all_samplers)
samplers_for_img2img = list(all_samplers)
samplers_map: dict[str, str] = {}
for _sampler in all_samplers:
    samplers_map[_sampler.name.lower()] = _sampler.name
    for _alias in _sampler.aliases:
        samplers_map[_alias.lower()] = _sampler.name


def find_sampler_config(name):
    if name is not None:
        return all_samplers_map.get(name)
    return all_samplers[0]


def visible_sampler_names() -> list[str]:
    return [x.name for x in samplers]


def get_sampler_from_infotext(d: dict):
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[0]


def get_scheduler_from_infotext(d: dict):
    return get_sampler_and_scheduler(d.get("Sampler"), d.get("Schedule type"))[1]


def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic=True):
    """Resolve an infotext sampler name like "DPM++ 2M Karras" into ("DPM++ 2M", "Karras")."""
    from modules import sd_schedulers

    default_sampler = samplers[0]
    found_scheduler = sd_schedulers.schedulers_map.get(scheduler_name, sd_schedulers.schedulers[0])
    name = sampler_name or default_sampler.name
    for scheduler in sd_schedulers.schedulers:
        name_options = [scheduler.label, scheduler.name, *(scheduler.aliases or [])]
        for name_option in name_options:
            if name.endswith(" " + name_option):
                found_scheduler = scheduler
                name = name[0 : -(len(name_option) + 1)]
                break
    sampler = all_samplers_map.get(name, default_sampler)
    if convert_automatic and sampler.options.get("scheduler", None) == found_scheduler.name:
        found_scheduler = sd_schedulers.schedulers[0]
    return sampler.name, found_scheduler.label


def sample_to_image(samples, index=0, approximation=None):
    """Decoding with the WebUI's VAE is not imitated: live previews from latents fail (silently, like the real
    one without a VAE). Use ``shared.state.assign_current_image(pil)``."""
    raise RuntimeError("webui stand-in: no VAE to decode live previews")
