"""Test matrix: the two WebUI environments our users run (see README "Testing")."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "a1111", "forge"]
nox.options.reuse_existing_virtualenvs = True

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
TEST_TOOLS = ["pytest==8.3.3", "pytest-timeout==2.3.1", "playwright==1.48.0"]

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
    "open-clip-torch==2.20.0",
    "numpy==1.26.2",
    "Pillow==9.5.0",
    "safetensors==0.4.2",
]


def _tests(session: nox.Session, pins: list[str]) -> None:
    session.install(*TORCH, *pins, *TEST_TOOLS)
    session.run("python", "-m", "pytest", "tests", *session.posargs, env={"HF_HUB_OFFLINE": "1"})


@nox.session(python="3.11")
def a1111(session: nox.Session) -> None:
    """The suite under AUTOMATIC1111 1.10.1's packages (gradio 3, transformers 4.30)."""
    _tests(session, A1111)


@nox.session(python="3.11")
def forge(session: nox.Session) -> None:
    """The suite under Forge 2.x's packages (gradio 4, transformers 4.46, pydantic 2)."""
    _tests(session, FORGE)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
