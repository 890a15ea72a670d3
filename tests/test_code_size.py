"""No module in wispy/ over 600 lines, no function over 100: a newcomer reads a file whole."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "wispy"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def oversized(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(root.parent)}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}: {length} lines "
                                 f"(at most {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_is_oversized():
    assert not oversized(), "\n".join(oversized())


def test_the_check_sees_a_long_function(tmp_path):
    pkg = tmp_path / "wispy"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (pkg / "long.py").write_text(f"def f():\n{body}\n")
    assert any("f: 101 lines" in p for p in oversized(pkg))
