"""Project invariants: CI runs the README's test command; docs name what the code has and the code keeps the rules.

The import rule, the locks and the named threads of ``docs/architecture.md``
are read from the code here (an AST walk), so the document cannot drift.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.processes import PACKAGES, REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    run, test = commands
    assert "listend" in run and "pytest" in test
    # The linter, the formatter's check and the type checker run before the suite and stop it on findings.
    for check in ("ruff check", "ruff format --check", "mypy"):
        assert check in test and test.index(check) < test.index("pytest"), check
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci, "the last line of .ci/run must be the README's test command"
    assert ci[-1] == test


def test_dbus_doc_covers_every_member():
    """Every method, property and signal the interface serves is in docs/dbus.md, and every error name."""
    from listend.service import DictationInterface

    doc = (REPO / "docs" / "dbus.md").read_text()
    introspection = DictationInterface(None).introspect()  # type: ignore[arg-type]  # reads no daemon
    members = [m.name for m in introspection.methods + introspection.properties + introspection.signals]
    assert {"Start", "SetDelivery", "PendingSegments", "SegmentRetracted"} <= set(members)
    for name in members + [
        "io.github.listend.Error.InvalidArgs",
        "io.github.listend.Error.NotAvailable",
        "io.github.listend.Error.Failed",
    ]:
        assert f"`{name}" in doc, name


def test_configuration_doc_lists_every_key():
    """The doc's key tables are the ones the dataclasses write: a new key or default cannot go undocumented."""
    import dataclasses

    from listend.config import Settings, reference

    doc = (REPO / "docs" / "configuration.md").read_text()
    assert reference() in doc
    for section, value in Settings().sections.items():
        for f in dataclasses.fields(value):
            assert f"`{f.name}`" in doc and f"[{section}]" in doc, f"{section}.{f.name}"


def test_the_configuration_doc_says_when_each_setting_takes_effect():
    import dataclasses

    from listend.config import Settings

    doc = (REPO / "docs" / "configuration.md").read_text()
    section = doc.split("## When a setting takes effect", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+\.[\w*]+)`", section))
    for name, options in Settings().sections.items():
        for f in dataclasses.fields(options):
            assert f"{name}.{f.name}" in named or f"{name}.*" in named, f"{name}.{f.name}: when does it take effect?"
    known = {f"{name}.{f.name}" for name, options in Settings().sections.items() for f in dataclasses.fields(options)}
    assert named <= known | {f"{name}.*" for name in Settings().sections}, named - known


def test_listend_installs_beside_python_daemon(tmp_path):
    """python-daemon's import package is ``daemon``: ours are listend, listend_ctl and listend_tray."""
    import subprocess
    import sys

    code = (
        "import daemon, listend, listend_ctl.main, listend_tray.busworker; "
        "assert hasattr(daemon, 'DaemonContext'), daemon.__file__; print(listend.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "listend", result.stderr


def _imports_of(path: Path, package: str, modules: dict[str, Path]) -> set[str]:
    """Modules of ours that ``path`` imports (anywhere in it, also inside functions).

    ``package`` is the package ``path`` is in (for a subpackage's ``__init__.py``, that subpackage).
    """
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the same package (or, with more dots, one above it)
                anchor = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = anchor if node.module is None else f"{anchor}.{node.module}"
                names = [base] if node.module else [f"{anchor}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def _module_name(package: str, folder: str, path: Path) -> str:
    """``listend.engine`` for daemon/listend/engine.py, ``listend.client`` for daemon/listend/client/__init__.py."""
    parts = path.relative_to(REPO / folder).with_suffix("").parts
    return ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _import_graph() -> dict[str, set[str]]:
    """Every module's imports of our modules: subpackages' modules too, and a subpackage's ``__init__``."""
    modules = {
        _module_name(pkg, folder, p): p
        for pkg, folder in PACKAGES.items()
        for p in (REPO / folder).rglob("*.py")
        if p.parent != REPO / folder or p.stem != "__init__"
    }
    return {
        name: _imports_of(path, name if path.stem == "__init__" else name.rsplit(".", 1)[0], modules) - {name}
        for name, path in modules.items()
    }


def test_no_import_cycles():
    graph = _import_graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(
                    "import cycle: " + " -> ".join([*trail[trail.index(nxt) :], node, nxt])
                    if nxt in trail
                    else f"import cycle: {node} -> {nxt}"
                )
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_import_rule_of_the_architecture_doc_is_the_code_s():
    graph = _import_graph()
    doc = (REPO / "docs" / "architecture.md").read_text()
    # The daemon does not import its clients.
    assert not [
        (name, dep)
        for name, deps in graph.items()
        if name.startswith("listend.")
        for dep in deps
        if not dep.startswith("listend.")
    ]
    # The client side (listend.client) is the clients': no other daemon module imports it.
    assert "listend.client.events" in graph["listend.client"]
    assert not [
        (name, dep)
        for name, deps in graph.items()
        if name.startswith("listend.") and not name.startswith("listend.client")
        for dep in deps
        if dep == "listend.client" or dep.startswith("listend.client.")
    ]
    rules = dict(re.findall(r"^- `(listend_\w+)` imports (.+)$", doc, re.M))
    clients = sorted(p for p in PACKAGES if p != "listend")
    assert sorted(rules) == clients, "docs/architecture.md gives the imports of every client package"
    for package in clients:
        documented = set(re.findall(r"`(listend\.\w+)`", rules[package]))
        actual = {  # a subpackage's module (listend.client.events) counts as its subpackage (listend.client)
            ".".join(dep.split(".")[:2])
            for name, deps in graph.items()
            if name.startswith(package + ".")
            for dep in deps
            if dep.startswith("listend.")
        }
        assert actual == documented, f"{package}: imports {sorted(actual)}, the doc says {sorted(documented)}"


def _module_table() -> list[tuple[str, set[str]]]:
    """The module table of docs/architecture.md: each row's folder (for a package row) and the files it names."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    table = doc.split("| folder / module |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        first, rest = line.split("|")[1], "|".join(line.split("|")[2:])
        folder = re.fullmatch(r"\s*`([\w/]+/)`\s*", first)
        named = set(re.findall(r"`([\w/]+\.py)`", line))
        if folder:  # a package's row: its modules by file name, in the text
            rows.append((folder.group(1), {f"{folder.group(1)}{name}" for name in re.findall(r"`(\w+\.py)`", rest)}))
        else:
            rows.append(("", named))
    return rows


def test_the_module_table_of_the_architecture_doc_names_every_module_and_only_modules_that_exist():
    rows = _module_table()
    documented = set().union(*(files for _, files in rows))
    on_disk = {
        str(path.relative_to(REPO))
        for folder in PACKAGES.values()
        for path in (REPO / folder).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert len(on_disk) > 60 and "daemon/listend/engine.py" in on_disk and "tray/listend_tray/xorg.py" in on_disk
    assert "daemon/listend/client/names.py" in on_disk  # a subpackage's modules too
    assert sorted(on_disk - documented) == [], "modules docs/architecture.md's module table does not name"
    assert sorted(documented - on_disk) == [], "modules docs/architecture.md's module table names that do not exist"
    package_rows = {folder for folder, _ in rows if folder}
    assert package_rows == {f"{folder}/" for package, folder in PACKAGES.items() if package != "listend"}


def _locks_and_threads() -> tuple[set[str], set[str]]:
    """``Class._name`` of every lock and condition, and the name of every thread, in the daemon and clients."""
    locks, threads = set(), set()
    for folder in PACKAGES.values():
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
                for node in ast.walk(cls):
                    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                        func = ast.unparse(node.value.func)
                        if func in ("threading.Lock", "threading.RLock", "threading.Condition"):
                            for target in node.targets:
                                name = target.attr if isinstance(target, ast.Attribute) else ast.unparse(target)
                                locks.add(f"{cls.name}.{name}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "threading.Thread",
                    "concurrent.futures.ThreadPoolExecutor",
                ):
                    for kw in node.keywords:
                        if kw.arg in ("name", "thread_name_prefix"):
                            threads.add(ast.unparse(kw.value).strip("'\"f"))
    workers = re.findall(r'super\(\).__init__\("(\w+)"', (REPO / PACKAGES["listend"] / "workers.py").read_text())
    threads = {t for t in threads if "{" not in t} | {f"listend-{w}" for w in workers}
    return locks, threads


def test_every_lock_and_named_thread_is_in_the_architecture_doc():
    doc = (REPO / "docs" / "architecture.md").read_text()
    locks, threads = _locks_and_threads()
    assert len(locks) > 10 and "Segmenter._lock" in locks and "SegmentIds._lock" in locks
    missing = sorted(lock for lock in locks if f"`{lock}`" not in doc)
    assert not missing, f"locks the threading section of docs/architecture.md does not name: {missing}"
    assert {"listend-segmenter", "listend-live", "listend-refine", "listend-publish"} <= threads
    missing = sorted(t for t in threads if f"`{t}" not in doc)
    assert not missing, f"threads docs/architecture.md does not name: {missing}"


def test_the_version_has_one_source():
    import importlib.metadata

    import listend

    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject.split("[tool")[0]
    assert importlib.metadata.version("listend") == listend.__version__


def test_the_repository_carries_its_licence_changelog_and_contributing_guide():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    from listend import __version__

    assert f"## {__version__}" in (REPO / "CHANGELOG.md").read_text()
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    for command in _readme_commands():
        assert command in contributing
    assert "pytest tests/unit" in contributing


def test_every_package_ships_its_type_information():
    for folder in PACKAGES.values():
        assert (REPO / folder / "py.typed").exists(), folder
