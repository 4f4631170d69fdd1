"""Project invariants: CI runs the README's test command; docs name what the code has."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    run, test = commands
    assert "listend" in run and "pytest" in test
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci, "the last line of .ci/run must be the README's test command"
    assert ci[-1] == test


def test_dbus_doc_covers_every_member():
    from listend.service import DictationInterface

    doc = (REPO / "docs" / "dbus.md").read_text()
    for name in ("Start", "Stop", "Toggle", "GetTranscript", "GetRecent", "GetMemory", "SetProfile",
                 "State", "Profile", "LiveText", "LastError", "RssBytes", "LastSegmentId",
                 "PartialText", "SegmentRefined", "StateChanged", "MemoryPressure",
                 "io.github.listend.Error.InvalidArgs", "io.github.listend.Error.NotAvailable",
                 "io.github.listend.Error.Failed"):
        assert f"`{name}" in doc, name
    assert DictationInterface


def test_configuration_doc_lists_every_key():
    import dataclasses

    from listend.config import Settings

    doc = (REPO / "docs" / "configuration.md").read_text()
    for section, value in Settings().sections.items():
        for f in dataclasses.fields(value):
            assert f"`{f.name}`" in doc and f"[{section}]" in doc, f"{section}.{f.name}"
