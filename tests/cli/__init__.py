"""Tests of extension/cli/."""
