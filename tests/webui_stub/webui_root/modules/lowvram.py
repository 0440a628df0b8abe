"""Stand-in of modules/lowvram.py (docs/webui-contract.md §6). F: every function is a no-op. Stand-in only: ``calls`` records calls."""

from __future__ import annotations

from modules import _stub

calls: list[tuple] = []


def is_needed(sd_model) -> bool:
    """``--lowvram`` or ``--medvram`` or (``--medvram-sdxl`` and SDXL) (lowvram.py:20-21)."""
    from modules import shared

    if _stub.is_forge():
        return False
    opts = shared.cmd_opts
    return bool(opts.lowvram or opts.medvram or (opts.medvram_sdxl and getattr(sd_model, "is_sdxl", False)))


def is_enabled(sd_model) -> bool:
    return bool(getattr(sd_model, "lowvram", False))


def apply(sd_model) -> None:
    """Enable (or disable) low-VRAM mode on the model."""
    calls.append(("apply", sd_model))
    if _stub.is_forge():
        return
    sd_model.lowvram = is_needed(sd_model)


def send_everything_to_cpu() -> None:
    calls.append(("send_everything_to_cpu",))
