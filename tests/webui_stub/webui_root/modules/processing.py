"""Stand-in of modules/processing.py: ``StableDiffusionProcessing*`` (the ``p`` hooks receive), ``Processed``,
``create_infotext`` (those two written in modules/_processed.py) and ``process_images``.

``process_images(p)`` runs the script hooks in the WebUI's order (docs/webui-contract.md §3: before_process -> process -> per batch
before_process_batch/process_batch -> sampling -> post_sample -> VAE decode -> nextjob -> postprocess_batch ->
postprocess_batch_list -> per image postprocess_image -> postprocess_image_after_composite -> save -> infotext ->
grid -> postprocess) with a fake sampler and VAE: latents are seeded noise (B,4,H/8,W/8) and "decoding" is a
nearest-neighbour x8 upscale of tanh(latent[:3]) (``p.sd_model.decode_calls`` counts decodes). With
``enable_hr`` the hooks see ``DecodedSamples`` (already decoded, at the hires size), as in the WebUI.
"""

from __future__ import annotations

import random
from typing import Any

from modules import _stub, devices, images, scripts, shared
from modules._processed import Processed, create_infotext, program_version  # noqa: F401 -- the WebUI has them here
from modules.shared import opts, state


def get_fixed_seed(seed):
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p):
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


class DecodedSamples(list):
    already_decoded = True


class StableDiffusionProcessing:
    """What every hook receives as ``p``; keyword arguments as in the WebUI (plus any extra attribute)."""

    def __init__(
        self,
        sd_model=None,
        outpath_samples=None,
        outpath_grids=None,
        prompt="",
        styles=None,
        seed=-1,
        subseed=-1,
        subseed_strength=0,
        seed_resize_from_h=-1,
        seed_resize_from_w=-1,
        seed_enable_extras=True,
        sampler_name=None,
        scheduler=None,
        batch_size=1,
        n_iter=1,
        steps=50,
        cfg_scale=7.0,
        width=512,
        height=512,
        restore_faces=None,
        tiling=None,
        do_not_save_samples=False,
        do_not_save_grid=False,
        extra_generation_params=None,
        overlay_images=None,
        negative_prompt="",
        eta=None,
        denoising_strength=None,
        override_settings=None,
        override_settings_restore_afterwards=True,
        refiner_checkpoint=None,
        refiner_switch_at=None,
        disable_extra_networks=False,
        comments=None,
        **kwargs: Any,
    ):
        self.sd_model = sd_model if sd_model is not None else shared.sd_model
        self.outpath_samples = outpath_samples
        self.outpath_grids = outpath_grids
        self.prompt = prompt
        self.prompt_for_display = None
        self.negative_prompt = negative_prompt or ""
        self.styles = styles or []
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.seed_enable_extras = seed_enable_extras
        self.sampler_name = sampler_name
        self.scheduler = scheduler
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.width = width
        self.height = height
        self.restore_faces = restore_faces
        self.tiling = tiling
        self.do_not_save_samples = do_not_save_samples
        self.do_not_save_grid = do_not_save_grid
        self.extra_generation_params = dict(extra_generation_params or {})
        self.overlay_images = overlay_images
        self.eta = eta
        self.denoising_strength = denoising_strength
        self.override_settings = dict(override_settings or {})
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.refiner_checkpoint = refiner_checkpoint
        self.refiner_switch_at = refiner_switch_at
        self.refiner_checkpoint_info = None
        self.disable_extra_networks = disable_extra_networks
        self.comments = dict(comments or {})
        self.is_api = False
        self.scripts_value = None
        self.script_args_value = None
        self.scripts_setup_complete = False
        self.iteration = 0
        self.batch_index = 0
        self.is_hr_pass = False
        self.enable_hr = False
        self.all_prompts = None
        self.all_negative_prompts = None
        self.all_seeds = None
        self.all_subseeds = None
        self.prompts = None
        self.negative_prompts = None
        self.seeds = None
        self.subseeds = None
        self.main_prompt = None
        self.main_negative_prompt = None
        self.sd_model_name = None
        self.sd_model_hash = None
        self.sd_vae_name = None
        self.sd_vae_hash = None
        self.user = None
        self.token_merging_ratio = 0
        self.token_merging_ratio_hr = 0
        self.is_using_inpainting_conditioning = False
        self.job_timestamp = state.job_timestamp
        for key, value in kwargs.items():
            setattr(self, key, value)

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        """Run the scripts' ``setup()`` (once, when both ``scripts`` and ``script_args`` are set)."""
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text):
        self.comments[text] = 1

    def get_token_merging_ratio(self, for_hr=False):
        return self.token_merging_ratio_hr if for_hr else self.token_merging_ratio

    def save_samples(self) -> bool:
        """Returns whether generated images need to be written to disk"""
        return (
            opts.samples_save
            and not self.do_not_save_samples
            and (opts.save_incomplete_images or (not state.interrupted and not state.skipped))
        )

    def setup_prompts(self):
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """Stand-in sampler: seeded noise latents; with Hires fix, decoded images at the hires size."""
        import torch

        latents = torch.stack(
            [
                torch.randn((4, self.height // 8, self.width // 8), generator=torch.Generator().manual_seed(int(seed)))
                for seed in seeds
            ]
        )
        state.sampling_steps = self.steps
        neo = _stub.is_neo()
        if neo:  # Neo's sampling_prepare loads the UNet through its memory manager
            from backend import memory_management

            from modules import sd_samplers_common

            memory_management.load_models_gpu([sd_samplers_common.unet_patcher(shared.sd_model)])
        for step in range(self.steps):
            if state.interrupted:
                break
            state.sampling_step = step
            if neo:
                state.preview_step = step + 1
                sd_samplers_common.apply_refiner(self, step, self.steps)
        return latents

    def close(self):
        pass


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    def __init__(
        self,
        enable_hr=False,
        denoising_strength=0.75,
        firstphase_width=0,
        firstphase_height=0,
        hr_scale=2.0,
        hr_upscaler=None,
        hr_second_pass_steps=0,
        hr_resize_x=0,
        hr_resize_y=0,
        hr_checkpoint_name=None,
        hr_sampler_name=None,
        hr_scheduler=None,
        hr_prompt="",
        hr_negative_prompt="",
        **kwargs,
    ):
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.enable_hr = enable_hr
        self.firstphase_width = firstphase_width
        self.firstphase_height = firstphase_height
        self.hr_scale = hr_scale
        self.hr_upscaler = hr_upscaler
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_checkpoint_name = hr_checkpoint_name
        self.hr_sampler_name = hr_sampler_name
        self.hr_scheduler = hr_scheduler
        self.hr_prompt = hr_prompt
        self.hr_negative_prompt = hr_negative_prompt
        self.txt2img_upscale = False
        self.firstpass_image = None
        if self.enable_hr:
            self.hr_upscale_to_x = int(self.width * self.hr_scale)
            self.hr_upscale_to_y = int(self.height * self.hr_scale)
            self.extra_generation_params["Denoising strength"] = self.denoising_strength
            self.extra_generation_params["Hires upscale"] = self.hr_scale
            if self.hr_upscaler is not None:
                self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def init(self, all_prompts, all_seeds, all_subseeds):
        """With Hires fix every batch is two jobs: ``state.job_count`` doubles once per generation (A1111
        processing.py:1290-1299, Forge :1325-1334; the total-tqdm update is not imitated)."""
        if self.enable_hr and not state.processing_has_refined_job_count:
            if state.job_count == -1:
                state.job_count = self.n_iter
            state.job_count = state.job_count * 2
            state.processing_has_refined_job_count = True

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        import torch
        import torch.nn.functional as F

        latents = super().sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts)
        if not self.enable_hr or state.interrupted:
            return latents
        return self.sample_hr_pass(latents, None, seeds, subseeds, subseed_strength, prompts, torch=torch, F=F)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts, *, torch, F):
        """As the real ``sample_hr_pass`` (A1111 processing.py:1364-1450): ``is_hr_pass``, upscale, then
        ``state.nextjob()`` (the first pass counts as one job), then ``before_hr``; the second pass is an upscale."""
        if state.interrupted:
            return samples
        self.is_hr_pass = True
        decoded = torch.stack(decode_latent_batch(self.sd_model, samples, check_for_nans=True)).float()  # :1355
        upscaled = F.interpolate(decoded, size=(self.hr_upscale_to_y, self.hr_upscale_to_x), mode="nearest")
        state.nextjob()
        if self.scripts is not None:
            self.scripts.before_hr(self)
        return DecodedSamples(torch.unbind(upscaled))


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(
        self,
        init_images=None,
        resize_mode=0,
        denoising_strength=0.75,
        image_cfg_scale=None,
        mask=None,
        mask_blur=None,
        inpainting_fill=0,
        inpaint_full_res=True,
        inpaint_full_res_padding=0,
        inpainting_mask_invert=0,
        initial_noise_multiplier=None,
        **kwargs,
    ):
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.init_images = init_images
        self.resize_mode = resize_mode
        self.image_cfg_scale = image_cfg_scale
        self.image_mask = mask
        self.mask_blur = mask_blur
        self.inpainting_fill = inpainting_fill
        self.inpaint_full_res = inpaint_full_res
        self.inpaint_full_res_padding = inpaint_full_res_padding
        self.inpainting_mask_invert = inpainting_mask_invert
        self.initial_noise_multiplier = initial_noise_multiplier
        self.extra_generation_params["Denoising strength"] = denoising_strength


def decode_first_stage(model, x):
    """Stand-in VAE decode: (B,4,h,w) -> (B,3,8h,8w) in -1..1; counted in ``model.decode_calls``."""
    import torch.nn.functional as F

    if hasattr(model, "decode_calls"):
        model.decode_calls += 1
    return F.interpolate(x[:, :3].float().tanh(), scale_factor=8, mode="nearest")


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False):
    """One VAE decode per image (processing.py:625-671; F: :628), NaN checks on the latents and each decoded image
    (the real one retries the VAE in another dtype on a NaN when the auto-precision setting is on: not imitated)."""
    samples = DecodedSamples()
    if check_for_nans:
        devices.test_for_nans(batch, "unet")
    for i in range(batch.shape[0]):
        sample = decode_first_stage(model, batch[i : i + 1])[0]
        if check_for_nans:
            devices.test_for_nans(sample, "vae")
        if target_device is not None:
            sample = sample.to(target_device)
        samples.append(sample)
    return samples


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run a generation through the hooks (see module docstring); restores ``override_settings`` afterwards."""
    if p.scripts is not None:
        p.scripts.before_process(p)

    stored_opts = {
        k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings if k in opts.data
    }
    try:
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
    return res


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    import numpy as np
    import torch
    from PIL import Image

    devices.torch_gc()
    seed = get_fixed_seed(p.seed)
    subseed = get_fixed_seed(p.subseed)

    info = getattr(shared.sd_model, "sd_checkpoint_info", None)
    p.sd_model_name = getattr(info, "name_for_extra", None)
    p.sd_model_hash = getattr(shared.sd_model, "sd_model_hash", None)

    p.setup_prompts()
    if isinstance(seed, list):
        p.all_seeds = seed
    else:
        p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    if isinstance(subseed, list):
        p.all_subseeds = subseed
    else:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.refiner_checkpoint not in (None, "", "None", "none"):  # real: processing.py:882-885
        from modules import sd_models

        p.refiner_checkpoint_info = sd_models.get_closet_checkpoint_match(p.refiner_checkpoint)
        if p.refiner_checkpoint_info is None:
            raise Exception(f"Could not find checkpoint with name {p.refiner_checkpoint}")

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts = []
    output_images = []

    def infotext(index=0, use_main_prompt=False):
        return create_infotext(
            p,
            p.prompts,
            p.seeds,
            p.subseeds,
            use_main_prompt=use_main_prompt,
            index=index,
            all_negative_prompts=p.negative_prompts,
        )

    with torch.no_grad():
        p.init(p.all_prompts, p.all_seeds, p.all_subseeds)  # real: processing.py:921, before the job count

        if state.job_count == -1:
            state.job_count = p.n_iter

        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break

            if _stub.is_neo() and getattr(shared.sd_model, "main_model", None) is not None:
                shared.sd_model = shared.sd_model.main_model  # forge_model_reload(): back from the refiner's switch
            p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size : (n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size : (n + 1) * p.batch_size]

            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            if len(p.prompts) == 0:
                break
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

            samples_ddim = p.sample(
                conditioning=None,
                unconditional_conditioning=None,
                seeds=p.seeds,
                subseeds=p.subseeds,
                subseed_strength=p.subseed_strength,
                prompts=p.prompts,
            )

            if p.scripts is not None:
                ps = scripts.PostSampleArgs(samples_ddim)
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples

            if getattr(samples_ddim, "already_decoded", False):
                x_samples_ddim = samples_ddim
            else:
                devices.test_for_nans(samples_ddim, "unet")  # real: processing.py:998 (F: :1006)
                x_samples_ddim = decode_latent_batch(p.sd_model, samples_ddim, target_device=None, check_for_nans=True)

            x_samples_ddim = torch.stack(list(x_samples_ddim)).float()
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)
            del samples_ddim

            state.nextjob()

            if p.scripts is not None:
                p.scripts.postprocess_batch(p, x_samples_ddim, batch_number=n)
                batch_params = scripts.PostprocessBatchListArgs(list(x_samples_ddim))
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                x_samples_ddim = batch_params.images

            save_samples = p.save_samples()

            for i, x_sample in enumerate(x_samples_ddim):
                p.batch_index = i
                array = (255.0 * np.moveaxis(x_sample.cpu().numpy(), 0, 2)).astype(np.uint8)
                image = Image.fromarray(array)

                if p.scripts is not None:
                    pp = (
                        scripts.PostprocessImageArgs(image, i + p.iteration * p.batch_size)
                        if _stub.is_forge()
                        else scripts.PostprocessImageArgs(image)
                    )
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image

                if p.scripts is not None:
                    pp = (
                        scripts.PostprocessImageArgs(image, i + p.iteration * p.batch_size)
                        if _stub.is_forge()
                        else scripts.PostprocessImageArgs(image)
                    )
                    p.scripts.postprocess_image_after_composite(p, pp)
                    image = pp.image

                if save_samples:
                    images.save_image(
                        image,
                        p.outpath_samples,
                        "",
                        p.seeds[i],
                        p.prompts[i],
                        opts.samples_format,
                        info=infotext(i),
                        p=p,
                    )

                text = infotext(i)
                infotexts.append(text)
                if opts.enable_pnginfo:
                    image.info["parameters"] = text
                output_images.append(image)

            devices.torch_gc()

        if not infotexts:
            infotexts.append(Processed(p, []).infotext(p, 0))

        index_of_first_image = 0
        unwanted_grid_because_of_img_count = len(output_images) < 2 and opts.grid_only_if_multiple
        if (opts.return_grid or opts.grid_save) and not p.do_not_save_grid and not unwanted_grid_because_of_img_count:
            grid = images.image_grid(output_images, p.batch_size)
            if opts.return_grid:
                text = infotext(use_main_prompt=True)
                infotexts.insert(0, text)
                if opts.enable_pnginfo:
                    grid.info["parameters"] = text
                output_images.insert(0, grid)
                index_of_first_image = 1
            if opts.grid_save:
                images.save_image(
                    grid,
                    p.outpath_grids,
                    "grid",
                    p.all_seeds[0],
                    p.all_prompts[0],
                    opts.grid_format,
                    info=infotext(use_main_prompt=True),
                    short_filename=not opts.grid_extended_filename,
                    p=p,
                    grid=True,
                )

    devices.torch_gc()

    res = Processed(
        p,
        images_list=output_images,
        seed=p.all_seeds[0],
        info=infotexts[0],
        subseed=p.all_subseeds[0],
        index_of_first_image=index_of_first_image,
        infotexts=infotexts,
    )
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res
