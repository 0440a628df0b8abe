"""Write ``extension/configs/clip-tokenizer/{vocab.json,merges.txt}`` from open_clip's bundled BPE file.

The CLIP BPE (``open_clip/bpe_simple_vocab_16e6.txt.gz``, shipped inside open-clip-torch) is converted exactly the way
open_clip's ``SimpleTokenizer`` builds its vocabulary: 256 byte characters, the same 256 with ``</w>``, the first 48,894
merges, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 entries). ``merges.txt`` is the transformers-4 format
(``#version: 0.2`` + one merge per line), so ``CLIPTokenizer`` reads it under transformers 4.30 and 4.46.

Run: ``.nox/a1111/bin/python bench/make_clip_tokenizer.py [OUT_DIR]`` (default: the bundled folder).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # 48,894: open_clip's SimpleTokenizer slice merges[1 : 48894 + 1]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> unicode table (same as open_clip.tokenizer.bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_vocab(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """Return (vocab, merges) exactly as open_clip's SimpleTokenizer derives them."""
    with gzip.open(bpe_gz) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def open_clip_bpe_path() -> Path:
    """Path of the BPE file inside the installed open_clip package (without importing open_clip, which needs torch)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise SystemExit("open_clip (open-clip-torch) is not installed in this interpreter")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def write(out_dir: Path) -> None:
    """Write vocab.json and merges.txt into ``out_dir``."""
    vocab, merges = build_vocab(open_clip_bpe_path())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"wrote {len(vocab)} tokens, {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "extension" / "configs" / "clip-tokenizer"
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
