"""Cheap model discovery for the UI and the API (extension/loading/discovery.py): every form found, names unique,
headers read without loading weights, foreign .ckpt files never unpickled."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from extension.loading import discovery as models
from extension.loading.discovery import ModelChoice


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
