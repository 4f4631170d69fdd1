"""Unit tests of the ``listend`` package."""
