"""Unit tests of the ``listend_ime`` package."""
