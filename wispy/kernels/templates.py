"""MLIR text templates for the hand-written kernels (wispy/kernels/templates/*.mlir).

A template file holds named sections, each starting with a line `// ==== name ====`;
lines before the first section and lines whose text starts with `//` are comments,
left out of the text. A section is filled by `render(file, section, **values)`:

  * `$name` or `${name}` inside a line is replaced by str(values[name]);
  * a line holding only `$name` (after its indentation) is a block: values[name] (a
    string of lines, or a list of such strings) goes there, every line indented as the
    placeholder is; an empty block leaves no line.

Every placeholder must have a value and every value must be used: a misspelt name fails
at once rather than producing wrong IR.
"""
from __future__ import annotations

import re
from functools import cache
from importlib import resources
from string import Template

_SECTION = re.compile(r"// =+ (\w+) =+")
_BLOCK = re.compile(r"( *)\$\{?(\w+)\}?")


@cache
def sections(file: str) -> dict[str, str]:
    """The sections of templates/`file` by name."""
    text = resources.files("wispy.kernels").joinpath("templates", file).read_text()
    out: dict[str, list[str]] = {}
    current = None
    for line in text.split("\n"):
        m = _SECTION.fullmatch(line)
        if m:
            current = out.setdefault(m[1], [])
        elif current is not None and not line.lstrip().startswith("//"):
            current.append(line)
    return {name: "\n".join(lines).rstrip("\n") for name, lines in out.items()}


def _block(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        value = "\n".join(v for v in value if v)
    return str(value).split("\n") if value else []


def fill(template: str, **values) -> str:
    """`template` with its placeholders replaced (see the module docstring)."""
    used = set()
    out = []
    for line in template.split("\n"):
        m = _BLOCK.fullmatch(line)
        if m:
            used.add(m[2])
            out += [m[1] + ln if ln else ln for ln in _block(values[m[2]])]
            continue
        t = Template(line)
        used.update(m["named"] or m["braced"] for m in t.pattern.finditer(line))
        out.append(t.substitute(values))
    unused = set(values) - used
    if unused:
        raise KeyError(f"template values not used: {sorted(unused)}")
    return "\n".join(out)


def render(file: str, section: str, **values) -> str:
    """Section `section` of templates/`file`, filled with `values`."""
    return fill(sections(file)[section], **values)
