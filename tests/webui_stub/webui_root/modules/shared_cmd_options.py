"""Stand-in of modules/shared_cmd_options.py: the parsed command line (defaults of modules/cmd_args.py)."""

from __future__ import annotations

import argparse

from modules import paths_internal

cmd_opts = argparse.Namespace(
    data_dir=paths_internal.data_path,
    models_dir=None,
    ckpt=None,
    ckpt_dir=None,
    vae_dir=None,
    no_half=False,
    disable_nan_check=False,
    no_half_vae=False,
    precision="autocast",
    upcast_sampling=False,
    medvram=False,
    medvram_sdxl=False,
    lowvram=False,
    lowram=False,
    use_cpu=[],
    api=False,
    api_auth=None,
    api_log=False,
    nowebui=False,
    listen=False,
    share=False,
    ngrok=None,
    server_name=None,
    port=None,
    gradio_auth=None,
    gradio_auth_path=None,
    gradio_allowed_path=[],
    enable_insecure_extension_access=False,
    disable_extension_access=False,
    disable_safe_unpickle=False,
    skip_install=False,
    hide_ui_dir_config=False,
    freeze_settings=False,
    no_prompt_history=False,
    localizations_dir=None,
    ui_config_file=None,
    ui_settings_file=None,
    xformers=False,
    opt_sdp_attention=False,
    disable_model_loading_ram_optimization=False,
    device_id=None,
)
"""``shared.cmd_opts``: set fields in a test to simulate flags (``--api-auth u:p`` -> ``api_auth = "u:p"``)."""
