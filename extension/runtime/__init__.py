"""Where a job runs, without gradio: the :class:`~.host.Host` seam (queue, progress, memory policy) and what the
buttons do (:mod:`.jobs`)."""
