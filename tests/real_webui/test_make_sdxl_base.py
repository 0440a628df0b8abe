"""The full-size SDXL base builder of the real-WebUI runs (``make_sdxl_base.py``): its committed key table is what
diffusers' own single-file detection calls an SDXL base, its size is the released one, and the streamed file reads
back with safetensors. No 6.9 GB file is written here."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def _builder():
    spec = importlib.util.spec_from_file_location("make_sdxl_base", HERE / "make_sdxl_base.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table() -> dict[str, list]:
    return json.loads((HERE / "sdxl_base_keys.json").read_text())


def test_table_is_an_sdxl_base_for_diffusers() -> None:
    single_file_utils = pytest.importorskip("diffusers.loaders.single_file_utils")
    table = _table()
    meta = {
        key: torch.empty(shape, dtype=torch.int64 if dtype == "I64" else torch.float16, device="meta")
        for key, (dtype, shape) in table.items()
    }
    assert single_file_utils.infer_diffusers_model_type(meta) == "xl_base"


def test_table_size_is_the_released_file() -> None:
    table = _table()
    assert len(table) == 2515  # sd_xl_base_1.0.safetensors
    nbytes = sum(math.prod(shape) * (8 if dtype == "I64" else 2) for dtype, shape in table.values())
    assert 6.93e9 < nbytes < 6.95e9  # the released file: 6.94 GB


def test_streamed_file_reads_back(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    builder = _builder()
    full = _table()
    keys = [
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
        "conditioner.embedders.1.model.logit_scale",
        "conditioner.embedders.1.model.ln_final.bias",
        "conditioner.embedders.1.model.ln_final.weight",
        "first_stage_model.decoder.mid.attn_1.q.weight",
    ]
    table = {key: full[key] for key in keys}
    path = tmp_path / "part.safetensors"
    builder.write_base(path, table)
    loaded = safetensors.load_file(str(path))
    assert set(loaded) == set(keys)
    for key, (dtype, shape) in table.items():
        assert list(loaded[key].shape) == shape
        assert loaded[key].dtype == (torch.int64 if dtype == "I64" else torch.float16)
    assert loaded[keys[0]].tolist() == [list(range(77))]
    assert torch.all(loaded[keys[3]] == 1)
    bias = loaded[keys[2]].float()
    assert bias.abs().min() >= 0 and 0.01 < bias.std() < 0.03  # no zero biases (NaN in the WebUI's emphasis)
