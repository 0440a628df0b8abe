"""The bundled config-only diffusers folders (``extension/configs``) and tokenizers built from them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BUNDLED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CONFIG_ROOT_ENV = "REIMAGINE_CONFIG_ROOT"
"""Environment variable: a folder of config-only diffusers folders used instead of the bundled ``extension/configs``
in the WebUI, the CLI and the app alike (tests and the real-WebUI harness use the tiny models' configs)."""
TOKENIZER_DIR = "clip-tokenizer"  # ONE shared CLIP BPE: vocab.json + merges.txt


def config_root(root: str | Path | None = None) -> Path:
    """``root`` or the bundled config folder."""
    return Path(root) if root is not None else BUNDLED_CONFIGS


def config_root_from_env() -> Path | None:
    """``$REIMAGINE_CONFIG_ROOT`` as a folder, if set (the one place that reads it)."""
    value = os.environ.get(CONFIG_ROOT_ENV, "").strip()
    return Path(value).expanduser() if value else None


def config_dir(kind: str, root: str | Path | None = None) -> Path:
    """Config-only diffusers folder for a model kind (``unclip-h``, ``sdxl-refiner``, ...)."""
    d = config_root(root) / kind
    if not (d / "model_index.json").is_file():
        raise ModelLoadError(f"No bundled configuration for {kind} models (looked in {d})")
    return d


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON config file; ModelLoadError when it is missing or broken."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"Cannot read configuration {path}: {e}") from None


def _token(value: Any) -> Any:
    """tokenizer_config.json token entry (plain string or AddedToken dict) -> what CLIPTokenizer accepts."""
    if isinstance(value, dict) and "content" in value:
        from transformers.tokenization_utils_base import AddedToken

        return AddedToken(
            value["content"],
            single_word=value.get("single_word", False),
            lstrip=value.get("lstrip", False),
            rstrip=value.get("rstrip", False),
            normalized=value.get("normalized", True),
        )
    return value


_DROP = {
    "tokenizer_class",
    "name_or_path",
    "special_tokens_map_file",
    "tokenizer_file",
    "auto_map",
    "added_tokens_decoder",
}


def build_tokenizer(folder: str | Path, root: str | Path | None = None) -> CLIPTokenizer:
    """Build a ``CLIPTokenizer`` from a per-model tokenizer folder (tokenizer_config.json, special_tokens_map.json)
    and the shared ``clip-tokenizer/{vocab.json,merges.txt}`` of the same config root.

    Done by hand instead of ``from_pretrained`` so that the per-model folders carry no copy of the 1.5 MB vocabulary;
    works under transformers 4.30 to 5.x (4: the Python BPE takes ``vocab_file``/``merges_file``; 5: the tokenizers
    backed class takes ``vocab``/``merges``, here as file paths).
    """
    import inspect

    from transformers import CLIPTokenizer

    folder = Path(folder)
    vocab_dir = config_root(root) / TOKENIZER_DIR
    vocab, merges = vocab_dir / "vocab.json", vocab_dir / "merges.txt"
    for f in (vocab, merges):
        if not f.is_file():
            raise ModelLoadError(f"Tokenizer file missing: {f}")
    cfg: dict[str, Any] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = folder / name
        if p.is_file():
            cfg.update(read_json(p))
    kwargs = {k: _token(v) for k, v in cfg.items() if k not in _DROP and not k.startswith("_")}
    try:
        if "vocab_file" in inspect.signature(CLIPTokenizer.__init__).parameters:
            return CLIPTokenizer(vocab_file=str(vocab), merges_file=str(merges), **kwargs)
        return CLIPTokenizer(vocab=str(vocab), merges=str(merges), **kwargs)
    except Exception as e:
        raise ModelLoadError(f"Cannot build the tokenizer from {folder}: {e}") from None


def component_from_config(kind: str, name: str, root: str | Path | None = None, **overrides: Any):  # noqa: ANN201
    """A pipeline component (``unet``, ``vae``, ``text_encoder``, ``image_encoder``, …) of ``kind`` built from its
    config-only folder, with fresh weights; ``overrides`` patch the config. Build it inside
    ``accelerate.init_empty_weights()`` to get it on the meta device (no memory)."""
    import importlib

    import transformers

    library, class_name = read_json(config_dir(kind, root) / "model_index.json")[name]
    folder = config_dir(kind, root) / name
    if library != "transformers":  # "diffusers", or a pipeline module such as "stable_diffusion" (the normalizer)
        module = importlib.import_module("diffusers" if library == "diffusers" else f"diffusers.pipelines.{library}")
        model_class = getattr(module, class_name)
        return model_class.from_config({**model_class.load_config(str(folder)), **overrides})
    model_class = getattr(transformers, class_name)
    config = model_class.config_class.from_pretrained(str(folder))
    for key, value in overrides.items():
        setattr(config, key, value)
    return model_class(config)
