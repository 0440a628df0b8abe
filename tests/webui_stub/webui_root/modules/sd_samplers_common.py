"""Neo: stand-in of the refiner switch in modules/sd_samplers_common.py (Forge Neo, branch neo, commit
03e074e19695b6f9cc7613a3ef7b154daf93cf32, ``apply_refiner``), called by the stand-in sampler at each step.

Neo's built-in refiner switches checkpoints once the sigma falls below "Switch at" (or, with the setting
``refiner_use_steps``, once ``step / total_steps`` reaches it; the stand-in always uses the step ratio). It writes
the infotext keys ``Refiner`` (the refiner's ``short_title``) and ``Refiner switch at`` and refuses to run with
Hires fix. Two ways (setting ``refiner_fast_sd``, off by default):

* default: the whole checkpoint is switched (``main_entry.checkpoint_change`` + ``forge_model_reload``) for the rest
  of sampling; the main one is loaded again by ``forge_model_reload()`` at the start of the next batch;
* ``refiner_fast_sd``: only the UNet's weights are replaced in place, ``ORIGINAL_CHECKPOINT`` remembers the main
  file, and the built-in script's ``postprocess`` puts the main weights back, finding the UNet's entry in
  ``backend.memory_management.current_loaded_models`` (modules/processing_scripts/refiner.py).

Stand-in only: ``calls`` records ``("apply_refiner", refiner_title)`` for every switch; the stand-in model records
which file its UNet weights come from in ``sd_model.unet_weights``.
"""

from __future__ import annotations

from modules import shared

ORIGINAL_CHECKPOINT: str | None = None
calls: list[tuple] = []


def unet_patcher(sd_model):
    """The stand-in model's UNet patcher (Neo: ``sd_model.forge_objects.unet``), created on first use."""
    patcher = getattr(sd_model, "unet_patcher", None)
    if patcher is None:
        from backend.patcher.unet import UnetPatcher

        patcher = UnetPatcher("unet", size=1)
        sd_model.unet_patcher = patcher
    if getattr(sd_model, "unet_weights", None) is None:
        info = getattr(sd_model, "sd_checkpoint_info", None)
        sd_model.unet_weights = getattr(info, "filename", None)
    return patcher


def apply_refiner(p, step: int, total_steps: int) -> bool:
    """Switch to ``p.refiner_checkpoint_info`` when the step ratio reaches ``p.refiner_switch_at``."""
    global ORIGINAL_CHECKPOINT
    switch_at = getattr(p, "refiner_switch_at", None)
    if not switch_at or switch_at > step / max(1, total_steps):
        return False
    if ORIGINAL_CHECKPOINT is not None:
        return False
    info = getattr(p, "refiner_checkpoint_info", None)
    if info is None or getattr(shared.sd_model, "sd_checkpoint_info", None) == info:
        return False
    if getattr(p, "enable_hr", False):
        print("\n\n[Error]Refiner does not support Hires. fix\n\n")
        return False
    p.extra_generation_params["Refiner"] = info.short_title
    p.extra_generation_params["Refiner switch at"] = switch_at
    calls.append(("apply_refiner", info.title))
    if shared.opts.refiner_fast_sd:
        model = shared.sd_model
        unet_patcher(model)
        ORIGINAL_CHECKPOINT = model.sd_checkpoint_info.filename
        model.unet_weights = info.filename
        return True
    from modules import sd_models

    main = shared.sd_model
    refiner = sd_models.StubSdModel(info, is_sdxl=getattr(main, "is_sdxl", False))
    refiner.main_model = main  # what forge_model_reload() loads back at the next batch
    shared.sd_model = refiner
    return True
