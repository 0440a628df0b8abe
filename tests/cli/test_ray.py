"""``--engine ray`` on a local Ray (2 CPUs, no dashboard, loopback only): the local CLI is the oracle for names, pixels
and infotexts; a killed actor, a re-run, a corrupt input and a read-only output location behave as documented.

Skipped where ``ray`` is not installed (the WebUI environments); ``nox -s latest`` runs them."""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension.cli import main
from extension.cli.ray_engine import INSTALL_HINT, SINGLE_NODE_ENV
from extension.outputs import read_infotext


def _write_image(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, count: int) -> Path:
    root.mkdir()
    for index in range(count):
        _write_image(root / f"img{index:02d}.png", index)
    return root


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _vary(model: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return ["vary", str(src), "--model", str(model), "--out", str(out), "--steps", "2", "--seed", "7", *extra]


def test_without_ray_the_engine_says_how_to_install(monkeypatch, tmp_path, capsys):
    """Runs everywhere: with ``ray`` not importable, one line and exit 2 (no model is loaded)."""
    monkeypatch.setitem(sys.modules, "ray", None)
    src = _folder(tmp_path / "in", 1)
    assert main(_vary(tmp_path / "no-model", src, tmp_path / "out", "--engine", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {INSTALL_HINT}" and "pip install" in err


ray = pytest.importorskip("ray", reason="ray is not installed (nox -s newest runs these)")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("REIMAGINE_RAY_THREADS", "1")  # one torch thread per actor: 2 actors on 2 cores
    os.environ[SINGLE_NODE_ENV] = "0"  # loopback only, as extension/cli/ray_engine.py's start_ray does
    # a short session folder: Ray's unix sockets live in it, and nox's TMPDIR (.nox/<session>/tmp) can push their
    # paths past the 107-byte limit, after which the workers never connect
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, _temp_dir=temp_dir)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_vary_and_refine_match_the_local_cli(local_ray, tiny, tmp_path):
    src = _folder(tmp_path / "in", 3)
    local, distributed = tmp_path / "local", tmp_path / "ray"
    args = ("--n", "2", "--batch-size", "2")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor (REIMAGINE_RAY_THREADS=1): CPU float sums depend on the thread split
    try:
        assert main(_vary(tiny.unclip_h.folder, src, local, *args)) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(_vary(tiny.unclip_h.folder, src, distributed, *args, "--engine", "ray", "--workers", "2")) == 0
    names = sorted(p.name for p in local.glob("*.png"))
    assert names == sorted(p.name for p in distributed.glob("*.png")) and len(names) == 6
    for name in names:
        np.testing.assert_array_equal(_pixels(local / name), _pixels(distributed / name))
        assert read_infotext(local / name) == read_infotext(distributed / name)

    # refine the variations (they carry an infotext: seed -1 inherits each one's seed)
    refine = ["refine", str(local), "--model", str(tiny.sdxl_refiner.folder), "--steps", "2", "--strength", "0.5"]
    torch.set_num_threads(1)
    try:
        assert main([*refine, "--out", str(tmp_path / "r-local")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main([*refine, "--out", str(tmp_path / "r-ray"), "--engine", "ray"]) == 0
    for path in sorted((tmp_path / "r-local").glob("*.png")):
        twin = tmp_path / "r-ray" / path.name
        np.testing.assert_array_equal(_pixels(path), _pixels(twin))
        assert read_infotext(path) == read_infotext(twin)


def _actor_pids() -> set[int]:
    """Processes of our map actors: Ray titles an actor process ``ray::<ClassName>`` (here the Ray Data map worker)."""
    import psutil

    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if line.startswith("ray::") and "Map" in line:
            pids.add(process.pid)
    return pids


def _run_and_kill_one_actor(argv: list[str], out: Path) -> tuple[int, dict[str, int]]:
    """Run ``argv`` in a thread and SIGKILL one map actor once 2 outputs exist. Returns the exit status and the inode
    each output had when first seen: an output written twice (a new temp file renamed over it) changes inode."""
    status: dict[str, int] = {}
    runner = threading.Thread(target=lambda: status.setdefault("rc", main(argv)))
    runner.start()
    killed = None
    first_inode: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while runner.is_alive():
        for path in out.glob("*.png"):
            first_inode.setdefault(path.name, path.stat().st_ino)
        pids = _actor_pids() if killed is None and time.monotonic() < deadline else set()
        if pids and len(first_inode) >= 2:
            killed = min(pids)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join()
    assert killed is not None, "the run ended before an actor could be killed"
    return status["rc"], first_inode


def _assert_each_output_once(out: Path, names: list[str], first_inode: dict[str, int], capsys) -> None:
    assert sorted(p.name for p in out.glob("*.png")) == names  # none missing, none extra
    assert {name: (out / name).stat().st_ino for name in first_inode} == first_inode  # none written twice
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    written, skipped = (int(re.search(rf"(\d+) {word}", summary).group(1)) for word in ("written", "skipped"))
    assert written + skipped == len(names) and "0 input(s) failed" in summary, summary


def test_killed_worker_run_completes_each_output_once_and_rerun_skips(local_ray, tiny, tmp_path, capsys):
    src = _folder(tmp_path / "in", 12)
    out = tmp_path / "out"
    argv = _vary(tiny.unclip_h.folder, src, out, "--n", "1", "--engine", "ray", "--steps", "4")
    status, first_inode = _run_and_kill_one_actor(argv, out)
    assert status == 0
    _assert_each_output_once(out, [f"img{index:02d}-0000.png" for index in range(12)], first_inode, capsys)

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}


def test_killed_worker_under_simulation_completes_each_output_once(local_ray, tmp_path, capsys):
    """The same crash with the diffusion call simulated (``--simulate-gpu-ms``: no model, full-size PNGs encoded and
    written, two rows in flight per actor): two actors, one killed mid-run, each output exactly once. No timing asserts."""
    src = _folder(tmp_path / "in", 16)
    out = tmp_path / "out"
    argv = ["vary", str(src), "--out", str(out), "--n", "2", "--seed", "7", "--engine", "ray", "--workers", "2"]
    status, first_inode = _run_and_kill_one_actor([*argv, "--simulate-gpu-ms", "150"], out)
    assert status == 0
    names = [f"img{index:02d}-{k:04d}.png" for index in range(16) for k in range(2)]
    _assert_each_output_once(out, names, first_inode, capsys)
    with Image.open(out / names[-1]) as image:
        # 4:3 inputs at unCLIP 2.1's 768² area; seed 7 + output 1
        assert image.size == (896, 640) and "Seed: 8, Size: 896x640" in image.info["parameters"]


def test_corrupt_input_is_named_and_skipped(local_ray, tiny, tmp_path, capsys):
    src = _folder(tmp_path / "in", 19)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    assert main(_vary(tiny.unclip_h.folder, src, out, "--n", "1", "--engine", "ray", "--steps", "1")) == 1
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "cannot read" in captured.err
    assert len(list(out.glob("*.png"))) == 19 and not (out / "broken-0000.png").exists()
    assert "19 written" in captured.out and "1 input(s) failed" in captured.out


def test_unwritable_output_location_is_a_clear_error(local_ray, tiny, tmp_path, capsys):
    src = _folder(tmp_path / "in", 1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(_vary(tiny.unclip_h.folder, src, blocker / "out", "--engine", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write to the output location") and "a-file" in err
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert main(_vary(tiny.unclip_h.folder, src, locked, "--engine", "ray")) == 2
