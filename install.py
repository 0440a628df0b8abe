"""WebUI launch-time installer for sd-webui-reimagine.

AUTOMATIC1111, Forge and Forge Neo run this file in a subprocess on *every* launch (``PYTHONPATH`` = the WebUI root,
so ``import launch`` works; only stdout is shown). Rules:

* install only what is missing (``launch.is_installed``), so a satisfied launch makes no pip call at all and stays fast
  (no torch/diffusers import: versions are read with ``importlib.metadata``);
* never install, upgrade or downgrade a package the WebUI pins with ``==`` in its requirements file
  (``$REQS_FILE``, else ``requirements_versions.txt`` for A1111/Forge and ``requirements.txt`` for Neo, which checks
  it again *after* the extension installers): the WebUI reinstalls its pins whenever they differ, so touching one
  causes a reinstall flip-flop on every start. Pinned names are never passed to pip, and every pip call is
  constrained to the WebUI's pins so a dependency cannot move them;
* a failure is reported on stdout and never aborts the WebUI's start.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import tempfile
from pathlib import Path

import launch

EXTENSION = "sd-webui-reimagine"

# (distribution name, pip requirement, what it is for). Installed only when the distribution is absent.
REQUIREMENTS: list[tuple[str, str, str]] = [
    ("diffusers", "diffusers==0.31.0", "pipelines, schedulers and model loading"),
    ("torchsde", "torchsde", "the DPM++ SDE samplers"),
]
# Oldest diffusers we work with: pyproject.toml's lower bound (the oldest the test matrix runs; the model-level
# ``UNet2DConditionModel.from_single_file(<dict>, config=...)`` of extension/loading/ needs >= 0.28 in any case;
# tests/test_install.py keeps the two equal). An older one already present is reported, not changed (it may be
# another extension's or the WebUI's choice).
MIN_DIFFUSERS = (0, 31)


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


REQUIREMENTS_NAMES = ("requirements_versions.txt", "requirements.txt")
"""Where the WebUIs keep their pins: A1111 and Forge ``requirements_versions.txt``, Forge Neo ``requirements.txt``
(each WebUI's ``REQS_FILE`` default in ``modules/launch_utils.py``)."""


def requirements_files() -> list[Path]:
    """The WebUI's pin files: ``$REQS_FILE`` (relative to the WebUI's cwd) and both names in the cwd and the root."""
    candidates = [Path(os.environ["REQS_FILE"])] if os.environ.get("REQS_FILE") else []
    candidates += [Path(name) for name in REQUIREMENTS_NAMES]
    launch_file = getattr(launch, "__file__", None)
    if launch_file:
        candidates += [Path(launch_file).resolve().parent / name for name in REQUIREMENTS_NAMES]
    return [path for path in dict.fromkeys(c.resolve() for c in candidates) if path.is_file()]


def webui_pins(files: list[Path]) -> dict[str, str]:
    """``{normalised name: "name==version[; marker]"}`` for every ``==`` pin in the WebUI's requirement files (the
    first file naming a package wins)."""
    pins: dict[str, str] = {}
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            match = re.match(
                r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*(?:;\s*(\S.*))?$", line
            )
            if match and normalize(match.group(1)) not in pins:
                marker = f"; {match.group(3).strip()}" if match.group(3) else ""
                pins[normalize(match.group(1))] = f"{match.group(1)}=={match.group(2)}{marker}"
    return pins


def release(version: str) -> tuple[int, ...]:
    """Numeric release part of a version string ("0.31.0.dev0" -> (0, 31, 0))."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def installed_version(dist: str) -> str | None:
    """Installed version of ``dist`` or None (found only as an importable module, or not at all)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_diffusers() -> None:
    """Warn (never change it) when the diffusers already installed is older than we support."""
    version = installed_version("diffusers")
    if version is not None and release(version) < MIN_DIFFUSERS:
        wanted = ".".join(map(str, MIN_DIFFUSERS))
        print(
            f"[{EXTENSION}] WARNING: diffusers {version} is installed, but this extension needs diffusers >= {wanted} "
            f"(tested with 0.31.0). It was left unchanged because something else installed it. Reimagine and the "
            f"refiner post-pass will not work until it is upgraded, e.g. "
            f'"{sys.executable}" -m pip install diffusers==0.31.0'
        )


def pip_install(spec: str, why: str, pins: dict[str, str]) -> None:
    """``launch.run_pip`` one requirement, constrained to the WebUI's pins; report a failure, never raise."""
    command = f"install {spec}"
    constraints = None
    try:
        if pins:
            with tempfile.NamedTemporaryFile(
                "w", suffix="-webui-pins.txt", prefix="reimagine-", delete=False, encoding="utf-8"
            ) as file:
                file.write("\n".join(pins.values()) + "\n")
                constraints = file.name
            command += f' -c "{constraints}"'
        launch.run_pip(command, f"{EXTENSION} requirement: {spec} ({why})")
    except Exception as error:  # the WebUI must start anyway
        message = str(error).strip() or type(error).__name__
        print(
            f"[{EXTENSION}] could not install {spec} ({why}); the extension will not work until it is installed. "
            f'Install it by hand: "{sys.executable}" -m pip install {spec}\n{message}'
        )
    finally:
        if constraints:
            try:
                os.unlink(constraints)
            except OSError:
                pass


def to_install(pins: dict[str, str], missing: list[str]) -> list[tuple[str, str, str]]:
    """The :data:`REQUIREMENTS` this launch passes to pip: the ``missing`` ones the WebUI does not pin."""
    return [req for req in REQUIREMENTS if req[0] in missing and normalize(req[0]) not in pins]


def main() -> int:
    """Install what is missing; print what was done or what is wrong; always return 0."""
    missing = [dist for dist, _spec, _why in REQUIREMENTS if not launch.is_installed(dist)]
    if "diffusers" not in missing:
        check_diffusers()
    if not missing:
        return 0  # the satisfied path reads no file
    pins = webui_pins(requirements_files())
    for dist in missing:
        if normalize(dist) in pins:
            # The WebUI pins it and installs it itself (it is only missing under --skip-install or a broken venv).
            print(
                f"[{EXTENSION}] {dist} is missing but pinned by the WebUI ({pins[normalize(dist)]}); not touching it."
            )
    for _dist, spec, why in to_install(pins, missing):
        pip_install(spec, why, pins)
    return 0


if __name__ == "__main__":
    sys.exit(main())
