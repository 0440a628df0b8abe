"""Tests of the top-level modules of extension/ (api, rest, params, prompts, infotext, security, app)."""
