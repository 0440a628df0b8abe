"""The SDXL refiner post-pass inside txt2img / img2img: everything ``ReimagineRefinerScript`` (scripts/reimagine.py)
delegates to. The engine is :mod:`extension.engine.refiner`; this package maps it onto the WebUI's script hooks.

Where it runs (the hooks of ``scripts.Script``; see docs/webui-contract.md):

- **Latent mode** in ``post_sample``: the base is SDXL (``sd_model.is_sdxl``, A1111 and Forge) and the samples are
  still latents (no Hires fix: ``getattr(ps.samples, "already_decoded", False)`` is False). The refined latents replace
  ``ps.samples``; the WebUI then decodes them once, as it would have anyway.
- **Pixel mode** in ``postprocess_image``: every other case (SD 1.x/2.x bases, Hires fix, Pixel chosen). It runs on
  each final image after Hires fix and face restoration, before saving, so the refined image is what is saved, shown
  and put into the grid. A chosen Latent that cannot run says why in the infotext: ``Refiner post-pass mode: Pixel
  (Hires fix)``. With Hires fix the WebUI decodes the Hires pass's latents inside ``sample_hr_pass`` (A1111 and Forge
  ``modules/processing.py``), so ``post_sample`` only ever sees ``DecodedSamples``.

Arguments (the components of :func:`ui`, in the order of :data:`extension.params.REFINER`) come either positionally
or, from the API, as one dict of named values (``{"enabled": true, "model": ..., "strength": ...}``; ``enabled``
defaults to true there) or ``[enabled, {...}]``. The WebUI wraps every script hook in ``try/except`` + a log line
(``setup`` and ``process`` included), so no exception of ours can reach an API caller or the page: a problem the user
must know about (unknown argument name, missing or wrong model, a failing pass) becomes the infotext key
``Refiner post-pass error`` (in the image's PNG, the page's generation info and the API's ``info``), a comment under
the image in the page, and a line in the WebUI log; the generation goes on without the post-pass.

Progress (:class:`.jobs.BatchJobs`): the WebUI counts one job per batch (two with Hires fix). The first
``post_sample`` of a run adds one job per batch for the post-pass, and each batch's post-pass ends with one
``state.nextjob()``; its steps are reported as ``sampling_step`` / ``sampling_steps``. Interrupt and Skip stop the pass between steps; the image stays unrefined.

Memory: the refiner is loaded through the shared host (:meth:`extension.runtime.host.Host.pipeline`): the WebUI's
checkpoint leaves the GPU only when both would not fit and is always put back when the hook returns (other
extensions' hooks, e.g. ADetailer's, need it), never reloaded; the refiner stays resident or is offloaded after each
call according to the setting "Reimagine and refiner models between runs".

Modules: :mod:`.controls` (arguments, model, per-run state), :mod:`.hooks`, :mod:`.jobs`, :mod:`.progress`,
:mod:`.report`
(infotext keys and warnings), :mod:`.accordion`, :mod:`.paste`, :mod:`.xyz`.
"""

from __future__ import annotations

from .accordion import ui
from .controls import TITLE
from .hooks import post_sample, postprocess, postprocess_batch_list, postprocess_image, process, process_batch
from .xyz import register_xyz_axes

__all__ = [
    "TITLE",
    "post_sample",
    "postprocess",
    "postprocess_batch_list",
    "postprocess_image",
    "process",
    "process_batch",
    "register_xyz_axes",
    "ui",
]
