"""Test matrix: the Python/torch/package stacks our users run (see README "Testing").

``nox`` (no arguments) builds every environment from nothing and runs lint + the whole suite in each:

* ``lint``   - ruff check + ruff format --check
* ``a1111``  - AUTOMATIC1111 1.10.1: Python 3.10, torch 2.1.2, its pins (gradio 3.41, transformers 4.30)
* ``forge``  - Forge 2.x: Python 3.10, torch 2.3.1, its pins (gradio 4.40, transformers 4.46, pydantic 2)
* ``neo``    - Forge Neo (Haoming02/sd-webui-forge-classic, branch neo): Python 3.11, the newest torch the registry
  serves here (2.14.1), gradio 3.43.2 installed first and then Neo's requirements.txt pins over it, as Neo's
  launch_utils.py does (numpy 2.3, Pillow 12, pydantic 2.10, transformers 4.57, diffusers 0.37); plus the schema fuzzer
* ``newest`` - standalone users: Python 3.13 and ``pip install ".[app,ray,test]"`` with no pins at all, exactly as a
  user's install resolves that day (gradio 6, transformers 5, diffusers 0.42, numpy 2.4), the fuzzer and Ray included

Disk: each environment is about 7 GB (the registry's torch is a CUDA build with its nvidia wheels). When the disk
has less than ``KEEP_VENVS_MIN_FREE_GIB`` free (CI), pip's cache is not used and each session's environment is
deleted when the session ends, so only one exists at a time.

``nox -s forge -- tests/test_install.py -q`` runs one environment with pytest arguments. Tests run offline
(``HF_HUB_OFFLINE=1``, an empty ``HF_HOME``; tests/conftest.py also blocks every non-loopback socket).
Browser tests use Debian's chromium, installed with apt-get when missing and running as root.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox


def _put_pyenv_versions_on_path() -> None:
    """Prepend pyenv's installed interpreters (``$(pyenv root)/versions/X.Y.Z/bin``) to PATH.

    pyenv's ``python3.10`` shim fails unless that version is selected (``pyenv global``), and nox would pick the
    shim; the versions' own bin folders hold working ``python3.10`` / ``python3.11``. Newest patch release first.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin")), key=_version_key, reverse=True)
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


def _version_key(bin_dir: str) -> tuple[int, ...]:
    name = os.path.basename(os.path.dirname(bin_dir))
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


_put_pyenv_versions_on_path()

nox.options.sessions = ["lint", "a1111", "forge", "neo", "newest"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The torch each WebUI installs (A1111 1.10.1: modules/launch_utils.py; Forge 2.x: the same file in Forge). The
# registry's builds are CUDA builds; they run on the CPU here.
A1111_TORCH = ["torch==2.1.2", "torchvision==0.16.2"]
FORGE_TORCH = ["torch==2.3.1", "torchvision==0.18.1"]
TEST_TOOLS = [
    "pytest==8.3.3",
    "pytest-timeout==2.3.1",
    "playwright==1.48.0",
    "mktestdocs==0.2.5",
    "setuptools>=64",
    "wheel",
]

# Both WebUIs pin torchsde==0.2.6 (the DPM++ SDE samplers); scipy is its dependency.
WEBUI_COMMON = ["torchsde==0.2.6", "scipy==1.11.4"]

# What AUTOMATIC1111 1.10.1 pins (requirements_versions.txt) plus the diffusers we add.
A1111 = [
    "transformers==4.30.2",
    "accelerate==0.21.0",
    "safetensors==0.4.2",
    "open-clip-torch==2.20.0",
    "numpy==1.26.2",
    "Pillow==9.5.0",
    "gradio==3.41.2",
    "fastapi==0.94.0",
    "httpx==0.24.1",
    "diffusers==0.31.0",
    "huggingface-hub<0.27",
]

# What Forge 2.x pins.
FORGE = [
    "transformers==4.46.1",
    "diffusers==0.31.0",
    "huggingface-hub==0.26.2",
    "gradio==4.40.0",
    "accelerate==0.31.0",
    "pydantic==2.8.2",
    "fastapi==0.104.1",
    "httpx==0.24.1",
    "open-clip-torch==2.20.0",
    "numpy==1.26.2",
    "Pillow==9.5.0",
    "safetensors==0.4.2",
]

# Forge Neo's pins: its requirements.txt (branch neo). Neo's launch_utils.py installs GRADIO_PACKAGE (gradio==3.43.2)
# first and then `pip install -r requirements.txt`, which moves numpy/Pillow/fastapi/pydantic past gradio 3's own
# bounds; _tests() installs in the same two steps. open-clip-torch and torchvision are not pinned by Neo.
NEO_TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
NEO_GRADIO = ["gradio==3.43.2"]
NEO = [
    "accelerate==1.14.0",
    "diffusers==0.37.1",
    "fastapi==0.127.1",
    "httpx==0.28.1",
    "huggingface-hub==0.36.2",
    "numpy==2.3.5",
    "Pillow==12.3.0",
    "pydantic==2.10.6",
    "pydantic-core==2.27.2",
    "safetensors==0.8.0",
    "transformers==4.57.6",
    "torchsde==0.2.6",
    "open-clip-torch",
    "scipy",
]

# The schema fuzzer (tests/toplevel/test_fuzz.py), in the pydantic-2 sessions (neo; newest gets it from the [test] extra): schemathesis 4 needs pydantic-2-era packages.
# hypothesis is pinned: newer ones changed an internal that hypothesis-jsonschema 0.23.1 (schemathesis' pin) uses.
FUZZ = ["schemathesis==4.3.18", "hypothesis==6.135.33"]

# The optional `ray` extra (pyproject.toml), pinned: the newest Ray that installs on Python 3.11 here, and the newest
# pyarrow that still accepts the WebUIs' numpy 1.26 (pyarrow 20+ needs numpy 2).
RAY = ["ray[data]==2.60.0", "pyarrow==19.0.1"]

# The newest Python every dependency (torch, ray, pyarrow) has wheels for.
NEWEST_PYTHON = "3.13"

# Below this much free disk, environments are not kept between sessions (see the module docstring). CI died with
# "No space left on device" installing its second environment while the first one and pip's cache were kept.
KEEP_VENVS_MIN_FREE_GIB = 30

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def _chromium(session: nox.Session) -> str | None:
    """Path of Debian's chromium for the browser tests; installed with apt-get when missing (root only)."""
    found = os.environ.get("REIMAGINE_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        session.log("chromium is missing: installing Debian's chromium for the browser tests")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", external=True, env=env)
        return next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    session.warn("chromium not found and not root: browser tests will be skipped (sudo apt-get install chromium)")
    return None


def _disk_is_short(session: nox.Session) -> bool:
    free_gib = shutil.disk_usage(session.virtualenv.location).free / 2**30
    return free_gib < KEEP_VENVS_MIN_FREE_GIB


def _install_flags(session: nox.Session) -> list[str]:
    return ["--no-cache-dir"] if _disk_is_short(session) else []


def _run_suite(session: nox.Session) -> None:
    """The whole suite (or the pytest arguments after ``--``), offline, in the session's environment."""
    short = _disk_is_short(session)
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": session.create_tmp() + "/hf-home",  # never the user's cache: offline means nothing cached
    }
    chromium = _chromium(session)
    if chromium:
        env["REIMAGINE_CHROMIUM"] = chromium
    args = session.posargs or ["tests"]
    try:
        # exit code 5 = "no tests collected" (a -k/-m selection that matches nothing) is not a failure of the suite
        session.run("python", "-m", "pytest", *args, env=env, success_codes=[0, 5])
    finally:
        if short or _disk_is_short(session):
            session.log(f"less than {KEEP_VENVS_MIN_FREE_GIB} GiB free: deleting {session.virtualenv.location}")
            shutil.rmtree(session.virtualenv.location, ignore_errors=True)


def _tests(session: nox.Session, torch: list[str], pins: list[str]) -> None:
    session.install(*_install_flags(session), *torch, *pins, *WEBUI_COMMON, *TEST_TOOLS)
    _run_suite(session)


@nox.session(python="3.10")
def a1111(session: nox.Session) -> None:
    """The suite on AUTOMATIC1111 1.10.1's stack (Python 3.10, torch 2.1.2, gradio 3.41, transformers 4.30)."""
    _tests(session, A1111_TORCH, A1111)


@nox.session(python="3.10")
def forge(session: nox.Session) -> None:
    """The suite on lllyasviel's Forge 2.x stack (Python 3.10, torch 2.3.1, gradio 4.40, transformers 4.46)."""
    _tests(session, FORGE_TORCH, FORGE)


@nox.session(python="3.11")
def neo(session: nox.Session) -> None:
    """The suite on Forge Neo's stack (Python 3.11, torch 2.14.1, gradio 3.43.2, Neo's requirements.txt pins)."""
    flags = _install_flags(session)
    session.install(*flags, *NEO_TORCH, *NEO_GRADIO)  # Neo: GRADIO_PACKAGE first ...
    session.install(*flags, *NEO, *TEST_TOOLS, *FUZZ)  # ... then requirements.txt over it
    _run_suite(session)


@nox.session(python=NEWEST_PYTHON)
def newest(session: nox.Session) -> None:
    """The suite on what a standalone user's ``pip install ".[app,ray,test]"`` resolves today: no pins at all."""
    session.install(*_install_flags(session), ".[app,ray,test]")
    _run_suite(session)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
