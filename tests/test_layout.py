"""The shape of the code: one `trxrd` import namespace over the design card's folders, layers that
point one way, and no module globals or environment reads where the session should decide."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"trxrd": "trxrd", "acquisition": "trxrd.acquisition", "reduction": "trxrd.reduction",
           "simulated_devices": "trxrd.simulated_devices", "profiles": "trxrd.profiles"}
CODE = ["trxrd", "acquisition", "reduction", "simulated_devices", "profiles", "tests", "benchmarks"]


def _python_files(*folders):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path):
    """(module imported, line) of every absolute import in *path*, resolving relative ones to
    the `trxrd` names of the folder they are in."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO).with_suffix("")
    package = [FOLDERS.get(rel.parts[0], rel.parts[0])] + list(rel.parts[1:-1])
    package = ".".join(package).split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            else:
                yield node.module, node.lineno


def test_no_bare_top_level_imports():
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p in _python_files(*CODE)
           for name, line in _imports(p)
           if name.split(".")[0] in ("acquisition", "reduction", "simulated_devices", "profiles")]
    assert not bad, "use the trxrd.* names:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder, forbidden", [
    ("reduction", ("trxrd.acquisition", "trxrd.simulated_devices", "trxrd.session")),
    ("acquisition", ("trxrd.reduction", "trxrd.simulated_devices", "trxrd.session")),
])
def test_layers_point_one_way(folder, forbidden):
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p in _python_files(folder)
           for name, line in _imports(p) if name.startswith(forbidden)]
    assert not bad, "\n".join(bad)


def test_every_package_folder_is_installed():
    """pyproject maps each folder to its trxrd subpackage and lists every package under it."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {v: k for k, v in FOLDERS.items()}
    found = set()
    for folder, package in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([package, *parts]))
    listed = set(cfg["packages"])
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_environment_read_only_at_entry_points():
    """TRXRD_* variables are read by the CLI, the profile and SessionConfig.from_environ only."""
    import re

    allowed = {"trxrd/cli.py", "trxrd/session.py"}
    reads = re.compile(r"""(environ\s*(\.get\(|\[)|getenv\()\s*["']TRXRD_""")
    bad = [str(p.relative_to(REPO)) for p in _python_files("trxrd", "acquisition", "reduction", "simulated_devices")
           if reads.search(p.read_text()) and str(p.relative_to(REPO)) not in allowed]
    assert not bad, bad
    session = (REPO / "trxrd/session.py").read_text()
    assert session.count("os.environ") == 1          # SessionConfig.from_environ only


def test_no_module_level_state():
    """No `global` statements in the package: state lives in the session object."""
    bad = [f"{p.relative_to(REPO)}:{node.lineno}" for p in _python_files("trxrd", "acquisition", "reduction")
           for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.Global)]
    assert not bad, bad
