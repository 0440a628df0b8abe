"""Generation parameters as text, in the WebUI's format (PNG ``parameters`` chunk, PNG Info, paste-back).

Format: prompt line(s), an optional ``Negative prompt: ...`` line, then one line of ``Key: value`` pairs separated by
``, ``. A value containing ``,``, ``:`` or a newline is written as a JSON string, as the WebUI does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

# The WebUI's own pattern (modules/infotext_utils.py); a key must match it to be read back.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
NEGATIVE_PREFIX = "Negative prompt:"


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


def parse(text: str) -> dict[str, str]:
    """Parse an infotext the way the WebUI does; returns ``Prompt``, ``Negative prompt`` and every key as strings."""
    *lines, last_line = text.strip().split("\n")
    if len(_PARAM.findall(last_line)) < 3:
        lines.append(last_line)
        last_line = ""

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
    for key, value in _PARAM.findall(last_line):
        result[key] = unquote(value.strip())
    return result
