"""Stand-in of modules/shared_options.py: the built-in settings an extension reads (A1111 v1.10.1 defaults)."""

from __future__ import annotations

import os

from modules import _stub
from modules.options import OptionInfo, categories, options_section
from modules.paths_internal import default_output_dir

categories.register_category("saving", "Saving images")
categories.register_category("sd", "Stable Diffusion")
categories.register_category("ui", "User Interface")
categories.register_category("system", "System")
categories.register_category("postprocessing", "Postprocessing")
categories.register_category("training", "Training")

restricted_opts = {
    "samples_filename_pattern",
    "directories_filename_pattern",
    "outdir_samples",
    "outdir_txt2img_samples",
    "outdir_img2img_samples",
    "outdir_extras_samples",
    "outdir_grids",
    "outdir_txt2img_grids",
    "outdir_save",
    "outdir_init_images",
    "temp_dir",
    "clean_temp_dir_at_start",
}

options_templates: dict[str, OptionInfo] = {}

options_templates.update(
    options_section(
        ("saving-images", "Saving images/grids", "saving"),
        {
            "samples_save": OptionInfo(True, "Always save all generated images"),
            "samples_format": OptionInfo("png", "File format for images"),
            "samples_filename_pattern": OptionInfo("", "Images filename pattern"),
            "save_images_add_number": OptionInfo(True, "Add number to filename when saving"),
            "grid_save": OptionInfo(True, "Always save all generated image grids"),
            "grid_format": OptionInfo("png", "File format for grids"),
            "grid_extended_filename": OptionInfo(
                False, "Add extended info (seed, prompt) to filename when saving grid"
            ),
            "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture"),
            "grid_prevent_empty_spots": OptionInfo(False, "Prevent empty spots in grid (when set to autodetect)"),
            "n_rows": OptionInfo(-1, "Grid row count; use -1 for autodetect and 0 for it to be same as batch size"),
            "enable_pnginfo": OptionInfo(
                True, "Save text information about generation parameters as chunks to png files"
            ),
            "save_txt": OptionInfo(False, "Create a text file with infotext next to every generated image"),
            "jpeg_quality": OptionInfo(80, "Quality for saved jpeg and avif images"),
            "webp_lossless": OptionInfo(False, "Use lossless compression for webp images"),
            "save_selected_only": OptionInfo(True, "When using 'Save' button, only save a single selected image"),
            "save_incomplete_images": OptionInfo(False, "Save incomplete images"),
            "temp_dir": OptionInfo("", "Directory for temporary images; leave empty for default"),
        },
    )
)

options_templates.update(
    options_section(
        ("saving-paths", "Paths for saving", "saving"),
        {
            "outdir_samples": OptionInfo(
                "", "Output directory for images; if empty, defaults to three directories below"
            ),
            "outdir_txt2img_samples": OptionInfo(
                os.path.join(default_output_dir, "txt2img-images"), "Output directory for txt2img images"
            ),
            "outdir_img2img_samples": OptionInfo(
                os.path.join(default_output_dir, "img2img-images"), "Output directory for img2img images"
            ),
            "outdir_extras_samples": OptionInfo(
                os.path.join(default_output_dir, "extras-images"), "Output directory for images from extras tab"
            ),
            "outdir_grids": OptionInfo("", "Output directory for grids; if empty, defaults to two directories below"),
            "outdir_txt2img_grids": OptionInfo(
                os.path.join(default_output_dir, "txt2img-grids"), "Output directory for txt2img grids"
            ),
            "outdir_img2img_grids": OptionInfo(
                os.path.join(default_output_dir, "img2img-grids"), "Output directory for img2img grids"
            ),
            "outdir_save": OptionInfo(
                os.path.join("log", "images"), "Directory for saving images using the Save button"
            ),
            "outdir_init_images": OptionInfo(
                os.path.join(default_output_dir, "init-images"), "Directory for saving init images when using img2img"
            ),
        },
    )
)

options_templates.update(
    options_section(
        ("saving-to-dirs", "Saving to a directory", "saving"),
        {
            "save_to_dirs": OptionInfo(True, "Save images to a subdirectory"),
            "grid_save_to_dirs": OptionInfo(True, "Save grids to a subdirectory"),
            "use_save_to_dirs_for_ui": OptionInfo(False, 'When using "Save" button, save images to a subdirectory'),
            "directories_filename_pattern": OptionInfo("[date]", "Directory name pattern"),
            "directories_max_prompt_words": OptionInfo(8, "Max prompt words for [prompt_words] pattern"),
        },
    )
)

options_templates.update(
    options_section(
        ("system", "System", "system"),
        {
            "memmon_poll_rate": OptionInfo(8, "VRAM usage polls per second during generation."),
            "list_hidden_files": OptionInfo(True, "Load models/files in hidden directories"),
        },
    )
)

options_templates.update(
    options_section(
        ("sd", "Stable Diffusion", "sd"),
        {
            "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint"),
            "sd_checkpoints_limit": OptionInfo(1, "Maximum number of checkpoints loaded at the same time"),
            "sd_checkpoints_keep_in_cpu": OptionInfo(True, "Only keep one model on device"),
            "sd_checkpoint_cache": OptionInfo(0, "Checkpoints to cache in RAM"),
            "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip", infotext="Clip skip"),
            "randn_source": OptionInfo("GPU", "Random number generator source.", infotext="RNG"),
            "hires_fix_refiner_pass": OptionInfo("second pass", "Hires fix: which pass to enable refiner for"),
        },
    )
)

options_templates.update(
    options_section(
        ("sdxl", "Stable Diffusion XL", "sd"),
        {
            "sdxl_crop_top": OptionInfo(0, "crop top coordinate"),
            "sdxl_crop_left": OptionInfo(0, "crop left coordinate"),
            "sdxl_refiner_low_aesthetic_score": OptionInfo(
                2.5, "SDXL low aesthetic score", infotext="SDXL low aesthetic score"
            ),
            "sdxl_refiner_high_aesthetic_score": OptionInfo(
                6.0, "SDXL high aesthetic score", infotext="SDXL high aesthetic score"
            ),
        },
    )
)

options_templates.update(
    options_section(
        ("ui", "User interface", "ui"),
        {
            "localization": OptionInfo("None", "Localization").needs_reload_ui(),
            "gallery_height": OptionInfo("", "Gallery height").needs_reload_ui(),
            "ui_tab_order": OptionInfo([], "UI tab order").needs_reload_ui(),
            "hidden_tabs": OptionInfo([], "Hidden UI tabs").needs_reload_ui(),
            "interrupt_after_current": OptionInfo(True, "Don't Interrupt in the middle"),
            "return_grid": OptionInfo(True, "Show grid in gallery"),
            "do_not_show_images": OptionInfo(False, "Do not show any images in gallery"),
        },
    )
)

options_templates.update(
    options_section(
        ("infotext", "Infotext", "ui"),
        {
            "add_model_hash_to_info": OptionInfo(True, "Add model hash to infotext"),
            "add_model_name_to_info": OptionInfo(True, "Add model name to infotext"),
            "add_user_name_to_info": OptionInfo(False, "Add user name to infotext when authenticated"),
            "add_version_to_infotext": OptionInfo(True, "Add program version to infotext"),
            "disable_weights_auto_swap": OptionInfo(True, "Disregard checkpoint information from pasted infotext"),
            "infotext_skip_pasting": OptionInfo([], "Disregard fields from pasted infotext"),
            "infotext_styles": OptionInfo("Apply if any", "Infer styles from prompts of pasted infotext"),
        },
    )
)

options_templates.update(
    options_section(
        ("ui", "Live previews", "ui"),
        {
            "show_progress_bar": OptionInfo(True, "Show progressbar"),
            "live_previews_enable": OptionInfo(True, "Show live previews of the created image"),
            "live_previews_image_format": OptionInfo("png", "Live preview file format"),
            "show_progress_grid": OptionInfo(True, "Show previews of all images generated in a batch as a grid"),
            "show_progress_every_n_steps": OptionInfo(10, "Live preview display period"),
        },
    )
)

options_templates.update(
    options_section(
        ("sampler-params", "Sampler parameters", "sd"),
        {
            "eta_noise_seed_delta": OptionInfo(0, "Eta noise seed delta", infotext="ENSD"),
            "refiner_switch_by_sample_steps": OptionInfo(False, "Refiner switch by sampling steps"),
        },
    )
)

if _stub.is_neo():
    # Neo's defaults where they differ (modules/shared_options.py, branch neo, commit 04369e254cef7ad3b90b17b7a5b482d5
    # 358f15cf): its own Refiner's settings (section "Refiner"; the accordion hidden by default there, shown by default
    # in another copy of the file), "Don't Interrupt in the middle" off, a live preview every step, no "Full" preview.
    options_templates.update(
        options_section(
            ("refiner", "Refiner", "sd"),
            {
                "show_refiner": OptionInfo(False, "Display the Refiner Accordion"),
                "refiner_fast_sd": OptionInfo(False, 'Reload "state_dict" Only'),
                "refiner_use_steps": OptionInfo(False, 'Switch based on "steps" instead'),
                "refiner_lora_replacement": OptionInfo("high_noise=low_noise\nhigh-noise=low-noise"),
            },
        )
    )
    options_templates["interrupt_after_current"] = OptionInfo(False, "Don't Interrupt in the middle")
    options_templates["show_progress_every_n_steps"] = OptionInfo(1, "Generate live preview every N step")
    options_templates["show_progress_type"] = OptionInfo("RGB", "Live Preview Method")
    options_templates["live_previews_image_format"] = OptionInfo("jpeg", "Live Preview Format")
