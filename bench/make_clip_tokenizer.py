"""Write ``extension/configs/clip-tokenizer/{vocab.json,merges.txt}`` from open_clip's bundled BPE file.

The CLIP BPE (``open_clip/bpe_simple_vocab_16e6.txt.gz``, shipped inside open-clip-torch) is converted exactly the way
open_clip's ``SimpleTokenizer`` builds its vocabulary: 256 byte characters, the same 256 with ``</w>``, the first 48,894
merges, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 entries). ``merges.txt`` is the transformers-4 format
(``#version: 0.2`` + one merge per line), so ``CLIPTokenizer`` reads it under transformers 4.30 and 4.46.

The recipe itself is ``tests.tiny_models.write_clip_vocab`` (the test fixtures build their tokenizers with it, and a
test checks that the bundled files equal its output); this script only points it at the bundled folder.

Run: ``.nox/a1111/bin/python bench/make_clip_tokenizer.py [OUT_DIR]`` (default: the bundled folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import ROOT  # also puts the repository root on sys.path


def write(out_dir: Path) -> None:
    """Write vocab.json and merges.txt into ``out_dir``."""
    from tests.tiny_models import N_MERGES, VOCAB_SIZE, write_clip_vocab

    try:
        write_clip_vocab(out_dir)
    except RuntimeError as error:  # open-clip-torch missing
        raise SystemExit(str(error)) from None
    print(f"wrote {VOCAB_SIZE} tokens, {N_MERGES} merges to {out_dir}")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "extension" / "configs" / "clip-tokenizer")
