"""The Reimagine tab, the standalone app and the WebUI adapter: built under this environment's gradio
(3.41 in a1111, 4.40 in forge) and wired against the WebUI stand-in (tests/webui_stub).

Jobs are driven through the same handlers gradio calls. A fake engine (instant, scriptable) checks the job logic —
progress, interrupt, skip, "stop after the current batch", errors; the tiny models check the real thing end to end.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from extension.engine import Result, seed_list
from extension.loading import discovery as models
from extension.loading.discovery import ModelChoice
from extension.params import NOISE_PRESETS, REIMAGINE, TEXT_DIFF
from extension.runtime import jobs
from extension.runtime.host import MEMORY_MODES
from extension.ui import compat
from extension.ui.standalone import StandaloneHost
from tests.webui_stub import fixture as webui_fixture
from tests.webui_stub.fixture import StubWebUI

webui = webui_fixture.webui
each_webui = webui_fixture.each_webui

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def handlers(blocks: gr.Blocks, component: Any, event: str) -> list[Callable[..., Any]]:
    """The Python functions gradio runs for ``component.<event>`` (gradio 3: ``dependencies``, 4: ``fns``)."""
    if isinstance(blocks.fns, list):
        return [
            fn.fn
            for fn, dep in zip(blocks.fns, blocks.dependencies)
            if dep["trigger"] == event and component._id in dep["targets"] and fn.fn is not None
        ]
    return [f.fn for f in blocks.fns.values() if (component._id, event) in f.targets and f.fn is not None]


def js_of(blocks: gr.Blocks, component: Any, event: str) -> list[str | None]:
    """The JavaScript attached to ``component.<event>``."""
    if isinstance(blocks.fns, list):
        return [dep["js"] for dep in blocks.dependencies if dep["trigger"] == event and component._id in dep["targets"]]
    return [f.js for f in blocks.fns.values() if (component._id, event) in f.targets]


class FakePipe:
    """What the jobs read from a pipeline without running it."""

    def __init__(self, name: str = "fake-unclip") -> None:
        self.scheduler = SimpleNamespace(config={})
        self.reimagine_info = SimpleNamespace(name=name, hash="0123456789")


class FakeCache:
    """A ModelCache stand-in: counts loads, hands out FakePipes."""

    def __init__(self) -> None:
        self.items: dict[tuple, Any] = {}
        self.loads = 0

    def key(self, role: str, source: Any, **kwargs: Any) -> tuple:
        return (role, str(source))

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def get(self, role: str, source: Any, **kwargs: Any) -> Any:
        key = self.key(role, source)
        if key not in self.items:
            self.loads += 1
            self.items[key] = FakePipe(Path(str(source)).stem)
        return self.items[key]


class FakeEngine:
    """An instant engine: one fake step loop per call, images coloured by seed; ``at(batch, step)`` hooks let a test
    press Interrupt / Skip at an exact point."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.requests: list[Any] = []
        self.hooks: dict[tuple[int, int], Callable[[], None]] = {}
        self.fail: Exception | None = None

    def at(self, batch: int, step: int, action: Callable[[], None]) -> None:
        self.hooks[(batch, step)] = action

    def iter_batches(
        self, pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, preview: Any = None
    ) -> Any:
        """Like ``reimagine.iter_batches``: one Result per batch; ``calls`` records each batch as its own request."""
        if self.fail is not None:
            raise self.fail
        self.requests.append(request)
        first_seed = seed_list(request.seed, 1)[0]
        for batch in range(request.n_iter):
            batch_request = replace(request, n_iter=1, seed=first_seed + batch * request.batch_size)
            self.calls.append(batch_request)
            yield self._batch(batch, batch_request, progress, should_stop)

    def _batch(self, batch: int, request: Any, progress: Any, should_stop: Any) -> Result:
        for step in range(request.steps):
            hook = self.hooks.get((batch, step))
            if hook is not None:
                hook()
            if should_stop is not None and should_stop():
                return Result(interrupted=True)
            if progress is not None:
                progress(step + 1, request.steps)
        seeds = seed_list(request.seed, request.batch_size)
        images = [Image.new("RGB", (64, 48), (s % 256, 0, 0)) for s in seeds]
        texts = [
            f"{request.prompt}\nSteps: {request.steps}, Seed: {s}, Noise level: {request.noise_level}" for s in seeds
        ]
        return Result(images=images, infotexts=texts, seeds=seeds)

    def interpolate(
        self, pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, preview: Any = None
    ) -> Result:
        self.calls.append(request)
        result = Result()
        for frame in range(request.frames):
            if should_stop is not None and should_stop():
                result.interrupted = True
                break
            if progress is not None:
                progress(frame + 1, request.frames)
            result.images.append(Image.new("RGB", (64, 48), (frame * 20, 0, 0)))
            result.infotexts.append(f"\nSeed: 1, Interpolation: {frame + 1}/{request.frames}, Steps: 1")
            result.seeds.append(1)
        return result

    def engine(self) -> jobs.Engine:
        return jobs.Engine(iter_batches=self.iter_batches, interpolate=self.interpolate, refine=lambda *a, **k: None)


def make_args(image: Image.Image | None = None, **values: Any) -> list[Any]:
    """The Generate handler's inputs (without task id), at the table's defaults unless given."""
    settings = {**REIMAGINE.defaults(), "steps": 3, **values}
    named: dict[str, Any] = {"mode": values.pop("mode", jobs.MODE_VARIATIONS), "model": values.pop("model", "m")}
    for i in range(1, jobs.MAX_INPUTS + 1):
        named[f"image_{i}"] = image if i == 1 else values.get(f"image_{i}")
        named[f"weight_{i}"] = values.get(f"weight_{i}", 1.0)
    named.update({name: settings[name] for name in REIMAGINE.params})
    named["frames"] = values.get("frames", 3)
    named.update({name: values.get(name, TEXT_DIFF[name].default) for name in TEXT_DIFF.params})
    return [named[name] for name in jobs.input_names()]


class FakeHost(StandaloneHost):
    """The standalone host with one fake model and a fake pipeline cache."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__([], outdir=tmp_path / "out", cache=FakeCache())

    def models(self, kinds: Any = models.OFFERED_KINDS, refresh: bool = False) -> list[ModelChoice]:
        choices = [ModelChoice("m", "unclip-h", "m.safetensors", Path("/models/m.safetensors"))]
        choices.append(ModelChoice("r", "sdxl-refiner", "r.safetensors", Path("/models/r.safetensors")))
        return [c for c in choices if c.kind in kinds]


@pytest.fixture
def image() -> Image.Image:
    return Image.new("RGB", (96, 64), (10, 200, 30))


# ---------------------------------------------------------------------------------------------------------------------
# the tab, built in this environment's gradio


def _events(blocks: gr.Blocks) -> list[tuple[Any, list[Any], str | None]]:
    """``(handler, input components, js)`` of every event of ``blocks``, in gradio 3.41 and 4.40."""
    fns = blocks.fns.values() if isinstance(blocks.fns, dict) else blocks.fns
    if isinstance(blocks.fns, dict):  # gradio 4: each BlockFunction knows its inputs and js
        return [(f.fn, list(f.inputs), f.js) for f in fns]
    by_id = blocks.blocks  # gradio 3: the dependency dicts hold input ids and the js
    return [(f.fn, [by_id[i] for i in dep["inputs"]], dep.get("js")) for f, dep in zip(fns, blocks.dependencies)]


def test_no_event_takes_select_data_or_sends_a_state_through_javascript(tmp_path: Path) -> None:
    """What breaks under Forge's gradio 4.40 (its documented behaviour, see docs/webui-contract.md): a handler that
    declares ``gr.SelectData`` is refused before it runs for a gallery of saved outputs served from ``outputs/``,
    and an event with a ``js`` function and a ``gr.State`` input gets every later argument shifted by one."""
    import inspect

    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    events = _events(built.blocks)
    assert events
    for fn, inputs, js in events:
        if fn is not None:
            for parameter in inspect.signature(fn).parameters.values():
                assert not (isinstance(parameter.annotation, type) and issubclass(parameter.annotation, gr.EventData))
                assert "SelectData" not in str(parameter.annotation), fn
        if js:
            assert not any(isinstance(component, gr.State) for component in inputs), (fn, js)


def test_tab_controls_come_from_the_parameter_table(tmp_path: Path) -> None:
    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    c = built.components
    for param in REIMAGINE:
        component = c[param.name]
        assert component.label == param.label, param.name
        if isinstance(component, gr.Slider):
            assert (component.minimum, component.maximum, component.step) == (param.minimum, param.maximum, param.step)
            if param.name != "noise_level":
                assert component.value == param.default
        if isinstance(component, (gr.Dropdown, gr.Radio)):
            choices = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in component.choices]
            assert choices == list(param.choices or ()), param.name
            assert component.value == param.default
    assert c["noise_level"].value == REIMAGINE["noise_level"].default
    assert c["seed"].value == REIMAGINE["seed"].default
    # txt2img-like element ids
    for name, elem_id in {
        "generate": "reimagine_generate",
        "interrupt": "reimagine_interrupt",
        "skip": "reimagine_skip",
        "gallery": "reimagine_gallery",
        "generation_info": "generation_info_reimagine",
        "image_1": "reimagine_image_1",
    }.items():
        assert c[name].elem_id == elem_id
    # paste-back: every infotext key of the table, the prompts, weights and the model
    keys = [key for _, key in built.paste_fields if isinstance(key, str)]
    keys_wanted = ["Prompt", "Negative prompt", *(p.infotext for p in REIMAGINE if p.infotext), "Text diff amount"]
    assert keys == keys_wanted
    assert sum(callable(key) for _, key in built.paste_fields) == jobs.MAX_INPUTS + 1 + 2  # + from/to texts
    assert built.init_image is c["image_1"]


def test_prompt_boxes_have_token_counters(tmp_path: Path) -> None:
    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    c, blocks = built.components, built.blocks
    for box, counter in (("prompt", "prompt_tokens"), ("negative_prompt", "negative_prompt_tokens")):
        (count,) = handlers(blocks, c[box], "change")
        assert count("") == "<span>0/75</span>"  # txt2img's counter for an empty prompt
        assert count("a photo of a (cat:1.3) BREAK a dog") == "<span>77/150</span>"
        assert c[counter].elem_id == f"reimagine_{'negative_' if box != 'prompt' else ''}token_counter"


def test_tab_events_and_small_buttons(tmp_path: Path, image: Image.Image) -> None:
    from extension.ui import tab

    host = FakeHost(tmp_path)
    built = tab.build(host)
    c, blocks = built.components, built.blocks
    assert handlers(blocks, c["generate"], "click")
    assert handlers(blocks, c["interrupt"], "click") and handlers(blocks, c["skip"], "click")
    for name, value in NOISE_PRESETS.items():
        (preset,) = handlers(blocks, c[f"preset_{name.lower()}"], "click")
        assert preset() == value
    (random_seed,) = handlers(blocks, c["random_seed"], "click")
    assert random_seed() == -1
    (reuse,) = handlers(blocks, c["reuse_seed"], "click")
    info = json.dumps({"all_seeds": [11, 12, 13]})
    assert reuse(info, 2, -1) == 13
    assert reuse("", 0, 5) == 5
    (match,) = handlers(blocks, c["match_aspect"], "click")
    assert match(image, 768, 0) == (768, 512)
    assert match(image, 0, 512) == (768, 512)
    (mode_change,) = handlers(blocks, c["mode"], "change")
    frames, mix_group = mode_change(jobs.MODE_INTERPOLATION)
    assert frames["visible"] is True and mix_group["open"] is True  # interpolation needs image 2
    frames, mix_group = mode_change(jobs.MODE_VARIATIONS)
    assert frames["visible"] is False and "open" not in mix_group
    # "Mix more images" is folded at first and unfolds when a slot is filled (a drop, Send to, a pasted weight)
    assert c["mix_accordion"].open is False
    for i in (2, 3, 4):
        (on_image,) = handlers(blocks, c[f"image_{i}"], "change")
        assert on_image(image)["open"] is True and "open" not in on_image(None)
        (on_weight,) = handlers(blocks, c[f"weight_{i}"], "change")
        assert on_weight(0.3)["open"] is True and "open" not in on_weight(c[f"weight_{i}"].value)
    # one control named "Refine with SDXL": the accordion; its button says what it does
    assert [b.label for b in blocks.blocks.values() if getattr(b, "label", None) == "Refine with SDXL"] == [
        "Refine with SDXL"
    ]
    assert c["refine"].value == "Refine the selected image"
    (refresh,) = handlers(blocks, c["model_refresh"], "click")
    assert refresh("gone")["value"] == "m"
    # selecting an output (reimagine.js clicks the hidden button with the selected index) shows its infotext
    (show,) = handlers(blocks, c["show_selected"], "click")
    assert "Steps: 1" in show(json.dumps({"infotexts": ["a", "b\nSteps: 1"]}), 1)
    # Vary again: selected output -> image 1, other slots cleared, then Generate is clicked in the browser
    (vary,) = handlers(blocks, c["vary_again"], "click")
    out = vary([image], 0)
    assert out[0] == jobs.MODE_VARIATIONS and out[1] is image and out[3] is None
    assert any(js and "reimagine_click_generate" in js for js in _all_js(blocks))


def _all_js(blocks: gr.Blocks) -> list[str]:
    if isinstance(blocks.fns, list):
        return [dep["js"] for dep in blocks.dependencies if dep["js"]]
    return [f.js for f in blocks.fns.values() if f.js]


def test_default_noise_preset_setting(tmp_path: Path) -> None:
    from extension.ui import tab

    class Strong(FakeHost):
        def default_noise_preset(self) -> str:
            return "Strong"

    assert tab.build(Strong(tmp_path)).components["noise_level"].value == NOISE_PRESETS["Strong"]


def test_standalone_app_builds_both_tabs(tmp_path: Path) -> None:
    from extension.app import build_app

    demo, _ = build_app(FakeHost(tmp_path))
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"tab_reimagine", "tab_reimagine_refine", "reimagine_generate", "reimagine_refine_generate"} <= ids
    # each tab rendered exactly once
    assert sum(1 for block in demo.blocks.values() if getattr(block, "elem_id", None) == "reimagine_generate") == 1


# ---------------------------------------------------------------------------------------------------------------------
# the jobs, with a fake engine


def test_generate_runs_batches_saves_and_reports(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    seen: list[tuple[int, int, int]] = []
    host.control().listeners.append(lambda c: seen.append((c.jobs, c.job_no, c.step_no)))
    gallery, info_json, shown, log = jobs.generate(
        host, make_args(image, n_iter=3, batch_size=2, seed=100), fake.engine()
    )
    info = json.loads(info_json)
    assert [r.seed for r in fake.calls] == [100, 102, 104] and all(r.n_iter == 1 for r in fake.calls)
    assert len(fake.requests) == 1 and fake.requests[0].n_iter == 3  # one request: the inputs are encoded once
    assert info["all_seeds"] == [100, 101, 102, 103, 104, 105] and len(info["infotexts"]) == 6
    assert info["index_of_first_image"] == 0 and info["sd_model_name"] == "m"
    assert len(gallery) == 6 and all(Path(p).is_file() for p in gallery)
    assert Image.open(gallery[3]).info["parameters"] == info["infotexts"][3]
    assert "Seed: 100" in shown and log == ""
    assert (3, 2, 3) in seen  # third batch, last step
    assert host.control().latest_preview is not None
    assert host.cache.loads == 1
    jobs.generate(host, make_args(image), fake.engine())
    assert host.cache.loads == 1  # the pipeline is cached between runs


def test_interrupt_returns_what_finished(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    fake.at(1, 2, host.interrupt)  # during the second batch
    gallery, info_json, _, log = jobs.generate(host, make_args(image, n_iter=3, seed=7), fake.engine())
    assert len(gallery) == 1 and json.loads(info_json)["all_seeds"] == [7]
    assert jobs.INTERRUPTED_NOTE in log and "1 / 3" in log
    assert len(fake.calls) == 2


def test_skip_abandons_only_the_current_batch(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    fake.at(1, 1, host.skip)
    gallery, info_json, _, log = jobs.generate(host, make_args(image, n_iter=3, seed=7), fake.engine())
    assert json.loads(info_json)["all_seeds"] == [7, 9] and len(gallery) == 2
    assert log == ""


def test_stop_after_current_batch(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    fake.at(0, 1, host.control().stop_generating)
    gallery, _, _, log = jobs.generate(host, make_args(image, n_iter=3, seed=7), fake.engine())
    assert len(gallery) == 1 and jobs.INTERRUPTED_NOTE in log


def test_user_errors_are_messages(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    gallery, _, _, log = jobs.generate(host, make_args(None), fake.engine())
    assert gallery == [] and "Add at least one input image" in log and "class='error'" in log
    _, _, _, log = jobs.generate(host, make_args(image, model="nope"), fake.engine())
    assert "'nope' is not among the unCLIP models (available: m)" in html.unescape(log)
    _, _, _, log = jobs.generate(host, make_args(image, steps=0), fake.engine())
    assert "steps must be an integer from 1 to 150" in log
    _, _, _, log = jobs.generate(host, make_args(image, mode=jobs.MODE_INTERPOLATION), fake.engine())
    assert "two input images" in log
    assert fake.calls == []


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a" * 40_000, "prompt has 40,000 characters; the limit is 32,768"),
        ("(cat:" + "9" * 400 + ")", "a prompt weight is inf"),
        ("(" * 2000 + "cat", "more than 100 brackets open at once"),
    ],
    ids=["too long", "infinite weight", "too deep"],
)
def test_hostile_prompts_are_messages_in_the_tab(tmp_path: Path, image: Image.Image, prompt: str, message: str) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    for name in ("prompt", "negative_prompt"):
        gallery, _, _, log = jobs.generate(host, make_args(image, **{name: prompt}), fake.engine())
        assert gallery == [] and "class='error'" in log and message in html.unescape(log)
    assert fake.calls == []


def test_interpolation_mode(tmp_path: Path, image: Image.Image) -> None:
    host, fake = FakeHost(tmp_path), FakeEngine()
    other = Image.new("RGB", (96, 64), (0, 0, 200))
    gallery, info_json, _, _ = jobs.generate(
        host, make_args(image, mode=jobs.MODE_INTERPOLATION, image_2=other, frames=4), fake.engine()
    )
    (request,) = fake.calls
    assert request.frames == 4 and request.image_b.getpixel((0, 0)) == (0, 0, 200)
    assert len(gallery) == 4 and len(json.loads(info_json)["infotexts"]) == 4


def test_standalone_run_wrapper_serialises_and_reports_errors(tmp_path: Path, image: Image.Image) -> None:
    host = FakeHost(tmp_path)
    fractions: list[float] = []

    def progress(fraction: float, desc: str | None = None) -> None:
        fractions.append(fraction)

    fake = FakeEngine()
    handler = host.run(lambda task, *args: jobs.generate(host, args, fake.engine()), 1 + len(jobs.input_names()))
    *_, (gallery, _, _, log) = handler("", *make_args(image, n_iter=2), progress)  # a generator: live previews
    assert len(gallery) == 2 and "Time taken" in log
    assert fractions and fractions[-1] == pytest.approx(1.0)
    fake.fail = RuntimeError("boom")
    *_, (gallery, _, _, log) = handler("", *make_args(image), progress)
    assert gallery == [] and "RuntimeError: boom" in log


def test_gallery_image_only_reads_outputs(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    (tmp_path / "out").mkdir()
    inside = tmp_path / "out" / "a.png"
    Image.new("RGB", (8, 8)).save(inside)
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    assert host.gallery_image([{"name": str(inside), "is_file": True}], 0).size == (8, 8)
    assert host.gallery_image([(str(inside), None)], 0).size == (8, 8)
    assert host.gallery_image([str(outside)], 0) is None
    assert host.gallery_image([], 0) is None


def test_match_aspect_and_refine_size() -> None:
    image = Image.new("RGB", (300, 200))
    assert jobs.match_aspect(image, 640, 0, 2048) == (640, 448)
    assert jobs.match_aspect(image, 0, 0, 2048) is None
    assert jobs.match_aspect(None, 640, 0, 2048) is None
    assert jobs.refine_size((768, 768)) == (1024, 1024)
    width, height = jobs.refine_size((768, 512))
    assert width % 64 == 0 and height % 64 == 0 and abs(width * height - 1024**2) < 0.1 * 1024**2


# ---------------------------------------------------------------------------------------------------------------------
# models: cheap discovery


def test_model_scan_finds_every_form(tiny: Any, tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    shutil.copy(tiny.unclip_h.safetensors, root / "sub" / "h.safetensors")
    shutil.copy(tiny.unclip_l.ckpt, root / "l.ckpt")
    shutil.copy(tiny.sdxl_refiner.safetensors, root / "refiner.safetensors")
    shutil.copy(tiny.sdxl_base.safetensors, root / "base.safetensors")  # not offered
    shutil.copytree(tiny.unclip_h.folder, root / "unclip-h-diffusers")
    shutil.copytree(tiny.config_root / "unclip-h", root / "config-only")  # no weights: not a model
    (root / "broken.safetensors").write_bytes(b"\x01\x02")
    found = models.scan([root], config_root=tiny.config_root)
    by_name = {choice.name: (choice.kind, choice.path) for choice in found}
    assert by_name == {
        "h.safetensors": ("unclip-h", "sub/h.safetensors"),
        "l.ckpt": ("unclip-l", "l.ckpt"),
        "refiner.safetensors": ("sdxl-refiner", "refiner.safetensors"),
        "unclip-h-diffusers": ("unclip-h", "unclip-h-diffusers"),
    }
    assert all(choice.location.is_absolute() for choice in found)


def test_a_linked_model_is_named_after_the_link(tiny: Any, tmp_path: Path) -> None:
    """The infotext names the model the user picked in the dropdown (the link), not the link's target."""
    from extension.loading import resolve_source

    store, root = tmp_path / "store", tmp_path / "models"
    store.mkdir()
    root.mkdir()
    shutil.copy(tiny.sdxl_refiner.safetensors, store / "sdxl-refiner.safetensors")
    (root / "my-refiner.safetensors").symlink_to(store / "sdxl-refiner.safetensors")
    (choice,) = models.scan([root], config_root=tiny.config_root)
    assert choice.name == "my-refiner.safetensors"
    assert resolve_source(choice.location).name == "my-refiner"  # what the loader writes as the infotext's name


def test_model_scan_reads_safetensors_headers_only(tiny: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import extension.loading as loading

    shutil.copy(tiny.unclip_h.safetensors, tmp_path / "h.safetensors")
    opened: list[Any] = []
    monkeypatch.setattr(loading.Checkpoint, "open", classmethod(lambda cls, path: opened.append(path)))
    monkeypatch.setattr(loading, "read_state_dict", lambda path: opened.append(path))
    (choice,) = models.scan([tmp_path], config_root=tiny.config_root)
    assert choice.kind == "unclip-h" and opened == []


def test_model_scan_skips_other_ckpts_without_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import extension.loading as loading

    torch.save(
        {"state_dict": {"model.diffusion_model.x": torch.zeros(1), "cond_stage_model.transformer.y": torch.zeros(1)}},
        tmp_path / "sd15.ckpt",
    )
    monkeypatch.setattr(loading.Checkpoint, "open", classmethod(lambda cls, path: pytest.fail("opened")))
    assert models.scan([tmp_path]) == []


def test_model_names_are_unique_and_found(tmp_path: Path) -> None:
    choices = [
        ModelChoice("a.ckpt", "unclip-h", "a.ckpt", tmp_path / "a.ckpt"),
        ModelChoice("b.safetensors", "unclip-l", "x/b.safetensors", tmp_path / "x" / "b.safetensors"),
    ]
    assert models.closest(choices, "b") is choices[1]
    assert models.closest(choices, "A") is choices[0]
    assert models.closest(choices, "c") is None


# ---------------------------------------------------------------------------------------------------------------------
# localization


def _tab_strings(blocks_list: list[gr.Blocks]) -> set[str]:
    texts: set[str] = set()
    for blocks in blocks_list:
        for block in blocks.blocks.values():
            for attr in ("label", "info", "placeholder", "webui_tooltip"):
                value = getattr(block, attr, None)
                if isinstance(value, str):
                    texts.add(value)
            if isinstance(block, gr.Button) and isinstance(block.value, str):
                texts.add(block.value)
            if isinstance(block, gr.HTML) and isinstance(block.value, str):
                texts.update(part.strip() for part in re.split(r"<[^>]+>", block.value))
            if isinstance(block, (gr.Radio, gr.Dropdown)) and getattr(block, "elem_id", "") not in _ENGINE_NAMES:
                for choice in block.choices:
                    texts.add(choice[0] if isinstance(choice, (list, tuple)) else choice)
    return texts


# Dropdowns listing the WebUI's own sampler/schedule names and model files (not translated, like the WebUI's own)
_ENGINE_NAMES = {
    "reimagine_sampling",
    "reimagine_scheduler",
    "reimagine_model",
    "reimagine_refiner_model",
    "reimagine_refine_model",
    "reimagine_refine_sampling",
    "reimagine_refine_scheduler",
}
_NOT_TRANSLATED = re.compile(r"^$|^[\d\s./]+$|^Reimagine$|[\U0001f300-\U0001faff\u2600-\u27bf]")


def test_zh_cn_translates_every_string(tmp_path: Path) -> None:
    from extension.app import build_app
    from extension.runtime import jobs as ui_jobs
    from extension.ui import refine_tab, tab
    from extension.webui import tab as webui_tab

    class TooltipHost(FakeHost):
        tooltips = True

    demo, _ = build_app(FakeHost(tmp_path))
    texts = _tab_strings([demo])
    texts |= set(tab.TOOLTIPS.values()) | {refine_tab.INHERIT, ui_jobs.INTERRUPTED_NOTE}
    texts |= {webui_tab.SEND_TOOLTIP, webui_tab.SEND_LABEL, *webui_tab.SETTING_LABELS.values(), *MEMORY_MODES}
    texts |= {f"({info})" for info in webui_tab.SETTING_INFOS.values()} | set(NOISE_PRESETS)
    # the refiner post-pass accordion in txt2img / img2img (built only inside the WebUI)
    from extension.params import REFINER, REFINER_SAME_SAMPLER, REFINER_SAME_SCHEDULER
    from extension.webui.refiner import controls as hook

    texts |= {
        hook.LABEL,
        hook.INFO,
        REFINER_SAME_SAMPLER,
        REFINER_SAME_SCHEDULER,
        hook.CFG_LABEL,
        *hook.PLACEHOLDERS.values(),
    }
    texts |= {param.label for param in REFINER} | set(REFINER["mode"].choices)
    zh = json.loads((REPO / "localizations" / "zh_CN.json").read_text(encoding="utf-8"))
    missing = sorted(text for text in texts if not _NOT_TRANSLATED.search(text) and text not in zh)
    assert missing == []
    unused = sorted(set(zh) - texts)
    assert unused == [], "zh_CN.json has keys no UI string uses"
    assert all(value.strip() and value != key for key, value in zh.items())
    assert "Sampling method" in texts and "Noise level" in texts


# ---------------------------------------------------------------------------------------------------------------------
# the WebUI adapter, against the stand-in


def _core(name: str) -> Any:
    """A module of the core as the WebUI loaded it (``sd_webui_reimagine.*``, not this test's ``extension.*``)."""
    import importlib

    importlib.import_module("modules.ui_components")  # the WebUI patches gradio at startup, before any extension UI
    return importlib.import_module(f"sd_webui_reimagine.{name}")


def test_callbacks_registered_at_top_level_and_after_reload(webui: StubWebUI) -> None:
    webui.load_scripts()
    for category in ("ui_tabs", "ui_settings", "after_component", "before_ui"):
        assert [c for c in webui.callbacks(category) if "reimagine" in c.name], category
    webui.reload_ui()
    assert [c for c in webui.callbacks("ui_tabs") if "reimagine" in c.name]


def test_settings_section(webui: StubWebUI) -> None:
    webui.load_scripts()
    from modules import script_callbacks, shared

    script_callbacks.ui_settings_callback()
    ours = {key: info for key, info in shared.opts.data_labels.items() if key.startswith("reimagine_")}
    assert set(ours) == {
        "reimagine_models_dirs",
        "reimagine_default_model",
        "reimagine_karlo_stats",
        "reimagine_memory",
        "reimagine_noise_preset",
        "reimagine_precision",
        "reimagine_compile",
    }
    assert ours["reimagine_precision"].default == "fp16" and ours["reimagine_compile"].default is False
    assert all(info.section == ("reimagine", "Reimagine") and info.category_id == "sd" for info in ours.values())
    assert ours["reimagine_noise_preset"].default == "Balanced"  # the preset of the table's default noise level
    assert ours["reimagine_memory"].component_args == {"choices": list(MEMORY_MODES)}
    assert callable(ours["reimagine_default_model"].component_args)


def test_tab_registered_as_paste_destination(webui: StubWebUI, tmp_path: Path) -> None:
    webui.load_scripts()
    from modules import infotext_utils, script_callbacks

    ((blocks, title, elem_id),) = [t for t in script_callbacks.ui_tabs_callback() if t[2] == "reimagine"]
    assert (title, elem_id) == ("Reimagine", "reimagine") and isinstance(blocks, gr.Blocks)
    tab = _core("webui.tab").last_tab
    assert infotext_utils.paste_fields["reimagine"]["init_img"] is tab.components["image_1"]
    text = (
        "a castle\nNegative prompt: blurry\nSteps: 33, Sampler: Euler a, Schedule type: Karras, CFG scale: 6.5, "
        'Seed: 1234, Size: 768x768, Model: sd21-unclip-h, Noise level: 350, CLIP fit: crop, Mix weights: "0.7, 0.3", '
        "Mix mode: slerp"
    )
    pasted = {name: value for component, value in infotext_utils.paste_infotext("reimagine", text).items()
              for name, c in tab.components.items() if c is component and value is not None}  # fmt: skip
    assert pasted["prompt"] == "a castle" and pasted["negative_prompt"] == "blurry"
    assert (pasted["steps"], pasted["sampler_name"], pasted["scheduler"]) == (33, "Euler a", "Karras")
    assert (pasted["cfg_scale"], pasted["seed"], pasted["noise_level"]) == (6.5, 1234, 350)
    assert (pasted["fit"], pasted["mix"], pasted["weight_1"], pasted["weight_2"]) == ("crop", "slerp", 0.7, 0.3)
    assert "weight_3" not in pasted and "model" not in pasted  # no such model here


def test_send_to_reimagine_buttons(webui: StubWebUI) -> None:
    webui.load_scripts()
    from modules import infotext_utils, script_callbacks, ui_common

    with gr.Blocks():
        txt2img = ui_common.create_output_panel("txt2img", "outputs")
        if compat.GRADIO_4:  # the stand-in runs the component callbacks for gradio 3 only; Forge does it for 4 too
            script_callbacks.after_component_callback(txt2img.gallery, elem_id="txt2img_gallery")
            script_callbacks.after_component_callback(None, elem_id="txt2img_send_to_extras")
        info = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
        image = gr.Image(elem_id="pnginfo_image")
        buttons = infotext_utils.create_buttons(["txt2img", "img2img", "inpaint", "extras"])
        if compat.GRADIO_4:
            for elem_id, component in (("pnginfo_generation_info", info), ("pnginfo_image", image)):
                script_callbacks.after_component_callback(component, elem_id=elem_id)
            script_callbacks.after_component_callback(buttons["extras"], elem_id="extras_tab")
    before = [b for b in infotext_utils.registered_param_bindings if b.tabname == "reimagine"]
    assert before == []  # bound only once the tab exists (a failed tab must not break the WebUI's paste wiring)
    script_callbacks.ui_tabs_callback()
    ours = [b for b in infotext_utils.registered_param_bindings if b.tabname == "reimagine"]
    assert len(ours) == 2
    gallery_binding = next(b for b in ours if b.source_text_component is None)
    assert gallery_binding.source_image_component is txt2img.gallery
    assert gallery_binding.paste_button.elem_id == "txt2img_send_to_reimagine"
    pnginfo_binding = next(b for b in ours if b.source_text_component is not None)
    assert pnginfo_binding.source_text_component is info and pnginfo_binding.source_image_component is image
    assert pnginfo_binding.paste_button.value == "Send to Reimagine"


def test_generate_button_uses_the_webui_queue_and_progress(webui: StubWebUI) -> None:
    webui.load_scripts()
    from modules import script_callbacks

    script_callbacks.ui_tabs_callback()
    tab = _core("webui.tab").last_tab
    c, blocks = tab.components, tab.blocks
    assert js_of(blocks, c["generate"], "click")[0] == "submit_reimagine"
    assert "reimagine_interrupting" in js_of(blocks, c["interrupt"], "click")
    (generate,) = handlers(blocks, c["generate"], "click")[:1]
    assert getattr(generate, "__wrapped__", None) is not None  # call_queue.wrap_gradio_gpu_call
    assert tab.panel.gallery.elem_id == "reimagine_gallery"


def _webui_run(host: Any, fake: FakeEngine, args: list[Any]) -> tuple:
    ui_jobs = _core("runtime.jobs")
    handler = host.run(lambda task, *a: ui_jobs.generate(host, a, fake.engine()), 1 + len(args))
    return handler("task(test)", *args)


def _stub_host(monkeypatch: pytest.MonkeyPatch) -> Any:
    host = _core("webui.host").shared_host()
    host._cache = FakeCache()
    choice = _core("loading.discovery").ModelChoice("m", "unclip-h", "m.safetensors", Path("/models/m.safetensors"))
    monkeypatch.setattr(
        host, "models", lambda kinds=("unclip-h",), refresh=False: [choice] if "unclip-h" in kinds else []
    )
    return host


def test_progress_state_preview_and_saving(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image
) -> None:
    webui.load_scripts()
    from modules import progress, shared

    host = _stub_host(monkeypatch)
    fake = FakeEngine()
    observed: list[tuple] = []

    def watch() -> None:
        state = shared.state
        observed.append((state.job_count, state.job_no, state.sampling_step, state.sampling_steps, state.textinfo))
        observed.append(progress.progressapi({"id_task": "task(test)"}).progress)

    fake.at(1, 2, watch)
    gallery, info_json, _, log = _webui_run(host, fake, make_args(image, n_iter=2, batch_size=2, seed=5))
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

    host = _stub_host(monkeypatch)
    shared.opts.samples_save = False
    gallery, info_json, _, _ = _webui_run(host, FakeEngine(), make_args(image))
    assert not (webui.outputs_dir / "reimagine-images").exists()
    assert gallery[0].info["parameters"] == json.loads(info_json)["infotexts"][0]  # still in the gallery's PNG
    shared.opts.samples_save = True
    shared.opts.samples_format = "jpg"
    shared.opts.outdir_samples = str(tmp_path / "custom")
    _webui_run(host, FakeEngine(), make_args(image))
    assert [p.suffix for p in (tmp_path / "custom").rglob("*.*")] == [".jpg"]


def test_webui_interrupt_after_current_batch_then_immediately(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image
) -> None:
    webui.load_scripts()
    from modules import shared

    shared.opts.interrupt_after_current = True  # "Don't Interrupt in the middle": A1111/Forge default, off in Neo
    host = _stub_host(monkeypatch)
    fake = FakeEngine()
    fake.at(0, 1, host.interrupt)  # first click during a 3-batch run: "Don't Interrupt in the middle"
    gallery, _, _, log = _webui_run(host, fake, make_args(image, n_iter=3))
    assert len(gallery) == 1 and ("stop_generating",) in shared.state.calls
    assert "1 / 3" in log
    fake = FakeEngine()
    fake.at(0, 1, host.interrupt)
    fake.at(0, 2, host.interrupt)  # second click: stop now, nothing of this batch finished
    gallery, _, _, _ = _webui_run(host, fake, make_args(image, n_iter=3))
    assert gallery == [] and ("interrupt",) in shared.state.calls
    fake = FakeEngine()
    fake.at(1, 1, host.skip)
    gallery, _, _, _ = _webui_run(host, fake, make_args(image, n_iter=3))
    assert len(gallery) == 2


@pytest.mark.parametrize("fails", [False, True])
def test_main_model_goes_back_to_the_device(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch, image: Image.Image, fails: bool
) -> None:
    webui.load_scripts()
    from modules import sd_models, shared

    host = _stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)  # a full GPU: our run needs room
    offloaded: list[Any] = []
    monkeypatch.setattr(host, "_offload", offloaded.append)
    fake = FakeEngine()
    if fails:
        fake.fail = RuntimeError("out of memory")
    _, _, _, log = _webui_run(host, fake, make_args(image))
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

    host = _stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 1 << 50)
    offloaded: list[Any] = []
    monkeypatch.setattr(host, "_offload", offloaded.append)
    _webui_run(host, FakeEngine(), make_args(image))
    assert not [c for c in sd_models.calls if c[0] in ("send_model_to_cpu", "send_model_to_device")]
    assert offloaded == []  # "Keep resident" (the default) and it fits: ours stays for the next run


def test_webui_model_folders_and_settings(webui: StubWebUI, tmp_path: Path) -> None:
    webui.load_scripts()
    from modules import script_callbacks, shared

    script_callbacks.ui_settings_callback()
    host = _core("webui.host").shared_host()
    shared.opts.reimagine_models_dirs = f"{tmp_path / 'a'}\n\n{tmp_path / 'b'}"
    shared.cmd_opts.ckpt_dir = str(tmp_path / "ckpt")
    folders = host.model_folders()
    assert folders == [webui.checkpoints_dir, tmp_path / "ckpt", tmp_path / "a", tmp_path / "b"]
    shared.opts.reimagine_memory = MEMORY_MODES[1]
    assert host.memory_mode() == MEMORY_MODES[1]
    assert host.models_dir() == webui.models_dir
    assert host.outdir() == webui.outputs_dir / "reimagine-images"


# ---------------------------------------------------------------------------------------------------------------------
# end to end with the tiny models


@pytest.mark.slow
def test_standalone_generate_with_tiny_model(tiny: Any, tmp_path: Path, image: Image.Image) -> None:
    host = StandaloneHost([], models=[tiny.unclip_h.safetensors], config_root=tiny.config_root, outdir=tmp_path / "o")
    (choice,) = host.models(models.UNCLIP_KINDS)
    args = make_args(image, model=choice.name, steps=2, n_iter=2, seed=42)
    gallery, info_json, _, log = jobs.generate(host, args)
    assert log == "" and len(gallery) == 2
    info = json.loads(info_json)
    assert info["all_seeds"] == [42, 43] and "Noise level: 200" in info["infotexts"][0]
    assert "Model: unclip-h" in info["infotexts"][0] and "Model hash: " in info["infotexts"][0]
    assert Image.open(gallery[1]).info["parameters"] == info["infotexts"][1]


@pytest.mark.slow
def test_webui_generate_with_tiny_model(webui: StubWebUI, tiny: Any, image: Image.Image) -> None:
    shutil.copy(tiny.unclip_h.safetensors, webui.checkpoints_dir / "sd21-unclip-h.safetensors")
    webui.load_scripts()
    from modules import script_callbacks, shared

    host = _core("webui.host").shared_host()
    host.config_root = tiny.config_root
    script_callbacks.ui_tabs_callback()
    tab = _core("webui.tab").last_tab
    c = tab.components
    assert c["model"].value == "sd21-unclip-h.safetensors"
    from modules import infotext_utils

    pasted = infotext_utils.paste_infotext("reimagine", "x\nSteps: 2, Seed: 1, Model: sd21-unclip-h, Noise level: 5")
    assert pasted[c["model"]] == "sd21-unclip-h.safetensors"  # the infotext's Model finds the file
    (generate,) = handlers(tab.blocks, c["generate"], "click")[:1]
    values = {**{n: c[n].value for n in jobs.input_names()}, "image_1": image, "steps": 2, "seed": 3}
    gallery, info_json, shown, log = generate("task(e2e)", *(values[n] for n in jobs.input_names()))
    assert len(gallery) == 1 and "Seed: 3" in shown and "error" not in log
    assert "Model: sd21-unclip-h" in json.loads(info_json)["infotexts"][0]
    assert len(list((webui.outputs_dir / "reimagine-images").rglob("*.png"))) == 1
    assert shared.state.calls[0] == ("begin", "task(e2e)")


# How the gallery hands a saved output back: a path (gradio 4, the standalone app), or the gradio-3 dict of A1111 1.10.1,
# whose modules/ui_tempdir.py save_pil_to_file names saved outputs "<path>?<mtime>" (its image_from_url_text strips it)
GALLERY_FORMS = {
    "path": lambda path: path,
    "a1111-gradio3": lambda path: {"name": f"{path}?1796691585.2211034", "data": None, "is_file": True},
}


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(GALLERY_FORMS))
def test_refine_with_sdxl_on_a_selected_output(tiny: Any, tmp_path: Path, form: str) -> None:
    host = StandaloneHost(
        [], models=[tiny.sdxl_refiner.safetensors], config_root=tiny.config_root, outdir=tmp_path / "o"
    )
    host.refine_area = 128 * 128  # the tiny refiner; SDXL's own class is 1024²
    base = tmp_path / "base.png"
    text = "a cat\nSteps: 2, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 64x64, Model: unclip-h, Noise level: 0"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(base, pnginfo=_png_info(text))
    host.outdir.mkdir()
    shutil.copy(base, host.outdir / "00000-9.png")
    info = json.dumps({"infotexts": [text], "all_seeds": [9]})
    (refiner,) = host.models(models.REFINER_KINDS)
    gallery, info_json, shown, log = jobs.refine_selected(
        host, [GALLERY_FORMS[form](str(host.outdir / "00000-9.png"))], 0, info, refiner.name, 0.3, 2
    )
    # the batch stays, the refined image is added after it (the WebUI keeps a batch visible), with its own infotext
    assert log == "" and len(gallery) == 2 and gallery[0] == str(host.outdir / "00000-9.png")
    refined = Image.open(gallery[1])
    assert refined.size == (128, 128)
    info = json.loads(info_json)
    kept, infotext = info["infotexts"]
    assert kept == text and info["all_seeds"][0] == 9 and jobs.selected_seed(info_json, 1) == 9
    assert refined.info["parameters"] == infotext and "Refiner post-pass steps: 2" in shown
    assert "Size: 128x128" in infotext and "Seed: 9" in infotext and "Noise level: 0" in infotext
    _, _, _, log = jobs.refine_selected(host, [], 0, "", refiner.name, 0.3, 2)
    assert "Generate an image first" in log


def _png_info(text: str) -> Any:
    from extension.outputs import png_info

    return png_info(text)


def test_rest_api_backend_seam_in_the_webui(webui: StubWebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REST API runs jobs through the same host: queue lock, shared.state, progress, memory handling."""
    webui.load_scripts()
    from modules import progress, sd_models, shared

    host = _stub_host(monkeypatch)
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)
    (choice,) = host.models()
    seen: list[Any] = []

    def job(report: Callable[[int, int], None], should_stop: Callable[[], bool]) -> str:
        pipe = host.load(choice)
        report(1, 4)
        seen.append(
            (shared.state.job_count, shared.state.sampling_step, shared.state.sampling_steps, progress.current_task)
        )
        assert not should_stop()
        return pipe.reimagine_info.name

    assert host.run_job("Reimagine variations", job) == "m"
    assert seen[0][:3] == (1, 1, 4) and seen[0][3].startswith("task(")
    assert shared.state.calls[0][0] == "begin" and shared.state.calls[-1] == ("end",)
    if not webui.is_forge:
        names = [c[0] for c in sd_models.calls]
        assert names.index("send_model_to_cpu") < names.index("send_model_to_device")
