"""Unit tests of the ``listend_ctl`` package."""
