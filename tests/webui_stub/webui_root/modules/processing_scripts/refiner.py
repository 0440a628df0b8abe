"""Neo: stand-in of Forge Neo's built-in refiner, modules/processing_scripts/refiner.py (branch neo, commit
529c62d6dcaad4b39b8a255cca4eff1f17f1953b). Loaded after every other script file, as the WebUI loads its
``modules/processing_scripts``; only for the neo flavour (A1111's and Forge's own Refiner are described in
docs/webui-contract.md §7 but not imitated).

``ScriptRefiner(ScriptBuiltinUI)``: title "Refiner", ``section = "accordions"``, shown only when the setting
``show_refiner`` is on (default on); an ``InputAccordion(False, label="Refiner")`` with elem_ids ``<tab>_enable``,
``<tab>_checkpoint``, ``<tab>_switch_at``; "Switch at" defaults to 0.875; a fourth control holds LoRA
replacements. Paste: enabled when the infotext has the key ``Refiner``; API names ``refiner_checkpoint`` /
``refiner_switch_at``. ``setup`` sets ``p.refiner_checkpoint`` / ``p.refiner_switch_at`` (None when off); the switch
itself is ``sd_samplers_common.apply_refiner``; ``postprocess`` restores the main UNet weights after a
``refiner_fast_sd`` switch (and raises ``UnboundLocalError`` when Neo's UNet entry is no longer in
``current_loaded_models``, as the real code does).
"""

from __future__ import annotations

import gradio as gr
from modules import scripts, sd_models, shared
from modules.infotext_utils import PasteField
from modules.ui_common import create_refresh_button
from modules.ui_components import InputAccordion


class ScriptRefiner(scripts.ScriptBuiltinUI):
    section = "accordions"
    create_group = False
    ckpts: list[str] = []

    def title(self):
        return "Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible if shared.opts.show_refiner else None

    @classmethod
    def refresh_checkpoints(cls):
        cls.ckpts = ["None", *sd_models.checkpoint_tiles()]

    def ui(self, is_img2img):
        self.refresh_checkpoints()
        with InputAccordion(False, label="Refiner", elem_id=self.elem_id("enable")) as enable_refiner:
            with gr.Row():
                refiner_checkpoint = gr.Dropdown(
                    value="None", label="Checkpoint", elem_id=self.elem_id("checkpoint"), choices=self.ckpts
                )
                create_refresh_button(
                    refiner_checkpoint,
                    self.refresh_checkpoints,
                    lambda: {"choices": self.ckpts},
                    self.elem_id("checkpoint_refresh"),
                )
                refiner_switch_at = gr.Slider(
                    value=0.875,
                    label="Switch at",
                    minimum=0.0,
                    maximum=1.0,
                    step=0.025,
                    elem_id=self.elem_id("switch_at"),
                )
            replacements = gr.Textbox(value="high_noise=low_noise", lines=4, show_label=False)

        def lookup_checkpoint(title):
            info = sd_models.get_closet_checkpoint_match(title)
            return None if info is None else info.short_title

        self.infotext_fields = [
            PasteField(enable_refiner, lambda d: "Refiner" in d),
            PasteField(refiner_checkpoint, lambda d: lookup_checkpoint(d.get("Refiner")), api="refiner_checkpoint"),
            PasteField(refiner_switch_at, "Refiner switch at", api="refiner_switch_at"),
        ]
        return [enable_refiner, refiner_checkpoint, refiner_switch_at, replacements]

    def setup(self, p, enable_refiner, refiner_checkpoint, refiner_switch_at, replacements):
        if not enable_refiner or refiner_checkpoint in (None, "", "None"):
            p.refiner_checkpoint = None
            p.refiner_switch_at = None
            return
        p.refiner_checkpoint = refiner_checkpoint
        p.refiner_switch_at = refiner_switch_at

    def postprocess(self, *args, **kwargs):
        from backend.memory_management import current_loaded_models
        from backend.patcher.unet import UnetPatcher
        from modules import sd_samplers_common

        if sd_samplers_common.ORIGINAL_CHECKPOINT is None:
            return
        sd_model = shared.sd_model
        for i, loaded_models in enumerate(current_loaded_models):
            if isinstance(loaded_models.model, UnetPatcher):
                idx = i
                break
        mdl = current_loaded_models.pop(idx)  # noqa: F821 -- unbound when the UNet's entry is gone, as in Neo
        mdl.model_unload()
        sd_model.unet_weights = sd_samplers_common.ORIGINAL_CHECKPOINT
        sd_samplers_common.ORIGINAL_CHECKPOINT = None
