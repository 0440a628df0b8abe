"""Prompts in the WebUI's syntax reach the text encoders as the WebUI sends them (AUTOMATIC1111 v1.10.1,
modules/sd_hijack_clip.py and modules/sd_emphasis.py; the README of the WebUI's wiki "Features → Attention/emphasis"
and "Infinite prompt length"/"BREAK").

Oracles: diffusers' own ``encode_prompt`` on the same weights (a plain short prompt, and each 75-token chunk built by
hand in the WebUI's layout ``[BOS] tokens [EOS] pad…``), and the WebUI's documented emphasis formula ("Original":
multiply each token's hidden state by its weight, then restore the chunk's mean), written out here from its source."""

from __future__ import annotations

import pytest
import torch

from extension.engine.text_encoding import encode_prompts
from extension.engine.unclip import encode_text

LONG = " ".join(["a photo of a red house on a hill"] * 12)  # 108 tokens, no comma: two chunks, none moved


@pytest.fixture(scope="module")
def unclip(tiny):
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_h.folder)


@pytest.fixture(scope="module")
def refiner(tiny):
    from extension.loading import load_sdxl

    return load_sdxl(tiny.sdxl_refiner.folder, role="refiner")


def _webui_chunk(tokenizer, tokens: list[int]) -> torch.Tensor:
    """One chunk as the WebUI lays it out: BOS, at most 75 tokens, EOS, then the pad id (sd_hijack_clip.py)."""
    pad = tokenizer.pad_token_id
    return torch.tensor([[tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id, *[pad] * (75 - len(tokens))]])


def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False).input_ids


def _diffusers_unclip(pipe, prompt: str, negative: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    cond, uncond = pipe.encode_prompt(
        prompt=prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=negative
    )
    return cond, uncond


def _original_emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # modules/sd_emphasis.py EmphasisOriginal.after_transformers, as written there
    original_mean = z.mean()
    z = z * weights.reshape((*weights.shape, 1)).expand(z.shape)
    new_mean = z.mean()
    return z * (original_mean / new_mean)


def test_a_plain_short_prompt_is_what_diffusers_encodes(unclip):
    cond, uncond = _diffusers_unclip(unclip, "a photo of a cat", "blurry")
    ours = encode_text(unclip, "a photo of a cat", "blurry", batch=2, guided=True)
    assert ours.shape == (4, 77, cond.shape[-1])
    assert torch.equal(ours[:2], uncond.repeat(2, 1, 1)) and torch.equal(ours[2:], cond.repeat(2, 1, 1))


def test_tokens_beyond_77_reach_the_encoder_in_a_second_chunk(unclip):
    tokens = _tokens(unclip.tokenizer, LONG)
    assert 75 < len(tokens) <= 150
    ours = encode_text(unclip, LONG, "", batch=1, guided=False)
    assert ours.shape[1] == 154
    with torch.no_grad():
        first = unclip.text_encoder(_webui_chunk(unclip.tokenizer, tokens[:75]))[0]
        second = unclip.text_encoder(_webui_chunk(unclip.tokenizer, tokens[75:]))[0]
    torch.testing.assert_close(ours, torch.cat([first, second], dim=1), rtol=0, atol=1e-6)
    other = encode_text(unclip, LONG + " cat", "", batch=1, guided=False)
    assert not torch.equal(other[:, 77:], ours[:, 77:])  # the 109th token changes the conditioning
    assert torch.equal(other[:, :77], ours[:, :77])


def test_emphasis_is_the_webui_formula(unclip):
    assert torch.equal(
        encode_text(unclip, "(a red house:1.0)", "", 1, False), encode_text(unclip, "a red house", "", 1, False)
    )
    ours = encode_text(unclip, "a (red house:1.5) [on a hill]", "", batch=1, guided=False)
    runs = [("a ", 1.0), ("red house", 1.5), (" ", 1.0), ("on a hill", 1 / 1.1)]
    tokens, weights = [], []
    for text, weight in runs:
        ids = _tokens(unclip.tokenizer, text)
        tokens += ids
        weights += [weight] * len(ids)
    with torch.no_grad():
        z = unclip.text_encoder(_webui_chunk(unclip.tokenizer, tokens))[0]
    expected = _original_emphasis(z, torch.tensor([[1.0, *weights, *[1.0] * (76 - len(weights))]]))
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    assert not torch.equal(ours, encode_text(unclip, "a red house on a hill", "", 1, False))


def test_break_starts_a_new_chunk(unclip):
    ours = encode_text(unclip, "a red house BREAK on a hill", "", batch=1, guided=False)
    house, _ = _diffusers_unclip(unclip, "a red house")
    hill, _ = _diffusers_unclip(unclip, "on a hill")
    assert torch.equal(ours, torch.cat([house, hill], dim=1))


def test_a_short_negative_prompt_is_padded_with_the_empty_prompt(unclip):
    ours = encode_text(unclip, LONG, "blurry", batch=1, guided=True)
    blurry, empty = _diffusers_unclip(unclip, "blurry")  # diffusers' negative here is the empty prompt
    assert ours.shape[1] == 154
    assert torch.equal(ours[:1], torch.cat([blurry, empty], dim=1))


def test_refiner_plain_prompt_and_long_prompt_against_diffusers(refiner):
    embeds, negative, pooled, negative_pooled = refiner.encode_prompt(
        prompt="a photo of a cat", device="cpu", num_images_per_prompt=1, negative_prompt="blurry"
    )
    ours = encode_prompts(refiner, "a photo of a cat", "blurry", guided=True)
    for got, expected in ((ours.embeds, embeds), (ours.negative, negative), (ours.pooled, pooled)):
        assert torch.equal(got, expected)
    assert torch.equal(ours.negative_pooled, negative_pooled)

    # a long prompt: the first chunk (and the pooled embedding, taken from it as the WebUI does) is what diffusers
    # makes of the prompt cut at 77 tokens; the second chunk carries the rest
    cut, _, cut_pooled, _ = refiner.encode_prompt(prompt=LONG, device="cpu", num_images_per_prompt=1)
    long = encode_prompts(refiner, LONG, "", guided=True)
    assert long.embeds.shape[1] == 154 and long.negative.shape[1] == 154
    assert torch.equal(long.embeds[:, :77], cut) and torch.equal(long.pooled, cut_pooled)
    tokens = _tokens(refiner.tokenizer_2, LONG)
    with torch.no_grad():
        second = refiner.text_encoder_2(_webui_chunk(refiner.tokenizer_2, tokens[75:]), output_hidden_states=True)
    torch.testing.assert_close(long.embeds[:, 77:], second.hidden_states[-2], rtol=0, atol=1e-6)


def test_the_long_prompt_reaches_the_unet(unclip):
    from PIL import Image

    from extension.engine.unclip import VariationRequest, generate

    seen = []
    original = unclip.unet.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["encoder_hidden_states"].shape[1])
        return original(*args, **kwargs)

    unclip.unet.forward = spy
    try:
        image = Image.new("RGB", (64, 64), (120, 30, 200))
        generate(unclip, VariationRequest(images=[image], prompt=LONG, steps=1, width=64, height=64, seed=1))
    finally:
        del unclip.unet.forward
    assert seen == [154]
