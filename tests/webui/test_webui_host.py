"""The WebUI as a host (extension/webui/host.py, surface.py) against the stand-in: progress and live previews on
shared.state, saving by the WebUI's settings, Interrupt / Skip, the WebUI's model moved off the GPU and back, model
folders and settings, and the REST API's backend seam (extension/runtime/backend.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from extension.runtime.host import MEMORY_MODES
from tests.ui import fakes
from tests.ui.fakes import FakeEngine, make_args
from tests.webui.adapter import core, stub_host, webui_run
from tests.webui_stub.fixture import StubWebUI

image = fakes.image  # the input-image fixture


def test_progress_state_preview_and_saving(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image
) -> None:
    webui.load_scripts()
    from modules import progress, shared

    host = stub_host(monkeypatch)
    fake = FakeEngine()
    observed: list[tuple] = []

    def watch() -> None:
        state = shared.state
        observed.append((state.job_count, state.job_no, state.sampling_step, state.sampling_steps, state.textinfo))
        observed.append(progress.progressapi({"id_task": "task(test)"}).progress)

    fake.at(1, 2, watch)
    gallery, info_json, _, log = webui_run(host, fake, make_args(image, n_iter=2, batch_size=2, seed=5))
    assert observed[0][:3] == (2, 1, 2) and observed[0][4] == "Batch 2 of 2"
    assert observed[1] == pytest.approx(0.5 + 0.5 * 2 / observed[0][3])
    calls = [call[0] for call in shared.state.calls]
    assert calls[0] == "begin" and calls[-1] == "end" and "assign_current_image" in calls and "nextjob" in calls
    assert "Time taken" in log  # wrap_gradio_gpu_call's stats: the last output is the HTML log
    assert len(gallery) == 4 and all(isinstance(item, Image.Image) for item in gallery)
    saved = sorted((webui.outputs_dir / "reimagine-images").rglob("*.png"))  # <date>/ subfolders by default
    assert len(saved) == 4
    infotexts = json.loads(info_json)["infotexts"]
    assert sorted(Image.open(path).info["parameters"] for path in saved) == sorted(infotexts)
    assert gallery[0].info["parameters"] == infotexts[0]
    assert shared.state.job_count == 0 and not shared.state.interrupted  # reset by the WebUI's wrapper


def test_saving_honours_webui_settings(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image, tmp_path: Path
) -> None:
    webui.load_scripts()
    from modules import shared

    host = stub_host(monkeypatch)
    shared.opts.samples_save = False
    gallery, info_json, _, _ = webui_run(host, FakeEngine(), make_args(image))
    assert not (webui.outputs_dir / "reimagine-images").exists()
    assert gallery[0].info["parameters"] == json.loads(info_json)["infotexts"][0]  # still in the gallery's PNG
    shared.opts.samples_save = True
    shared.opts.samples_format = "jpg"
    shared.opts.outdir_samples = str(tmp_path / "custom")
    webui_run(host, FakeEngine(), make_args(image))
    assert [p.suffix for p in (tmp_path / "custom").rglob("*.*")] == [".jpg"]


def test_webui_interrupt_after_current_batch_then_immediately(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image
) -> None:
    webui.load_scripts()
    from modules import shared

    shared.opts.interrupt_after_current = True  # "Don't Interrupt in the middle": A1111/Forge default, off in Neo
    host = stub_host(monkeypatch)
    fake = FakeEngine()
    fake.at(0, 1, host.interrupt)  # first click during a 3-batch run: "Don't Interrupt in the middle"
    gallery, _, _, log = webui_run(host, fake, make_args(image, n_iter=3))
    assert len(gallery) == 1 and ("stop_generating",) in shared.state.calls
    assert "1 / 3" in log
    fake = FakeEngine()
    fake.at(0, 1, host.interrupt)
    fake.at(0, 2, host.interrupt)  # second click: stop now, nothing of this batch finished
    gallery, _, _, _ = webui_run(host, fake, make_args(image, n_iter=3))
    assert gallery == [] and ("interrupt",) in shared.state.calls
    fake = FakeEngine()
    fake.at(1, 1, host.skip)
    gallery, _, _, _ = webui_run(host, fake, make_args(image, n_iter=3))
    assert len(gallery) == 2


@pytest.mark.parametrize("fails", [False, True])
def test_main_model_goes_back_to_the_device(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image, fails: bool
) -> None:
    webui.load_scripts()
    from modules import sd_models, shared

    host = stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)  # a full GPU: our run needs room
    offloaded: list[Any] = []
    monkeypatch.setattr(host, "_offload", offloaded.append)
    fake = FakeEngine()
    if fails:
        fake.fail = RuntimeError("out of memory")
    _, _, _, log = webui_run(host, fake, make_args(image))
    model = shared.sd_model
    names = [call[0] for call in sd_models.calls]
    if webui.is_forge:
        from backend import memory_management

        assert ("unload_all_models",) in memory_management.calls
    else:
        assert names.count("send_model_to_cpu") == 1 and names.count("send_model_to_device") == 1
        assert names.index("send_model_to_cpu") < names.index("send_model_to_device")
        assert ("send_model_to_device", model) in sd_models.calls
    assert ("RuntimeError: out of memory" in log) is fails
    assert len(offloaded) == 1  # ours does not fit next to the WebUI's model, which comes back: ours leaves


def test_main_model_stays_when_there_is_room(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image
) -> None:
    webui.load_scripts()
    from modules import sd_models

    host = stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 1 << 50)
    offloaded: list[Any] = []
    monkeypatch.setattr(host, "_offload", offloaded.append)
    webui_run(host, FakeEngine(), make_args(image))
    assert not [c for c in sd_models.calls if c[0] in ("send_model_to_cpu", "send_model_to_device")]
    assert offloaded == []  # "Keep resident" (the default) and it fits: ours stays for the next run


def test_webui_model_folders_and_settings(webui: StubWebUI, tmp_path: Path) -> None:
    webui.load_scripts()
    from modules import script_callbacks, shared

    script_callbacks.ui_settings_callback()
    host = core("webui.host").shared_host()
    shared.opts.reimagine_models_dirs = f"{tmp_path / 'a'}\n\n{tmp_path / 'b'}"
    shared.cmd_opts.ckpt_dir = str(tmp_path / "ckpt")
    folders = host.model_folders()
    assert folders == [webui.checkpoints_dir, tmp_path / "ckpt", tmp_path / "a", tmp_path / "b"]
    shared.opts.reimagine_memory = MEMORY_MODES[1]
    assert host.memory_mode() == MEMORY_MODES[1]
    assert host.models_dir() == webui.models_dir
    assert host.outdir() == webui.outputs_dir / "reimagine-images"


def test_rest_api_backend_seam_in_the_webui(webui: StubWebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REST API runs jobs through the same host: queue lock, shared.state, progress, memory handling."""
    webui.load_scripts()
    from modules import progress, sd_models, shared

    host = stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)
    (choice,) = host.models()
    backend = core("runtime.backend").ApiBackend(host)
    seen: list[Any] = []

    def job(report: Callable[[int, int], None], should_stop: Callable[[], bool]) -> str:
        pipe = backend.load(choice)
        report(1, 4)
        seen.append(
            (shared.state.job_count, shared.state.sampling_step, shared.state.sampling_steps, progress.current_task)
        )
        assert not should_stop()
        return pipe.reimagine_info.name

    assert backend.run_job("Reimagine variations", job) == "m"
    assert seen[0][:3] == (1, 1, 4) and seen[0][3].startswith("task(")
    assert shared.state.calls[0][0] == "begin" and shared.state.calls[-1] == ("end",)
    if not webui.is_forge:
        names = [c[0] for c in sd_models.calls]
        assert names.index("send_model_to_cpu") < names.index("send_model_to_device")
