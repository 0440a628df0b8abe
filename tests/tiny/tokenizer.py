"""The tiny models' tokenizer: the real CLIP BPE shipped inside open_clip, as ``vocab.json``/``merges.txt``."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

SPECIAL = ("<|startoftext|>", "<|endoftext|>")
N_MERGES = 49152 - 256 - 2  # 48,894 merges, as open_clip's SimpleTokenizer and HF CLIPTokenizer slice them
VOCAB_SIZE = 49408


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer: the real CLIP BPE from open_clip, in transformers-4 format
# --------------------------------------------------------------------------------------------------------------------


def open_clip_bpe_path() -> Path:
    """The BPE file shipped inside open-clip-torch (found without importing open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise RuntimeError("open-clip-torch is not installed: it ships the CLIP BPE vocabulary the tests need")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> unicode table (same as open_clip's and transformers')."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@functools.lru_cache(maxsize=1)
def _vocab_files_text() -> tuple[str, str]:
    """(vocab.json text, merges.txt text) built like open_clip's SimpleTokenizer: 49,408 entries."""
    lines = gzip.decompress(open_clip_bpe_path().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + list(SPECIAL)
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
    return vocab, "#version: 0.2\n" + "\n".join(merges) + "\n"


def _added_token(content: str) -> dict[str, Any]:
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def write_clip_vocab(directory: Path | str) -> Path:
    """Write only ``vocab.json`` and ``merges.txt`` (a shared ``clip-tokenizer/`` folder). The one recipe: the fixtures
    use it, and ``bench/make_clip_tokenizer.py`` wrote the bundled ``extension/configs/clip-tokenizer`` with it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_text, merges_text = _vocab_files_text()
    (directory / "vocab.json").write_text(vocab_text, encoding="utf-8")
    (directory / "merges.txt").write_text(merges_text, encoding="utf-8")
    return directory


def write_clip_tokenizer(directory: Path | str, pad_token: str = "<|endoftext|>", *, vocab: bool = True) -> Path:
    """Write a transformers-4 CLIPTokenizer folder (loads in transformers 4.30 and 4.46 via ``from_pretrained``).

    ``pad_token``: ``"!"`` for SD 2.x/unCLIP and SDXL ``tokenizer_2``, ``"<|endoftext|>"`` for SDXL ``tokenizer``.
    ``vocab=False`` writes only ``tokenizer_config.json``/``special_tokens_map.json`` (the per-model folders of a
    config root whose ``vocab.json``/``merges.txt`` live once in ``clip-tokenizer/``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if vocab:
        write_clip_vocab(directory)
    bos, eos = SPECIAL
    config = {
        "add_prefix_space": False,
        "bos_token": _added_token(bos),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": _added_token(eos),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": _added_token(eos),
    }
    special = {
        k: v if isinstance(v, str) else {x: y for x, y in v.items() if x != "__type"}
        for k, v in config.items()
        if k.endswith("_token")
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return directory


def load_clip_tokenizer(tokenizer_dir: Path | str, vocab_dir: Path | str | None = None) -> Any:
    """``CLIPTokenizer`` from a tokenizer folder; ``vocab_dir`` supplies ``vocab.json``/``merges.txt`` when absent."""
    from transformers import CLIPTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    if (tokenizer_dir / "vocab.json").is_file() or vocab_dir is None:
        return CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    vocab_dir = Path(vocab_dir)
    return CLIPTokenizer.from_pretrained(
        tokenizer_dir,
        vocab_file=str(vocab_dir / "vocab.json"),
        merges_file=str(vocab_dir / "merges.txt"),
        local_files_only=True,
    )
