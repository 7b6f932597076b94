"""The one CLI kernel: what every command that prints a result shares, in one decorator.

``@command(app, "show", columns=_columns, group=True)`` registers a typer command whose body takes
only its own flags and returns its result. The kernel adds ``-o/--output`` and ``--query`` (and, with
``group=True``, ``-g/--resource-group``) to the command's signature, checks ``-o``/``--query`` before
the body runs, hands the body an :class:`Arm` (the ARM client and the resource group) when it has a
parameter named ``arm``, and prints what it returns: as ``-o`` asks, with the command's own table
columns for ``-o table``. A body returns None to print nothing, or a :class:`Reply` to fail after
printing (a failed run, a partial export).

Typer reads a command's options from its signature, so the kernel writes ``__signature__``: the
body's parameters, ``-g`` after the last required one (where the commands always had it), then
``-o`` and ``--query``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from airlock.cli.arm import ArmClient, resource_group
from airlock.cli.common import Row, hint
from airlock.cli.output import FORMATS, check_output, render
from airlock.cli.table import print_table
from airlock.errors import AirlockError

Columns = Callable[[Any], Row]
"""One table row of one item of the result (an ARM resource): az's per-resource table columns."""
Table = Callable[[Any], list[Row]]
"""Every table row of the whole result (the artifacts of an export, say)."""

# The options the kernel adds to every command (in az's words).
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help=f"Output format: {', '.join(FORMATS)}.", show_default=True)
]
QueryOpt = Annotated[
    str | None, typer.Option("--query", help='JMESPath query applied to the output, e.g. "[].name" (as in az).')
]
GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--resource-group",
        "-g",
        help="Resource group. Defaults to the one set with `airlock configure --defaults group=<name>`.",
        show_default=False,
    ),
]

# The parameter names the kernel gives those options (and the body's ``arm``).
_ARM = "arm"
_GROUP = "resource_group_name"
_OUTPUT = "output"
_QUERY = "query"


@dataclass(frozen=True)
class Reply:
    """A result to print, then a failure to raise: the command prints what happened and exits non-zero."""

    value: Any
    failure: AirlockError | None = None


class Arm:
    """What a control-plane command body is handed: the ARM client, open for the command's duration,
    and its resource group.

    The group is resolved when the body first asks for it (``-g``, else the configured default), so a
    command's own flags are still checked first, as they always were.
    """

    def __init__(self, client: ArmClient, given_group: str | None) -> None:
        self.client = client
        self.given_group = given_group
        self._group: str | None = None

    @property
    def group(self) -> str:
        """``-g``, else ``airlock configure --defaults group=``.

        Raises:
            UsageError: neither is set (the message says how to set one).
        """
        if self._group is None:
            self._group = resource_group(self.given_group)
        return self._group

    @property
    def local(self) -> bool:
        """True when the API runs in this process (no ``AIRLOCK_ENDPOINT``)."""
        return self.client.local


def command(
    app: typer.Typer,
    name: str,
    *,
    columns: Columns | None = None,
    table: Table | None = None,
    note: Callable[[Any], str | None] | None = None,
    group: bool = False,
    output: bool = True,
    help: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Register the decorated body as command ``name`` of ``app``.

    ``columns`` (per item) or ``table`` (per result) make the ``-o table`` rows when no ``--query`` is
    given; ``note`` is then said on stderr below the table (what the table shortens). ``group`` adds
    ``-g/--resource-group``; ``output=False`` leaves out ``-o``/``--query`` (a command that prints
    nothing). ``help`` replaces the body's docstring as the command's help.

    The command raises what the body raises, after printing nothing; a :class:`Reply`'s failure after
    printing its value; UsageError for a bad ``-o``/``--query`` before the body runs. Registering
    raises TypeError for a body that names an option the kernel adds, or takes ``-g`` without ``arm``.
    """

    def register(body: Callable[..., Any]) -> Callable[..., None]:
        own = inspect.signature(body, eval_str=True).parameters
        wants_arm = _ARM in own
        clash = {_GROUP, _OUTPUT, _QUERY} & set(own)
        if clash:
            raise TypeError(f"{body.__qualname__}: the kernel supplies {', '.join(sorted(clash))}")
        if group and not wants_arm:
            raise TypeError(f"{body.__qualname__}: -g is for commands that take the ARM client (an arm parameter)")
        params = _kernel_signature([p for p in own.values() if p.name != _ARM], group=group, output=output)

        @functools.wraps(body)
        def run(**kwargs: Any) -> None:
            fmt = kwargs.pop(_OUTPUT, "json")
            query = kwargs.pop(_QUERY, None)
            given_group = kwargs.pop(_GROUP, None)
            check_output(fmt, query)
            if wants_arm:
                # Leaving the client stops an in-process API (waiting for runs it started) before printing.
                with ArmClient() as client:
                    result = body(**kwargs, arm=Arm(client, given_group))
            else:
                result = body(**kwargs)
            reply = result if isinstance(result, Reply) else Reply(result)
            if reply.value is not None and output:
                _print(reply.value, fmt, query, columns=columns, table=table, note=note)
            if reply.failure is not None:
                raise reply.failure

        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        app.command(name, help=help)(run)
        return run

    return register


def _kernel_signature(own: list[inspect.Parameter], *, group: bool, output: bool) -> list[inspect.Parameter]:
    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    if group:
        required = [i for i, p in enumerate(params) if p.default is inspect.Parameter.empty]
        at = required[-1] + 1 if required else 0
        params.insert(at, option(_GROUP, GroupOpt, None))
    if output:
        params += [option(_OUTPUT, OutputOpt, "json"), option(_QUERY, QueryOpt, None)]
    return params


def _print(
    value: Any,
    fmt: str,
    query: str | None,
    *,
    columns: Columns | None,
    table: Table | None,
    note: Callable[[Any], str | None] | None,
) -> None:
    """``value`` as ``-o`` asks. With ``-o table`` and no ``--query``, the command's own rows (az's table
    transformers); with a query, az shows the query's result as is, in the same table style."""
    if fmt == "table" and not query and (columns is not None or table is not None):
        if table is not None:
            rows = table(value)
        else:
            assert columns is not None
            items = value if isinstance(value, list) else [value]
            rows = [columns(item) for item in items if isinstance(item, dict)]
        print_table(rows)
        said = note(value) if note is not None else None
        if said:
            hint(said)
        return
    render(value, fmt=fmt, query=query, console=Console())
