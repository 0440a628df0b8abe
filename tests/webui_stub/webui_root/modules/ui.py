"""Stand-in of modules/ui.py: the paste-field lists extensions read, and the script placement of a tab."""

from __future__ import annotations

txt2img_paste_fields: list = []
img2img_paste_fields: list = []


def ordered_ui_categories():
    """The txt2img/img2img UI categories in order (ui.py:234-238 with the default empty ``ui_reorder_list``)."""
    from modules import shared_items

    yield from shared_items.ui_reorder_categories()


def create_script_sections(runner):
    """Stand-in of the category loop of ``create_ui`` (ui.py:263-360): every category places the always-on scripts
    of its ``section``; "scripts" runs ``runner.setup_ui()``. Call inside ``gr.Blocks()``; returns ``runner.inputs``.
    Scripts whose section is no category at all are never shown, as in the WebUI."""
    runner.prepare_ui()
    for category in ordered_ui_categories():
        if category == "scripts":
            runner.setup_ui()
        runner.setup_ui_for_section(category)
    return runner.inputs
