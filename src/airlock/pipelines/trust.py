"""Who may point a pipeline's credentials where: the confused-deputy rules of the control plane.

A pipeline reads its SAS token as its own identity, and that identity keeps its vault access when
the pipeline is re-PUT. So whoever may change *where* a pipeline's storage is, or *which* secret it
reads, decides where that secret goes. Two rules close it:

- :func:`check_unprivileged_change`: a caller below Owner may re-PUT a pipeline (options, trigger,
  access mode), but not change its storage ``uri`` or ``keyVaultUri``: that needs the Owner who
  granted the identity its vault access (AccessDenied naming the field).
- :class:`airlock.storage.hosts.StorageHosts` (checked by the control plane when a pipeline is
  PUT and again before every use): a credential goes only to Azure Blob Storage over https or to
  the hosts the operator lists in ``AIRLOCK_STORAGE_HOSTS``, whoever configured the pipeline.
"""

from __future__ import annotations

from typing import Any

from airlock.errors import AccessDenied, UsageError
from airlock.pipelines.models import PipelineStorage
from airlock.storage.location import parse_container_uri


def _same_container(old: str | None, new: str | None) -> bool:
    if old == new:
        return True
    if old is None or new is None:
        return False
    try:
        return parse_container_uri(old) == parse_container_uri(new)
    except UsageError:
        return False


def check_unprivileged_change(old: PipelineStorage | None, side: str, storage: dict[str, Any], what: str) -> None:
    """Raises AccessDenied if a non-Owner's PUT would change the ``side`` ("source"/"target") storage
    ``uri`` or ``keyVaultUri`` of an existing pipeline, whose storage is ``old`` (``storage`` is the
    new, normalized storage object). A new pipeline (``old`` None) gets a new identity, with no
    vault access."""
    if old is None:
        return
    if not _same_container(old.uri, storage.get("uri")):
        raise AccessDenied(
            f"{what}: only an Owner may change properties.{side}.uri (the pipeline's identity would send "
            "its storage credential to the new location)"
        )
    if (old.keyVaultUri or None) != (storage.get("keyVaultUri") or None):
        raise AccessDenied(
            f"{what}: only an Owner may change properties.{side}.keyVaultUri (the pipeline's identity would "
            "read another secret and send it to the storage)"
        )
