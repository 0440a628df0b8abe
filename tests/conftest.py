"""Test session setup: offline Hugging Face stack, a network guard, the tiny model fixtures.

Import convention: the repository root is put on ``sys.path`` here, so test modules import helpers as
``from tests.tiny_models import ...`` (never ``import tiny_models``, which would load a second copy).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# --- offline before anything imports huggingface_hub / transformers / diffusers -----------------------------------
_HF_HOME = tempfile.mkdtemp(prefix="reimagine-hf-home-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HOME"] = _HF_HOME
for _var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "DIFFUSERS_CACHE", "HF_DATASETS_CACHE"):
    os.environ.pop(_var, None)

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402

from tests.netguard import NetworkGuard  # noqa: E402
from tests.tiny_models import TinyModels, build_tiny_models  # noqa: E402
from tests.webui_stub.fixture import each_webui, webui  # noqa: E402, F401 - the WebUI stand-in, for every test module

# --- network guard (tests/netguard.py; subprocesses get it through tests/netguard_site) -------------------------
GUARD = NetworkGuard()
GUARD.install()  # at import: collection-time imports are guarded too


def pytest_unconfigure(config: pytest.Config) -> None:
    GUARD.uninstall()
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def network_guard() -> Iterator[NetworkGuard]:
    """Session-wide: non-loopback network access raises :class:`NetworkBlockedError` (loopback stays allowed)."""
    GUARD.install()
    yield GUARD


@pytest.fixture
def network_attempts(network_guard: NetworkGuard) -> list[tuple[str, Any]]:
    """The blocked attempts made during this test (empty at its start): assert on it to prove 'no network tried'."""
    network_guard.attempts.clear()
    return network_guard.attempts


def _set_hub_offline(offline: bool) -> None:
    """Flip the offline switches that huggingface_hub/transformers/diffusers read at import time."""
    value = "1" if offline else None
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    import huggingface_hub.constants
    import huggingface_hub.utils

    huggingface_hub.constants.HF_HUB_OFFLINE = offline
    # hub < 1.0 (requests) mounts its offline adapter when a session is created: start a new one. hub 1.x/2.x checks
    # the constant on every request (an httpx event hook); closing its shared client is harmless.
    reset = getattr(huggingface_hub.utils, "reset_sessions", None) or huggingface_hub.utils.close_session
    reset()
    for module, attr in (
        ("transformers.utils.hub", "_is_offline_mode"),
        ("diffusers.utils.hub_utils", "HF_HUB_OFFLINE"),
        ("diffusers.loaders.lora_base", "HF_HUB_OFFLINE"),
    ):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, attr):
            setattr(mod, attr, offline)


@pytest.fixture
def hub_online(network_guard: NetworkGuard) -> Iterator[None]:
    """``HF_HUB_OFFLINE`` unset for one test (the library switches too), with the network still blocked: code that
    wrongly goes online fails fast (and shows up in ``network_attempts``) instead of being stopped by offline mode."""
    _set_hub_offline(False)
    try:
        yield
    finally:
        _set_hub_offline(True)


# --- tiny models -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny random-weight unCLIP -h/-l and SDXL base/refiner in every form (see tests/tiny_models.py).

    Built once per run in a pytest temp dir; with ``REIMAGINE_TINY_CACHE=/some/dir`` it is reused across runs (keyed by
    a version string covering tiny_models.py, tests/tiny/ and the library versions). Treat every path as read-only.
    """
    cache = os.environ.get("REIMAGINE_TINY_CACHE")
    base = Path(cache).expanduser() if cache else tmp_path_factory.mktemp("tiny")
    return build_tiny_models(base)


@pytest.fixture
def cpu_fp16() -> None:
    """Skip where this torch has no fp16 convolution on the CPU (torch 2.1, A1111's): fp16 VAEs run on GPUs there."""
    import torch

    try:
        torch.nn.functional.conv2d(torch.zeros(1, 1, 3, 3, dtype=torch.float16), torch.zeros(1, 1, 1, 1).half())
    except RuntimeError as error:
        pytest.skip(f"this torch cannot run an fp16 VAE on the CPU: {error}")
