"""Stand-in of modules/infotext_utils.py (docs/webui-contract.md §3, §5): infotext parsing and the paste/"Send to" machinery.

``parse_generation_parameters`` keeps the real parsing (prompt, ``Negative prompt:``, last line of >= 3
``key: value`` pairs, quoting, ``Size-1/-2`` splitting, the defaults for missing keys); style extraction and
prompt-attention handling are not imitated. Stand-in only: ``paste_infotext(tabname, text)`` does what the paste
button does (parse, ``infotext_pasted`` callbacks, convert per field) and returns ``{component: value}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from modules import _stub, errors, script_callbacks, shared

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = dict


class ParamBinding:
    """A "Send to <tab>" button: what it sends (text and/or image) and where (infotext_utils.py:23-31)."""

    def __init__(
        self,
        paste_button,
        tabname,
        source_text_component=None,
        source_image_component=None,
        source_tabname=None,
        override_settings_component=None,
        paste_field_names=None,
    ):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


if _stub.is_neo():

    class ParamBinding(ParamBinding):  # noqa: F811 -- Neo's adds a keyword-only ``is_paste`` (infotext_utils.py)
        def __init__(
            self,
            paste_button,
            tabname,
            source_text_component=None,
            source_image_component=None,
            source_tabname=None,
            override_settings_component=None,
            paste_field_names=None,
            *,
            is_paste=False,
        ):
            super().__init__(
                paste_button,
                tabname,
                source_text_component,
                source_image_component,
                source_tabname,
                override_settings_component,
                paste_field_names,
            )
            self.is_paste = is_paste


class PasteField(tuple):
    """``(component, "Infotext key" | callable(params) -> value)`` plus the API field name (v1.8.0)."""

    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


paste_fields: dict[str, dict] = {}
registered_param_bindings: list[ParamBinding] = []


def reset() -> None:
    paste_fields.clear()
    registered_param_bindings.clear()


def quote(text):
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def image_from_url_text(filedata):
    """A gallery/image value (PIL, path, dict with "name"/"path", F: ``(image, caption)`` tuple) -> PIL image."""
    from PIL import Image

    if filedata is None:
        return None
    if isinstance(filedata, (list, tuple)) and filedata:
        filedata = filedata[0]
    if isinstance(filedata, Image.Image):
        return filedata
    if isinstance(filedata, dict):
        filedata = filedata.get("path") or filedata.get("name")
    if isinstance(filedata, str) and filedata.startswith("data:image/png;base64,"):
        import base64
        import io

        return Image.open(io.BytesIO(base64.decodebytes(filedata[len("data:image/png;base64,") :].encode("utf-8"))))
    image = Image.open(filedata)
    image.load()
    return image


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    """Make ``tabname`` a paste destination: its fields receive pasted infotext (infotext_utils.py:102-116)."""
    if fields:
        for i in range(len(fields)):
            if not isinstance(fields[i], PasteField):
                fields[i] = PasteField(*fields[i])
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }
    import modules.ui

    if tabname == "txt2img":
        modules.ui.txt2img_paste_fields = fields
    elif tabname == "img2img":
        modules.ui.img2img_paste_fields = fields


def create_buttons(tabs_list):
    """``{tab: gr.Button("Send to <tab>", elem_id="<tab>_tab")}``."""
    import gradio as gr

    buttons = {}
    for tab in tabs_list:
        buttons[tab] = gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab")
    return buttons


def bind_buttons(buttons, send_image, send_generate_info):
    """old function for backwards compatibility; do not use this, use register_paste_params_button"""
    for tabname, button in buttons.items():
        source_text_component = send_generate_info if not isinstance(send_generate_info, str) else None
        source_tabname = send_generate_info if isinstance(send_generate_info, str) else None
        register_paste_params_button(
            ParamBinding(
                paste_button=button,
                tabname=tabname,
                source_text_component=source_text_component,
                source_image_component=send_image,
                source_tabname=source_tabname,
            )
        )


def register_paste_params_button(binding: ParamBinding):
    """Queue a binding; the WebUI wires them all in ``connect_paste_params_buttons()`` after creating the UI."""
    registered_param_bindings.append(binding)


def connect_paste_params_buttons():
    """Stand-in: the gradio event wiring is not imitated (bindings stay in ``registered_param_bindings``)."""
    return None


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None):
    """Parse an infotext into a dict (prompt, negative prompt and the key: value pairs of the last line)."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting

    res: dict[str, Any] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    for k, v in re_param.findall(lastline):
        try:
            if v and v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f'Error parsing "{k}: {v}"')

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    defaults = {
        "Clip skip": "1",
        "Hires resize-1": 0,
        "Hires resize-2": 0,
        "Hires sampler": "Use same sampler",
        "Hires schedule type": "Use same scheduler",
        "Hires checkpoint": "Use same checkpoint",
        "Hires prompt": "",
        "Hires negative prompt": "",
        "RNG": "GPU",
        "Schedule type": "Automatic",
        "Schedule max sigma": 0,
        "Schedule min sigma": 0,
        "Schedule rho": 0,
        "VAE Encoder": "Full",
        "VAE Decoder": "Full",
    }
    for key, value in defaults.items():
        res.setdefault(key, value)

    from modules import sd_samplers

    sampler, scheduler = sd_samplers.get_sampler_and_scheduler(
        res.get("Sampler"), res.get("Schedule type"), convert_automatic=False
    )
    if sampler is not None and "Sampler" in res:
        res["Sampler"] = sampler
    if scheduler is not None:
        res["Schedule type"] = scheduler

    for key in skip_fields:
        res.pop(key, None)

    return res


def paste_infotext(tabname: str, text: str) -> dict:
    """Stand-in only: what pasting ``text`` into ``tabname`` sets, as ``{component: value}`` (None = unchanged).

    Same steps as the real paste function: parse, ``infotext_pasted`` callbacks, then each paste field's key or
    callable; values are converted to the type of the component's current value.
    """
    params = parse_generation_parameters(text)
    script_callbacks.infotext_pasted_callback(text, params)
    result = {}
    for output, key in paste_fields.get(tabname, {}).get("fields") or []:
        if callable(key):
            try:
                v = key(params)
            except Exception:
                errors.report(f"Error executing {key}", exc_info=True)
                v = None
        else:
            v = params.get(key, None)
        if v is None:
            result[output] = None
        elif isinstance(v, type_of_gr_update):
            result[output] = v.get("value")
        else:
            try:
                valtype = type(output.value)
                if valtype is bool and v == "False":
                    val = False
                elif valtype is int:
                    val = float(v)
                else:
                    val = valtype(v)
                result[output] = val
            except Exception:
                result[output] = None
    return result
