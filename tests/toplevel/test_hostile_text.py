"""Hostile and careless text (issue #22): the prompt and infotext parsers are linear and bounded, agree exactly with
the WebUI's own code on random text, and take ``BREAK`` only for the word ``BREAK``.

Linearity is asserted without timing: by counting the Python lines the parser runs (settrace) when the input doubles,
and, for the C regex work, by inputs on which the old quadratic code would run for hours (a generous subprocess
timeout, 100× above what the linear code needs)."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extension import infotext, prompts
from extension.prompts import PromptError, parse_attention

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------------------------------
# The WebUI's code, copied verbatim as the oracle (AUTOMATIC1111 v1.10.1 modules/prompt_parser.py
# ``parse_prompt_attention`` and modules/infotext_utils.py ``re_param``).

re_attention = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)
re_param = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def webui_parse_prompt_attention(text: str) -> list[list[Any]]:
    res: list[list[Any]] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    round_bracket_multiplier = 1.1
    square_bracket_multiplier = 1 / 1.1

    def multiply_range(start_position: int, multiplier: float) -> None:
        for p in range(start_position, len(res)):
            res[p][1] *= multiplier

    for m in re_attention.finditer(text):
        text = m.group(0)
        weight = m.group(1)

        if text.startswith("\\"):
            res.append([text[1:], 1.0])
        elif text == "(":
            round_brackets.append(len(res))
        elif text == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif text == ")" and round_brackets:
            multiply_range(round_brackets.pop(), round_bracket_multiplier)
        elif text == "]" and square_brackets:
            multiply_range(square_brackets.pop(), square_bracket_multiplier)
        else:
            parts = re.split(re_break, text)
            for i, part in enumerate(parts):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])

    for pos in round_brackets:
        multiply_range(pos, round_bracket_multiplier)

    for pos in square_brackets:
        multiply_range(pos, square_bracket_multiplier)

    if len(res) == 0:
        res = [["", 1.0]]

    # merge runs of identical weights
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1

    return res


PROMPT_PIECES = ["a", "b", " ", "\n", "(", ")", "[", "]", ":", "\\", "BREAK", " BREAK ", "1.2", "-1", ":0.5)", ":-1)"]
PROMPT_PIECES += [".", "+", "\t", "xBREAK", "\u0663", "  ", ":1.3 )", "(BREAK:-1)"]
INFOTEXT_PIECES = ["a", "b", " ", "\t", ":", ",", '"', "\\", "-", "/", "_", "1", "\u00e9", "Steps", ": ", '"a, b"']


def _random_texts(pieces: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 24))) for _ in range(count)]


def test_prompt_parser_agrees_bit_for_bit_with_the_webui_on_random_text() -> None:
    compared = 0
    for text in _random_texts(PROMPT_PIECES, 20_000, seed=22):
        try:
            expected = [(t, float(w)) for t, w in webui_parse_prompt_attention(text)]
        except ValueError:  # the WebUI's float("1.2.") raises; ours reads such a group as text
            continue
        got = parse_attention(text)
        assert got == expected, text
        assert [w.hex() for _, w in got] == [w.hex() for _, w in expected], text  # same float operations, same bits
        compared += 1
    assert compared > 15_000


def test_infotext_pairs_agree_with_the_webui_pattern_on_random_lines() -> None:
    for line in _random_texts(INFOTEXT_PIECES, 20_000, seed=22):
        assert infotext.find_params(line) == re_param.findall(line), line


# ---------------------------------------------------------------------------------------------------------------------
# Linear work: Python lines counted, input doubled


def _lines_run(call: Callable[[], Any]) -> int:
    """Lines executed in extension/ code while ``call()`` runs (a deterministic operation count)."""
    count = 0
    package = str(ROOT / "extension")

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(package):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        call()
    except PromptError:
        pass
    finally:
        sys.settrace(None)
    return count


LINEAR_CASES = {
    "deep nesting, each level with text (the old scale() loop was quadratic)": lambda n: "(a " * n,
    "nested groups closed with weights": lambda n: ("(a " * 90 + "b:1.2) " * 90) * n,
    "unmatched closers (the old merge loop)": lambda n: "]" * n,
    "runs of weights (the old merge += and pop)": lambda n: "(a) b " * n,
    "colons and spaces": lambda n: ": " * n + "BREAK " * n,
    "escapes": lambda n: "\\( \\" * n,
}


@pytest.mark.parametrize("make", LINEAR_CASES.values(), ids=list(LINEAR_CASES))
def test_prompt_parsing_work_grows_linearly(make: Callable[[int], str]) -> None:
    small = _lines_run(lambda: parse_attention(make(400)))
    large = _lines_run(lambda: parse_attention(make(800)))
    assert large <= 2.2 * small + 200, (small, large)  # quadratic work would be 4×


def test_infotext_work_grows_linearly() -> None:
    def line(n: int) -> str:
        return "Steps: 20, " + "a b c d: " * n + "x" * n + ' k: "\\", ' * n

    small = _lines_run(lambda: infotext.parse("p\n" + line(500)))
    large = _lines_run(lambda: infotext.parse("p\n" + line(1000)))
    assert large <= 2.2 * small + 200, (small, large)


# The old code on these: 100k spaces 162 s (so 1M: ~4.5 hours), "(a " × 20k 15.9 s, "]" × 100k 18.4 s, a 40 KB
# infotext line 18.6 s (so 1 MB: ~3 hours). The linear code needs well under a second for all of them together.
HUGE = r"""
import sys
from extension import infotext, prompts
prompts.parse_attention("a" + " " * 1_000_000 + "b BREAK" + " " * 1_000_000 + "c")
prompts.parse_attention("]" * 1_000_000)
prompts.parse_attention(": " * 500_000)
prompts.parse_attention("x:" + "1" * 500_000 + " " * 500_000 + "y")
try:
    prompts.parse_attention("(a " * 100_000)
except prompts.PromptError:
    pass
infotext.find_params("Steps: 2, " + "word " * 200_000)
infotext.find_params('k: "' + "\\\\x" * 300_000)
print(infotext.parse("a cat\n" + "Steps: 2, Seed: 3, Size: 64x64, " + "word " * 300_000)["Prompt"][:5])
"""


def test_hostile_sizes_finish_far_below_the_quadratic_time() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HUGE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a cat"  # the 1.5 MB parameters line was ignored, not parsed


# ---------------------------------------------------------------------------------------------------------------------
# Bounds and weights


def test_a_prompt_over_the_character_limit_is_refused() -> None:
    prompts.check_length("a" * prompts.MAX_PROMPT_CHARS)
    with pytest.raises(PromptError, match="32,769 characters; the limit is 32,768"):
        prompts.check_length("a" * (prompts.MAX_PROMPT_CHARS + 1))


def test_more_chunks_than_the_limit_are_refused() -> None:
    from extension.prompts import MAX_PROMPT_CHUNKS, chunk_tokens

    def chunks(count: int) -> list[Any]:
        return chunk_tokens([(list(range(1, 75 * count + 1)), 1.0)], bos=1, eos=2, pad=0)

    assert len(chunks(MAX_PROMPT_CHUNKS)) == MAX_PROMPT_CHUNKS
    with pytest.raises(PromptError, match="more than 32 chunks"):
        chunks(MAX_PROMPT_CHUNKS + 1)
    with pytest.raises(PromptError):
        chunk_tokens([([5], 1.0), (["BREAK"], -1.0)] * (MAX_PROMPT_CHUNKS + 1), bos=1, eos=2, pad=0)


@pytest.mark.parametrize(
    "text",
    ["(cat:" + "9" * 400 + ")", "(" * 2000 + "cat", "((cat:0):" + "9" * 400 + ")", "(" * 101 + "x"],
    ids=["infinite weight", "2000 nested", "0 times infinity", "101 open"],
)
def test_weights_that_are_not_finite_or_nested_too_deeply_are_refused(text: str) -> None:
    with pytest.raises(PromptError):
        parse_attention(text)


def test_nesting_up_to_the_limit_is_read_as_the_webui_reads_it() -> None:
    text = "(" * prompts.MAX_NESTING + "x"
    assert parse_attention(text) == [(t, float(w)) for t, w in webui_parse_prompt_attention(text)]


# ---------------------------------------------------------------------------------------------------------------------
# BREAK only for the word BREAK (the WebUI: ``text == 'BREAK' and weight == -1``, modules/sd_hijack_clip.py)


def test_a_negative_weight_is_not_a_break() -> None:
    from extension.prompts import chunk_tokens, is_break

    runs = parse_attention("a (dog:-1) cat")
    assert runs == [("a ", 1.0), ("dog", -1.0), (" cat", 1.0)]
    assert not any(is_break(t, w) for t, w in runs)
    chunks = chunk_tokens([([7], 1.0), ([8], -1.0), ([9], 1.0)], bos=1, eos=2, pad=0)
    assert len(chunks) == 1 and chunks[0][0][1:4] == [7, 8, 9] and chunks[0][1][2] == -1.0


def test_break_in_brackets_is_the_word_as_in_the_webui() -> None:
    from extension.prompts import is_break

    assert [is_break(t, w) for t, w in parse_attention("a BREAK b")] == [False, True, False]
    assert not any(is_break(t, w) for t, w in parse_attention("(a BREAK b)"))  # BREAK weighs -1.1 there
    runs = parse_attention("a (BREAK:-1) b")  # the word's own break run is multiplied by -1 too: +1, a word again
    assert runs == [(t, float(w)) for t, w in webui_parse_prompt_attention("a (BREAK:-1) b")]
    assert not any(is_break(t, w) for t, w in runs)


def test_tokenized_negative_weight_stays_in_its_chunk(tokenizer: Any) -> None:
    chunks = prompts.tokenize_prompt(tokenizer, "a (dog:-1) cat")
    assert len(chunks) == 1 and -1.0 in chunks[0][1]


@pytest.fixture(scope="module")
def tokenizer(tiny: Any) -> Any:
    from extension.loading.configs import build_tokenizer, config_dir

    return build_tokenizer(config_dir("unclip-h", tiny.config_root) / "tokenizer", tiny.config_root)


def test_the_token_counter_names_the_limit_instead_of_counting(tokenizer: Any, monkeypatch: Any) -> None:
    from extension.ui import widgets

    monkeypatch.setattr(widgets, "_clip_tokenizer", lambda: tokenizer)
    assert "limit" in widgets.token_count_html("a" * (prompts.MAX_PROMPT_CHARS + 1))
    assert "brackets" in widgets.token_count_html("(" * 200)
    assert widgets.token_count_html("a cat") == "<span>2/75</span>"


# ---------------------------------------------------------------------------------------------------------------------
# Infotext


def test_an_oversized_infotext_line_is_ignored_with_a_warning(caplog: Any) -> None:
    long_line = "Steps: 2, Seed: 3, " + "x" * (infotext.MAX_LINE_CHARS + 1)
    with caplog.at_level("WARNING"):
        parsed = infotext.parse("a cat\n" + long_line)
    assert parsed["Prompt"] == "a cat" and "Steps" not in parsed
    assert "ignored" in caplog.text
    assert infotext.parse("a cat\nSteps: 2, Seed: 3, Size: 64x64")["Seed"] == "3"
