"""How ``--help`` reads: examples kept line for line, option values named, az's global arguments listed.

click rewraps every paragraph of a help text to the terminal, which turns a multi-line example into
lines that no longer run when pasted; and typer labels values by Python type (``<str>``). This
module adjusts the click command tree typer builds, once per invocation, before it parses.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

GLOBAL_EPILOG = (
    "Global arguments (before or after the command, as in az): --verbose/-v, --debug, --only-show-errors, "
    "--subscription ID. See airlock --help."
)


def polish(command: Any, *, root: bool = True) -> None:
    """Adjust ``command`` (a typer/click command or group) and every command below it, in place."""
    help_text = getattr(command, "help", None)
    if help_text:
        command.help = keep_examples(help_text)
    for param in getattr(command, "params", []):
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and not param.is_flag and param.metavar is None:
            param.metavar = _metavar(param)
        elif kind == "argument" and param.metavar is None:
            param.metavar = param.name.upper()
            # typer would append the Python type ("BLOB <str>"): the name says what the value is.
            param.display_type_rich = lambda ctx: None
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for sub in subcommands.values():
            polish(sub, root=False)
    elif not root and not getattr(command, "epilog", None):
        command.epilog = GLOBAL_EPILOG


def keep_examples(text: str) -> str:
    """Mark each paragraph that is a command line (``airlock …``) so that click prints it as written."""
    out = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.lstrip().startswith("airlock "):
            # click indents by 2; an example keeps only its own continuation indent, so that lines of
            # up to 78 characters fit 80 columns.
            paragraph = "\b\n" + textwrap.dedent(paragraph)
        out.append(paragraph)
    return "\n\n".join(out)


def examples(text: str) -> list[str]:
    """The example command lines of a help text, continuation lines joined (what a user would paste).

    One entry per shell command line of each example paragraph (a paragraph may hold several).
    """
    out: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if not paragraph.lstrip().startswith("airlock "):
            continue
        current = ""
        for line in paragraph.strip().splitlines():
            current += line.strip()
            if current.endswith("\\"):
                current = current[:-1].rstrip() + " "
                continue
            out.append(current)
            current = ""
        if current.strip():
            out.append(current.strip())
    return out


def _metavar(param: Any) -> str:
    longest = max(param.opts, key=len).lstrip("-")
    name = longest.replace("-", "_").upper()
    return f"{name}..." if param.multiple or param.nargs != 1 else name
