"""Unit tests of ``pipeline``."""
