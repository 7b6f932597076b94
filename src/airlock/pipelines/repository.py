"""The port in front of the database: :class:`ResourceRepository`, typed by resource model.

Only the services (:mod:`airlock.pipelines.services`) hold one; routers, the CLI and the trigger
go through the services. The SQLAlchemy adapter is :class:`airlock.pipelines.store.SqlResourceRepository`.
Ids are compared case-insensitively, as ARM compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol, TypeVar

from airlock.pipelines.models import Resource

M = TypeVar("M", bound=Resource)


Change = Callable[[M, str | None, str | None], "tuple[M, str | None] | None"]


class Keep:
    """Sentinel type of :data:`KEEP`: leave a column as it is."""


KEEP = Keep()


class ResourceRepository(Protocol):
    """Resources by ARM id, with a run's state and owner beside its document. Thread-safe; each
    call is its own transaction. Holds no business rules."""

    def get(self, resource_id: str, model: type[M]) -> M | None:
        """The resource, if one of ``model``'s type exists under that id (another type: None)."""
        ...

    def get_any(self, resource_id: str) -> Resource | None:
        """The resource under that id, whatever its type."""
        ...

    def put(
        self,
        resource: Resource,
        *,
        state: str | None = None,
        owner: str | Keep | None = KEEP,
        then: Callable[[Any], None] | None = None,
    ) -> None:
        """Insert or replace ``resource`` (creation order is kept on replace; ``owner`` unless given).
        ``then`` is called with the database connection inside the same transaction, after the write
        (a job queue's enqueue: both commit, or neither)."""
        ...

    def delete(self, resource_id: str) -> bool:
        """Delete the resource; False when there was none."""
        ...

    def find(self, model: type[M], *, parent: str | None = None, prefix: str | None = None) -> list[M]:
        """Resources of ``model``'s type in creation order; ``parent`` (a registry id) or ``prefix``
        (an ARM id prefix, such as a subscription's or a resource group's) scopes them."""
        ...

    def children(self, parent: str) -> Iterator[str]:
        """Ids of every resource whose parent is ``parent``."""
        ...

    def state_of(self, resource_id: str) -> tuple[str | None, str | None, datetime | None]:
        """(state, owner, updated_at); all None when the resource does not exist."""
        ...

    def modify(self, resource_id: str, model: type[M], change: Change[M]) -> bool:
        """Read, change and write one resource in one transaction, its row locked against other
        processes meanwhile: ``change(resource, state, owner)`` returns the new (resource, state),
        or None to leave it as it is. False when there is no such resource or nothing was written.
        What ``change`` raises rolls the transaction back and propagates."""
        ...

    def claim(self, resource_id: str, *, expect: tuple[str, str | None], state: str, owner: str) -> bool:
        """Compare-and-swap: set (state, owner) if they are still ``expect``; True when this call did.
        Of processes claiming one run at once, exactly one wins."""
        ...

    def touch(self, resource_ids: list[str]) -> None:
        """Refresh ``updated_at`` (the heartbeat of runs this process executes)."""
        ...

    def ids_in_state(self, model: type[Resource], state: str) -> list[tuple[str, str | None, datetime | None]]:
        """(id, owner, updated_at) of every resource of ``model``'s type in ``state``."""
        ...
