"""Tests of extension/loading/."""
