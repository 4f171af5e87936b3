"""The configuration reference, docs/configuration.md, written from the config dataclasses themselves.

Every key's type, default and reason live on one line of config.py; this module turns them into the page, so
the page cannot drift from the code (tests/test_docs.py fails when they disagree). Regenerate with
`python -m facegen.config_reference docs/configuration.md`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path

from facegen.config import FAMILIES, FAMILY_ONLY, SECTIONS

FIELD_LINE = re.compile(r"^\s+(\w+): [^=]+ = .+?  # (.+)$")
INTRO = """\
# Configuration reference

Generated from `src/facegen/config.py` by `python -m facegen.config_reference docs/configuration.md`; do not edit
by hand (a test fails when this page and the code disagree). How the layers combine (defaults, then a preset or
TOML file with `extends`, then `--set section.key=value`) is in [training.md](training.md).

A key that only some families use is an error, not silently ignored, when set for another family; the last
column names the families that use it.
"""


def field_comments(cls: type) -> dict[str, str]:
    """Each field's end-of-line comment in the class's source: its reason, the page's description."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = FIELD_LINE.match(line)
        if match:
            comments[match.group(1)] = match.group(2)
    return comments


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    return "unset" if value is None else json.dumps(list(value) if isinstance(value, tuple) else value)


def render() -> str:
    """The whole page; a field without a comment on its line is an error, so every key says why."""
    parts = [INTRO]
    for section, cls in SECTIONS.items():
        comments = field_comments(cls)
        rows = ["| key | type | default | what and why | families |", "| --- | --- | --- | --- | --- |"]
        for field in dataclasses.fields(cls):
            if field.name not in comments:
                raise ValueError(f"{cls.__name__}.{field.name} has no comment on its line in config.py; say what it is and why")
            families = FAMILY_ONLY.get((section, field.name), FAMILIES)
            used_by = "all" if set(families) == set(FAMILIES) else ", ".join(families)
            rows.append(f"| `{section}.{field.name}` | `{_cell(str(field.type))}` | `{_cell(_default(field))}` | "
                        f"{_cell(comments[field.name])} | {used_by} |")
        parts.append(f"## [{section}]\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m facegen.config_reference docs/configuration.md", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
