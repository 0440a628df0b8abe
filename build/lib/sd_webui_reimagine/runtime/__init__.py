"""How a job runs, without gradio and without the WebUI: :mod:`.host` (the :class:`~.host.Host` seam: models,
memory, serialised jobs, outputs; :class:`~.host.Control`: progress, interrupt, skip) and :mod:`.jobs` (what the
tab's buttons do)."""
