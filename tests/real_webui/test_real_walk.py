"""Opt-in: the user walk (tests/real_webui/walk.py) against a REAL, running A1111 WebUI or Forge.

Skipped unless ``REIMAGINE_REAL_WEBUI_URL`` is set (CI never sets it). The WebUI must already run with the extension
installed and an unCLIP-H model and an SDXL refiner in its model folder (see walk.py and docs/real-webuis.md;
tests/real_webui/setup/ builds such a WebUI, and its cycle.sh runs this walk from a clean install). Optional: ``REIMAGINE_REAL_WEBUI_NAME`` (screenshot prefix, default ``webui``),
``REIMAGINE_REAL_WEBUI_LOG`` (the WebUI's log: new error lines are reported per step), ``REIMAGINE_WALK_SHOTS``
(screenshot folder, default /tmp/walk-shots); ``REIMAGINE_WALK_SDXL`` (an SDXL base checkpoint name: the SDXL steps),
``REIMAGINE_WALK_WEBUI_DIR`` (the WebUI folder, to install the test-only VAE probe), ``REIMAGINE_WALK_ONLY=sdxl``, ``REIMAGINE_WALK_SDXL_STEPS``.

    REIMAGINE_REAL_WEBUI_URL=http://127.0.0.1:7860 REIMAGINE_REAL_WEBUI_LOG=$HOME/real-webuis/a1111/logs/webui.log \\
        $HOME/real-webuis/a1111/pwvenv/bin/python -m pytest tests/real_webui/test_real_walk.py -p no:cacheprovider -s

No timing is asserted; every wait is generous.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

URL = os.environ.get("REIMAGINE_REAL_WEBUI_URL")

pytestmark = [pytest.mark.skipif(not URL, reason="opt-in: set REIMAGINE_REAL_WEBUI_URL to a running real WebUI")]
if importlib.util.find_spec("pytest_timeout") is not None:  # the project's 300 s default is too short for a CPU WebUI
    pytestmark.append(pytest.mark.timeout(3600))


def _walk_module():
    spec = importlib.util.spec_from_file_location("reimagine_real_walk", Path(__file__).with_name("walk.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_user_walk_through_the_real_webui() -> None:
    pytest.importorskip("playwright.sync_api", reason="the walk needs playwright (pwvenv of tests/real_webui/setup)")
    walk = _walk_module()
    name = os.environ.get("REIMAGINE_REAL_WEBUI_NAME", "webui")
    shots = Path(os.environ.get("REIMAGINE_WALK_SHOTS", "/tmp/walk-shots"))
    webui_dir = os.environ.get("REIMAGINE_WALK_WEBUI_DIR")
    results = walk.walk(
        URL,
        name,
        shots,
        os.environ.get("REIMAGINE_REAL_WEBUI_LOG"),
        sdxl=os.environ.get("REIMAGINE_WALK_SDXL", ""),
        webui_dir=Path(webui_dir) if webui_dir else None,
        only=os.environ.get("REIMAGINE_WALK_ONLY", ""),
        sdxl_steps=tuple(s for s in os.environ.get("REIMAGINE_WALK_SDXL_STEPS", "").split(",") if s),
    )
    failed = [f"{r['step']}: {r['error']} (screenshot {r['screenshot']})" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
