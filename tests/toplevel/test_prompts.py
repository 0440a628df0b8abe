"""The WebUI's emphasis syntax: the documented examples of ``parse_prompt_attention`` (AUTOMATIC1111 v1.10.1,
modules/prompt_parser.py docstring), copied as documentation, and BREAK as the WebUI documents it."""

from __future__ import annotations

import pytest

from extension.prompts import parse_attention

DOCUMENTED = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), DOCUMENTED)
def test_documented_examples(text, expected):
    got = parse_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-12)


def test_break_is_its_own_run():
    assert parse_attention("a cat BREAK a dog") == [("a cat", 1.0), ("BREAK", -1.0), ("a dog", 1.0)]


def test_square_brackets_divide_and_weights_allow_spaces():
    assert parse_attention("[x]") == [("x", pytest.approx(1 / 1.1))]
    assert parse_attention("(x : 1.5 )") == [("x ", 1.5)]


def test_unmatched_closers_and_colons_are_text():
    assert parse_attention("a) b] c:d") == [("a) b] c:d", 1.0)]
    assert parse_attention("") == [("", 1.0)]


def _chunks(runs, **kw):
    from extension.prompts import chunk_tokens

    return chunk_tokens(runs, bos=49406, eos=49407, pad=0, **kw)


def test_200_tokens_make_three_77_token_chunks_with_bos_and_eos():
    chunks = _chunks([(list(range(1, 201)), 1.0)])
    assert len(chunks) == 3
    for ids, weights in chunks:
        assert len(ids) == len(weights) == 77 and ids[0] == 49406
    # the WebUI's layout (modules/sd_hijack_clip.py): BOS, the tokens, EOS, then the pad id
    assert chunks[0][0][1:76] == list(range(1, 76)) and chunks[0][0][76] == 49407
    assert chunks[2][0][1:51] == list(range(151, 201)) and chunks[2][0][51] == 49407 and chunks[2][0][52:] == [0] * 25


def test_break_starts_a_new_chunk():
    chunks = _chunks([([5, 6], 1.0), (["BREAK"], -1.0), ([7], 1.2)])
    assert [c[0][1:3] for c in chunks] == [[5, 6], [7, 49407]]
    assert chunks[1][1][1] == 1.2


def test_full_chunk_is_cut_after_a_recent_comma():
    ids = [*range(100, 170), 267, *range(200, 210)]  # a comma (267) at index 70, 80 tokens in all
    chunks = _chunks([(ids, 1.0)], comma=267)
    assert chunks[0][0][71] == 267 and chunks[0][0][72:74] == [49407, 0]  # cut after the comma, EOS, padded
    assert chunks[1][0][1:11] == list(range(200, 210))


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from extension.loading.configs import build_tokenizer, config_dir

    return build_tokenizer(config_dir("unclip-h", tiny.config_root) / "tokenizer", tiny.config_root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, 75)),
        ("a photo of a cat", (5, 75)),  # 5 BPE tokens, as the CLIP tokenizer counts them
        ("a (photo:1.4) of [a] cat", (5, 75)),  # emphasis brackets are not tokens
        ("a cat BREAK a dog", (77, 150)),  # a full chunk counts 75, as in the WebUI
        (" ".join(["house"] * 80), (80, 150)),
    ],
)
def test_token_counter_counts_as_txt2img(tokenizer, text, expected):
    from extension.prompts import count_tokens

    assert count_tokens(tokenizer, text) == expected
