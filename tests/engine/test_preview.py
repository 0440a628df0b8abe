"""Live previews during sampling: the cheap latent → RGB map, the WebUI's "every N steps" rule, and previews arriving
during real runs of the Reimagine tab, the refiner post-pass and the standalone app's jobs (tiny models)."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from extension.engine import preview
from extension.params import REIMAGINE, TEXT_DIFF
from extension.runtime.control import Control
from tests.webui.refiner.stand_in import ON, Tab, site  # noqa: F401 -- the refiner hook's stand-in WebUI fixture
from tests.webui_stub.fixture import StubWebUI

# The WebUI's published "Approx cheap" factors, AUTOMATIC1111 v1.10.1 modules/sd_vae_approx.py:84-97
# (cheap_approximation: the ``is_sdxl`` branch, then the SD 1.x/2.x ``else`` branch), rows = latent channels.
WEBUI_SDXL_FACTORS = [
    [0.3448, 0.4168, 0.4395],
    [-0.1953, -0.0290, 0.0250],
    [0.1074, 0.0886, -0.0163],
    [-0.3730, -0.2499, -0.2088],
]
WEBUI_SD_FACTORS = [
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
]


def webui_preview_steps(steps: int, every: int, enabled: bool = True) -> list[int]:
    """The steps at which the WebUI makes a new live preview when its progress endpoint asks after every step:
    ``State.set_current_image`` (A1111 modules/shared_state.py:137-143) decodes when ``sampling_step -
    current_image_sampling_step >= show_progress_every_n_steps``, live previews are on and the period is not -1, and
    ``do_set_current_image`` then sets ``current_image_sampling_step = sampling_step`` (:157)."""
    shown, last = [], 0
    for step in range(1, steps + 1):
        if step - last >= every and enabled and every != -1:
            shown.append(step)
            last = step
    return shown


# ---------------------------------------------------------------------------------------------------------------------
# the pure module


def test_cheap_factors_are_the_webuis() -> None:
    assert [list(row) for row in preview.SD_RGB_FACTORS] == WEBUI_SD_FACTORS
    assert [list(row) for row in preview.SDXL_RGB_FACTORS] == WEBUI_SDXL_FACTORS
    for family, factors in ((preview.SD, WEBUI_SD_FACTORS), (preview.SDXL, WEBUI_SDXL_FACTORS)):
        for channel in range(4):  # a latent with one channel set maps to that channel's row, per pixel
            latents = torch.zeros(1, 4, 2, 3)
            latents[0, channel] = 1.0
            rgb = preview.cheap_rgb(latents, family)
            assert rgb.shape == (1, 3, 2, 3)
            assert torch.allclose(rgb[0, :, 1, 2], torch.tensor(factors[channel]))


def test_preview_image_has_the_latent_size_as_the_webuis_cheap_preview() -> None:
    # The WebUI's Approx cheap is a per-pixel linear map: no upscaling, so its preview is latent-sized (1/8).
    latents = torch.randn(1, 4, 8, 12)
    image = preview.preview_image(latents, preview.SD)
    assert image.size == (12, 8) and image.mode == "RGB"
    zero = preview.to_images(torch.zeros(1, 4, 2, 2), preview.SDXL)[0]
    assert zero.getpixel((0, 0)) == (128, 128, 128)  # x * 0.5 + 0.5, as single_sample_to_image
    batch = preview.preview_image(torch.randn(4, 4, 8, 12, dtype=torch.float16), preview.SDXL)
    assert batch.size == (24, 16)  # 4 images: a 2x2 grid, as images.image_grid lays out 4
    assert preview.preview_image(torch.randn(3, 4, 8, 12), preview.SD, as_grid=False).size == (12, 8)


@pytest.mark.parametrize("every", [-1, 0, 1, 2, 4, 10])
def test_due_is_the_webuis_rule(every: int) -> None:
    for enabled in (True, False):
        shown, last = [], 0
        for step in range(1, 7):
            if preview.due(step, last, every, enabled):
                shown.append(step)
                last = step
        assert shown == webui_preview_steps(6, every, enabled)
    assert webui_preview_steps(6, 2) == [2, 4, 6] and webui_preview_steps(6, 0) == [1, 2, 3, 4, 5, 6]


def test_standalone_control_previews_at_its_interval() -> None:
    control = Control()
    control.preview_every = 2
    callback = control.latent_preview(preview.SD)
    seen: list[int] = []
    for job in range(2):
        control.begin(1, 6) if job == 0 else control.next_job()
        for step in range(1, 7):
            control.step(step, 6)
            before = control.previews
            callback(step, torch.randn(2, 4, 8, 8))
            if control.previews > before:
                seen.append(step)
    assert seen == webui_preview_steps(6, 2) * 2  # counted afresh in each job
    assert control.latest_preview.size == (16, 8)  # a batch of 2 as a 2-column grid of latent-sized images


# ---------------------------------------------------------------------------------------------------------------------
# the engines


@pytest.fixture(scope="module")
def unclip_pipe(tiny: Any) -> Any:
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_h.folder)


def test_unclip_engine_hands_every_steps_latents(unclip_pipe: Any) -> None:
    from extension.engine.unclip import VariationRequest, generate

    steps: list[tuple[int, tuple[int, ...]]] = []
    request = VariationRequest(
        images=[Image.new("RGB", (64, 64), (200, 30, 30))], steps=4, width=64, height=64, n_iter=2, seed=1
    )
    generate(unclip_pipe, request, preview=lambda step, latents: steps.append((step, tuple(latents.shape))))
    assert [step for step, _ in steps] == list(range(1, 9))  # counted as progress counts: across both batches
    assert {shape for _, shape in steps} == {(1, 4, 8, 8)}


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "Euler", "Heun", "UniPC"])
def test_preview_gets_the_denoised_estimate(sampler: str) -> None:
    from extension.engine.samplers import make_scheduler
    from extension.engine.unclip import denoised_estimate

    scheduler = make_scheduler({}, sampler, "Automatic")
    scheduler.set_timesteps(4)
    latents = torch.randn(1, 4, 2, 2)
    output = scheduler.step(torch.randn(1, 4, 2, 2), scheduler.timesteps[0], latents)
    estimate = denoised_estimate(scheduler, output, output.prev_sample)
    if getattr(output, "pred_original_sample", None) is not None:  # Euler, Heun: the x0 the step computed
        assert estimate is output.pred_original_sample
    elif sampler == "DPM++ 2M":  # DPM-Solver++ keeps its x0 predictions
        assert estimate is scheduler.model_outputs[-1] and not torch.equal(estimate, output.prev_sample)
    else:  # nothing better known: the latents themselves
        assert estimate is output.prev_sample


def test_refiner_engine_hands_sdxl_latents(tiny: Any) -> None:
    from extension.engine.refiner import RefineRequest, refine
    from extension.loading import load_sdxl

    pipe = load_sdxl(tiny.sdxl_refiner.folder)
    seen: list[tuple[int, tuple[int, ...]]] = []
    request = RefineRequest(images=[Image.new("RGB", (64, 64), (10, 90, 200))], steps=3, strength=0.3, seed=2)
    refine(pipe, request, preview=lambda step, latents: seen.append((step, tuple(latents.shape))))
    assert seen == [(1, (1, 4, 8, 8)), (2, (1, 4, 8, 8)), (3, (1, 4, 8, 8))]


# ---------------------------------------------------------------------------------------------------------------------
# inside the WebUI (stand-in): the Reimagine tab and the refiner post-pass


def core(name: str) -> Any:
    return importlib.import_module(f"sd_webui_reimagine.{name}")


def tab_args(image: Image.Image, **values: Any) -> list[Any]:
    """The Generate handler's inputs (without task id)."""
    jobs = core("runtime.jobs")
    settings = {**REIMAGINE.defaults(), **values}
    named: dict[str, Any] = {"mode": jobs.MODE_VARIATIONS, "model": "m", "frames": 3}
    for i in range(1, jobs.MAX_INPUTS + 1):
        named[f"image_{i}"] = image if i == 1 else None
        named[f"weight_{i}"] = 1.0
    named.update({name: settings[name] for name in REIMAGINE.params})
    named.update(TEXT_DIFF.defaults())  # Edit by text off
    return [named[name] for name in jobs.input_names()]


def record_previews(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, tuple[int, int]]]:
    """``(state.sampling_step, image size)`` of every ``shared.state.assign_current_image``."""
    from modules import shared

    shown: list[tuple[int, tuple[int, int]]] = []
    real = shared.state.assign_current_image

    def assign(image: Any) -> None:
        shown.append((int(shared.state.sampling_step), image.size))
        real(image)

    monkeypatch.setattr(shared.state, "assign_current_image", assign)
    return shown


def run_tab(webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, pipe: Any, **opts: Any) -> list[Any]:
    """One Reimagine run (6 steps, 64x64, the real engine on the tiny unCLIP) through the WebUI's wrapper."""
    webui.load_scripts()
    from modules import shared

    for key, value in opts.items():
        setattr(shared.opts, key, value)
    host = core("webui.host").shared_host()
    choice = core("loading.discovery").ModelChoice("m", "unclip-h", "m.safetensors", Path("/models/m.safetensors"))
    monkeypatch.setattr(host, "find", lambda name, kinds=(): choice)
    monkeypatch.setattr(host, "pipeline", lambda choice, role="unclip", job=None: contextlib.nullcontext(pipe))
    shown = record_previews(monkeypatch)
    args = tab_args(Image.new("RGB", (64, 64), (30, 160, 60)), steps=6, width=64, height=64, seed=5)
    handler = host.run(lambda task, *a: core("runtime.jobs").generate(host, a), 1 + len(args))
    gallery, _, _, log = handler("task(test)", *args)
    assert len(gallery) == 1 and "error" not in log
    return shown


@pytest.mark.parametrize(
    "opts",
    [
        {"show_progress_every_n_steps": 2},
        {"show_progress_every_n_steps": 0},
        {"show_progress_every_n_steps": 4},
        {"show_progress_every_n_steps": -1},
        {"show_progress_every_n_steps": 1, "live_previews_enable": False},
    ],
    ids=["every-2", "every-0", "every-4", "batch-only", "off"],
)
def test_reimagine_tab_previews_at_the_webui_interval(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, unclip_pipe: Any, opts: dict[str, Any]
) -> None:
    shown = run_tab(webui, monkeypatch, unclip_pipe, **opts)
    live = [step for step, size in shown if size == (8, 8)]  # latent-sized: the cheap live previews
    enabled = opts.get("live_previews_enable", True)
    assert live == webui_preview_steps(6, opts["show_progress_every_n_steps"], enabled)
    if opts["show_progress_every_n_steps"] == 2:
        assert live == [2, 4, 6]
    finished = [size for _, size in shown if size == (64, 64)]
    assert finished == ([(64, 64)] if enabled else [])  # then the finished image, unless previews are off
    assert shown == [] or shown[-1][1] == (64, 64)


@pytest.mark.parametrize("sdxl", [False, True], ids=["pixel", "latent"])
def test_refiner_post_pass_previews_every_n_steps(
    site: StubWebUI,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sdxl: bool,
) -> None:
    from modules import shared

    shared.opts.show_progress_every_n_steps = 2
    tab = Tab(site)
    shown = record_previews(monkeypatch)
    tab.generate(tab.args(ON, steps=4), tmp_path, sdxl=sdxl, batch_size=2)
    live = [(step, size) for step, size in shown if size in ((8, 8), (16, 8))]  # latent-sized SDXL previews
    if sdxl:  # latent mode: the batch in one pass, a 2-image grid
        assert live == [(step, (16, 8)) for step in webui_preview_steps(4, 2)]
    else:  # pixel mode: one image after the other, the steps counted over the batch
        assert live == [(step, (8, 8)) for step in webui_preview_steps(8, 2)]
    shown.clear()
    shared.opts.live_previews_enable = False
    tab.generate(tab.args(ON, steps=4), tmp_path / "off", sdxl=sdxl, batch_size=2)
    assert not [size for _, size in shown if size in ((8, 8), (16, 8))]


# ---------------------------------------------------------------------------------------------------------------------
# the standalone app


def test_standalone_app_shows_live_previews_in_the_gallery(tmp_path: Path) -> None:
    import threading

    from extension.engine import Result
    from extension.runtime import jobs
    from tests.ui.fakes import FakeHost, make_args

    host = FakeHost(tmp_path)
    host.control().preview_every = 2
    seen = threading.Event()

    def iter_batches(pipe: Any, request: Any, *, progress: Any, should_stop: Any, preview: Any) -> Any:
        for step in range(1, request.steps + 1):
            progress(step, request.steps)
            preview(step, torch.zeros(request.batch_size, 4, 6, 10))
            if step == 2:
                assert seen.wait(30)  # hold the job until the page got the preview
        yield Result(images=[Image.new("RGB", (80, 48))], infotexts=["x\nSeed: 1"], seeds=[1])

    engine = jobs.Engine(iter_batches=iter_batches, interpolate=lambda *a, **k: None, refine=lambda *a, **k: None)
    handler = host.run(lambda task, *args: jobs.generate(host, args, engine), 1 + len(jobs.input_names()))
    outputs = handler("", *make_args(Image.new("RGB", (96, 64)), steps=4), None)
    gallery, *updates = next(outputs)  # while the job runs: the live preview of step 2
    assert len(gallery) == 1 and gallery[0].size == (10, 6) and all(isinstance(u, dict) for u in updates)
    seen.set()
    *_, (gallery, _, _, log) = outputs
    assert len(gallery) == 1 and Path(gallery[0]).is_file() and "Time taken" in log
    assert host.control().previews == 3  # steps 2 and 4, then the finished image


def test_a_dropped_standalone_generator_frees_the_slot(tmp_path: Path) -> None:
    import threading

    from extension.engine import Result
    from extension.runtime import jobs
    from tests.ui.fakes import FakeHost, make_args

    host = FakeHost(tmp_path)
    release = threading.Event()
    steps: list[int] = []

    def iter_batches(pipe: Any, request: Any, *, progress: Any, should_stop: Any, preview: Any) -> Any:
        for step in range(1, request.steps + 1):
            if should_stop():
                yield Result(interrupted=True)
                return
            progress(step, request.steps)
            preview(step, torch.zeros(1, 4, 6, 10))
            steps.append(step)
            if step == 1:
                release.wait(30)  # the page is gone by now
        yield Result(images=[Image.new("RGB", (80, 48))], infotexts=["x\nSeed: 1"], seeds=[1])

    engine = jobs.Engine(iter_batches=iter_batches, interpolate=lambda *a, **k: None, refine=lambda *a, **k: None)
    handler = host.run(lambda task, *args: jobs.generate(host, args, engine), 1 + len(jobs.input_names()))
    outputs = handler("", *make_args(Image.new("RGB", (96, 64)), steps=50), None)
    next(outputs)  # the first live preview, then the page goes away: gradio drops the generator
    outputs.close()  # returns at once (the job is interrupted, not waited for)
    release.set()
    *_, (gallery, _, _, log) = handler("", *make_args(Image.new("RGB", (96, 64)), steps=3), None)
    assert len(gallery) == 1 and "Time taken" in log  # the slot was freed for the next job
    assert len(steps) < 50  # the dropped job stopped early
