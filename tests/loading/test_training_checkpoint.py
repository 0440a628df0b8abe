"""Training checkpoints (PyTorch Lightning) load with weights-only semantics on every supported torch.

Oracle: the objects written with ``torch.save`` (the weights and the plain values) and A1111's own allow-list
(https://github.com/AUTOMATIC1111/stable-diffusion-webui/blob/v1.10.1/modules/safe.py), which lets exactly
``global_step``/``epoch`` and Lightning's ``ModelCheckpoint`` through. Lightning is not installed: the test writes its
checkpoint with a stand-in module of that name in ``sys.modules`` and removes it before loading.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest
import torch

from extension.errors import ModelLoadError
from extension.loading import allowlist, load_weights_only, read_state_dict

LIGHTNING = "pytorch_lightning.callbacks.model_checkpoint"


class _Payload:
    """Pickles as a call to exec() that would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _fake_lightning(monkeypatch: pytest.MonkeyPatch) -> type:
    """Put a ``pytorch_lightning.callbacks.model_checkpoint`` module with a ``ModelCheckpoint`` class in sys.modules."""

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.monitor = None
            self.best_model_path = "/fsx/logs/checkpoints/last.ckpt"
            self.best_model_score = torch.tensor(0.125)
            self.save_top_k = 1

    ModelCheckpoint.__module__ = LIGHTNING
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    parts = LIGHTNING.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    sys.modules[LIGHTNING].ModelCheckpoint = ModelCheckpoint
    return ModelCheckpoint


@pytest.fixture(params=["torch-unpickler", "restricted-unpickler"])
def loader(request, monkeypatch) -> Iterator[str]:
    """Both allow-list paths on this torch (torch < 2.6 always takes the restricted one)."""
    if request.param == "restricted-unpickler":
        monkeypatch.setattr(allowlist, "has_safe_globals", lambda: False)
    elif not allowlist.has_safe_globals():
        pytest.skip(f"torch {torch.__version__} has no safe_globals((object, name)) (torch >= 2.6)")
    yield request.param


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, obj_factory, zipfile: bool) -> Path:
    path = tmp_path / "trained.ckpt"
    with monkeypatch.context() as m:
        cls = _fake_lightning(m)
        torch.save(obj_factory(cls), path, _use_new_zipfile_serialization=zipfile)
    assert "pytorch_lightning" not in sys.modules  # removed again: loading must not need Lightning
    return path


@pytest.mark.parametrize("zipfile", [True, False])
def test_lightning_checkpoint_loads(tiny, tmp_path, monkeypatch, loader, zipfile) -> None:
    sd = tiny.sdxl_refiner.state_dict

    def sd1_layout(cls):  # what SD 1.x/2.x .ckpt files hold (Lightning 1.4: the callback class as the key)
        return {
            "epoch": 6,
            "global_step": 470000,
            "pytorch-lightning_version": "1.4.2",
            "state_dict": sd,
            "callbacks": {cls: {"monitor": None, "best_model_score": None, "best_model_path": "/fsx/last.ckpt"}},
            "best": numpy.float64(0.25),
            "instance": cls(),
        }

    path = _write(tmp_path, monkeypatch, sd1_layout, zipfile)
    loaded = read_state_dict(path)
    assert loaded.keys() == sd.keys()
    for key, value in sd.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    obj = load_weights_only(path)
    assert obj["epoch"] == 6 and obj["global_step"] == 470000
    (key,) = obj["callbacks"]
    assert key is allowlist.LightningModelCheckpoint
    assert obj["callbacks"][key]["best_model_path"] == "/fsx/last.ckpt"
    assert float(obj["best"]) == 0.25
    assert isinstance(obj["instance"], allowlist.LightningModelCheckpoint)
    assert "pytorch_lightning" not in sys.modules


@pytest.mark.parametrize("zipfile", [True, False])
def test_hostile_training_checkpoint_is_still_refused(tiny, tmp_path, monkeypatch, loader, zipfile) -> None:
    """Allowed Lightning state next to a payload: the payload is refused before anything runs."""
    marker = tmp_path / "MARKER"

    def hostile(cls):
        return {"global_step": 1, "callbacks": {cls: {}}, "state_dict": {"w": torch.ones(2), "evil": _Payload(marker)}}

    path = _write(tmp_path, monkeypatch, hostile, zipfile)
    with pytest.raises(ModelLoadError, match=r"trained.ckpt is unsafe: .*refused without running anything"):
        read_state_dict(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_everything_else(tmp_path) -> None:
    """The fallback unpickler answers only its list: a lookalike name of another module is refused."""
    import io
    import pickle

    data = pickle.dumps(types.SimpleNamespace)
    with pytest.raises(pickle.UnpicklingError, match=r"types\.SimpleNamespace"):
        allowlist.RestrictedUnpickler(io.BytesIO(data)).load()
