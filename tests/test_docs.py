"""The docs stay true: links resolve, README's command lines parse, the configuration page matches the code."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from facegen import cli_help, config_reference
from facegen.cli import parse_args

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "benchmarks" / "history").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", page.read_text())) if not re.match(r"[a-z]+:", target)]


def broken_links(page: Path) -> list[str]:
    """Relative links of a page whose file, or whose heading anchor in a Markdown file, does not exist."""
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"{page.name}: links that do not resolve: {broken_links(page)}"


def test_the_link_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A heading: with `code`\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-with-code) [gone](missing.md) [bad anchor](other.md#nope) [web](https://x.org)\n")
    assert broken_links(page) == ["missing.md", "other.md#nope"]


def readme_command_lines() -> list[str]:
    """`facegen ...` lines of README's code blocks (torchrun's too) and inline code, but for `--help`, which parses by exiting."""
    text = (ROOT / "README.md").read_text()
    lines = [line.split("#")[0].strip() for block in FENCE.findall(text) for line in block.splitlines()]
    lines = [line[line.index("facegen "):].replace("-m facegen", "facegen") for line in lines if "facegen " in line]
    table = re.findall(r"`(facegen [^`]+)`", FENCE.sub("", text))
    return [line for line in lines + table if not line.startswith("facegen[") and "--help" not in line]


def test_every_facegen_command_line_in_the_readme_parses():
    lines = readme_command_lines()
    assert len(lines) > 20
    for line in lines:
        argv = shlex.split(line)[1:]
        try:
            parse_args(argv)
        except SystemExit:
            pytest.fail(f"README.md: `{line}` does not parse")


def test_the_readme_lists_every_command_with_its_examples_and_stays_short():
    text = (ROOT / "README.md").read_text()
    commands = set(cli_help.EXAMPLES)  # build_parser refuses a command without an example
    listed = set(re.findall(r"^\| \w+ \| `([\w-]+)` \|", text, re.M))
    assert listed == commands
    assert all(example in text for example in cli_help.EXAMPLES.values())
    assert len(text.splitlines()) <= 250


def test_every_command_has_a_group_and_an_example_that_parses(capsys):
    for name, example in cli_help.EXAMPLES.items():
        assert parse_args(shlex.split(example)[1:]).command == name
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {group}\n" in out for group in cli_help.GROUPS) and "example:" in out
    with pytest.raises(SystemExit):
        parse_args(["edit", "--help"])
    assert capsys.readouterr().out.rstrip().endswith(cli_help.EXAMPLES["edit"])


def test_the_configuration_page_matches_the_code():
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text() == config_reference.render(), "regenerate: python -m facegen.config_reference docs/configuration.md"


def test_a_key_added_to_the_code_but_not_the_page_fails(monkeypatch):
    @dataclass(frozen=True)
    class Extra:
        brand_new: int = 3  # a key no page mentions yet

    page = (ROOT / "docs" / "configuration.md").read_text()
    monkeypatch.setattr(config_reference, "SECTIONS", {**config_reference.SECTIONS, "extra": Extra})
    rendered = config_reference.render()
    assert "`extra.brand_new`" in rendered and "a key no page mentions yet" in rendered and rendered != page


def test_a_key_without_a_reason_is_refused(monkeypatch):
    @dataclass(frozen=True)
    class Silent:
        unexplained: int = 3

    monkeypatch.setattr(config_reference, "SECTIONS", {"silent": Silent})
    with pytest.raises(ValueError, match="Silent.unexplained has no comment"):
        config_reference.render()
