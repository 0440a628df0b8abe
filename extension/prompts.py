"""The WebUI's prompt emphasis syntax, parsed into (text, weight) runs.

Same grammar and results as AUTOMATIC1111's ``parse_prompt_attention`` (modules/prompt_parser.py in
https://github.com/AUTOMATIC1111/stable-diffusion-webui, v1.10.1): ``(a)`` ×1.1, ``[a]`` ÷1.1, ``(a:1.3)`` ×1.3,
``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` literal characters, ``BREAK`` a chunk break (weight -1), brackets left open
apply to the end, runs of equal weight merged. Written here (small and pure) because the core runs without the WebUI
and compel's syntax differs (``word+``/``word-``, ``(word)1.2``, ``.and()``; ``[word]`` is not ÷1.1 there).
"""

from __future__ import annotations

import re

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
