"""The package's import graph: no cycles, and `import dlrun` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlrun"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every dlrun module ``path`` imports, at module level or inside a function (both count:
    a function-level import is still a dependency), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names = [arg.value]
        for name in names:
            # the longest prefix that is a module of the package
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me and name != "dlrun":
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: {dlrun modules it imports}}`` for every module of the package."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["dlrun", "dlrun.api", "dlrun.cli.app"])
def test_importing_loads_no_deep_learning_framework(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_starts_without_the_scientific_stack() -> None:
    """``dlrun --help``, ``validate`` and ``status`` need none of scipy, scikit-learn or matplotlib
    (about 1.3 s of imports here): they load when a run scores, splits or draws."""
    code = (
        "import sys, dlrun.cli.app; "
        "print(sorted(m for m in ('scipy', 'sklearn', 'matplotlib', 'optuna', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# The layers of README "How the code is laid out", top to bottom: a module imports only its own
# layer and those below it.
LAYERS: list[set[str]] = [
    {"cli", "entry", "__main__"},
    {"api"},
    {"runs", "export"},
    {"protocol", "execution"},
    {"data", "engines", "report", "reporting"},
    {"evaluation"},
    {"store"},
    {"spec", "errors", "catalog"},
]


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__main__"
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a module from a layer above its own."""
    return sorted(f"{a} -> {b}" for a, deps in graph.items() if a != "dlrun" for b in deps if _layer(b) < _layer(a))


def test_no_module_imports_from_a_layer_above_it() -> None:
    assert upward_imports(import_graph()) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    assert upward_imports({"dlrun.store.io": {"dlrun.runs.cv"}, "dlrun.runs.cv": {"dlrun.store.io"}}) == [
        "dlrun.store.io -> dlrun.runs.cv"
    ]


def _source_lines(pattern: str, skip: str) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(PACKAGE)).startswith(skip)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern in line and not line.lstrip().startswith("#")
    ]


def test_only_the_store_names_state_json_as_a_file() -> None:
    # docstrings may mention it; code outside store/ never opens it (layout.STATE is its name)
    assert [hit for hit in _source_lines("/ STATE", "store/")] == []
    assert [hit for hit in _source_lines(".STATE)", "store/")] == []


def test_no_engine_name_is_compared_outside_engines() -> None:
    for name in ("stacked", "sequential"):
        assert _source_lines(f'== "{name}"', "engines/") == []
        assert _source_lines(f'!= "{name}"', "engines/") == []
