"""Arguments and models: positional or named API args, bad ones reported, missing or wrong models, values checked once per job (extension/webui/refiner/controls.py, report.py).

Generations run through the stand-in (tests/webui/refiner/stand_in.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extension.params import REFINER
from tests.webui.refiner.stand_in import BASE_FILE, EVERYTHING, ON, PREFIX, REFINER_FILE, Tab, core, differs, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


def test_api_args_positional_or_by_name(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site)
    positional = [EVERYTHING[name] if name in EVERYTHING else REFINER[name].default for name in REFINER.params]
    _, by_position = tab.generate(tab.args(positional), tmp_path / "pos")
    named = {k: v for k, v in EVERYTHING.items() if k != "enabled"}  # a dict switches the post-pass on
    _, by_name = tab.generate(tab.args([named]), tmp_path / "named")
    _, pair = tab.generate(tab.args([True, named]), tmp_path / "pair")
    assert params(by_position.infotexts[0])[f"{PREFIX} sampler"] == "DPM++ 2M"
    assert by_name.infotexts[0] == by_position.infotexts[0] == pair.infotexts[0]
    assert not differs(by_name.images[0], by_position.images[0])
    _, off = tab.generate(tab.args([{**named, "enabled": False}]), tmp_path / "off")
    assert PREFIX not in off.infotexts[0]
    # strings, as JSON clients send them, are accepted; "0" CFG and "Use same sampler" mean inherit
    _, loose = tab.generate(
        tab.args([{"model": REFINER_FILE, "strength": "0.3", "steps": "2", "cfg_scale": 0}]), tmp_path
    )
    assert params(loose.infotexts[0])[f"{PREFIX} strength"] == "0.3"


def test_unknown_or_bad_api_args_are_reported_not_ignored(site: StubWebUI, tmp_path: Path) -> None:
    from modules import errors

    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off")
    p, processed = tab.generate(tab.args([{"model": REFINER_FILE, "strenght": 0.3}]), tmp_path / "typo")
    assert len(processed.images) == 1 and not differs(processed.images[0], plain.images[0])  # generation succeeded
    message = params(processed.infotexts[0])[f"{PREFIX} error"]
    assert "strenght" in message and "strength" in message and "unknown parameter" in message
    assert any("strenght" in comment for comment in p.comments)  # shown under the image in the page
    assert any("strenght" in line for line in errors.reported)  # and in the WebUI log
    _, out_of_range = tab.generate(tab.args([{"model": REFINER_FILE, "steps": 1000}]), tmp_path / "range")
    assert "steps must be" in params(out_of_range.infotexts[0])[f"{PREFIX} error"]
    reported = len(errors.reported)
    _, disabled = tab.generate(tab.args([False, "nonsense", "x"]), tmp_path / "disabled")  # off: nothing to say
    assert PREFIX not in disabled.infotexts[0] and len(errors.reported) == reported


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("nope.safetensors", "is not among the SDXL refiner models"),
        ("", "No SDXL refiner model selected"),
        (BASE_FILE, "SDXL base"),
        ("tiny-base", "SDXL base"),
    ],
)
def test_missing_or_wrong_model_warns_and_generation_succeeds(
    site: StubWebUI, tmp_path: Path, model: str, expected: str
) -> None:
    from modules import errors

    tab = Tab(site)
    p, processed = tab.generate(tab.args(ON, model=model), tmp_path)
    assert len(processed.images) == 1
    info = params(processed.infotexts[0])
    assert expected in info[f"{PREFIX} error"] and PREFIX not in info
    assert any(expected in comment for comment in p.comments)
    assert any(expected in line for line in errors.reported)


def test_model_by_stem_or_webui_title(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site)
    for name in ("tiny-refiner", "tiny-refiner [0123456789]"):
        _, processed = tab.generate(tab.args([{"model": name, "steps": 1}]), tmp_path / name)
        assert params(processed.infotexts[0])[PREFIX] == "tiny-refiner"


def test_a_failing_pass_keeps_the_image_and_says_why(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modules import sd_models, shared

    engine = core("engine.refiner")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(engine, "refine", broken)
    host = core("webui.host").shared_host()
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)
    tab = Tab(site)
    _, processed = tab.generate(tab.args(ON), tmp_path, batch_size=2)
    assert len(processed.images) == 3  # grid + 2, unrefined
    assert all("RuntimeError: CUDA out of memory" in params(t)[f"{PREFIX} error"] for t in processed.infotexts)
    if not site.is_forge:
        assert sd_models.calls[-1] == ("send_model_to_device", shared.sd_model)  # put back after the failure
    assert tab.jobs == (2, 2)  # the post-pass job was counted and ended although it failed


@pytest.mark.parametrize("sdxl", [False, True], ids=["pixel", "latent"])
def test_values_are_checked_once_per_job(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sdxl: bool
) -> None:
    """2 batches x 2 images: the refiner's values go through the table's validator once, in ``process``."""
    table = core("params").REFINER
    real = table.validate
    calls: list[Any] = []
    monkeypatch.setattr(table, "validate", lambda *a, **k: calls.append(a) or real(*a, **k))
    tab = Tab(site)
    _, processed = tab.generate(tab.args(ON), tmp_path, sdxl=sdxl, n_iter=2, batch_size=2)
    texts = processed.infotexts[processed.index_of_first_image :]
    assert [params(text)[f"{PREFIX} mode"] for text in texts] == ["Latent" if sdxl else "Pixel"] * 4
    assert len(calls) == 1
