"""Stand-in of modules/ui_components.py: the WebUI's small gradio components (ToolButton, InputAccordion, Form*).

Works with gradio 3.41 (A1111) and 4.40 (Forge; JS event arguments are passed as ``js=`` there).
"""

from __future__ import annotations

import gradio as gr

from modules import _stub, gradio_extensons

_JS = "_js" if gradio_extensons.GRADIO_MAJOR < 4 else "js"
_FORM = getattr(gr.components, "Form", None) or gr.layouts.Form


class FormComponent:
    webui_do_not_create_gradio_pyi_thank_you = True

    def get_expected_parent(self):
        return _FORM


if _stub.is_forge():

    class ToolButton(FormComponent, gr.Button):
        """Small button with single emoji as text, fits inside gradio forms (F:ui_components.py:17-26;
        ``tooltip=`` is kept as ``webui_tooltip`` by Forge's gradio_extensions)."""

        def __init__(self, value="", *args, elem_classes=None, **kwargs):
            tooltip = kwargs.pop("tooltip", None)
            super().__init__(*args, elem_classes=["tool", *(elem_classes or [])], value=value, **kwargs)
            self.webui_tooltip = tooltip

        def get_block_name(self):
            return "button"

else:

    class ToolButton(FormComponent, gr.Button):
        """Small button with single emoji as text, fits inside gradio forms"""

        def __init__(self, *args, **kwargs):
            classes = kwargs.pop("elem_classes", [])
            tooltip = kwargs.pop("tooltip", None)
            super().__init__(*args, elem_classes=["tool", *classes], **kwargs)
            self.webui_tooltip = tooltip

        def get_block_name(self):
            return "button"


class ResizeHandleRow(gr.Row):
    """Same as gr.Row but fits inside gradio forms"""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.elem_classes.append("resize-handle-row")

    def get_block_name(self):
        return "row"


class FormRow(FormComponent, gr.Row):
    """Same as gr.Row but fits inside gradio forms"""

    def get_block_name(self):
        return "row"


class FormColumn(FormComponent, gr.Column):
    """Same as gr.Column but fits inside gradio forms"""

    def get_block_name(self):
        return "column"


class FormGroup(FormComponent, gr.Group):
    """Same as gr.Group but fits inside gradio forms"""

    def get_block_name(self):
        return "group"


class FormHTML(FormComponent, gr.HTML):
    """Same as gr.HTML but fits inside gradio forms"""

    def get_block_name(self):
        return "html"


class FormColorPicker(FormComponent, gr.ColorPicker):
    """Same as gr.ColorPicker but fits inside gradio forms"""

    def get_block_name(self):
        return "colorpicker"


class DropdownMulti(FormComponent, gr.Dropdown):
    """Same as gr.Dropdown but always multiselect"""

    def __init__(self, **kwargs):
        super().__init__(multiselect=True, **kwargs)

    def get_block_name(self):
        return "dropdown"


class DropdownEditable(FormComponent, gr.Dropdown):
    """Same as gr.Dropdown but allows editing value"""

    def __init__(self, **kwargs):
        super().__init__(allow_custom_value=True, **kwargs)

    def get_block_name(self):
        return "dropdown"


class _accordion_counter:  # noqa: N801 -- stand-in only: the id counter both flavours share
    global_index = 0


class InputAccordionImpl(gr.Checkbox):
    """A gr.Accordion that can be used as an input - returns True if open, False if closed.

    Actually just a hidden checkbox, but creates an accordion that follows and is followed by the state of the checkbox.
    """

    global_index = 0

    def __init__(self, value=None, setup=False, **kwargs):
        if not setup:  # F: gradio 4 re-creates components (e.g. from a config) without the accordion
            super().__init__(value=value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{_accordion_counter.global_index}"
            _accordion_counter.global_index += 1

        kwargs_checkbox = {**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False}
        super().__init__(value=value, **kwargs_checkbox)

        self.change(
            fn=None,
            **{_JS: 'function(checked){ inputAccordionChecked("' + self.accordion_id + '", checked); }'},
            inputs=[self],
        )

        kwargs_accordion = {
            **kwargs,
            "elem_id": self.accordion_id,
            "label": kwargs.get("label", "Accordion"),
            "elem_classes": ["input-accordion"],
            "open": value,
        }
        self.accordion = gr.Accordion(**kwargs_accordion)

    def extra(self):
        """Allows you to put something into the label of the accordion."""
        return gr.Column(elem_id=self.accordion_id + "-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"


if _stub.is_forge():

    def InputAccordion(value=None, **kwargs):  # noqa: N802 -- the WebUI's name
        """F: a factory function, not a class (F:ui_components.py:169-170): ``isinstance(x, InputAccordion)`` and
        subclassing fail on Forge; check ``InputAccordionImpl`` / ``gr.Checkbox`` instead."""
        return InputAccordionImpl(value=value, setup=True, **kwargs)

else:

    class InputAccordion(InputAccordionImpl):
        """A1111: the class itself (ui_components.py:96-145); stand-in built on the shared implementation."""

        def __init__(self, value, **kwargs):
            super().__init__(value=value, setup=True, **kwargs)

    del InputAccordionImpl  # A1111 has no such name (its class is InputAccordion itself)
