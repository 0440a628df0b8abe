"""Stand-in of modules/shared_items.py: lists the settings page uses.

``OptionInfo`` is NOT here in the WebUI: use ``shared.OptionInfo`` (or ``modules.options.OptionInfo``).
"""

from __future__ import annotations


def list_checkpoint_tiles(use_short=False):
    from modules import sd_models

    return sd_models.checkpoint_tiles(use_short)


def refresh_checkpoints():
    from modules import sd_models

    return sd_models.list_models()


def list_samplers():
    from modules import sd_samplers

    return sd_samplers.all_samplers


ui_reorder_categories_builtin_items = [
    "prompt",
    "image",
    "inpaint",
    "sampler",
    "accordions",
    "checkboxes",
    "dimensions",
    "cfg",
    "denoising",
    "seed",
    "batch",
    "override_settings",
]
"""shared_items.py:93-106 (same list in Forge)."""


def ui_reorder_categories():
    """Built-in categories, then every script ``section`` that is not one of them, then "scripts" (:109-121)."""
    from modules import scripts

    yield from ui_reorder_categories_builtin_items
    sections = {}
    for script in scripts.scripts_txt2img.scripts + scripts.scripts_img2img.scripts:
        if isinstance(script.section, str) and script.section not in ui_reorder_categories_builtin_items:
            sections[script.section] = 1
    yield from sections
    yield "scripts"
