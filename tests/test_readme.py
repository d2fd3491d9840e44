"""The README's command lines name commands and options that exist (documentation that runs, kept so)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from modelling.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
GLOBAL_OPTIONS = {"-q", "--quiet", "-v", "--verbose", "--debug"}


def _command_lines(text: str) -> list[str]:
    """Every `gvr ...` in a code block or an inline code span, as one line (spans may wrap)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    spans = [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", re.sub(r"```.*?```", "", text,
                                                                                          flags=re.S))]
    found = []
    for line in lines + spans:
        m = re.search(r"(?:^|\s|/)gvr(\s.*)$", line)
        if m:
            found.append("gvr" + m.group(1).split(" #")[0].split("`")[0])
    return found


def _resolve(tokens: list[str]):
    """The command a command line reaches (a group has ``commands``), the tokens left for it, and its name."""
    command = typer.main.get_command(app)
    name = "gvr"
    rest = [t for t in tokens[1:] if t not in GLOBAL_OPTIONS]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        if sub is None:
            raise AssertionError(f"`{' '.join(tokens)}`: {name} has no command {rest[0]!r}")
        command, name, rest = sub, f"{name} {rest[0]}", rest[1:]
    return command, rest, name


COMMANDS = _command_lines(README.read_text("utf-8"))


def test_the_readme_shows_command_lines():
    assert len(COMMANDS) >= 30 and any(c.startswith("gvr readers packet") for c in COMMANDS)


@pytest.mark.parametrize("line", sorted(set(COMMANDS)))
def test_each_readme_command_line_names_a_command_and_options_that_exist(line):
    tokens = shlex.split(line.replace("...", ""))
    named = [t for t in tokens[1:] if t not in GLOBAL_OPTIONS]
    if named and named[0].isupper():  # a placeholder: `gvr -q COMMAND`
        return
    command, rest, name = _resolve(tokens)
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    unknown = [t.split("=")[0] for t in rest if t.startswith("--") and t.split("=")[0] not in options]
    assert not unknown, f"`{line}`: {name} has no option {unknown}"
    if hasattr(command, "commands"):
        assert not rest or rest[0].startswith("-"), f"`{line}`: {name} needs a command"


def test_a_wrong_option_or_command_in_the_readme_would_fail():
    with pytest.raises(AssertionError, match="no command 'audits'"):
        _resolve(shlex.split("gvr audits study/"))
    command, rest, _ = _resolve(shlex.split("gvr -q readers packet study/ --outdir p/"))
    assert command.name == "packet" and "--outdir" not in {o for p in command.params for o in p.opts}
