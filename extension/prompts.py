"""The WebUI's prompt emphasis syntax, parsed into (text, weight) runs.

Same grammar and results as AUTOMATIC1111's ``parse_prompt_attention`` (modules/prompt_parser.py in
https://github.com/AUTOMATIC1111/stable-diffusion-webui, v1.10.1): ``(a)`` ×1.1, ``[a]`` ÷1.1, ``(a:1.3)`` ×1.3,
``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` literal characters, ``BREAK`` a chunk break (weight -1), brackets left open
apply to the end, runs of equal weight merged. Written here (small and pure) because the core runs without the WebUI
and compel's syntax differs (``word+``/``word-``, ``(word)1.2``, ``.and()``; ``[word]`` is not ÷1.1 there).

Linear in the text's length (the WebUI's regexes and list pops are quadratic on hostile text): a hand-written scanner
whose only regexes are single character classes (no backtracking), the bracket multiplications recorded and applied
once, text joined from lists. Bounded: :data:`MAX_PROMPT_CHARS` characters, :data:`MAX_NESTING` open brackets,
:data:`MAX_PROMPT_CHUNKS` chunks of 75 tokens, finite weights; anything over is a :class:`PromptError`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from .errors import ParamError

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK_WEIGHT = -1.0
BREAK_TEXT = "BREAK"

MAX_PROMPT_CHARS = 32_768
"""Characters in one prompt: a bound on the work before tokenizing (ordinary text meets the chunk limit first)."""
MAX_PROMPT_CHUNKS = 32
"""75-token chunks in one prompt (2,400 tokens; txt2img's counter shows ``2400/2400``)."""
MAX_NESTING = 100
"""Brackets open at once (``(`` and ``[`` together): 1.1¹⁰⁰ ≈ 13,781, far past any useful emphasis."""


class PromptError(ParamError):
    """A prompt over the limits, or one whose weights are not finite."""


_SPECIAL = re.compile(r"[\\()\[\]:]")  # where plain text stops
_SPACES = re.compile(r"\s*")
_NUMBER = re.compile(r"[+-]?[.\d]+")
_BREAK_WORD = re.compile(r"\bBREAK\b")
_ESCAPABLE = "()[]\\"


def check_length(text: str, what: str = "the prompt") -> None:
    """Raise :class:`PromptError` when ``text`` has more than :data:`MAX_PROMPT_CHARS` characters."""
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"{what} has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")


def check_prompt(text: str, what: str = "the prompt") -> None:
    """Everything about ``text`` that can be checked without a tokenizer: its length, its brackets and weights
    (raises :class:`PromptError` with ``what`` named in the message)."""
    check_length(text, what)
    try:
        parse_attention(text)
    except PromptError as error:
        raise PromptError(f"{what}: {error}") from None


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> Any:
    """The CLIP BPE tokenizer of the bundled configs (SD 2.x and SDXL count tokens alike), built once, offline."""
    from .loading.configs import build_tokenizer, config_dir

    return build_tokenizer(config_dir("unclip-h") / "tokenizer")


def count_chunks(text: str) -> int:
    """The 75-token chunks ``text`` is encoded in (raises :class:`PromptError` over the limits)."""
    return len(tokenize_prompt(clip_tokenizer(), text))


def _weight_at(text: str, colon: int) -> tuple[int, str] | None:
    """``(end, number)`` when ``text[colon:]`` starts with ``:\\s*([+-]?[.\\d]+)\\s*\\)`` (the WebUI's weighted close).
    The four parts' character classes are disjoint, so one greedy pass finds what the backtracking regex finds."""
    found = _NUMBER.match(text, _SPACES.match(text, colon + 1).end())
    if found is None:
        return None
    close = _SPACES.match(text, found.end()).end()
    return (close + 1, found.group()) if close < len(text) and text[close] == ")" else None


def _tokens(text: str):  # -> Iterator[tuple[str, str | None]]
    """The WebUI's ``re_attention`` tokens of ``text``: (token, weight number or None)."""
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char == "\\":
            size = 2 if pos + 1 < end and text[pos + 1] in _ESCAPABLE else 1
            yield text[pos : pos + size], None
            pos += size
        elif char in "()[]":
            yield char, None
            pos += 1
        elif char == ":":
            weighted = _weight_at(text, pos)
            if weighted is None:
                yield ":", None
                pos += 1
            else:
                yield text[pos : weighted[0]], weighted[1]
                pos = weighted[0]
        else:
            found = _SPECIAL.search(text, pos)
            stop = end if found is None else found.start()
            yield text[pos:stop], None
            pos = stop


def split_break(text: str) -> list[str]:
    """``re.split(r"\\s*\\bBREAK\\b\\s*", text)`` in one pass: the whitespace around each ``BREAK`` word is found by
    walking out from the word (the regex retries ``\\s*`` from every space: quadratic on long runs of spaces)."""
    parts, start = [], 0
    for word in _BREAK_WORD.finditer(text):
        if word.start() < start:
            continue  # inside the spaces the previous break took (cannot happen: BREAK is no space)
        before = text[start : word.start()]
        parts.append(before.rstrip())
        start = _SPACES.match(text, word.end()).end()
    parts.append(text[start:])
    return parts


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (text, weight) runs; ``("BREAK", -1.0)`` marks a chunk break. Raises :class:`PromptError` for more
    than :data:`MAX_NESTING` open brackets or a weight that is not finite (``(a:1e400)`` spelled out, or ``1.1²⁰⁰⁰``)."""
    texts: list[str] = []
    open_round: list[int] = []
    open_square: list[int] = []
    scales: list[tuple[int, int, float]] = []  # (first run, end, factor), applied in this order as the WebUI does

    for token, number in _tokens(text):
        if token.startswith("\\"):
            texts.append(token[1:])  # a lone backslash adds an empty run, as in the WebUI
        elif token == "(" or token == "[":
            (open_round if token == "(" else open_square).append(len(texts))
            if len(open_round) + len(open_square) > MAX_NESTING:
                raise PromptError(f"the prompt has more than {MAX_NESTING} brackets open at once")
        elif number is not None and open_round and _is_float(number):
            scales.append((open_round.pop(), len(texts), float(number)))
        elif token == ")" and open_round:
            scales.append((open_round.pop(), len(texts), ROUND))
        elif token == "]" and open_square:
            scales.append((open_square.pop(), len(texts), SQUARE))
        else:
            for index, part in enumerate(split_break(token)):
                if index:
                    texts.append(BREAK_TEXT)
                    scales.append((len(texts) - 1, len(texts), BREAK_WEIGHT))
                texts.append(part)
    scales += [(start, len(texts), ROUND) for start in open_round]
    scales += [(start, len(texts), SQUARE) for start in open_square]
    if not texts:
        return [("", 1.0)]
    weights = [1.0] * len(texts)
    for start, end, factor in scales:  # at most MAX_NESTING scales cover a run: linear
        for index in range(start, end):
            weights[index] *= factor
    return _merged(texts, weights)


def _merged(texts: list[str], weights: list[float]) -> list[tuple[str, float]]:
    """Runs of equal weight joined (the WebUI's merge loop, without its quadratic ``pop`` and ``+=``)."""
    merged: list[tuple[str, float]] = []
    parts = [texts[0]]
    for run_text, weight, previous in zip(texts[1:], weights[1:], weights):
        if weight == previous:
            parts.append(run_text)
        else:
            merged.append(("".join(parts), previous))
            parts = [run_text]
    merged.append(("".join(parts), weights[-1]))
    for _, weight in merged:
        if not math.isfinite(weight):
            raise PromptError(f"a prompt weight is {weight} (a weight too large, or brackets nested too deeply)")
    return merged


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
    modules/sd_hijack_clip.py ``tokenize_line`` / ``process_tokens``), weight 1 outside the text; a BREAK run
    (``(["BREAK"], -1)``) starts a new chunk; a full chunk ending at most ``comma_backtrack`` tokens after a comma is
    cut after that comma (Settings → "Increase coherency by padding from the last comma", default 20), the rest moves
    to the next chunk. An empty prompt is one chunk; more than :data:`MAX_PROMPT_CHUNKS` is a :class:`PromptError`."""
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal tokens, weights, last_comma
        if len(chunks) == MAX_PROMPT_CHUNKS:
            raise PromptError(f"the prompt has more than {MAX_PROMPT_CHUNKS} chunks of {CHUNK} tokens; shorten it")
        fill = CHUNK - len(tokens)
        chunks.append(([bos, *tokens, eos, *[pad] * fill], [1.0, *weights, 1.0, *[1.0] * fill]))
        tokens, weights, last_comma = [], [], -1

    for ids, weight in runs:
        if weight == BREAK_WEIGHT and list(ids) == [BREAK_TEXT]:
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


def is_break(text: str, weight: float) -> bool:
    """A run is a chunk break only when it is the text ``BREAK`` with weight -1 (``sd_hijack_clip.tokenize_line``):
    ``(dog:-1)`` is a negative weight, ``(BREAK)`` is the word."""
    return text == BREAK_TEXT and weight == BREAK_WEIGHT


def tokenize_prompt(tokenizer: Any, text: str, comma_backtrack: int = 20) -> list[tuple[list[int], list[float]]]:
    """``text`` in the WebUI's syntax as 77-token chunks of (ids, weights) for a CLIP ``tokenizer`` (transformers'
    ``CLIPTokenizer``): :func:`parse_attention`, each run tokenized on its own without BOS/EOS (as the WebUI does),
    then :func:`chunk_tokens` with the tokenizer's BOS/EOS/pad ids and its ``,</w>`` token."""
    check_length(text)
    runs = parse_attention(text)
    texts = [run_text for run_text, weight in runs if not is_break(run_text, weight)]
    ids = iter(tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False).input_ids)
    tokenized = [([BREAK_TEXT], w) if is_break(t, w) else (list(next(ids)), w) for t, w in runs]
    return chunk_tokens(
        tokenized,
        bos=tokenizer.bos_token_id,
        eos=tokenizer.eos_token_id,
        pad=tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id,
        comma=_comma_id(tokenizer),
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


def _comma_id(tokenizer: Any) -> int | None:
    """The id of ``,</w>`` (None if the vocabulary has none), without ``get_vocab()``: that builds a 49,408-entry
    dict on every call (4 ms per prompt on a CPU; the IP-Adapter bench, bench/bench_ip_adapter.py, showed it)."""
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if convert is None:  # a tokenizer-like object with a vocabulary only
        return tokenizer.get_vocab().get(",</w>")
    token = convert(",</w>")
    return None if token is None or token == getattr(tokenizer, "unk_token_id", None) else int(token)
