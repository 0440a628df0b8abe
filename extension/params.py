"""One declarative table per feature: default, range, UI label, infotext key and API name of every parameter.

The UI, the infotext (writing and paste-back), the REST API and the CLI are all derived from these tables, so a
parameter is described exactly once (the pattern of Bing-su/adetailer's ``args.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ParamError
from .sampler_names import SAMPLER_NAMES, SCHEDULE_NAMES


@dataclass(frozen=True)
class Param:
    """One parameter. ``name`` is the Python/API/CLI name (``noise_level`` → ``--noise-level``)."""

    name: str
    label: str
    default: Any
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    infotext: str | None = None  # key in the infotext line; None = not written as a key
    help: str = ""
    inherit: bool = False  # None / blank means "inherit from the base generation"
    flag: str | None = None  # the CLI option when not ``--name`` (``cfg_scale`` → ``--cfg``)
    write_default: bool = True  # False: the infotext key is left out at the default value (a control that is off)

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and checked, or raise :class:`ParamError`."""
        if value is None or (self.inherit and value == ""):
            if self.inherit:
                return None
            return self.default
        try:
            if self.kind is bool:
                converted = _to_bool(value)
            elif self.kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                converted = int(value)
            elif self.kind is float:
                converted = float(value)
                if not math.isfinite(converted):
                    raise ValueError
            else:
                converted = str(value)
        except (TypeError, ValueError):
            raise ParamError(f"{self.name} must be {self.expected()}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise ParamError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.minimum is not None and converted < self.minimum:
            raise ParamError(f"{self.name} must be {self.expected()}, got {value!r}")
        if self.maximum is not None and converted > self.maximum:
            raise ParamError(f"{self.name} must be {self.expected()}, got {value!r}")
        return converted

    def expected(self) -> str:
        """Human description of the accepted values, used in error messages and CLI help."""
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "text"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            kind += f" from {_fmt(self.minimum)} to {_fmt(self.maximum)}"
        elif self.minimum is not None:
            kind += f" of at least {_fmt(self.minimum)}"
        return kind


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


class ParamTable:
    """An ordered set of :class:`Param` with validation and infotext helpers."""

    def __init__(self, params: Iterable[Param]):
        self.params: dict[str, Param] = {p.name: p for p in params}

    def __iter__(self):
        return iter(self.params.values())

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default."""
        return {p.name: p.default for p in self}

    def validate(self, values: Mapping[str, Any], *, allow_unknown: bool = False) -> dict[str, Any]:
        """Fill defaults, convert and range-check ``values``; unknown names are an error unless allowed."""
        unknown = sorted(set(values) - set(self.params))
        if unknown and not allow_unknown:
            raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; expected some of {', '.join(self.params)}")
        return {p.name: p.coerce(values.get(p.name, p.default)) for p in self}

    def infotext_items(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The ``Key: value`` pairs for ``values`` (only parameters that have an infotext key)."""
        items = {}
        for p in self:
            if p.infotext:
                value = values.get(p.name)
                items[p.infotext] = None if not p.write_default and value == p.default else value
        return items

    def from_infotext(self, parsed: Mapping[str, str]) -> dict[str, Any]:
        """Values found in a parsed infotext, by parameter name (keys missing from it are left out)."""
        found: dict[str, Any] = {}
        for p in self:
            if p.infotext and p.infotext in parsed:
                try:
                    found[p.name] = p.coerce(parsed[p.infotext])
                except ParamError:
                    continue  # a foreign or damaged value: keep the current control value
        return found


# Noise-level presets: how far a variation may drift from the input image (0 = closest; 999 = the image embedding is
# almost pure noise, only the prompt and the overall palette remain).
NOISE_PRESETS: dict[str, int] = {"Subtle": 0, "Balanced": 200, "Strong": 500}

FIT_MODES = ("squash", "crop", "pad")
MIX_MODES = ("average", "slerp")

REIMAGINE = ParamTable(
    [
        Param("prompt", "Prompt", "", str, help="optional: steers the variations; empty = pure variation"),
        Param("negative_prompt", "Negative prompt", "", str, flag="--negative"),
        Param(
            "noise_level",
            "Noise level",
            NOISE_PRESETS["Balanced"],
            int,
            0,
            999,
            1,
            infotext="Noise level",
            help="noise added to the image embedding: 0 keeps closest to the input, 999 drifts furthest",
        ),
        Param(
            "keep_composition",
            "Keep composition",
            0.0,
            float,
            0.0,
            1.0,
            0.05,
            infotext="Keep composition",
            write_default=False,
            help="how much of the input's layout to keep: start from the first input image's latents, noised as "
            "img2img does at denoising strength 1 - this; 0 = pure noise (a new composition), 1 = the input itself",
        ),
        Param("steps", "Sampling steps", 20, int, 1, 150, 1, infotext="Steps"),
        Param("cfg_scale", "CFG Scale", 10.0, float, 1.0, 30.0, 0.5, infotext="CFG scale", flag="--cfg"),
        Param(
            "sampler_name",
            "Sampling method",
            "DPM++ 2M",
            str,
            choices=SAMPLER_NAMES,
            infotext="Sampler",
            flag="--sampler",
        ),
        Param(
            "scheduler",
            "Schedule type",
            "Automatic",
            str,
            choices=SCHEDULE_NAMES,
            infotext="Schedule type",
            flag="--schedule",
        ),
        Param("width", "Width", 0, int, 0, 2048, 64, help="0 = keep the input's aspect ratio at the model's area"),
        Param("height", "Height", 0, int, 0, 2048, 64, help="0 = keep the input's aspect ratio at the model's area"),
        Param(
            "fit",
            "CLIP fit",
            "squash",
            str,
            choices=FIT_MODES,
            infotext="CLIP fit",
            help="how the input is fitted to the CLIP encoder's square: squash (as the model was trained), "
            "crop (center) or pad",
        ),
        Param("mix", "Mix mode", "average", str, choices=MIX_MODES, infotext="Mix mode"),
        Param("n_iter", "Batch count", 1, int, 1, 100, 1),
        Param("batch_size", "Batch size", 1, int, 1, 8, 1),
        Param("seed", "Seed", -1, int, -1, 2**32 - 1, 1, infotext="Seed", help="-1 = random"),
    ]
)
WEBUI_KEYS = ("steps", "sampler_name", "scheduler", "cfg_scale", "seed")
"""The controls the WebUI's own infotext writes first and its ``Processed`` carries as fields (not as
``extra_generation_params``)."""

# Interpolation strips (CLI ``interpolate --frames``, API ``frames``, the tab's Interpolation mode).
FRAMES = Param(
    "frames",
    "Interpolation frames",
    5,
    int,
    2,
    64,
    1,
    help="images in the strip: the first is image A's variation, the last image B's",
)

# Edit by text (DALL·E 2 text diffs, extension/engine/text_diff.py): off unless "To text" is filled.
TEXT_DIFF_MAX_CHARS = 1000
TEXT_DIFF = ParamTable(
    [
        Param(
            "text_diff_from",
            "From text",
            "",
            str,
            infotext="Text diff from",
            help="a caption of the input as it is (empty = the empty caption)",
        ),
        Param(
            "text_diff_to",
            "To text",
            "",
            str,
            infotext="Text diff to",
            help="the caption to move the image towards; empty = no edit",
        ),
        Param(
            "text_diff_amount",
            "Amount",
            0.25,
            float,
            0.0,
            1.0,
            0.05,
            infotext="Text diff amount",
            help="how far to turn the image embedding towards the text direction (0 = the plain variation)",
        ),
        Param(
            "text_diff_frames",
            "Frames",
            1,
            int,
            1,
            64,
            1,
            help="1 = one edit; more = a strip from 0 to Amount with the same noise in every frame",
        ),
    ]
)


# ---------------------------------------------------------------------------------------------------------------------
# SDXL refiner post-pass (extension/engine/refiner.py). The names are also the named args of the txt2img/img2img script
# (API ``alwayson_scripts``) and of ``POST /reimagine/v1/refine``. Infotext keys all start with "Refiner post-pass":
# the key ``Refiner`` belongs to the WebUI's native refiner (pasting it would switch that one on).
REFINER_MODES = ("Auto", "Latent", "Pixel")
REFINER_INFOTEXT_PREFIX = "Refiner post-pass"

REFINER = ParamTable(
    [
        Param(
            "enabled",
            "Refiner post-pass",
            False,
            bool,
            help="run the SDXL refiner over each finished image (after sampling, Hires fix and face restoration); "
            "an infotext with the key 'Refiner post-pass' enables it when pasted",
        ),
        Param(
            "model",
            "Refiner model",
            "",
            str,
            infotext=REFINER_INFOTEXT_PREFIX,
            help="SDXL refiner checkpoint (.safetensors/.ckpt), diffusers folder or hub id",
        ),
        Param(
            "strength",
            "Refiner strength",
            0.25,
            float,
            0.0,
            1.0,
            0.01,
            infotext=f"{REFINER_INFOTEXT_PREFIX} strength",
            help="how much noise is put back before refining: 0 = image unchanged, 0.2-0.3 = the refiner's range "
            "(it was trained on the low-noise end of the schedule); above 0.5 it repaints and may distort",
        ),
        Param(
            "steps",
            "Refiner steps",
            10,
            int,
            1,
            150,
            1,
            infotext=f"{REFINER_INFOTEXT_PREFIX} steps",
            help="sampling steps the refiner actually runs (strength does not shrink them)",
        ),
        Param(
            "mode",
            "Refiner mode",
            "Auto",
            str,
            choices=REFINER_MODES,
            infotext=f"{REFINER_INFOTEXT_PREFIX} mode",
            help="Latent: refine an SDXL base's latents directly (no VAE round trip; other bases fall back to Pixel, "
            "and the infotext says so); Pixel: VAE-encode the finished image (any base model); Auto: Latent when "
            "possible, else Pixel",
        ),
        Param(
            "prompt",
            "Refiner prompt",
            "",
            str,
            infotext=f"{REFINER_INFOTEXT_PREFIX} prompt",
            help="blank = the base prompt",
        ),
        Param(
            "negative_prompt",
            "Refiner negative prompt",
            "",
            str,
            infotext=f"{REFINER_INFOTEXT_PREFIX} negative prompt",
            help="blank = the base negative prompt",
        ),
        Param(
            "cfg_scale",
            "Refiner CFG scale",
            None,
            float,
            1.0,
            30.0,
            0.5,
            infotext=f"{REFINER_INFOTEXT_PREFIX} CFG scale",
            help="blank = the base's CFG scale",
            inherit=True,
        ),
        Param(
            "sampler_name",
            "Refiner sampler",
            None,
            str,
            choices=SAMPLER_NAMES,
            infotext=f"{REFINER_INFOTEXT_PREFIX} sampler",
            help="blank = the base's sampler",
            inherit=True,
        ),
        Param(
            "scheduler",
            "Refiner schedule type",
            None,
            str,
            choices=SCHEDULE_NAMES,
            infotext=f"{REFINER_INFOTEXT_PREFIX} schedule type",
            help="blank = the base's schedule type",
            inherit=True,
        ),
        Param(
            "aesthetic_score",
            "Aesthetic score",
            6.0,
            float,
            0.0,
            10.0,
            0.5,
            infotext=f"{REFINER_INFOTEXT_PREFIX} aesthetic",
            help="the aesthetic rating the refiner is conditioned on (its training data was rated 0-10)",
        ),
        Param(
            "negative_aesthetic_score",
            "Negative aesthetic score",
            2.5,
            float,
            0.0,
            10.0,
            0.5,
            infotext=f"{REFINER_INFOTEXT_PREFIX} negative aesthetic",
            help="the rating of the unconditional (CFG) branch; keep it below the aesthetic score",
        ),
        Param(
            "keep_original",
            "Keep the pre-refiner image",
            False,
            bool,
            infotext=f"{REFINER_INFOTEXT_PREFIX} keep original",
            help="also save and show the image as it was before the post-pass",
        ),
    ]
)
REFINER_SAME_SAMPLER = "Use same sampler"
REFINER_SAME_SCHEDULER = "Use same scheduler"
REFINER_SAME_CFG = 0.0
"""The UI's spellings of "inherit the base's value" (the WebUI's own Hires fix spells them the same way); the
table's value for each is None."""
_REFINER_SAME = {
    "sampler_name": REFINER_SAME_SAMPLER,
    "scheduler": REFINER_SAME_SCHEDULER,
    "cfg_scale": REFINER_SAME_CFG,
}


def refiner_values_from_ui(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Refiner control values as the UI (or an API caller) spells them → table values: "Use same sampler" /
    "Use same scheduler" / blank, and CFG 0, mean inherit (None)."""
    values = dict(raw)
    for name in ("sampler_name", "scheduler"):
        if values.get(name) in (_REFINER_SAME[name], ""):
            values[name] = None
    cfg = values.get("cfg_scale")
    try:
        if cfg is not None and cfg != "" and float(cfg) == REFINER_SAME_CFG:
            values["cfg_scale"] = None
    except (TypeError, ValueError):
        pass  # not a number: the table's check says so
    return values


def refiner_value_to_ui(name: str, value: Any) -> Any:
    """A table value → what the refiner control shows (None = the "inherit" spelling)."""
    return _REFINER_SAME.get(name, value) if value is None else value


REFINER_ENGINE_PARAMS = tuple(name for name in REFINER.params if name not in ("enabled", "model", "keep_original"))
"""The refiner engine's controls (``RefineRequest`` fields checked by :data:`REFINER`), in table order; ``enabled``,
``model`` and ``keep_original`` are the WebUI hook's business."""
