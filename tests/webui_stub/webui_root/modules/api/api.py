"""Stand-in of modules/api/api.py: how a REST request reaches the scripts (A1111 api.py:36-40, 258-470; Forge same).

``Api(app, queue_lock)`` adds ``/sdapi/v1/script-info`` and ``/sdapi/v1/txt2img`` to a FastAPI app. What an
extension meets is imitated: ``alwayson_scripts`` keys found by title case-insensitively (422 when unknown or
selectable), args copied positionally over the UI defaults (never more than the script takes), and the request's
``infotext`` field filling unset request fields and script arguments through the tab's paste fields, converted to
``type(component.value)``. Processing is ``modules.processing.process_images`` of the stand-in.
"""

from __future__ import annotations

from fastapi import HTTPException

from modules import infotext_utils, scripts, shared
from modules.api import models


def script_name_to_index(name, scripts):
    try:
        return [script.title().lower() for script in scripts].index(name.lower())
    except Exception as e:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found") from e


def _request_fields(request) -> dict:
    return (
        request.model_dump(exclude_unset=True) if hasattr(request, "model_dump") else request.dict(exclude_unset=True)
    )


class Api:
    def __init__(self, app, queue_lock):
        self.app = app
        self.queue_lock = queue_lock
        self.default_script_arg_txt2img = []
        if app is not None:
            app.add_api_route("/sdapi/v1/txt2img", self.text2imgapi, methods=["POST"])
            app.add_api_route("/sdapi/v1/script-info", self.get_script_info, methods=["GET"])

    def get_selectable_script(self, script_name, script_runner):
        if script_name is None or script_name == "":
            return None, None
        script_idx = script_name_to_index(script_name, script_runner.selectable_scripts)
        return script_runner.selectable_scripts[script_idx], script_idx

    def get_script_info(self):
        res = []
        for script_list in [scripts.scripts_txt2img.scripts, scripts.scripts_img2img.scripts]:
            res += [script.api_info for script in script_list if script.api_info is not None]
        return res

    def get_script(self, script_name, script_runner):
        if script_name is None or script_name == "":
            return None, None
        script_idx = script_name_to_index(script_name, script_runner.scripts)
        return script_runner.scripts[script_idx]

    def init_default_script_args(self, script_runner):
        """``None`` everywhere, 0 at index 0, then each script's ``ui()`` default values (a fresh ``ui()`` call)."""
        import gradio as gr

        last_arg_index = 1
        for script in script_runner.scripts:
            if last_arg_index < script.args_to:
                last_arg_index = script.args_to
        script_args = [None] * last_arg_index
        script_args[0] = 0
        with gr.Blocks():
            for script in script_runner.scripts:
                if script.ui(script.is_img2img):
                    ui_default_values = [elem.value for elem in script.ui(script.is_img2img)]
                    script_args[script.args_from : script.args_to] = ui_default_values
        return script_args

    def init_script_args(
        self, request, default_script_args, selectable_scripts, selectable_idx, script_runner, *, input_script_args=None
    ):
        script_args = default_script_args.copy()
        if input_script_args is not None:
            for index, value in input_script_args.items():
                script_args[index] = value
        if selectable_scripts:
            script_args[selectable_scripts.args_from : selectable_scripts.args_to] = request.script_args
            script_args[0] = selectable_idx + 1
        if request.alwayson_scripts:
            for name, entry in request.alwayson_scripts.items():
                alwayson_script = self.get_script(name, script_runner)
                if alwayson_script is None:
                    raise HTTPException(status_code=422, detail=f"always on script {name} not found")
                if alwayson_script.alwayson is False:
                    raise HTTPException(
                        status_code=422, detail="Cannot have a selectable script in the always on scripts params"
                    )
                if "args" in entry:
                    count = min(alwayson_script.args_to - alwayson_script.args_from, len(entry["args"]))
                    for idx in range(count):
                        script_args[alwayson_script.args_from + idx] = entry["args"][idx]
        return script_args

    def apply_infotext(self, request, tabname, *, script_runner=None, mentioned_script_args=None):
        """Unset request fields (paste fields with ``api=``) and script args from ``request.infotext``."""
        if not request.infotext:
            return {}
        possible_fields = infotext_utils.paste_fields[tabname]["fields"]
        set_fields = _request_fields(request)
        params = infotext_utils.parse_generation_parameters(request.infotext)
        request_types = {name: type(value) for name, value in request}

        def get_field_value(field, params):
            value = field.function(params) if field.function else params.get(field.label)
            if value is None:
                return None
            target_type = request_types.get(field.api) if field.api else type(field.component.value)
            if target_type is None or target_type is type(None):
                return None
            if isinstance(value, dict) and value.get("__type__") == "generic_update":
                value = value.get("value")
            if value is not None and not isinstance(value, target_type):
                value = target_type(value)
            return value

        for field in possible_fields:
            if not field.api or field.api in set_fields:
                continue
            value = get_field_value(field, params)
            if value is not None:
                setattr(request, field.api, value)

        if script_runner is not None and mentioned_script_args is not None:
            indexes = {id(v): i for i, v in enumerate(script_runner.inputs)}
            for field in possible_fields:
                index = indexes.get(id(field.component))
                if index is None:
                    continue
                value = get_field_value(field, params)
                if value is not None:
                    mentioned_script_args[index] = value
        return params

    def text2imgapi(self, txt2imgreq: models.StableDiffusionTxt2ImgProcessingAPI):
        from modules import processing

        script_runner = scripts.scripts_txt2img
        if not self.default_script_arg_txt2img:
            self.default_script_arg_txt2img = self.init_default_script_args(script_runner)
        infotext_script_args = {}
        self.apply_infotext(
            txt2imgreq, "txt2img", script_runner=script_runner, mentioned_script_args=infotext_script_args
        )
        selectable_scripts, selectable_script_idx = self.get_selectable_script(txt2imgreq.script_name, script_runner)
        args = _request_fields(txt2imgreq) | {
            k: getattr(txt2imgreq, k) for k in ("prompt", "seed", "steps", "width", "height", "cfg_scale")
        }
        for key in ("script_name", "script_args", "alwayson_scripts", "infotext", "send_images", "save_images"):
            args.pop(key, None)
        args["do_not_save_samples"] = args["do_not_save_grid"] = not txt2imgreq.save_images
        script_args = self.init_script_args(
            txt2imgreq,
            self.default_script_arg_txt2img,
            selectable_scripts,
            selectable_script_idx,
            script_runner,
            input_script_args=infotext_script_args,
        )
        with self.queue_lock:
            p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **args)
            p.is_api = True
            p.scripts = script_runner
            try:
                shared.state.begin(job="scripts_txt2img")
                if selectable_scripts is not None:
                    p.script_args = script_args
                    processed = script_runner.run(p, *p.script_args)
                else:
                    p.script_args = tuple(script_args)
                    processed = processing.process_images(p)
            finally:
                shared.state.end()
        return {"images": [], "parameters": _request_fields(txt2imgreq), "info": processed.js()}
