"""What the refiner controls mean: the script's title and labels, its arguments (positional or named), the model
they name, and the per-generation state kept on ``p``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ModelLoadError, ParamError
from ...loading.discovery import REFINER_KINDS, ModelChoice, closest
from ...params import REFINER, REFINER_INFOTEXT_PREFIX, refiner_values_from_ui
from ..host import shared_host
from .jobs import BatchJobs

TITLE = "Refiner post-pass"
"""The script's title: the key of ``alwayson_scripts`` in API requests (matched case-insensitively)."""


LABEL = "Refiner post-pass (SDXL)"


INFO = (
    "Runs the SDXL refiner over each finished image, after sampling, Hires fix and face restoration. It is separate "
    "from the WebUI's own Refiner (which swaps models during sampling): both can be on."
)


PREFIX = REFINER_INFOTEXT_PREFIX


ERROR_KEY = f"{PREFIX} error"
"""Infotext key of a warning: the post-pass was enabled but did not run (or stopped) for this image."""


CFG_LABEL = f"{REFINER['cfg_scale'].label} (0 = same as the base)"


PLACEHOLDERS = {"prompt": "blank = the base prompt", "negative_prompt": "blank = the base negative prompt"}
"""UI values meaning "inherit the base's": the WebUI's own Hires fix spells them the same way."""


BEFORE_SUFFIX = "-before-refiner"


RUN_ATTR = "reimagine_refiner_run"


XYZ_ATTR = "reimagine_refiner_xyz"


MODE_KEY = str(REFINER["mode"].infotext)


FALLBACK_HIRES = "Hires fix"
FALLBACK_BASE = "base not SDXL"
FALLBACK_LATENTS = "latents unlike the refiner's"
"""Why a chosen Latent mode ran as Pixel, as the infotext says it: ``Refiner post-pass mode: Pixel (Hires fix)``."""


def mode_text(chosen: str, ran: str, fallback: str) -> str:
    """The infotext's mode value: what ran (Auto's choice included), and why when a chosen Latent could not run."""
    return f"{ran} ({fallback})" if chosen == "Latent" and ran == "Pixel" and fallback else ran


def chosen_mode(text: str) -> str:
    """The mode the user chose, from the infotext's mode value (``Pixel (…)`` is a Latent that could not run)."""
    return "Latent" if re.fullmatch(r"Pixel \(.+\)", text.strip()) else text


XYZ_AXES: dict[str, str] = {
    "strength": f"{PREFIX} strength",
    "steps": f"{PREFIX} steps",
    "model": f"{PREFIX} model",
}
"""X/Y/Z plot axis labels, by parameter name."""


def model_names() -> list[str]:
    """The SDXL refiner models offered (names as the dropdown and the API use them)."""
    return [choice.name for choice in shared_host().models(REFINER_KINDS)]


def find_model(name: str) -> ModelChoice:
    """The offered refiner called ``name`` (also its file stem, or a WebUI-style ``name [hash]``); otherwise a
    ModelLoadError that says what is wrong: nothing selected, not found, or which kind of model the file is."""
    webui_host = shared_host()
    try:
        return webui_host.find(name, REFINER_KINDS)
    except ModelLoadError as error:
        plain = re.sub(r"\s*\[[0-9a-fA-F]{6,}\]$", "", str(name or "").strip())
        if not plain:
            raise
        choice = closest(webui_host.models(REFINER_KINDS), plain)
        if choice is not None:
            return choice
        kind = _kind_of(webui_host, plain)
        if kind is not None and kind not in REFINER_KINDS:
            from ...loading import check_role

            check_role(kind, "refiner", plain)  # raises: "<name> is an SDXL base model; ... needs an SDXL refiner"
        raise error


def _kind_of(webui_host: Any, name: str) -> str | None:
    """The kind of the checkpoint file or diffusers folder called ``name`` in the model folders (error path only)."""
    from ...loading import discovery as models

    for folder in webui_host.model_folders():
        if not Path(folder).is_dir():
            continue
        for path in Path(folder).rglob("*"):
            if name not in (path.name, path.stem):
                continue
            if path.is_file() and path.suffix.lower() in models.CHECKPOINT_SUFFIXES:
                return models.file_kind(path, webui_host.config_root)
            if path.is_dir() and (path / "model_index.json").is_file():
                return models.folder_kind(path, webui_host.config_root)
    return None


def parse_args(args: Sequence[Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The script's arguments → validated :data:`REFINER` values (raises :class:`ParamError`).

    Accepted: the positional list in :func:`ui` order (= the table's order), one dict of named values (``enabled``
    defaults to true: passing settings means "run it"), or ``[enabled, {named values}]``. ``overrides``: an X/Y/Z
    cell's values of our axes, which switch the post-pass on.
    """
    args = list(args)
    if args and isinstance(args[0], Mapping):
        raw: dict[str, Any] = {"enabled": True, **args[0]}
    elif len(args) >= 2 and isinstance(args[1], Mapping):
        raw = {"enabled": args[0], **args[1]}
    else:
        raw = dict(zip(REFINER.params, args))
    if overrides:
        raw = {**raw, **overrides, "enabled": True}
    return REFINER.validate(refiner_values_from_ui(raw))


def meant_to_run(args: Sequence[Any]) -> bool:
    """Whether arguments that failed validation were meant to switch the post-pass on (then the user is told)."""
    if not args:
        return False
    if isinstance(args[0], Mapping) or (len(args) >= 2 and isinstance(args[1], Mapping)):
        return True
    with contextlib.suppress(ParamError):
        return bool(REFINER["enabled"].coerce(args[0]))
    return True


@dataclass
class Run:
    """What one ``process_images`` call needs across hooks (a fresh object per call: X/Y/Z copies ``p`` shallowly)."""

    values: dict[str, Any] = field(default_factory=dict)
    choice: ModelChoice | None = None
    failed: bool = False  # a pass failed: the remaining images stay unrefined (the error is in the infotext)
    jobs: BatchJobs = field(default_factory=BatchJobs)
    fallback: str = ""  # why a chosen Latent mode runs as Pixel (FALLBACK_* below); blank: it did not fall back
    latent_batches: set[int] = field(default_factory=set)  # batches refined as latents in post_sample
    latent_originals: dict[int, list[Any]] = field(default_factory=dict)  # keep_original in latent mode
    originals: list[tuple[Any, str]] = field(default_factory=list)  # (image, infotext) shown after the results

    @property
    def active(self) -> bool:
        """Enabled, valid and with a model."""
        return self.choice is not None


def run_of(p: Any) -> Run | None:
    run = getattr(p, RUN_ATTR, None)
    return run if isinstance(run, Run) else None
