"""Odd model files: zip bombs dressed as ``.ckpt`` and ``.safetensors`` with a hostile header.

Oracles: the zip format (a deflated entry's declared vs. stored size, read from the directory), ``torch.save``'s own
archives (every entry stored uncompressed, so a real checkpoint passes), and counts of bytes actually inflated.
"""

from __future__ import annotations

import json
import logging
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from extension.errors import ModelLoadError
from extension.loading import archive
from extension.loading.checkpoint import load_weights_only, safetensors_shapes

BOMB_BYTES = 200 * 1024 * 1024  # inflated size of the bomb's pickle (stored: ~200 kB)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "sd_xl_refiner_bomb.ckpt"
    chunk = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        with out.open("archive/data.pkl", "w", force_zip64=True) as entry:
            for _ in range(BOMB_BYTES // len(chunk)):
                entry.write(chunk)
    assert path.stat().st_size < 2 * 1024 * 1024
    return path


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes handed out by every zip entry read (zipfile.ZipExtFile.read)."""
    counted: list[int] = []
    original = zipfile.ZipExtFile.read

    def read(self, n=-1):
        data = original(self, n)
        counted.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return counted


def test_model_scan_skips_a_zip_bomb_without_inflating_it(bomb: Path, inflated: list[int], caplog) -> None:
    from extension.loading.discovery import file_kind

    with caplog.at_level(logging.WARNING):
        kind = file_kind(bomb)
    assert kind == "other"
    assert sum(inflated) < 1024 * 1024
    assert any(bomb.name in record.getMessage() and "zip bomb" in record.getMessage() for record in caplog.records)


def test_loading_a_zip_bomb_is_refused_before_torch_inflates_it(bomb: Path, inflated: list[int]) -> None:
    with pytest.raises(ModelLoadError, match="zip bomb"):
        load_weights_only(bomb)
    assert sum(inflated) == 0


def test_pickle_read_is_bounded_even_when_the_directory_lies(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(archive, "MAX_PICKLE_BYTES", 1000)
    path = tmp_path / "big.ckpt"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("archive/data.pkl", b"x" * 5000)
    with pytest.raises(archive.ArchiveBombError):
        archive.read_pickle(path)


def test_a_real_torch_checkpoint_passes(tmp_path: Path) -> None:
    path = tmp_path / "real.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(4, 4)}}, path)
    archive.check_file(path)
    data = archive.read_pickle(path)
    assert data is not None and b"model.diffusion_model.x" in data
    assert load_weights_only(path)["state_dict"]["model.diffusion_model.x"].shape == (4, 4)


def test_deeply_nested_safetensors_header_is_a_load_error(tmp_path: Path) -> None:
    header = ("[" * 100_000 + "]" * 100_000).encode()
    path = tmp_path / "nested.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelLoadError, match=r"not a valid \.safetensors"):
        safetensors_shapes(path)
    nested_dict = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    fine = tmp_path / "fine.safetensors"
    fine.write_bytes(struct.pack("<Q", len(nested_dict)) + nested_dict + b"\0" * 4)
    assert safetensors_shapes(fine) == {"a": (1,)}


def test_a_sampler_whose_package_is_missing_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """diffusers puts a stand-in class in place of DPMSolverSDEScheduler when torchsde is missing; using it raises
    ImportError (diffusers/utils/dummy_torch_and_torchsde_objects.py)."""
    import diffusers
    from diffusers.utils.dummy_torch_and_torchsde_objects import DPMSolverSDEScheduler as Missing

    from extension.engine.samplers import make_scheduler
    from extension.errors import ParamError

    monkeypatch.setattr(diffusers, "DPMSolverSDEScheduler", Missing)
    monkeypatch.setattr("diffusers.utils.import_utils._torchsde_available", False)
    with pytest.raises(ParamError, match="needs the Python package torchsde"):
        make_scheduler({}, "DPM++ SDE", "Karras")
