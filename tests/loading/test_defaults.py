"""``vary`` / ``refine`` without ``--model``: the only model of its kind in the models folder, else the hub id;
offline (or online without a network) with nothing local, one line naming the file and the folder (exit 2).

Oracles: the models placed in the folder by the test, the published file names of Stability AI's repositories
(https://huggingface.co/stabilityai/stable-diffusion-2-1-unclip, .../stable-diffusion-xl-refiner-1.0), the exit
status and the files written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension.cli import main
from extension.loading.defaults import choose, model_folders


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(3).randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def _models(tmp_path: Path, *models: Path) -> Path:
    folder = tmp_path / "models"
    (folder / "Stable-diffusion").mkdir(parents=True)
    for model in models:
        (folder / "Stable-diffusion" / model.name).symlink_to(model, target_is_directory=model.is_dir())
    return folder


def test_the_only_local_unclip_model_is_used(tiny, photo, tmp_path):
    models = _models(tmp_path, tiny.unclip_h.folder, tiny.sdxl_refiner.folder)  # the refiner is not an unCLIP model
    out = tmp_path / "out"
    argv = ["vary", str(photo), "--models-dir", str(models), "--out", str(out), "--steps", "2", "--n", "1"]
    assert main(argv) == 0
    assert [p.name for p in out.glob("*.png")] == ["photo-0000.png"]


def test_offline_with_no_model_names_the_file_and_the_folder(photo, tmp_path, capsys):
    models = _models(tmp_path)
    assert main(["vary", str(photo), "--models-dir", str(models), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert "sd21-unclip-h.ckpt" in error and str(models / "Stable-diffusion") in error


def test_refine_offline_with_no_model_names_the_refiner_file(photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REIMAGINE_MODELS", str(_models(tmp_path)))
    assert main(["refine", str(photo), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "sd_xl_refiner_1.0.safetensors" in error and str(tmp_path / "models" / "Stable-diffusion") in error


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("command", "file_name"), [("vary", "sd21-unclip-h.ckpt"), ("refine", "sd_xl_refiner_1.0.safetensors")]
)
def test_no_network_with_no_model_gives_the_offline_message(
    command, file_name, photo, tmp_path, capsys, hub_online, network_attempts
):
    """HF_HUB_OFFLINE unset, the network blocked (tests/conftest.py's guard): the hub client's own "could not
    download ... outgoing traffic" error becomes the line offline mode prints, naming the file and the folder."""
    models = _models(tmp_path)
    assert main([command, str(photo), "--models-dir", str(models), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert network_attempts, "the hub was not even tried: this test would not show the no-network path"
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    assert file_name in error and str(models / "Stable-diffusion") in error
    assert "cannot be reached" in error


def test_several_local_models_ask_for_one(tiny, photo, tmp_path, capsys):
    models = _models(tmp_path, tiny.unclip_h.folder, tiny.unclip_l.folder)
    assert main(["vary", str(photo), "--models-dir", str(models), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "--model" in error and tiny.unclip_h.folder.name in error and tiny.unclip_l.folder.name in error


def test_nothing_local_falls_back_to_the_hub_ids():
    assert choose("unclip", []) == "stabilityai/stable-diffusion-2-1-unclip"
    assert choose("refiner", []) == "stabilityai/stable-diffusion-xl-refiner-1.0"


def test_folder_order_models_dir_then_environment_then_cwd(tmp_path):
    env = {"REIMAGINE_MODELS": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    assert model_folders(tmp_path / "x", env, tmp_path) == [tmp_path / "x"]
    assert model_folders(None, env, tmp_path) == [tmp_path / "a", tmp_path / "b"]
    assert model_folders(None, {}, tmp_path) == [tmp_path / "models"]
