"""The study bundle on the command line, named the same way by every command.

Every command that reads or builds a bundle takes it either as its first argument (``gvr audit study``) or as
``--bundle`` (``gvr audit --bundle study``), and looks in ``study`` (where ``make reproduce`` writes) when given
neither. Commands that build a bundle also take ``--out``. Naming it more than once is accepted only when every
name is the same directory; a command that needs an existing bundle refuses a missing one before any work
(exit 2, as for any refused input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer

DEFAULT = Path("study")


def positional(what: str = "The study bundle") -> typer.models.ArgumentInfo:
    return typer.Argument(None, metavar="BUNDLE", show_default=False,
                          help=f"{what}; or --bundle. Default: {DEFAULT}.")


def option(*aliases: str, what: str = "The study bundle") -> typer.models.OptionInfo:
    """``--bundle`` (and `aliases`), repeatable so that two different names are caught rather than the last kept."""
    return typer.Option(None, "--bundle", *aliases, metavar="BUNDLE", show_default=False,
                        help=f"{what}; or as the first argument. Default: {DEFAULT}.")


def resolve(given: Optional[Path], named: Optional[Sequence[Path]], *, must_exist: bool = False) -> Path:
    """The one bundle the argument and the options name (every name the same directory), else ``study``."""
    names = ([] if given is None else [Path(given)]) + [Path(n) for n in (named or [])]
    if len({n.resolve() for n in names}) > 1:
        fail(f"the bundle is named more than once, differently: {', '.join(str(n) for n in names)}; name it once")
    bundle = names[0] if names else DEFAULT
    if bundle.exists() and not bundle.is_dir():  # else mkdir's FileExistsError, or "no such bundle"
        fail(f"{bundle}: a file, not a bundle directory")
    if must_exist and not bundle.is_dir():
        where = "" if names else " (the default; name the bundle as the first argument)"
        fail(f"{bundle}: no such bundle directory{where}")
    return bundle


def fail(message: str, code: int = 2) -> None:
    """One error line on stderr, then exit (2: refused before any work; 1: work or input data failed)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
