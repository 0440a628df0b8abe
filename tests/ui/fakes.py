"""Test doubles for the tab and its jobs (not a test module): gradio event lookup, a fake pipeline cache, an instant
scriptable engine, the Generate handler's inputs, the standalone host with one fake model, a sample input image."""

from __future__ import annotations

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
from extension.params import REIMAGINE, TEXT_DIFF
from extension.runtime import jobs
from extension.ui.standalone import StandaloneHost


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
