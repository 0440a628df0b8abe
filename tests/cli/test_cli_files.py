"""The CLI with odd files and folders: colliding stems, a corrupt input in a folder run, an ``--out`` that cannot be
written, a full disk, over-long names, a hostile model header, values over the table's maximum.

Oracles: the files that exist afterwards, the exit status, and the message printed (one ``error:`` line, no
traceback), as the README promises; the EXIF specification for orientation.
"""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension.cli import main
from extension.cli.common import load_images


def _image(path: Path, seed: int, size=(64, 48)) -> Path:
    Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--out", str(out), "--steps", "1", "--seed", "3", "--n", "1", *extra]


def _one_error_line(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and needle in lines[0], err[-800:]
    assert "Traceback" not in err


def test_same_stem_inputs_get_distinct_outputs(tiny, tmp_path, capsys) -> None:
    a_png, a_jpg = _image(tmp_path / "a.png", 1), _image(tmp_path / "a.jpg", 2)
    out = tmp_path / "out"
    assert main(["vary", str(a_png), str(a_jpg), *_args(tiny.unclip_h.folder, out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a-jpg-0000.png", "a-png-0000.png"]
    assert "wrote 2 image(s)" in capsys.readouterr().out
    assert main(["vary", str(a_png), str(a_jpg), *_args(tiny.unclip_h.folder, out)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_corrupt_file_in_a_folder_is_skipped_and_the_others_finish(tiny, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "a.png", 1)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    _image(folder / "c.png", 3)
    out = tmp_path / "out"
    assert main(["vary", str(folder), *_args(tiny.unclip_h.folder, out)]) == 1
    assert sorted(p.name for p in out.glob("*.png")) == ["a-0000.png", "c-0000.png"]
    err = capsys.readouterr().err
    assert err.count("skipped ") == 1 and f"skipped {folder / 'b.png'}: cannot read" in err
    assert "Traceback" not in err


def test_refine_folder_skips_a_corrupt_file(tiny, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    _image(folder / "b.png", 2, (64, 64))
    out = tmp_path / "out"
    argv = ["refine", str(folder), "--model", str(tiny.sdxl_refiner.safetensors), "--out", str(out), "--steps", "1"]
    assert main([*argv, "--config-root", str(tiny.config_root)]) == 1
    assert [p.name for p in out.glob("*.png")] == ["b.png"]
    assert f"skipped {folder / 'a.png'}" in capsys.readouterr().err


def test_out_that_is_a_file(tiny, tmp_path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["vary", str(_image(tmp_path / "a.png", 1)), *_args(tiny.unclip_h.folder, target)]) == 2
    _one_error_line(capsys, "is a file, not a folder")


def test_out_that_cannot_be_written(tiny, tmp_path, capsys, monkeypatch) -> None:
    image = _image(tmp_path / "a.png", 1)
    assert main(["vary", str(image), *_args(tiny.unclip_h.folder, Path("/proc/reimagine-out"))]) == 2
    _one_error_line(capsys, "cannot create the output folder /proc/reimagine-out")
    # read-only (tests run as root, who may write anywhere: the permission answer is what a user would get)
    monkeypatch.setattr("extension.cli.files.os.access", lambda path, mode: False)
    assert main(["vary", str(image), *_args(tiny.unclip_h.folder, tmp_path / "ro")]) == 2
    _one_error_line(capsys, "is not writable")


def test_disk_full_is_one_line_and_leaves_no_partial_file(tiny, tmp_path, capsys, monkeypatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("extension.outputs.os.fsync", full)
    out = tmp_path / "out"
    assert main(["vary", str(_image(tmp_path / "a.png", 1)), *_args(tiny.unclip_h.folder, out)]) == 2
    _one_error_line(capsys, "No space left on device")
    assert list(out.iterdir()) == []


def test_over_long_input_names(tiny, tmp_path) -> None:
    long_a = _image(tmp_path / ("a" * 250 + ".png"), 1)
    long_b = _image(tmp_path / ("a" * 250 + ".jpg"), 2)
    out = tmp_path / "out"
    assert main(["vary", str(long_a), str(long_b), *_args(tiny.unclip_h.folder, out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 2 and len(set(names)) == 2 and all(len(n.encode()) <= 255 for n in names)
    assert main(["vary", str(long_a), str(long_b), *_args(tiny.unclip_h.folder, out, "--weights", "1,1")]) == 0
    assert len(list(out.glob("*.png"))) == 3


def test_nested_safetensors_header_is_one_line(tmp_path, capsys) -> None:
    header = ("[" * 100_000 + "]" * 100_000).encode()
    model = tmp_path / "evil.safetensors"
    model.write_bytes(struct.pack("<Q", len(header)) + header)
    assert main(["vary", str(_image(tmp_path / "a.png", 1)), *_args(model, tmp_path / "out")]) == 2
    _one_error_line(capsys, "evil.safetensors")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--batch-size", "9"], "batch_size must be an integer from 1 to 8"),
        (["--steps", "2.5"], "steps must be an integer"),
        (["--width", "56", "--height", "56"], "width must be 0 (auto) or a multiple of 8 from 64"),
    ],
)
def test_table_ranges_are_enforced_before_loading(tmp_path, capsys, extra, needle) -> None:
    image = _image(tmp_path / "a.png", 1)
    assert main(["vary", str(image), *_args(tmp_path / "no-model.safetensors", tmp_path / "out"), *extra]) == 2
    _one_error_line(capsys, needle)


def test_cli_inputs_are_upright(tmp_path) -> None:
    picture = Image.new("RGB", (80, 48), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    picture.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert load_images([tmp_path / "phone.jpg"])[0].size == (48, 80)
