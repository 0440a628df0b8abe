"""Helpers for the WebUI adapter's tests (not a test module): the core as the WebUI loaded it, the tabs it builds, the
shared host with one fake model, a Generate run through the WebUI's wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.fakes import FakeCache, FakeEngine


def core(name: str) -> Any:
    """A module of the core as the WebUI loaded it (``sd_webui_reimagine.*``, not this test's ``extension.*``)."""
    import importlib

    importlib.import_module("modules.ui_components")  # the WebUI patches gradio at startup, before any extension UI
    return importlib.import_module(f"sd_webui_reimagine.{name}")


def record_tabs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every Reimagine tab the WebUI builds from now on (``webui.tab.on_ui_tabs`` calls ``ui.tab.build``)."""
    tab_ui, built = core("ui.tab"), []
    build = tab_ui.build
    monkeypatch.setattr(tab_ui, "build", lambda *args, **kwargs: built.append(build(*args, **kwargs)) or built[-1])
    return built


def stub_host(monkeypatch: pytest.MonkeyPatch) -> Any:
    host = core("webui.host").shared_host()
    host._cache = FakeCache()
    choice = core("loading.discovery").ModelChoice("m", "unclip-h", "m.safetensors", Path("/models/m.safetensors"))
    monkeypatch.setattr(
        host, "models", lambda kinds=("unclip-h",), refresh=False: [choice] if "unclip-h" in kinds else []
    )
    return host


def webui_run(host: Any, fake: FakeEngine, args: list[Any]) -> tuple:
    ui_jobs = core("runtime.jobs")
    handler = host.run(lambda task, *a: ui_jobs.generate(host, a, fake.engine()), 1 + len(args))
    return handler("task(test)", *args)
