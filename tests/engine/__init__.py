"""Tests of extension/engine/."""
