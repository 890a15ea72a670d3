"""Every code block of README.md runs as written.

The fenced blocks are taken from the README in order and run in one shared working
directory (so a later block may use a file an earlier one wrote, as a reader following
the README would): ```python blocks with this interpreter, ```sh and ```console blocks
with bash (`-e`: the first failing command fails the block). `checkpoints/` and `tests/`
are linked into that directory, and this interpreter's `bin/` (the `wispy` command,
`iree-run-module`) leads the PATH.

A marker on the line just before a fence changes how its block is run:

    <!-- slow -->                 the block's test is marked slow (training, big models)
    <!-- not-run: REASON -->      the block is not run (a device, a package install, make)

```text blocks are not code (the package layout); a block without a language fails
`test_every_block_is_run_or_marked`. The README's own bars are checked here too: at most
300 lines, and not a lab notebook.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNERS = {"python": "python", "sh": "sh", "bash": "sh", "console": "sh"}
NOT_CODE = {"text"}
FENCE = re.compile(r"^```([\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(slow|not-run)\s*(?::\s*(.*?))?\s*-->$")
TIMEOUT_S = {"fast": 300, "slow": 3600}


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # the fence's line in README.md
    marker: Optional[str] = None  # "slow", "not-run" or None
    reason: str = ""

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language or 'none'}"


def readme_blocks(text: Optional[str] = None) -> list[Block]:
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{i + 1}: unclosed code block")
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        blocks.append(Block(fence.group(1), "\n".join(lines[i + 1:end]) + "\n", i + 1,
                            marker.group(1) if marker else None, (marker.group(2) or "") if marker else ""))
        i = end + 1
    return blocks


def _runnable() -> list:
    params = []
    for block in readme_blocks():
        if block.language not in RUNNERS:
            continue
        marks = []
        if block.marker == "slow":
            marks.append(pytest.mark.slow)
        elif block.marker == "not-run":
            marks.append(pytest.mark.skip(reason=f"README block not run: {block.reason or 'marked not-run'}"))
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    for name in ("checkpoints", "tests"):
        (d / name).symlink_to(ROOT / name, target_is_directory=True)
    return d


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _script(block: Block) -> str:
    if block.language != "console":
        return block.code
    # A console block shows a prompt: the commands are the lines after "$ ".
    return "".join(line[2:] + "\n" for line in block.code.splitlines() if line.startswith("$ "))


@pytest.mark.parametrize("block", _runnable())
def test_readme_block_runs(block: Block, workdir: Path):
    kind = RUNNERS[block.language]
    path = workdir / f"readme_L{block.line}.{'py' if kind == 'python' else 'sh'}"
    path.write_text(_script(block))
    cmd = [sys.executable, str(path)] if kind == "python" else ["bash", "-e", str(path)]
    timeout = TIMEOUT_S["slow" if block.marker == "slow" else "fast"]
    r = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (f"README.md:{block.line} ({block.language}) exited {r.returncode}\n"
                               f"--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}")


def test_every_block_is_run_or_marked():
    for block in readme_blocks():
        assert block.language in RUNNERS or block.language in NOT_CODE, (
            f"README.md:{block.line}: a code block needs a language: one that runs "
            f"({', '.join(sorted(RUNNERS))}) or {', '.join(sorted(NOT_CODE))} for what is not code")
        if block.language in NOT_CODE:
            assert block.marker is None, f"README.md:{block.line}: a {block.language} block is never run"
        if block.marker == "not-run":
            assert block.reason, f"README.md:{block.line}: say why the block is not run"


def test_not_run_blocks_are_few():
    runnable = [b for b in readme_blocks() if b.language in RUNNERS]
    skipped = [b for b in runnable if b.marker == "not-run"]
    assert len(skipped) <= 5 and len(skipped) < len(runnable) / 2, [b.id for b in skipped]


def test_readme_is_a_guide_not_a_notebook():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert not re.search(r"\bsessions?\b", text, re.IGNORECASE)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "no dates in the README"


def test_markers_are_read():
    text = "a\n<!-- slow -->\n```sh\necho 1\n```\n<!-- not-run: a phone -->\n```python\nx\n```\n```text\nt\n```\n"
    slow, not_run, plain = readme_blocks(text)
    assert (slow.language, slow.marker, slow.code, slow.line) == ("sh", "slow", "echo 1\n", 3)
    assert (not_run.marker, not_run.reason) == ("not-run", "a phone")
    assert (plain.language, plain.marker) == ("text", None)
