"""The command line before click reads it, made to read as az's does.

- Options that take several space-separated values (az's ``nargs='+'``: ``--artifacts a b c``)
  become repeated options, which click understands.
- az's global arguments (``--verbose``, ``--only-show-errors``, ``--subscription``, ...) may stand
  anywhere on the line; click wants them before the command, so they are moved there.
- az's three-state booleans (``--admin-enabled``) may stand alone, meaning true.
"""

from __future__ import annotations

from typing import Any

# Options that take several space-separated values, as az's nargs='+' options do.
_MULTI = {
    "--artifacts": "--artifacts",
    "-a": "--artifacts",
    "--options": "--options",
    "-z": "--options",
    "--secret-permissions": "--secret-permissions",
    "--repository": "--repository",  # inventory's repositories; import's one takes a single value anyway
    "--defaults": "--defaults",
    "-d": "--defaults",
}


def expand_multi(argv: list[str]) -> list[str]:
    """Turn ``--artifacts a b c`` into ``--artifacts a --artifacts b --artifacts c`` (az style)."""
    out: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg in _MULTI:
            current = _MULTI[arg]
            continue
        if current and not arg.startswith("-"):
            out += [current, arg]
            continue
        if current and arg.startswith("-"):
            current = None
        out.append(arg)
    return out


# az's global arguments: they may stand anywhere on the command line. (name -> takes a value)
_GLOBAL_ARGS = {"--verbose": False, "-v": False, "--debug": False, "--only-show-errors": False, "--subscription": True}


def _flag_options(root: Any) -> frozenset[str]:
    """Every option of every command that takes no value (``--overwrite``, ``-f``, ...)."""
    names: set[str] = set()
    stack: list[Any] = [root]  # typer's (vendored) click commands
    while stack:
        command = stack.pop()
        for param in command.params:
            if getattr(param, "is_flag", False):
                names.update(param.opts + param.secondary_opts)
        stack += list((getattr(command, "commands", None) or {}).values())
    return frozenset(names)


def hoist_global_args(argv: list[str], root: Any) -> list[str]:
    """Move az's global arguments to the front, where click expects them (``cmd -v`` = ``-v cmd``).

    Arguments after ``--`` stay; a global flag written as the value of the option before it (``--value
    -v``) is left in place.
    """
    flags = _flag_options(root) | OPTIONAL_BOOLEANS
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        previous = rest[-1] if rest else ""
        is_value = previous.startswith("-") and "=" not in previous and previous not in flags
        if name in _GLOBAL_ARGS and not is_value:
            front.append(arg)
            if _GLOBAL_ARGS[name] and "=" not in arg and i + 1 < len(argv):
                front.append(argv[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


# az's three-state booleans: bare (= true) or with a value. click options take a value or none.
OPTIONAL_BOOLEANS = frozenset({"--enable-rbac-authorization", "--admin-enabled"})
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})


def fill_optional_booleans(argv: list[str]) -> list[str]:
    """``--admin-enabled`` alone (az's form) becomes ``--admin-enabled true``; a value given stays."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg in OPTIONAL_BOOLEANS and (following is None or following.lower() not in BOOLEAN_WORDS):
            out.append("true")
    return out
