"""Tests of extension/device/."""
