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
