"""Test matrix: the two WebUI environments our users run (see README "Testing").

``nox`` (no arguments) builds both environments from nothing and runs lint + the whole suite in each:

* ``lint``  - ruff check + ruff format --check
* ``a1111`` - the suite under AUTOMATIC1111 1.10.1's packages (gradio 3.41, transformers 4.30)
* ``forge`` - the suite under Forge 2.x's packages (gradio 4.40, transformers 4.46, pydantic 2)
* ``ray``   - only tests/test_ray.py: ``--engine ray`` on Ray Data (Forge's pins + the ``ray`` extra)

``nox -s forge -- tests/test_install.py -q`` runs one environment with pytest arguments. Tests run offline
(``HF_HUB_OFFLINE=1``, an empty ``HF_HOME``; tests/conftest.py also blocks every non-loopback socket).
Browser tests use Debian's chromium, installed with apt-get when missing and running as root.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "a1111", "forge", "ray"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
TEST_TOOLS = ["pytest==8.3.3", "pytest-timeout==2.3.1", "playwright==1.48.0"]

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

# The optional `ray` extra (pyproject.toml), pinned: the newest Ray that installs on Python 3.11 here, and the newest
# pyarrow that still accepts the WebUIs' numpy 1.26 (pyarrow 20+ needs numpy 2).
RAY = ["ray[data]==2.60.0", "pyarrow==19.0.1"]

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


def _tests(session: nox.Session, pins: list[str], default: tuple[str, ...] = ("tests",)) -> None:
    session.install(*TORCH, *pins, *WEBUI_COMMON, *TEST_TOOLS)
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": session.create_tmp() + "/hf-home",  # never the user's cache: offline means nothing cached
    }
    chromium = _chromium(session)
    if chromium:
        env["REIMAGINE_CHROMIUM"] = chromium
    args = session.posargs or list(default)
    # exit code 5 = "no tests collected" (a -k/-m selection that matches nothing) is not a failure of the suite
    session.run("python", "-m", "pytest", *args, env=env, success_codes=[0, 5])


@nox.session(python="3.11")
def a1111(session: nox.Session) -> None:
    """The suite under AUTOMATIC1111 1.10.1's packages (gradio 3, transformers 4.30)."""
    _tests(session, A1111)


@nox.session(python="3.11")
def forge(session: nox.Session) -> None:
    """The suite under Forge 2.x's packages (gradio 4, transformers 4.46, pydantic 2)."""
    _tests(session, FORGE)


@nox.session(python="3.11")
def ray(session: nox.Session) -> None:
    """``--engine ray`` (tests/test_ray.py) under Forge's packages plus Ray Data; the WebUI sessions skip those."""
    _tests(session, [*FORGE, *RAY], default=("tests/test_ray.py",))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
