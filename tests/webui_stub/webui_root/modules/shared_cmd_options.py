"""Stand-in of modules/shared_cmd_options.py: the parsed command line (defaults of modules/cmd_args.py)."""

from __future__ import annotations

import argparse

from modules import _stub, paths_internal

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

if _stub.is_neo():
    # Neo: ``--ckpt-dirs`` (a list, action="append"; sd_models.py iterates ``cmd_opts.ckpt_dirs``) replaces
    # ``--ckpt-dir``; the A1111 memory flags (--medvram, --medvram-sdxl, --precision, --upcast-sampling,
    # --no-half-vae) are gone and the parser is backend/args.py's (paths_internal.py: ``from backend.args import
    # parser``), so its flags (--lowvram, --novram, --cpu, --force-fp32, ...) are in cmd_opts too.
    for _gone in ("ckpt_dir", "medvram", "medvram_sdxl", "precision", "upcast_sampling", "no_half_vae"):
        delattr(cmd_opts, _gone)
    cmd_opts.ckpt_dirs = []
    from backend.args import args as _backend_args

    for _name, _value in vars(_backend_args).items():
        setattr(cmd_opts, _name, _value)
