"""``python -m extension`` on the tiny fixtures: outputs, infotext, resume, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension import infotext
from extension.cli import main
from extension.cli.common import Job, plan_requests
from extension.outputs import read_infotext

ROOT = Path(__file__).resolve().parents[2]


def _write_image(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    _write_image(folder / "cat.png", 1)
    _write_image(folder / "dog.jpg", 2)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _vary_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--out", str(out), "--steps", "2", "--seed", "7", *extra]


def test_help_runs_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "extension", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    for command in ("vary", "interpolate", "serve"):
        assert command in completed.stdout


def test_vary_folder_writes_pngs_with_infotext_and_resumes(tiny, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["vary", str(inputs), *_vary_args(tiny.unclip_h.folder, out, "--n", "2", "--noise-level", "50")]) == 0
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["cat-0000.png", "cat-0001.png", "dog-0000.png", "dog-0001.png"]
    parsed = infotext.parse(read_infotext(out / "cat-0001.png"))
    assert parsed["Seed"] == "8" and parsed["Noise level"] == "50" and parsed["Steps"] == "2"
    assert not list(out.glob(".*tmp"))  # no half-written leftovers

    # A re-run finds everything done and loads nothing.
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}
    capsys.readouterr()
    assert main(["vary", str(inputs), *_vary_args(tiny.unclip_h.folder, out, "--n", "2")]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == before

    # An interrupted run (one output missing) resumes with exactly the missing image.
    original = np.asarray(Image.open(out / "dog-0001.png"))
    (out / "dog-0001.png").unlink()
    assert main(["vary", str(inputs), *_vary_args(tiny.unclip_h.folder, out, "--n", "2", "--noise-level", "50")]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "dog-0001.png")), original)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png") if p.name != "dog-0001.png"} == {
        p: t for p, t in before.items() if p.name != "dog-0001.png"
    }


def test_vary_mix_with_weights_and_preset(tiny, inputs, tmp_path):
    out = tmp_path / "mix"
    args = [str(inputs / "cat.png"), str(inputs / "dog.jpg")]
    assert main(["vary", *args, *_vary_args(tiny.unclip_h.folder, out, "--n", "1", "--weights", "0.7,0.3")]) == 0
    assert infotext.parse(read_infotext(out / "cat+dog-0000.png"))["Noise level"] == "200"
    assert (
        main(
            [
                "vary",
                *args,
                *_vary_args(
                    tiny.unclip_h.folder, out, "--weights", "0.7,0.3", "--n", "1", "--preset", "strong", "--overwrite"
                ),
            ]
        )
        == 0
    )
    parsed = infotext.parse(read_infotext(out / "cat+dog-0000.png"))
    assert parsed["Mix weights"] == "0.7, 0.3"
    assert parsed["Noise level"] == "500"


def test_interpolate_writes_ordered_frames(tiny, inputs, tmp_path):
    out = tmp_path / "strip"
    model_args = _vary_args(tiny.unclip_h.folder, out)
    assert main(["interpolate", str(inputs / "cat.png"), str(inputs / "dog.jpg"), "--frames", "3", *model_args]) == 0
    frames = sorted(out.glob("*.png"))
    assert [p.name for p in frames] == ["cat-to-dog-000.png", "cat-to-dog-001.png", "cat-to-dog-002.png"]
    assert [infotext.parse(read_infotext(p))["Interpolation"] for p in frames] == ["1/3", "2/3", "3/3"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vary", "missing.png"], "input image not found: missing.png"),
        (["vary", "{inputs}/notes.txt"], "cannot read"),
        (["vary", "{inputs}/cat.png", "--weights", "1,2"], "--weights has 2 value(s) for 1 image(s)"),
        (["vary", "{inputs}/cat.png", "--weights", "a,b"], "--weights must be comma-separated numbers"),
        (["vary", "{inputs}/cat.png", "--width", "512"], "give both width and height"),
        (
            ["interpolate", "{inputs}/cat.png", "{inputs}/dog.jpg", "--frames", "1"],
            "frames must be an integer from 2 to 64",
        ),
    ],
)
def test_user_errors_print_one_clear_line(tiny, inputs, tmp_path, capsys, argv, message):
    argv = [part.format(inputs=inputs) for part in argv]
    status = main([*argv, *_vary_args(tiny.unclip_h.folder, tmp_path / "o")])
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert "Traceback" not in error


def test_missing_model_is_a_clear_error(inputs, tmp_path, capsys):
    status = main(["vary", str(inputs / "cat.png"), *_vary_args(tmp_path / "nope.safetensors", tmp_path / "o")])
    assert status == 2
    assert "nope.safetensors" in capsys.readouterr().err


def test_module_entry_point_end_to_end(tiny, inputs, tmp_path):
    """The README's main job, as a user runs it (a fresh process)."""
    out = tmp_path / "e2e"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "extension", "vary", str(inputs / "cat.png"), *_vary_args(tiny.unclip_h.folder, out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(list(out.glob("cat-*.png"))) == 4


def test_missing_outputs_become_few_requests():
    todo = [Job(Path(f"{i}.png"), i) for i in (0, 1, 2, 3, 4, 7, 9, 10)]
    grouped = [([job.seed_offset for job in jobs], n_iter, size) for jobs, n_iter, size in plan_requests(todo, 2)]
    assert grouped == [([0, 1, 2, 3], 2, 2), ([4], 1, 1), ([7], 1, 1), ([9, 10], 1, 2)]
