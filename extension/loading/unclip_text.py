"""Edit by text for the IP-Adapter backend: the OpenCLIP ViT-H text tower of the unCLIP-H checkpoint whose image
embedder is the backend's encoder — the same CLIP, so text diffs live in the adapter's embedding space.

:class:`UnclipTextSource` has what ``engine/text_diff.py`` ``text_embedding`` and ``loading/text_tower.py``
``TextHead.embed`` read from a pipeline (``tokenizer``, ``text_encoder``, ``reimagine_text_tower``,
``_execution_device``), loaded from the file on first use only (``cond_stage_model.*``: the text encoder and its last
block, ``ln_final``, ``text_projection``), so runs without a text edit never pay for it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..device.precision import Precision
from ._common import SingleFileParts, free_memory
from .checkpoint import Checkpoint, read_state_dict, take_prefix
from .configs import build_tokenizer, config_dir
from .info import ModelInfo
from .text_tower import build_text_head, head_tensors

TEXT_PREFIX = "cond_stage_model."


def has_text_tower(path: str | os.PathLike[str]) -> bool:
    """Whether a checkpoint carries an unCLIP-H image embedder and its OpenCLIP text tower."""
    keys = Checkpoint.open(path).shapes
    return any(k.startswith("embedder.model.visual.") for k in keys) and any(k.startswith(TEXT_PREFIX) for k in keys)


class UnclipTextSource:
    """The unCLIP-H text tower of ``path``, loaded lazily (thread-safe) with ``prec``'s device and dtype."""

    def __init__(self, path: str | os.PathLike[str], config_root: str | os.PathLike[str] | None, prec: Precision):
        self.path, self.config_root, self.prec = Path(path), config_root, prec
        self.reimagine_info = ModelInfo(name=self.path.stem, kind="unclip-h", path=str(self.path), source="file")
        self._parts: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any, Any]:
        from transformers import CLIPTextModel

        with self._lock:
            if self._parts is None:
                cfg = config_dir("unclip-h", self.config_root)
                sd = _read_text(self.path)
                try:
                    tower = head_tensors(sd)
                    single = SingleFileParts(sd, cfg, self.path.name, self.prec)
                    encoder = single.text_encoder(CLIPTextModel, "text encoder", TEXT_PREFIX, "text_encoder")
                    head = build_text_head(tower, encoder, dtype=self.prec.dtype, device=self.prec.device)
                finally:
                    sd.clear()
                    free_memory(self.prec.device)
                self._parts = (build_tokenizer(cfg / "tokenizer", self.config_root), encoder, head)
            return self._parts

    @property
    def tokenizer(self) -> Any:
        return self._load()[0]

    @property
    def text_encoder(self) -> Any:
        return self._load()[1]

    @property
    def reimagine_text_tower(self) -> Any:
        return self._load()[2]

    @property
    def _execution_device(self) -> Any:
        return self.prec.device


def _read_text(path: Path) -> dict[str, Any]:
    """Only the ``cond_stage_model.*`` tensors (a .safetensors file is read key by key)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = [k for k in f.keys() if k.startswith(TEXT_PREFIX)]  # noqa: SIM118 - a safe_open handle
            return {k: f.get_tensor(k) for k in keys}
    return take_prefix(read_state_dict(path), TEXT_PREFIX)
