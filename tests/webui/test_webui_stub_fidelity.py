"""The stand-in WebUI behaves like the real one where the extension depends on it (each fact from the real source of
A1111 v1.10.1 / Forge dfdcbab6, cited by file and line in the stand-in's docstrings)."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

from tests.webui_stub.fixture import GRADIO_MAJORS_OF, StubWebUI, installed_gradio_major
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture

SCRIPTS = textwrap.dedent(
    """
    from modules import scripts

    class _Base(scripts.Script):
        def title(self):
            return "base"
        def show(self, is_img2img):
            return scripts.AlwaysVisible
        def ui(self, is_img2img):
            import gradio as gr
            return [gr.Checkbox(label=self.title())]

    class Late(_Base):
        section = "accordions"
        sorting_priority = 20
        def title(self):
            return "late"

    class Early(_Base):
        section = "accordions"
        sorting_priority = 5
        def title(self):
            return "early"

    class Plain(_Base):
        def title(self):
            return "plain"

    class Elsewhere(_Base):
        section = "my section"
        def title(self):
            return "elsewhere"
    """
)


def built_runner(webui: StubWebUI):
    import gradio as gr

    (webui.root / "scripts").mkdir(exist_ok=True)
    (webui.root / "scripts" / "aaa_order.py").write_text(SCRIPTS, encoding="utf-8")
    webui.load_scripts()
    from modules import scripts, ui

    importlib.import_module("modules.ui_components")
    runner = webui.script_runner()
    scripts.scripts_txt2img = runner
    with gr.Blocks():
        ui.create_script_sections(runner)
    return runner


def test_sections_and_sorting_priority(webui: StubWebUI) -> None:
    runner = built_runner(webui)
    ours = {s.title(): s for s in runner.alwayson_scripts if s.title() in ("late", "early", "plain", "elsewhere")}
    order = sorted(ours, key=lambda t: ours[t].args_from)
    # "accordions" comes before the "scripts" category; a script section that is no built-in category comes last
    # but before "scripts"; within a section, Forge sorts by sorting_priority, A1111 keeps load order
    expected_accordions = ["early", "late"] if webui.is_forge else ["late", "early"]
    assert order == [*expected_accordions, "elsewhere", "plain"]
    assert runner.inputs[0] is not None  # the Script dropdown
    assert ours["plain"].args_from > ours["elsewhere"].args_from


def test_hires_fix_doubles_the_job_count_and_counts_the_first_pass(webui: StubWebUI) -> None:
    from modules import processing, sd_models, shared

    shared.sd_model = sd_models.StubSdModel(is_sdxl=False)
    seen = []

    class Runner:
        def __getattr__(self, name):
            return lambda *a, **k: seen.append((name, shared.state.job_no, shared.state.job_count))

    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="x",
        steps=2,
        width=64,
        height=64,
        n_iter=2,
        enable_hr=True,
        hr_scale=1.0,
        do_not_save_samples=True,
        outpath_samples=str(webui.outputs_dir),
        outpath_grids=str(webui.outputs_dir),
    )
    p.scripts, p.script_args = Runner(), ()
    shared.state.begin(job="t")
    processing.process_images(p)
    nextjobs = [c for c in shared.state.calls if c == ("nextjob",)]
    # real: job_count = n_iter * 2; one nextjob in sample_hr_pass before before_hr, one after each batch
    assert [s for s in seen if s[0] == "before_hr"] == [("before_hr", 1, 4), ("before_hr", 3, 4)]
    assert len(nextjobs) == 4 and shared.state.job_count == 4


def test_input_accordion_is_a_class_in_a1111_a_function_in_forge(webui: StubWebUI) -> None:
    import gradio as gr
    from modules import ui_components

    with gr.Blocks():
        acc = ui_components.InputAccordion(False, label="x")
    assert isinstance(acc, gr.Checkbox)
    if webui.is_forge:
        assert not isinstance(ui_components.InputAccordion, type)
        assert type(acc).__name__ == "InputAccordionImpl"
    else:
        assert isinstance(acc, ui_components.InputAccordion)
        assert not hasattr(ui_components, "InputAccordionImpl")


def test_saved_outputs_are_served_from_their_saved_path(webui: StubWebUI, tmp_path: Path) -> None:
    """Forge: a gallery value of a saved image is the file under outputs/ (with ?mtime), registered as a temp file,
    not a copy in gradio's cache; gradio 4.40's cache check for ``gr.SelectData`` handlers then refuses it."""
    import gradio as gr
    from modules import images, shared, ui_tempdir
    from PIL import Image

    importlib.import_module("modules.ui_components")
    image = Image.new("RGB", (8, 8))
    fullfn, _ = images.save_image(image, str(webui.outputs_dir), "", seed=1, prompt="x", extension="png")
    with gr.Blocks() as demo:
        gallery = gr.Gallery()
    shared.demo = demo
    value = gallery.postprocess([image])
    if not webui.is_forge:
        # gradio 3: the same override serves the saved file
        assert fullfn in str(value[0]["name"] if isinstance(value[0], dict) else value[0])
        return
    if webui.is_neo and int(gr.__version__.split(".")[0]) < 4:
        # Neo's override is gradio 4's only: on gradio 3 the gallery gets gradio's own temp copy
        name = str(value[0]["name"] if isinstance(value[0], dict) else value[0])
        assert fullfn not in name and Path(name.split("?")[0]).is_file()
        return
    path = value.root[0].image.path
    assert path.split("?")[0] == fullfn and ui_tempdir.check_tmp_file(demo, fullfn)
    from gradio import processing_utils

    with pytest.raises(Exception, match="cache folder"):
        processing_utils.check_all_files_in_cache({"index": 0, "value": {"image": {"path": fullfn}}})


def test_no_impossible_flavour_gradio_pair() -> None:
    """A1111 v1.10.1 pins gradio 3.41.2, Forge 4.40.0 (their requirements_versions.txt), Neo installs 4.40.0
    (launch_utils.py ``GRADIO_PACKAGE``; the neo test environment has 3.43.2): any other pair is skipped."""
    from tests.webui_stub.fixture import skip_impossible_pair
    from tests.webui_stub.pins import GRADIO_PACKAGE, pinned

    for flavour in ("a1111", "forge"):
        assert f"gradio=={pinned(flavour)['gradio']}" == GRADIO_PACKAGE[flavour]
    assert "gradio" not in pinned("neo")  # Neo's requirements.txt leaves gradio to launch_utils.py
    for flavour, package in GRADIO_PACKAGE.items():
        assert int(package.split("==")[1].split(".")[0]) in GRADIO_MAJORS_OF[flavour]
    major = installed_gradio_major()
    for flavour, majors in GRADIO_MAJORS_OF.items():
        if major in majors:
            skip_impossible_pair(flavour)  # runs
        else:
            with pytest.raises(pytest.skip.Exception):
                skip_impossible_pair(flavour)
