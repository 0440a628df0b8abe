"""Stand-in of modules/scripts.py (docs/webui-contract.md §2, §3): the ``Script`` API, script discovery/loading and ``ScriptRunner``.

``load_scripts()`` loads ``scripts/*.py`` of the stand-in root and of every extension exactly as A1111 does: one file
at a time with ``script_loading.load_module`` (module name = file name, not in ``sys.modules``), ``sys.path``
prefixed with the extension root only while the file runs, ``basedir()`` valid only during that time, callbacks
cleared first. F: all script basedirs are prepended to ``sys.path`` permanently before loading.
Unlike the real module, this one imports gradio only in ``ScriptRunner.setup_ui``.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections import namedtuple
from dataclasses import dataclass

from modules import _stub, errors, extensions, paths, script_callbacks, script_loading

AlwaysVisible = object()


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    """``ps.samples``: latents (B,4,H/8,W/8) before VAE decode, or already decoded images with Hires fix
    (``getattr(samples, "already_decoded", False)``). Assign ``ps.samples`` to replace them."""

    def __init__(self, samples):
        self.samples = samples


if _stub.is_forge():

    class PostprocessImageArgs:
        """F: ``PostprocessImageArgs(image, index)``, index = i + p.iteration * p.batch_size (F:scripts.py:32-35)."""

        def __init__(self, image, index):
            self.image = image
            self.index = index

else:

    class PostprocessImageArgs:
        """``pp.image``: the final PIL image; assign ``pp.image`` to replace what is saved and shown (:32-34)."""

        def __init__(self, image):
            self.image = image


class PostProcessMaskOverlayArgs:
    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    """``pp.images``: list of CHW float tensors 0..1 on CPU; may be replaced/extended (then fix p.prompts etc.)."""

    def __init__(self, images):
        self.images = images


@dataclass
class OnComponent:
    component: object


class Script:
    """Base class of WebUI scripts (scripts.py:52-97 attributes, hooks in processing order)."""

    name = None
    """script's internal name derived from title"""
    section = None
    """name of UI section that the script's controls will be placed into"""
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    """A gr.Group component that has all script's UI inside it."""
    create_group = True
    """If False, for alwayson scripts, a group component will not be created."""
    infotext_fields = None
    """if set in ui(), this is a list of pairs of gradio component + text; the text will be used when
    parsing infotext to set the value for the component; see ui.py's txt2img_paste_fields for an example"""
    paste_field_names = None
    """if set in ui(), this is a list of names of infotext fields; the fields will be sent through the
    various "Send to <X>" buttons when clicked"""
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    """If true, the script setup will only be run in Gradio UI, not in API"""
    controls = None
    """A list of controls returned by the ui()."""
    sorting_priority = 0
    """F only: sorts scripts within a section (F:scripts.py:100)."""

    def title(self):
        """this function should return the title of the script. This is what will be displayed in the dropdown menu."""
        raise NotImplementedError()

    def ui(self, is_img2img):
        """this function should create gradio UI elements. See https://gradio.app/docs/#components
        The return value should be an array of all components that are used in processing."""
        pass

    def show(self, is_img2img):
        """False: not shown; True: in the Script dropdown; scripts.AlwaysVisible: always shown, hooks run."""
        return True

    def run(self, p, *args):
        """selectable scripts only: replaces processing; must return a Processed object"""
        pass

    def setup(self, p, *args):
        """For AlwaysVisible scripts, this function is called when the processing object is set up, before any
        processing starts."""
        pass

    def before_process(self, p, *args):
        """This function is called very early during processing begins for AlwaysVisible scripts."""
        pass

    def process(self, p, *args):
        """This function is called before processing begins for AlwaysVisible scripts."""
        pass

    def before_process_batch(self, p, *args, **kwargs):
        """Called before extra networks are parsed from the prompt (batch_number, prompts, seeds, subseeds)."""
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        """Similar to process(), called before every sampling (x, noise, c, uc)."""
        pass

    def process_batch(self, p, *args, **kwargs):
        """Same as process(), but called for every batch (batch_number, prompts, seeds, subseeds)."""
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        """Same as process_batch(), but called for every batch after it has been generated (images, batch_number)."""
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        """Same as postprocess_batch(), but receives batch images as a list of 3D tensors instead of a 4D tensor."""
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        """Called after the samples have been generated, but before they have been decoded by the VAE, if
        applicable. Check getattr(samples, 'already_decoded', False) to test if the images are decoded."""
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        """Called for every image after it has been generated."""
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        """This function is called after processing ends for AlwaysVisible scripts."""
        pass

    def before_hr(self, p, *args):
        """This function is called before hires fix start."""
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        """Calls callback(OnComponent) before the component with elem_id is created."""
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):
        """Calls callback(OnComponent) after the component with elem_id is created."""
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self):
        return ""

    def elem_id(self, item_id):
        """``script_[txt2img_|img2img_]<title_snake>_<item_id>`` (tab prefix only if shown in both tabs)."""
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


class ScriptBuiltinUI(Script):
    setup_for_ui_only = True

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabname = ("img2img" if self.is_img2img else "txt2img") + "_" if need_tabname else ""
        return f"{tabname}{item_id}"


current_basedir = paths.script_path


def basedir():
    """The extension root of the script file being loaded; only valid during its import (:366-374)."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])

scripts_data: list[ScriptClassData] = []
postprocessing_scripts_data: list[ScriptClassData] = []


def list_scripts(scriptdirname, extension, *, include_extensions=True) -> list[ScriptFile]:
    """Root ``scripts/`` files (sorted), then each active extension's (builtin first, then user, sorted)."""
    extensions.list_extensions()
    scripts_list: list[ScriptFile] = []
    root_script_basedir = os.path.join(paths.script_path, scriptdirname)
    if os.path.exists(root_script_basedir):
        for filename in sorted(os.listdir(root_script_basedir)):
            path = os.path.join(root_script_basedir, filename)
            if os.path.isfile(path) and os.path.splitext(filename)[1].lower() == extension:
                scripts_list.append(ScriptFile(paths.script_path, filename, path))
    if include_extensions:
        for ext in extensions.active():
            scripts_list += ext.list_files(scriptdirname, extension)
    return scripts_list


def list_files_with_name(filename) -> list[str]:
    """``<ext>/<filename>`` of every active extension that has one (style.css: extension root only)."""
    res = []
    dirs = [paths.script_path] + [ext.path for ext in extensions.active()]
    for dirpath in dirs:
        path = os.path.join(dirpath, filename)
        if os.path.isfile(path):
            res.append(path)
    return res


def load_scripts() -> None:
    """Load every script file (scripts.py:487-530); on startup and on every Reload UI."""
    global current_basedir, scripts_txt2img, scripts_img2img
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()

    scripts_list = list_scripts("scripts", ".py")
    if _stub.is_neo():  # the WebUI's own modules/processing_scripts come last (scripts.py:493); here Neo's Refiner
        builtin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "processing_scripts", "refiner.py")
        scripts_list.append(ScriptFile(paths.script_path, "refiner.py", builtin))

    if _stub.is_forge():
        for s in scripts_list:
            if s.basedir not in sys.path:
                sys.path.insert(0, s.basedir)

    syspath = sys.path

    def register_scripts_from_module(module):
        for script_class in module.__dict__.values():
            if not inspect.isclass(script_class):
                continue
            if issubclass(script_class, Script):
                scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))

    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir, *sys.path]
            current_basedir = scriptfile.basedir

            script_module = script_loading.load_module(scriptfile.path)
            register_scripts_from_module(script_module)

        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)

        finally:
            sys.path = syspath
            current_basedir = paths.script_path

    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


def _api_info(script, controls):
    """What ``/sdapi/v1/script-info`` lists for a script (scripts.py:651-681): each control's label, value and
    range/choices (a choice given as a tuple counts by its first item)."""
    import modules.api.models as api_models

    api_args = []
    for control in controls:
        control.custom_script_source = os.path.basename(script.filename or "")
        arg_info = api_models.ScriptArg(label=getattr(control, "label", None) or "")
        for field in ("value", "minimum", "maximum", "step"):
            v = getattr(control, field, None)
            if v is not None:
                setattr(arg_info, field, v)
        choices = getattr(control, "choices", None)
        if choices is not None:
            arg_info.choices = [x[0] if isinstance(x, tuple) else x for x in choices]
        api_args.append(arg_info)
    return api_models.ScriptInfo(
        name=script.name, is_img2img=script.is_img2img, is_alwayson=script.alwayson, args=api_args
    )


class ScriptRunner:
    """The scripts of one tab (txt2img or img2img) and the hook dispatch used by ``processing.process_images``."""

    def __init__(self):
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.titles: list[str] = []
        self.title_map: dict[str, Script] = {}
        self.infotext_fields: list = []
        self.paste_field_names: list = []
        self.inputs: list = [None]
        self.is_img2img = False

    def initialize_scripts(self, is_img2img):
        """Instantiate every registered Script class for this tab (:578-612)."""
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        self.is_img2img = is_img2img

        for script_data in scripts_data:
            try:
                script = script_data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {script_data.module}: ", exc_info=True)
                continue

            script.filename = script_data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"

            visibility = script.show(script.is_img2img)

            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def prepare_ui(self):
        self.inputs = [None]

    def create_script_ui(self, script):
        """Build the script's UI in the current gradio context and give it its slice of ``p.script_args``."""
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        controls = script.ui(script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = script.title().lower()
        script.api_info = _api_info(script, controls)
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None):
        """The always-on scripts whose ``section`` is ``section`` (A1111 scripts.py:689-703). F: sorted by
        ``sorting_priority`` first (stable sort; F:scripts.py:699-715). ``modules.ui`` calls it once per UI
        category (``modules.ui.create_script_sections`` here)."""
        import gradio as gr

        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        if _stub.is_forge():
            scriptlist = sorted(scriptlist, key=lambda x: x.sorting_priority)
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def setup_ui(self):
        """The "scripts" category (scripts.py:708-718): always-on scripts without a section, the Script dropdown
        (``inputs[0]``), then the selectable scripts. Scripts with a section are placed by ``setup_ui_for_section``."""
        import gradio as gr

        self.titles = [script.title() for script in self.selectable_scripts]
        self.title_map = {script.title().lower(): script for script in self.scripts}
        self.setup_ui_for_section(None)
        dropdown = gr.Dropdown(
            label="Script", elem_id="script_list", choices=["None", *self.titles], value="None", type="index"
        )
        self.inputs[0] = dropdown
        self.setup_ui_for_section(None, self.selectable_scripts)
        return self.inputs

    def default_script_args(self) -> list:
        """Stand-in only: ``p.script_args`` as the UI would send it untouched (index 0 = no selectable script)."""
        return [0] + [getattr(component, "value", None) for component in self.inputs[1:]]

    def ordered_scripts(self, method_name):
        return list(self.alwayson_scripts)

    def _run(self, method_name, p, *head, **kwargs):
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, method_name)(p, *head, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.ordered_scripts("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                script.setup(p, *script_args)
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def run(self, p, *args):
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None
        script_args = args[script.args_from : script.args_to]
        return script.run(p, *script_args)

    def before_process(self, p):
        self._run("before_process", p)

    def process(self, p):
        self._run("process", p)

    def process_before_every_sampling(self, p, **kwargs):
        self._run("process_before_every_sampling", p, **kwargs)

    def before_process_batch(self, p, **kwargs):
        self._run("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs):
        self._run("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._run("process_batch", p, **kwargs)

    def postprocess(self, p, processed):
        self._run("postprocess", p, processed)

    def postprocess_batch(self, p, images, **kwargs):
        for script in self.ordered_scripts("postprocess_batch"):
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                script.postprocess_batch(p, *script_args, images=images, **kwargs)
            except Exception:
                errors.report(f"Error running postprocess_batch: {script.filename}", exc_info=True)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs):
        self._run("postprocess_batch_list", p, pp, **kwargs)

    def post_sample(self, p, ps: PostSampleArgs):
        self._run("post_sample", p, ps)

    def on_mask_blend(self, p, mba: MaskBlendArgs):
        self._run("on_mask_blend", p, mba)

    def postprocess_image(self, p, pp: PostprocessImageArgs):
        self._run("postprocess_image", p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs):
        self._run("postprocess_maskoverlay", p, ppmo)

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs):
        self._run("postprocess_image_after_composite", p, pp)

    def before_hr(self, p):
        self._run("before_hr", p)

    def before_component(self, component, **kwargs):
        for script in self.scripts:
            try:
                script.before_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running before_component: {script.filename}", exc_info=True)

    def after_component(self, component, **kwargs):
        for script in self.scripts:
            try:
                script.after_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running after_component: {script.filename}", exc_info=True)

    def script(self, title):
        return self.title_map.get(title.lower())

    def set_named_arg(self, args, script_name, arg_elem_id, value, fuzzy=False):
        """Set the value of an argument of another script, found by its class name and elem_id suffix."""
        script = next((x for x in self.scripts if type(x).__name__ == script_name), None)
        if script is None:
            raise RuntimeError(f"script {script_name} not found")
        for i, control in enumerate(script.controls or []):
            if arg_elem_id in (getattr(control, "elem_id", None) or ""):
                index = script.args_from + i
                if isinstance(args, tuple):
                    return (*args[:index], value, *args[index + 1 :])
                if isinstance(args, list):
                    args[index] = value
                    return args
                raise RuntimeError(f"args is not a list or tuple, but {type(args)}")
        raise RuntimeError(f"arg_elem_id {arg_elem_id} not found in script {script_name}")


scripts_txt2img: ScriptRunner = ScriptRunner()
scripts_img2img: ScriptRunner = ScriptRunner()
scripts_current: ScriptRunner | None = None
