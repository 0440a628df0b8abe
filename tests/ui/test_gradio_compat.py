"""extension/ui/compat.py against the INSTALLED gradio (3.41 in a1111, 3.43 in neo, 4.40 in forge, 6.x in newest):
every keyword compat chooses exists in the real signature, and each choice is the one this gradio's own code makes
(its signatures and its warnings are the oracle, not compat)."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import gradio as gr

from extension.ui import compat


def _params(fn: object) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def _takes(fn: object, name: str) -> bool:
    """Whether ``fn`` accepts ``name`` as a real, named parameter (not only through ``**kwargs``)."""
    param = _params(fn).get(name)
    return param is not None and param.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


def test_launch_keywords_exist_in_this_gradio() -> None:
    kwargs = compat.launch_kwargs(css="body {}", server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    assert all(_takes(gr.Blocks.launch, name) for name in kwargs), sorted(set(kwargs) - set(_params(gr.Blocks.launch)))
    assert "css" in kwargs if _takes(gr.Blocks.launch, "css") else "css" not in kwargs


def test_css_goes_to_exactly_one_place() -> None:
    blocks = compat.blocks_kwargs(title="t", css="body {}")
    launch = compat.launch_kwargs(css="body {}")
    assert ("css" in blocks) != ("css" in launch)
    if "css" in blocks:
        assert _takes(gr.Blocks.__init__, "css")
    assert all(name in _params(gr.Blocks.__init__) for name in blocks)


def test_api_page_link_is_hidden_the_way_this_gradio_offers() -> None:
    launch = compat.launch_kwargs(css="")
    if _takes(gr.Blocks.launch, "show_api"):  # gradio 3.x-5.x
        assert launch["show_api"] is False and "footer_links" not in launch
    else:  # gradio 6: the footer's links; "api" left out
        assert _takes(gr.Blocks.launch, "footer_links")
        assert "show_api" not in launch and "api" not in launch["footer_links"] and launch["footer_links"]


def test_queue_keyword_exists_in_this_gradio() -> None:
    (name,) = compat.queue_limit(3)
    assert _takes(gr.Blocks.queue, name)
    assert compat.queue_limit(3)[name] == 3


def test_event_keywords_exist_in_this_gradio() -> None:
    (js_name,) = compat.js("() => []")
    with gr.Blocks():
        button = gr.Button()
        assert _takes(button.click, js_name)
    assert compat.js(None) == {}


def test_components_take_compat_keywords() -> None:
    with gr.Blocks():
        image = compat.image_input(label="in")
        gallery = compat.gallery(label="out")
    assert isinstance(image, gr.Image) and isinstance(gallery, gr.Gallery)
    if _takes(gr.Gallery.__init__, "format"):  # gradio 4+: outputs stay PNG (infotext survives)
        assert gallery.format == "png"


def test_blocks_of_the_app_build_without_gradio_warnings(tmp_path: Path) -> None:
    """gradio 6 warns when ``css`` is given to ``gr.Blocks()`` ("moved ... to the launch() method"): the app's Blocks
    must be built the way this gradio wants."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gr.Blocks(**compat.blocks_kwargs(title="Reimagine", css="body {}"))
    moved = [w for w in caught if "launch()" in str(w.message) or "css" in str(w.message)]
    assert moved == [], [str(w.message) for w in moved]


# gradio's release notes: 6.0 moved ``css`` to ``launch()`` and replaced ``show_api`` with ``footer_links``
RELEASE_NOTES = {
    3: (False, True),
    4: (False, True),
    5: (False, True),
    6: (True, False),
}  # major: (css at launch, show_api)


def test_detected_features_match_the_release_notes() -> None:
    """What compat detected from the signatures agrees with the documented history for the installed major."""
    assert compat.GRADIO_MAJOR in RELEASE_NOTES, f"gradio {gr.__version__}: check compat.py and add a row"
    assert RELEASE_NOTES[compat.GRADIO_MAJOR] == (compat.CSS_AT_LAUNCH, compat.LAUNCH_SHOW_API)
