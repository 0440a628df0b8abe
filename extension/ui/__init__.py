"""Gradio user interface shared by the WebUI and the standalone app.

- :mod:`.host`: the :class:`~.host.Host` seam (models, memory, running jobs, outputs) — no gradio, no WebUI;
- :mod:`.models`: finding unCLIP / SDXL refiner models cheaply;
- :mod:`.jobs`: what the buttons do (gradio-free);
- :mod:`.tab`: the Reimagine tab; :mod:`.refine_tab`: the standalone "Refine" tab;
- :mod:`.standalone`: the standalone app's host; :mod:`.compat`: gradio 3.41 / 4.40 differences.

Nothing here imports gradio at package import time.
"""
