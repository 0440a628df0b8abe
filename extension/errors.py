"""Errors a user can cause. Their ``str()`` is the message shown in the UI, the API and the CLI."""

from __future__ import annotations


class ReimagineError(Exception):
    """Base class: a problem the user can fix, with a message that says what was expected."""


class ModelLoadError(ReimagineError):
    """A model file or folder is missing, unreadable, unsafe or of the wrong kind."""


class HubUnreachableError(ModelLoadError):
    """A hub model that is not in the local cache, with the hub out of reach: offline mode or no network."""


class ParamError(ReimagineError, ValueError):
    """A parameter value is out of range or unknown."""


class NonFiniteError(ReimagineError):
    """Sampling produced NaN or infinite latents: reported instead of saving an all-black image."""
