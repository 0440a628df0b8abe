"""How a job runs, without gradio and without the WebUI: :mod:`.host` (the :class:`~.host.Host` seam: models,
memory, the job slot), :mod:`.control` (:class:`~.control.Control`: progress, previews, interrupt, skip),
:mod:`.backend` (the REST API's backend on a host) and :mod:`.jobs` (what the tab's buttons do)."""
