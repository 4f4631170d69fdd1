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


def test_listend_installs_beside_python_daemon(tmp_path):
    """python-daemon's import package is ``daemon``: ours are listend, listend_ctl and listend_tray."""
    import subprocess
    import sys

    code = ("import daemon, listend, listend_ctl.main, listend_tray.busworker; "
            "assert hasattr(daemon, 'DaemonContext'), daemon.__file__; print(listend.__name__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "listend", result.stderr


def _imports_of(path, package: str, folder_of: dict) -> set[str]:
    """Modules of ours that ``path`` imports (anywhere in it, also inside functions)."""
    import ast

    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the same package
                base = package if node.module is None else f"{package}.{node.module}"
                names = [base] if node.module else [f"{package}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n in folder_of)
    return out


def test_no_import_cycles():
    packages = {"listend": REPO / "daemon", "listend_ctl": REPO / "ctl", "listend_tray": REPO / "tray"}
    files = {f"{pkg}.{p.stem}": p for pkg, folder in packages.items() for p in folder.glob("*.py")
             if p.stem != "__init__"}
    graph = {name: _imports_of(path, name.split(".")[0], files) - {name} for name, path in files.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt])
                                     if nxt in trail else f"import cycle: {node} -> {nxt}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    # The daemon does not import its clients.
    assert not any(dep.startswith(("listend_ctl", "listend_tray")) for name, deps in graph.items()
                   if name.startswith("listend.") for dep in deps)
