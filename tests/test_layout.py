"""The house rules a reviewer checks by eye: no import cycle inside the library, and no file that grew too long to read."""
import ast

from conftest import ROOT

MAX_LINES = 400


def _library_imports() -> dict[str, set[str]]:
    """seqmodels module -> the seqmodels modules it imports (at any depth of its code)."""
    files = {}
    for path in (ROOT / "seqmodels").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    graph[name] |= {m for m in (f"{target}.{alias.name}", target) if m in files and m != name}
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in files}
    return graph


def test_the_library_has_no_import_cycle():
    graph = _library_imports()
    assert "seqmodels.files" in graph["seqmodels.tokenizers"]  # the checker sees imports at all
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_library_script_or_tab_file_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("seqmodels", "train", "demos") for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
