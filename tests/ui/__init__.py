"""Tests of extension/ui/."""
