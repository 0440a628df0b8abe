"""The progress bar, Interrupt / Skip and the refiner's memory (extension/webui/refiner/jobs.py, progress.py).

Generations run through the stand-in (tests/webui/refiner/stand_in.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.webui.refiner.stand_in import ON, PREFIX, Tab, core, differs, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


def test_progress_covers_the_refiner_steps(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modules import shared

    engine = core("engine.refiner")
    real = engine.refine
    seen: list[tuple[int, int, int, int]] = []

    def watched(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            state = shared.state
            seen.append((state.job_no, state.job_count, state.sampling_step, state.sampling_steps))

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", watched)
    tab = Tab(site)
    tab.generate(tab.args(ON, steps=3), tmp_path, n_iter=2, batch_size=2)
    # 2 batches x (sampling + post-pass) = 4 jobs; batch n's post-pass is job 2n+1, over both images of the batch
    assert {s[1] for s in seen} == {4}
    assert [s[0] for s in seen] == [1] * 6 + [3] * 6
    assert [s[2] for s in seen[:6]] == [1, 2, 3, 4, 5, 6] and {s[3] for s in seen} == {6}
    assert tab.jobs == (4, 4)  # every job ended
    fractions = [(job + step / steps) / count for job, count, step, steps in seen]
    assert fractions == sorted(fractions)


@pytest.mark.parametrize("sdxl", [False, True], ids=["pixel", "latent"])
def test_interrupt_mid_pass_leaves_a_valid_image_and_restored_state(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sdxl: bool
) -> None:
    from modules import devices, sd_models, shared

    engine = core("engine.refiner")
    real = engine.refine
    steps_done: list[int] = []

    def interrupted(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            steps_done.append(step)
            if step == 1:
                shared.state.interrupt()  # the Interrupt button, during the refiner's second step

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", interrupted)
    host = core("webui.host").shared_host()
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)  # a full GPU: the WebUI's model has to make room
    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off", sdxl=sdxl)
    sd_models.calls.clear()
    p, processed = tab.generate(tab.args(ON, steps=4), tmp_path / "on", sdxl=sdxl)
    assert steps_done == [1]  # stopped after the step that saw the interrupt
    assert len(processed.images) == 1 and not differs(processed.images[0], plain.images[0])  # the unrefined image
    info = params(processed.infotexts[0])
    assert PREFIX not in info and f"{PREFIX} error" not in info  # nothing claims it was refined
    assert p.sd_model.decode_calls == 1
    model = shared.sd_model
    if site.is_forge:
        from backend import memory_management

        assert ("unload_all_models",) in memory_management.calls
    else:
        moves = [c for c in sd_models.calls if c[0].startswith("send_model")]
        assert moves == [("send_model_to_cpu", model), ("send_model_to_device", model)]
        assert model.device == devices.device  # back on its device
    assert tab.jobs == (2, 2)
    # the next generation runs normally
    monkeypatch.setattr(engine, "refine", real)
    _, again = tab.generate(tab.args(ON), tmp_path / "again", sdxl=sdxl)
    assert params(again.infotexts[0])[PREFIX] == "tiny-refiner"


def test_skip_leaves_the_batch_unrefined(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modules import shared

    engine = core("engine.refiner")
    real = engine.refine

    def skipped(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            shared.state.skip()

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", skipped)
    tab = Tab(site)
    _, processed = tab.generate(tab.args(ON, steps=3), tmp_path, batch_size=2)
    assert all(PREFIX not in t for t in processed.infotexts)


def test_refiner_stays_resident_or_is_offloaded(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modules import shared

    host = core("webui.host").shared_host()
    tab = Tab(site)
    tab.generate(tab.args(ON), tmp_path / "a", batch_size=2)
    tab.generate(tab.args(ON), tmp_path / "b")
    assert host.cache.loads == 1  # loaded once, reused by every image and the next generation
    offloads: list[Any] = []
    monkeypatch.setattr(host, "_offload", lambda pipe: offloads.append(pipe))
    shared.opts.data["reimagine_memory"] = "Offload after each run"
    tab.generate(tab.args(ON), tmp_path / "c")
    assert len(offloads) == 1 and host.cache.loads == 1
