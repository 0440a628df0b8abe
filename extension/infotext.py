"""Generation parameters as text, in the WebUI's format (PNG ``parameters`` chunk, PNG Info, paste-back).

Format: prompt line(s), an optional ``Negative prompt: ...`` line, then one line of ``Key: value`` pairs separated by
``, ``. A value containing ``,``, ``:`` or a newline is written as a JSON string, as the WebUI does.

Read in one pass (:func:`find_params`): the WebUI's pattern retries from every character and is quadratic on a long
line. A line longer than :data:`MAX_LINE_CHARS` (PNG text chunks may hold megabytes) is left out with a warning.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping

from .prompts import MAX_PROMPT_CHARS

log = logging.getLogger(__name__)

# The WebUI's own pattern (modules/infotext_utils.py), which :func:`find_params` follows; kept as documentation.
WEBUI_PARAM = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
NEGATIVE_PREFIX = "Negative prompt:"
MAX_LINE_CHARS = 4 * MAX_PROMPT_CHARS
"""One infotext line (a prompt line, or the parameters line with a quoted refiner prompt and negative prompt)."""

# Single character classes only: each match is one greedy pass, nothing to backtrack.
_SPACES = re.compile(r"\s*")
_KEY_CHARS = re.compile(r"[\w \-/]*")
_WORD = re.compile(r"\w")
_QUOTED_BODY = re.compile(r'(?:[^\\"]|\\.)*')
_UNTIL_COMMA = re.compile(r"[^,]*")


def find_params(line: str) -> list[tuple[str, str]]:
    """``re.findall(WEBUI_PARAM, line)`` for a line without a newline, linear in its length: a start that fails
    fails for every start up to the end of its run of key characters, so the scan jumps there."""
    found: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    while pos < end:
        first = _SPACES.match(line, pos).end()
        colon = _KEY_CHARS.match(line, first).end()
        if colon == first:
            pos = first + 1  # no key character here (the WebUI's regex fails at every start before it)
            continue
        if colon == end or line[colon] != ":":
            pos = colon
            continue
        key_start = next((i for i in range(first, colon - 1) if _WORD.match(line, i)), None)
        if key_start is None:
            pos = colon
            continue
        value_start = _SPACES.match(line, colon + 1).end()
        value_end = _quoted_end(line, value_start)
        if value_end is None:
            value_end = _UNTIL_COMMA.match(line, value_start).end()
        found.append((line[key_start:colon], line[value_start:value_end]))
        pos = value_end + 1 if value_end < end else end  # the ``,`` that ends the pair
    return found


def _quoted_end(line: str, start: int) -> int | None:
    """Where ``"(?:\\.|[^\\"])+"`` starting at ``start`` ends, when a ``,`` or the end follows it; else None."""
    if start >= len(line) or line[start] != '"':
        return None
    close = _QUOTED_BODY.match(line, start + 1).end()
    if close == start + 1 or close >= len(line) or line[close] != '"':
        return None
    after = close + 1
    return after if after == len(line) or line[after] == "," else None


def quote(value: object) -> str:
    """Render one value, JSON-quoted where the WebUI would quote it."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    """Inverse of :func:`quote`."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def build(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """Return the infotext for one image; entries whose value is ``None`` are left out."""
    pairs = ", ".join(f"{key}: {quote(value)}" for key, value in params.items() if value is not None)
    lines = [prompt.strip()]
    if negative_prompt.strip():
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt.strip()}")
    lines.append(pairs)
    return "\n".join(lines).strip()


def _bounded(line: str) -> bool:
    """Whether ``line`` is short enough to read; a warning when it is over :data:`MAX_LINE_CHARS`."""
    if len(line) <= MAX_LINE_CHARS:
        return True
    log.warning("an infotext line of %s characters was ignored (the limit is %s)", f"{len(line):,}", MAX_LINE_CHARS)
    return False


def parse(text: str) -> dict[str, str]:
    """Parse an infotext the way the WebUI does; returns ``Prompt``, ``Negative prompt`` and every key as strings."""
    *lines, last_line = [line for line in text.strip().split("\n") if _bounded(line)] or [""]
    params = find_params(last_line)
    if len(params) < 3:
        lines.append(last_line)
        params = []

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)

    result = {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines)}
    for key, value in params:
        result[key] = unquote(value.strip())
    return result
