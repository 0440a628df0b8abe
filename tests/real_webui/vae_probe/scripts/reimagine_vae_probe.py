"""Test-only WebUI extension for the real-WebUI walk (``tests/real_webui/walk_sdxl.py`` installs it): counts VAE
calls and reports the WebUI process's peak RSS. Never part of the product.

Counted, by wrapping the REAL modules inside the WebUI process (A1111 and Forge alike):

* ``webui_decode`` / ``webui_encode``: the WebUI model's ``decode_first_stage`` / ``encode_first_stage`` (the
  instance attributes that ``modules/sd_samplers_common.py`` and ``modules/processing.py`` call; wrapped again at
  every generation's ``process``, so a reloaded model is covered);
* ``diffusers_decode`` / ``diffusers_encode``: ``diffusers.AutoencoderKL.decode`` / ``encode`` (class level: the
  refiner pipeline's VAE); ``diffusers_unet``: ``diffusers.UNet2DConditionModel.forward`` (the refiner's sampling
  steps that really ran; one call per step with CFG batched).

``*_images`` sums the batch dimension of the first argument. Routes: ``GET /reimagine-probe/v1/counts`` and
``POST /reimagine-probe/v1/reset`` (zero the counts and reset the peak RSS: ``5`` into ``/proc/self/clear_refs``).
Both answer ``{"counts": {...}, "rss_kb": {"VmHWM": ..., "VmRSS": ...}, "pid": ..., "model": ...}``.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
from typing import Any

from modules import script_callbacks, scripts, shared

COUNTS: collections.Counter = collections.Counter()
LOCK = threading.Lock()
MARK = "_reimagine_vae_probe"


def _count(key: str, args: tuple) -> None:
    first = args[0] if args else None
    shape = getattr(first, "shape", None)
    with LOCK:
        COUNTS[key] += 1
        COUNTS[key + "_images"] += int(shape[0]) if shape is not None and len(shape) > 0 else 1


def _wrap_instance(obj: Any, attr: str, key: str) -> None:
    fn = getattr(obj, attr, None)
    if fn is None or getattr(fn, MARK, False):
        return

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _count(key, args)
        return fn(*args, **kwargs)

    setattr(wrapper, MARK, True)
    setattr(obj, attr, wrapper)


def _wrap_class(cls: Any, attr: str, key: str) -> None:
    fn = cls.__dict__.get(attr)
    if fn is None or getattr(fn, MARK, False):
        return

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _count(key, args)
        return fn(self, *args, **kwargs)

    setattr(wrapper, MARK, True)
    setattr(cls, attr, wrapper)


def install(model: Any = None) -> None:
    model = model if model is not None else getattr(shared, "sd_model", None)
    if model is not None:
        _wrap_instance(model, "decode_first_stage", "webui_decode")
        _wrap_instance(model, "encode_first_stage", "webui_encode")
    try:
        import diffusers

        _wrap_class(diffusers.AutoencoderKL, "decode", "diffusers_decode")
        _wrap_class(diffusers.AutoencoderKL, "encode", "diffusers_encode")
        _wrap_class(diffusers.UNet2DConditionModel, "forward", "diffusers_unet")
    except Exception as error:  # noqa: BLE001 - reported in the counts answer
        COUNTS["diffusers_wrap_failed"] = 1
        print(f"reimagine-vae-probe: could not wrap diffusers.AutoencoderKL: {error}")


def _rss() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                out[name] = int(value.split()[0])
    return out


def snapshot() -> dict[str, Any]:
    model = getattr(shared, "sd_model", None)
    with LOCK:
        counts = dict(COUNTS)
    return {"counts": counts, "rss_kb": _rss(), "pid": os.getpid(), "model": type(model).__name__}


def reset() -> dict[str, Any]:
    install()
    with LOCK:
        COUNTS.clear()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set size (VmHWM) to the current RSS
    except OSError as error:
        print(f"reimagine-vae-probe: cannot reset VmHWM: {error}")
    return snapshot()


def on_app_started(_demo: Any, app: Any) -> None:
    app.add_api_route("/reimagine-probe/v1/counts", snapshot, methods=["GET"])
    app.add_api_route("/reimagine-probe/v1/reset", reset, methods=["POST"])


script_callbacks.on_app_started(on_app_started)
script_callbacks.on_model_loaded(install)


class Script(scripts.Script):
    def title(self) -> str:
        return "Reimagine VAE probe (test only)"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        return []

    def process(self, p: Any, *args: Any) -> None:
        install(getattr(p, "sd_model", None))
