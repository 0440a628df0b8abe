"""Tests of extension/webui/ against the WebUI stand-in (tests/webui_stub)."""
