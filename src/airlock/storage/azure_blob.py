"""Azure Blob Storage through ``azure-storage-blob`` (SDK: here, ``azure_sdk.py``, ``azure_account.py`` only).

Addresses: ``https://<account>.blob.core.windows.net/<container>/<blob>`` (and the other clouds'
suffixes), or path-style ``http(s)://host[:port]/<account>/<container>/<blob>`` as Azurite and
Azure Stack serve them. Credential: a SAS token, or an Azure ``TokenCredential`` (managed identity,
``DefaultAzureCredential``) when no SAS is given.

Writes stage blocks in parallel and commit the block list at the end, with ``Content-MD5`` of the
whole blob and the caller's metadata; uncommitted blocks are never visible. Resumable writes name
their blocks so that a later run can continue after them (:class:`AzureResumableWriter`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    ContainerClient,
    ContentSettings,
)

from airlock.errors import BlobChanged, BlobExists, BlobNotFound, StorageAuthError, StorageError
from airlock.storage.azure_sdk import RETRY, credential_for, fail, mapped, sdk_session
from airlock.storage.base import BlobInfo, Staged
from airlock.storage.block_ids import (
    ID_LENGTH,
    MARK_MIN,
    MARKED_BLOCKS_MAX,
    KeptCheck,
    StagedBlock,
    check_tag,
    furthest,
    kept_blocks,
    make_id,
    staged_runs,
)
from airlock.storage.location import blob_url

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 * 1024 * 1024  # staged block size; 50,000 blocks x 4 MiB = 195 GiB per blob
MAX_BLOCKS = 50_000  # Azure's limit of blocks in one blob
UPLOADS_IN_FLIGHT = 4  # measured on Azurite: 4 concurrent transfers ~1.4x one (local-services.md)
RANGE_SIZE = 4 * 1024 * 1024  # 4 in flight: 16 MiB of read-ahead, enough to keep Azurite busy
RANGES_IN_FLIGHT = 4


class AzureBlob:
    """A blob in Azure Blob Storage (or Azurite). See :class:`airlock.storage.base.Blob`."""

    def __init__(
        self, *, account_url: str, container: str, blob: str, sas_token: str | None, credential: object = None
    ) -> None:
        self.display = blob_url(account_url, container, blob)
        self._where = (account_url, container, blob, sas_token, credential)
        self._client = BlobClient(
            account_url,
            container,
            blob,
            credential=credential_for(self.display, account_url, sas_token, credential),
            retry_policy=RETRY,
            connection_timeout=10,
            read_timeout=120,
            session=sdk_session(),
        )

    def stat(self) -> BlobInfo | None:
        return self.properties_of(self._client, display=self.display)

    @staticmethod
    def properties_of(client: BlobClient, *, display: str = "") -> BlobInfo | None:
        try:
            props = client.get_blob_properties()
        except ResourceNotFoundError:
            return None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            fail(exc, op="stat", display=display or client.url.split("?", 1)[0])
        md5 = props.content_settings.content_md5
        return BlobInfo(
            size=int(props.size),
            last_modified=props.last_modified,
            metadata=dict(props.metadata or {}),
            content_md5=bytes(md5) if md5 else None,
            etag=props.etag,
        )

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        info = self.stat()
        if info is None:
            raise BlobNotFound(f"read {self.display}: the blob does not exist")
        end = info.size if length is None else min(info.size, offset + length)
        return self._ranges(offset, end, info.etag)

    def _ranges(self, start: int, end: int, etag: str | None) -> Iterator[bytes]:
        # Ranged GETs in a small window of threads: bounded memory, several requests in flight,
        # and the etag condition makes a blob replaced mid-read fail instead of mixing versions.
        pool = ThreadPoolExecutor(max_workers=RANGES_IN_FLIGHT, thread_name_prefix="azure-read")
        pending: deque[Future[bytes]] = deque()
        pos = start

        def fetch(off: int, n: int) -> bytes:
            with mapped("read", self.display):
                kw: dict[str, Any] = {}
                if etag:
                    kw = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
                sink = _Sink()
                self._client.download_blob(offset=off, length=n, max_concurrency=1, **kw).readinto(
                    cast(IO[bytes], sink)
                )
                return sink.data()

        try:
            while pos < end or pending:
                while pos < end and len(pending) < RANGES_IN_FLIGHT:
                    n = min(RANGE_SIZE, end - pos)
                    pending.append(pool.submit(fetch, pos, n))
                    pos += n
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def writer(self, *, overwrite: bool, metadata: dict[str, str]) -> AzureWriter:
        if not overwrite:
            self._refuse_existing()
        return AzureWriter(self._client, self.display, overwrite=overwrite, metadata=metadata)

    def suffixed(self, suffix: str) -> AzureBlob:
        account_url, container, blob, sas_token, credential = self._where
        return AzureBlob(
            account_url=account_url, container=container, blob=blob + suffix, sas_token=sas_token, credential=credential
        )

    def _refuse_existing(self) -> None:
        try:
            exists = self.stat() is not None
        except StorageAuthError:
            # A write-only SAS (least privilege for a copy target) cannot read properties; the
            # commit's If-None-Match: * still refuses to replace an existing blob.
            exists = False
        if exists:
            raise BlobExists(f"blob {self.display} already exists", blob=self.display)

    def staged(self) -> Staged | None:
        return furthest(self._staged_runs())

    def _staged_runs(self) -> dict[str, list[StagedBlock]]:
        """Uncommitted blocks of resumable writes by tag, contiguous from block 0."""
        try:
            _committed, uncommitted = self._client.get_block_list("uncommitted")
        except ResourceNotFoundError:
            return {}
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            fail(exc, op="stat", display=self.display)
        return staged_runs((str(block.id), int(block.size or 0)) for block in uncommitted)

    def read_staged(self, offset: int, length: int) -> Iterator[bytes]:
        raise StorageError(f"{self.display}: uncommitted blocks cannot be read back")

    def resumable_writer(
        self, *, overwrite: bool, metadata: dict[str, str], tag: str, keep: int, checkable: bool = False
    ) -> AzureResumableWriter:
        check_tag(tag)  # now, not on a staging thread once the bytes are streaming
        if not overwrite:
            self._refuse_existing()
        kept = kept_blocks(self._staged_runs().get(tag, []), keep) if keep else []
        if kept is None:
            raise StorageError(f"cannot resume {self.display}: no staged checkpoint ends at byte {keep}")
        return AzureResumableWriter(
            self._client, self.display, overwrite=overwrite, metadata=metadata, tag=tag, kept=kept, size=keep,
            checkable=checkable,
        )  # fmt: skip

    def delete(self, *, if_match: str | None = None) -> None:
        kw: dict[str, Any] = {}
        if if_match is not None:
            kw = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            self._client.delete_blob(**kw)
        except ResourceModifiedError:
            raise BlobChanged(f"blob {self.display} changed since it was read; not deleted") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            fail(exc, op="delete", display=self.display)


class _Sink:
    """Keeps what the SDK writes to it, without copying: ``readall()`` copies each range into a
    BytesIO, which with several ranges in flight (and a second reader for a large blob) was tens
    of MiB of peak memory for nothing."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        # Kept as given when it is immutable bytes (what the SDK writes today); anything else is copied.
        self._parts.append(data if type(data) is bytes else bytes(data))
        return len(data)

    def data(self) -> bytes:
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)


class AzureWriter:
    """Parallel staged-block upload; see :class:`airlock.storage.base.BlobWriter`.

    The whole blob's MD5 (its ``Content-MD5``, which azcopy and ``az storage blob download`` check)
    is computed block by block, in order, on a thread of its own: MD5 runs at ~560 MiB/s here, so
    on the writing thread it was the largest single cost of an export to Azure.

    Memory: at most ``UPLOADS_IN_FLIGHT + 1`` blocks of ``BLOCK_SIZE`` bytes.
    """

    def __init__(self, client: BlobClient, display: str, *, overwrite: bool, metadata: dict[str, str]) -> None:
        self._client = client
        self._display = display
        self._overwrite = overwrite
        self._metadata = metadata
        self._parts: list[bytes] = []  # pending bytes of the next block, joined once when it is full
        self._buffered = 0
        self._md5 = hashlib.md5()
        self._size = 0
        self._ids: list[str] = []
        self._prefix = secrets.token_hex(8)  # ids of one blob must all have the same length
        self._pool = ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT, thread_name_prefix="azure-stage")
        self._inflight: deque[Future[None]] = deque()
        # One worker, so blocks are hashed in the order they were submitted.
        self._md5_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="azure-md5")
        self._md5_pending: deque[Future[None]] = deque()
        self._lock = threading.Lock()
        self._done = False
        self._hash_all = True  # False when the blob begins with blocks this writer did not hash

    def write(self, data: bytes | memoryview) -> None:
        self._size += len(data)
        if isinstance(data, bytes) and len(data) <= BLOCK_SIZE - self._buffered:
            self._parts.append(data)  # the common case: whole chunks, kept without a copy
            self._buffered += len(data)
            if self._buffered == BLOCK_SIZE:
                self._flush()
            return
        view = memoryview(data)
        while view:
            take = min(len(view), BLOCK_SIZE - self._buffered)
            self._parts.append(bytes(view[:take]))
            self._buffered += take
            view = view[take:]
            if self._buffered == BLOCK_SIZE:
                self._flush()

    def _block_id(self, seq: int, label: int | None, block: bytes) -> str:
        """The id of block ``seq``, which holds ``block`` (on a staging thread: it may hash it)."""
        return f"{self._prefix}-{seq:08d}".ljust(ID_LENGTH, "-")  # the SDK sends it base64-encoded

    def _take_label(self) -> int | None:
        """The label of the block being staged now (on the writing thread); None: it ends no unit."""
        return None

    def _flush(self) -> None:
        block = b"".join(self._parts)
        self._parts = []
        self._buffered = 0
        self._stage(block)

    def _stage(self, block: bytes) -> None:
        if len(self._ids) >= MAX_BLOCKS:
            raise StorageError(f"write {self._display}: more than {MAX_BLOCKS} blocks; the archive is too large")
        seq = len(self._ids)
        label = self._take_label()
        self._ids.append("")  # the staging thread names it: the id may carry the block's hash
        while len(self._inflight) >= UPLOADS_IN_FLIGHT:
            self._inflight.popleft().result()
        while len(self._md5_pending) >= UPLOADS_IN_FLIGHT:
            self._md5_pending.popleft().result()
        self._md5_pending.append(self._md5_pool.submit(self._md5.update, block))

        def stage() -> None:
            block_id = self._ids[seq] = self._block_id(seq, label, block)
            with mapped("write", self._display):
                self._client.stage_block(block_id, block, length=len(block))

        self._inflight.append(self._pool.submit(stage))

    def commit(self) -> BlobInfo:
        try:
            if self._buffered or not self._ids:
                self._flush()
            while self._inflight:
                self._inflight.popleft().result()
            while self._md5_pending:
                self._md5_pending.popleft().result()
            kw: dict[str, Any] = {}
            if not self._overwrite:
                kw = {"match_condition": MatchConditions.IfMissing}
            md5: bytes | None = self._md5.digest() if self._hash_all else None
            with mapped("commit", self._display):
                try:
                    result = self._client.commit_block_list(
                        [BlobBlock(block_id=i) for i in self._ids],
                        content_settings=ContentSettings(
                            content_type="application/x-tar", content_md5=bytearray(md5) if md5 else None
                        ),
                        metadata=self._metadata,
                        **kw,
                    )
                except ResourceModifiedError:
                    try:
                        existing = AzureBlob.properties_of(self._client, display=self._display)
                    except StorageAuthError:
                        existing = None
                    if existing is not None and existing.content_md5 == md5 and existing.size == self._size:
                        # The SDK retried a commit whose first answer was lost: the blob is ours.
                        return existing
                    raise BlobExists(
                        f"blob {self._display} was created by someone else while this one was written",
                        blob=self._display,
                    ) from None
            return BlobInfo(
                size=self._size,
                last_modified=result.get("last_modified"),  # type: ignore[arg-type]
                metadata=dict(self._metadata),
                content_md5=md5,
                etag=str(result.get("etag")),
            )
        finally:
            self.abort()

    def abort(self) -> None:
        # Uncommitted blocks are invisible and the service drops them after a week.
        if not self._done:
            self._done = True
            for f in self._inflight:
                f.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._md5_pool.shutdown(wait=True, cancel_futures=True)
            self._parts = []
            self._buffered = 0


class AzureResumableWriter(AzureWriter):
    """Staged blocks a later run may continue (:class:`airlock.storage.base.ResumableWriter`): ids
    as :mod:`airlock.storage.block_ids` says; a block flushed at :meth:`mark` carries its label. A
    resumed write commits the kept blocks with its own. It has a ``Content-MD5`` only when the kept
    bytes were given again (:meth:`check_kept`: a copy's), checked against the hashes in their ids
    (a ``checkable`` write's: the others' ids have none, which saves hashing every byte).
    """

    def __init__(
        self,
        client: BlobClient,
        display: str,
        *,
        overwrite: bool,
        metadata: dict[str, str],
        tag: str,
        kept: list[StagedBlock],
        size: int,
        checkable: bool,
    ) -> None:
        super().__init__(client, display, overwrite=overwrite, metadata=metadata)
        self._tag = tag
        self._ids = [block.id for block in kept]
        self._size = size
        self._hash_all = not kept
        self._label: int | None = None
        self._kept = KeptCheck(kept, display)
        self._checkable = checkable

    def _take_label(self) -> int | None:
        label, self._label = self._label, None
        return label

    def _block_id(self, seq: int, label: int | None, block: bytes) -> str:
        return make_id(self._tag, seq, label, block if self._checkable else None)

    def check_kept(self, data: bytes | memoryview) -> None:
        if self._buffered or len(self._ids) > len(self._kept.blocks):
            raise StorageError(f"write {self._display}: the kept bytes are given again before any new ones")
        self._kept.feed(data)  # on this thread: a mismatch stops the copy before it uploads more
        while len(self._md5_pending) >= UPLOADS_IN_FLIGHT:
            self._md5_pending.popleft().result()
        self._md5_pending.append(self._md5_pool.submit(self._md5.update, bytes(data)))

    def commit(self) -> BlobInfo:
        if self._kept.given:
            try:
                self._kept.finish()
            except BaseException:
                self.abort()
                raise
            self._hash_all = True
        return super().commit()

    def mark(self, label: int) -> None:
        if self._buffered >= MARK_MIN and len(self._ids) < MARKED_BLOCKS_MAX:
            self._label = label
            self._flush()

    def suspend(self) -> None:
        self.abort()  # uncommitted blocks stay either way; a resume lists them


class AzureContainer:
    """A blob container; see :class:`airlock.storage.base.Container`."""

    def __init__(self, *, account_url: str, container: str, sas_token: str | None, credential: object = None) -> None:
        self.display = f"{account_url}/{container}"
        self._account_url = account_url
        self._container = container
        self._sas = sas_token
        self._credential = credential_for(self.display, account_url, sas_token, credential)
        self._client = ContainerClient(
            account_url, container, credential=self._credential, retry_policy=RETRY, connection_timeout=10
        )

    def list_blobs(self) -> Iterator[tuple[str, BlobInfo]]:
        with mapped("list", self.display):
            for props in self._client.list_blobs(include=["metadata"]):
                md5 = props.content_settings.content_md5
                yield (
                    str(props.name),
                    BlobInfo(
                        size=int(props.size),
                        last_modified=props.last_modified,
                        metadata=dict(props.metadata or {}),
                        content_md5=bytes(md5) if md5 else None,
                        etag=props.etag,
                    ),
                )

    def blob(self, name: str) -> AzureBlob:
        return AzureBlob(
            account_url=self._account_url,
            container=self._container,
            blob=name,
            sas_token=self._sas,
            credential=None if self._sas else self._credential,
        )


def identity_credential(client_id: str | None) -> object:
    """The Azure credential of a managed identity: user-assigned when ``client_id`` is given, else
    whatever the environment offers (system-assigned identity, AZURE_* variables, az login)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
