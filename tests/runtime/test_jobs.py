"""What the tab's buttons do (extension/runtime/jobs.py), driven through the same calls as the tab's handlers with an
instant, scriptable engine: batches, saving, progress, interrupt, skip, stop after the current batch, user errors."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from PIL import Image

from extension.runtime import jobs
from tests.ui import fakes
from tests.ui.fakes import FakeEngine, FakeHost, make_args

image = fakes.image  # the input-image fixture


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


def test_match_aspect_and_refine_size() -> None:
    image = Image.new("RGB", (300, 200))
    assert jobs.match_aspect(image, 640, 0, 2048) == (640, 448)
    assert jobs.match_aspect(image, 0, 0, 2048) is None
    assert jobs.match_aspect(None, 640, 0, 2048) is None
    assert jobs.refine_size((768, 768)) == (1024, 1024)
    width, height = jobs.refine_size((768, 512))
    assert width % 64 == 0 and height % 64 == 0 and abs(width * height - 1024**2) < 0.1 * 1024**2
