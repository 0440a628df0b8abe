"""The WebUI's prompt emphasis syntax, parsed into (text, weight) runs.

Same grammar and results as AUTOMATIC1111's ``parse_prompt_attention`` (modules/prompt_parser.py in
https://github.com/AUTOMATIC1111/stable-diffusion-webui, v1.10.1): ``(a)`` ×1.1, ``[a]`` ÷1.1, ``(a:1.3)`` ×1.3,
``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` literal characters, ``BREAK`` a chunk break (weight -1), brackets left open
apply to the end, runs of equal weight merged. Written here (small and pure) because the core runs without the WebUI
and compel's syntax differs (``word+``/``word-``, ``(word)1.2``, ``.and()``; ``[word]`` is not ÷1.1 there).
"""

from __future__ import annotations

import re
from typing import Any

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK_WEIGHT = -1.0

# One token: an escape, a lone backslash, a bracket, ":<number>)" closing a weighted group, a colon, plain text.
_TOKEN = re.compile(r"\\[()\[\]\\]|\\|[()\[\]]|:\s*([+-]?[.\d]+)\s*\)|:|[^\\()\[\]:]+")
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (text, weight) runs; ``("BREAK", -1.0)`` marks a chunk break."""
    runs: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def scale(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _TOKEN.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])  # a lone backslash adds nothing, as in the WebUI
        elif token == "(":
            open_round.append(len(runs))
        elif token == "[":
            open_square.append(len(runs))
        elif number is not None and open_round and _is_float(number):
            scale(open_round.pop(), float(number))
        elif token == ")" and open_round:
            scale(open_round.pop(), ROUND)
        elif token == "]" and open_square:
            scale(open_square.pop(), SQUARE)
        else:
            for index, part in enumerate(_BREAK.split(token)):
                if index:
                    runs.append(["BREAK", BREAK_WEIGHT])
                runs.append([part, 1.0])
    for start in open_round:
        scale(start, ROUND)
    for start in open_square:
        scale(start, SQUARE)
    if not runs:
        runs = [["", 1.0]]
    merged: list[list] = [runs[0]]
    for run in runs[1:]:
        if run[1] == merged[-1][1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(str(t), float(w)) for t, w in merged]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


CHUNK = 75  # tokens per chunk, without BOS/EOS (the WebUI's chunk length)


def chunk_tokens(
    runs: list[tuple[list[int], float]],
    *,
    bos: int,
    eos: int,
    pad: int,
    comma: int | None = None,
    comma_backtrack: int = 20,
) -> list[tuple[list[int], list[float]]]:
    """Token ids with weights cut into 77-token chunks the WebUI's way: 75 tokens each, ``[BOS, tokens, EOS]`` then
    ``pad`` to 77 (the WebUI fills with EOS and then sets everything after the first EOS to its pad id:
    modules/sd_hijack_clip.py ``tokenize_line`` / ``process_tokens``), weight 1 outside the text; a BREAK run (weight -1) starts a new chunk; a full chunk ending at most ``comma_backtrack`` tokens
    after a comma is cut after that comma (Settings → "Increase coherency by padding from the last comma", default
    20), the rest moves to the next chunk. An empty prompt is one chunk."""
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal tokens, weights, last_comma
        fill = CHUNK - len(tokens)
        chunks.append(([bos, *tokens, eos, *[pad] * fill], [1.0, *weights, 1.0, *[1.0] * fill]))
        tokens, weights, last_comma = [], [], -1

    for ids, weight in runs:
        if weight == BREAK_WEIGHT:
            close()
            continue
        for token in ids:
            if comma is not None and token == comma:
                last_comma = len(tokens)
            elif (
                comma_backtrack and len(tokens) == CHUNK and last_comma != -1 and CHUNK - last_comma <= comma_backtrack
            ):
                cut = last_comma + 1
                rest_t, rest_w = tokens[cut:], weights[cut:]
                tokens, weights = tokens[:cut], weights[:cut]
                close()
                tokens, weights = rest_t, rest_w
            if len(tokens) == CHUNK:
                close()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close()
    return chunks


def tokenize_prompt(tokenizer: Any, text: str, comma_backtrack: int = 20) -> list[tuple[list[int], list[float]]]:
    """``text`` in the WebUI's syntax as 77-token chunks of (ids, weights) for a CLIP ``tokenizer`` (transformers'
    ``CLIPTokenizer``): :func:`parse_attention`, each run tokenized on its own without BOS/EOS (as the WebUI does),
    then :func:`chunk_tokens` with the tokenizer's BOS/EOS/pad ids and its ``,</w>`` token."""
    runs = parse_attention(text)
    texts = [run_text for run_text, weight in runs if weight != BREAK_WEIGHT]
    ids = iter(tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False).input_ids)
    tokenized = [([], weight) if weight == BREAK_WEIGHT else (list(next(ids)), weight) for _, weight in runs]
    return chunk_tokens(
        tokenized,
        bos=tokenizer.bos_token_id,
        eos=tokenizer.eos_token_id,
        pad=tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id,
        comma=tokenizer.get_vocab().get(",</w>"),
        comma_backtrack=comma_backtrack,
    )


def count_tokens(tokenizer: Any, text: str) -> tuple[int, int]:
    """(tokens used, tokens available) as txt2img's token counter shows them ("12/75"): every full chunk counts 75,
    the last one its own tokens; available is that rounded up to whole chunks of 75 (the WebUI's
    ``get_prompt_lengths`` / ``get_target_prompt_token_count`` in modules/sd_hijack_clip.py)."""
    chunks = tokenize_prompt(tokenizer, text)
    last_ids = chunks[-1][0]
    used = CHUNK * (len(chunks) - 1) + last_ids.index(tokenizer.eos_token_id, 1) - 1
    return used, -(-max(used, 1) // CHUNK) * CHUNK
