"""Gradio user interface shared by the WebUI and the standalone app (the only core package besides ``webui`` that
imports gradio).

- :mod:`.tab`: the Reimagine tab; :mod:`.refine_tab`: the standalone "Refine" tab;
- :mod:`.widgets`: controls made from a parameter of :mod:`extension.params`;
- :mod:`.surface`: what the tab needs from its host besides the runtime (widgets, saving, gallery);
- :mod:`.standalone`: the standalone app's host; :mod:`.compat`: the gradio 3.41 / 3.43 / 4.40 / 5 / 6 differences.

What the buttons do lives in :mod:`extension.runtime.jobs` (no gradio). Nothing here imports gradio at package
import time.
"""
