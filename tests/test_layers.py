"""The package layers (docs/architecture.md "Layers"), enforced.

    configs < envs < encoders < policies | vla | real_robot (siblings) < scripts

Imports only point down (lazy, function-level imports included); nothing imports scripts/; no import
cycles. The contract is `[tool.importlinter]` in pyproject.toml (run it alone with `lint-imports`);
these tests run it, prove it bites on a planted violation, and check what it cannot see: `sys.path`
edits, imports of script files by their bare names, and module-level cycles anywhere in the graph.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
import grimp  # noqa: E402  (installed with import-linter)

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("configs", "envs", "encoders", "policies", "vla", "real_robot")
LINT = ("import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command(['--no-cache']))")  # fmt: skip


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with `root` (its pyproject.toml and packages) first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def python_files() -> list[Path]:
    skip = {".venv", ".git", "runs", ".cache", "node_modules"}
    return sorted(p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts))


def test_import_contract_holds():
    r = lint_imports(REPO)
    assert r.returncode == 0, f"lint-imports found broken contracts:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
    assert "BROKEN" not in r.stdout


@pytest.fixture()
def tree_copy(tmp_path):
    """The packages + pyproject.toml copied to a temporary folder, to plant violations in."""
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    p = root.joinpath(*module.split(".")).with_suffix(".py")
    p.write_text(p.read_text() + f"\n\ndef _planted():\n    {line}\n")


def test_contract_fails_on_a_planted_upward_import(tree_copy):
    _plant(tree_copy, "envs.env_api", "import policies.heads.model  # noqa: F401")
    _plant(tree_copy, "configs.runs", "from encoders import base  # noqa: F401")
    r = lint_imports(tree_copy)
    assert r.returncode != 0
    assert "envs.env_api -> policies.heads.model" in r.stdout, r.stdout[-4000:]
    assert "configs.runs -> encoders" in r.stdout, r.stdout[-4000:]


def test_contract_fails_on_a_planted_scripts_import_and_cycle(tree_copy):
    _plant(tree_copy, "vla.heldout", "import scripts.compare_vla_pretraining  # noqa: F401")
    _plant(tree_copy, "configs.runs", "import configs.training  # noqa: F401")  # training imports runs
    r = lint_imports(tree_copy)
    assert r.returncode != 0
    assert "vla.heldout -> scripts" in r.stdout, r.stdout[-4000:]
    assert re.search(r"No import cycles[^\n]*BROKEN", r.stdout), r.stdout[-4000:]


def test_no_module_level_cycles():
    """No two project modules import each other, directly or through a chain (lazy imports count)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = []
    for m in sorted(graph.modules):
        for dep in sorted(graph.find_modules_directly_imported_by(m)):
            if m <= dep or not graph.chain_exists(importer=dep, imported=m, as_packages=False):
                continue
            chain = graph.find_shortest_chain(importer=dep, imported=m, as_packages=False)
            cycles.append(" -> ".join([m, *chain]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


SYS_PATH_EDIT = re.compile(r"\bsys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\b|\[|[+]?=)")


def test_no_file_edits_sys_path():
    """The project is an installed package (editable in development): no file patches the import path."""
    me = Path(__file__).resolve()
    bad = [f"{p.relative_to(REPO)}:{i}" for p in python_files() if p.resolve() != me
           for i, line in enumerate(p.read_text().splitlines(), 1) if SYS_PATH_EDIT.search(line)]  # fmt: skip
    assert not bad, f"sys.path edited in {bad}"


def test_nothing_imports_scripts():
    """scripts/ are command lines; no module, test or other script imports one (by package or bare name)."""
    script_names = {p.stem for p in (REPO / "scripts").glob("*.py")} | {"scripts"}
    bad = []
    for p in python_files():
        for node in ast.walk(ast.parse(p.read_text(), filename=str(p))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            bad += [f"{p.relative_to(REPO)}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in script_names]  # fmt: skip
    assert not bad, "\n".join(bad)
