"""Blobs on a registry: size, verified download with Range resume, cross-repository mount, upload.

The functions act through a :class:`~airlock.registry.session.Session` and keep its error and retry
contracts (see :mod:`airlock.registry.client`); :class:`~airlock.registry.client.RegistryClient`
offers them as methods.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from urllib.parse import urljoin

from urllib3.exceptions import HTTPError as Urllib3Error

from airlock.errors import RegistryError
from airlock.oci.digest import Digest, Verifier
from airlock.oci.manifest import Descriptor
from airlock.registry.retry import RETRY_STATUSES
from airlock.registry.session import Session, discard, pull_scope, push_scope, reason

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # read size for blob streams: large reads keep Python overhead per byte low
# Blobs up to this size are streamed in one PUT: measured on the local registry, that moves a
# 200 MiB layer ~10% faster than 32 MiB PATCHes sent one after another (each waits for the
# registry to absorb it) and needs no chunk held in memory (import RSS 129 -> 68 MB). Larger
# blobs go in PATCH chunks held in memory, so a broken connection costs one chunk, not the layer;
# callers that can re-read a smaller blob retry it whole (see transfer.importer).
MONOLITHIC_MAX = 2 * 1024 * 1024 * 1024
UPLOAD_CHUNK = 32 * 1024 * 1024


def blob_size(session: Session, repository: str, digest: Digest) -> int | None:
    """The size of a blob in ``repository`` (HEAD), or None when it is not there."""
    path = f"/v2/{repository}/blobs/{digest}"
    resp = session.send("HEAD", path, scopes=(pull_scope(repository),))
    if resp.status == 404:
        discard(resp)
        return None
    if resp.status != 200:
        raise session.fail(resp, "HEAD", path, f"blob {repository}@{digest}")
    discard(resp)
    return int(resp.headers.get("Content-Length", "0") or 0)


def iter_blob(session: Session, repository: str, desc: Descriptor, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Stream a blob, verifying its size and digest; resumes broken downloads with Range.

    The generator raises IntegrityError at the end (after the last chunk) if the content does
    not match ``desc`` — consumers must not commit what they wrote until it is exhausted.

    Raises:
        NotFound, RegistryError, IntegrityError.
    """
    what = f"blob {repository}@{desc.digest}"
    path = f"/v2/{repository}/blobs/{desc.digest}"
    verifier = Verifier(desc.digest, desc.size, what=what)
    offset = 0
    breaks = 0
    while True:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = session.send("GET", path, scopes=(pull_scope(repository),), headers=headers)
        if resp.status == 200 and offset:
            # The server ignored Range; skip what we already have rather than fail.
            skip = offset
        elif resp.status == 206 and offset:
            if not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                discard(resp)
                raise RegistryError(f"{what}: registry answered a resume with the wrong range")
            skip = 0
        elif resp.status == 200:
            skip = 0
        else:
            raise session.fail(resp, "GET", path, what)
        clean = False
        try:
            for chunk in resp.stream(chunk_size, decode_content=False):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                verifier.update(chunk)
                offset += len(chunk)
                yield chunk
            clean = True
        except Urllib3Error as exc:
            breaks += 1
            if breaks >= session.retry.attempts:
                raise RegistryError(
                    f"{what}: download broke {breaks} times, last at byte {offset} ({reason(exc)})",
                    transient=True,
                ) from None
            log.info("%s: download broke at byte %d, resuming", what, offset)
            session.retry.sleep(breaks)
        finally:
            if clean:
                resp.release_conn()
            else:
                discard(resp)
        if clean:
            if offset < desc.size and breaks < session.retry.attempts:
                # A short body without an error (e.g. proxy cut): resume as well.
                breaks += 1
                continue
            break
    verifier.verify()


def mount_blob(session: Session, repository: str, digest: Digest, source_repository: str) -> bool:
    """Cross-repository mount; True if the registry mounted it, False if it declined."""
    path = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source_repository}"
    resp = session.send("POST", path, scopes=(push_scope(repository), pull_scope(source_repository)))
    if resp.status == 201:
        discard(resp)
        return True
    if resp.status == 202:
        # Declined: the registry opened an upload session instead; cancel it politely.
        location = resp.headers.get("Location")
        discard(resp)
        if location:
            _cancel_upload(session, repository, location)
        return False
    raise session.fail(resp, "POST", path, f"mount of blob {digest} into {repository}")


def mount_or_start(session: Session, repository: str, digest: Digest, source_repository: str) -> str | None:
    """Mount ``digest`` from ``source_repository`` (which may be ``repository`` itself: then this
    asks whether the blob is already there), or open an upload session for it, in one request.

    Returns None when the registry mounted it (the blob is in ``repository``), or the absolute URL
    of the upload session the registry opened instead, which the caller must complete (pass it to
    :func:`push_blob`) or cancel. A registry that refuses the mount outright (a 4xx other than
    401/403) gets a plain upload request instead. This is a HEAD and a POST in one round trip: for
    thousands of small blobs, the round trips are what an import costs.

    Raises:
        RegistryError: the registry refused the upload (including auth failures).
    """
    what = f"blob {repository}@{digest}"
    path = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source_repository}"
    resp = session.send("POST", path, scopes=(push_scope(repository), pull_scope(source_repository)))
    if resp.status == 201:
        discard(resp)
        return None
    if resp.status == 202 and resp.headers.get("Location"):
        location = urljoin(session.base + path, resp.headers["Location"])
        discard(resp)
        return location
    if 400 <= resp.status < 500 and resp.status not in (401, 403):
        discard(resp)
        log.debug("%s: registry refused a mount (HTTP %d); uploading", what, resp.status)
        return _start_upload(session, repository, what)
    raise session.fail(resp, "POST", path, f"upload of {what}")


def push_blob(
    session: Session, repository: str, desc: Descriptor, chunks: Iterable[bytes], *, location: str | None = None
) -> None:
    """Upload a blob from ``chunks``, verifying size and digest as the bytes pass.

    Blobs up to MONOLITHIC_MAX go in one streamed PUT; larger ones in PATCH chunks of
    UPLOAD_CHUNK bytes held in memory so each chunk can be resent after a broken connection.
    The registry verifies the digest too, on the final PUT. ``chunks`` is consumed exactly once.
    ``location`` is an upload session already opened (by :func:`mount_or_start`); this takes it
    over, and cancels it on failure. Without it, a session is opened here.

    Raises:
        IntegrityError: the source bytes do not match ``desc`` (nothing is committed).
        RegistryError: the registry refused the upload.
    """
    what = f"blob {repository}@{desc.digest}"
    verifier = Verifier(desc.digest, desc.size, what=what)
    if location is None:
        location = _start_upload(session, repository, what)
    try:
        if desc.size <= MONOLITHIC_MAX:
            _put_monolithic(session, repository, desc, location, chunks, verifier, what)
        else:
            _put_chunked(session, repository, desc, location, chunks, verifier, what)
    except BaseException:
        _cancel_upload(session, repository, location)
        raise


def _start_upload(session: Session, repository: str, what: str) -> str:
    path = f"/v2/{repository}/blobs/uploads/"
    resp = session.send("POST", path, scopes=(push_scope(repository),), headers={"Content-Length": "0"})
    if resp.status != 202 or not resp.headers.get("Location"):
        raise session.fail(resp, "POST", path, f"upload of {what}")
    location = urljoin(session.base + path, resp.headers["Location"])
    discard(resp)
    return location


def _put_monolithic(
    session: Session,
    repository: str,
    desc: Descriptor,
    location: str,
    chunks: Iterable[bytes],
    verifier: Verifier,
    what: str,
) -> None:
    def body() -> Iterator[bytes]:
        for chunk in chunks:
            verifier.update(chunk)
            yield chunk
        verifier.verify()

    url = _with_query(location, f"digest={desc.digest}")
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
    resp = session.send("PUT", url, scopes=(push_scope(repository),), headers=headers, body=body, retry=False)
    if resp.status != 201:
        raise session.fail(resp, "PUT", url, what)
    discard(resp)


def _put_chunked(
    session: Session,
    repository: str,
    desc: Descriptor,
    location: str,
    chunks: Iterable[bytes],
    verifier: Verifier,
    what: str,
) -> None:
    sent = 0
    buf = bytearray()

    def flush(data: bytes) -> None:
        nonlocal location, sent
        start = sent
        for attempt in range(1, session.retry.attempts + 1):
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data) - (sent - start)),
                "Content-Range": f"{sent}-{start + len(data) - 1}",
            }
            try:
                resp = session.send(
                    "PATCH",
                    location,
                    scopes=(push_scope(repository),),
                    headers=headers,
                    body=bytes(data[sent - start :]),
                    retry=False,
                )
            except RegistryError:
                if attempt == session.retry.attempts:
                    raise
                session.retry.sleep(attempt)
                sent = start + _upload_offset(session, repository, location, what, start, len(data))
                continue
            if resp.status == 202:
                location = urljoin(location, resp.headers.get("Location", location))
                discard(resp)
                sent = start + len(data)
                return
            if resp.status in RETRY_STATUSES and attempt < session.retry.attempts:
                discard(resp)
                session.retry.sleep(attempt, resp.headers.get("Retry-After"))
                sent = start + _upload_offset(session, repository, location, what, start, len(data))
                continue
            raise session.fail(resp, "PATCH", location, what)

    for chunk in chunks:
        verifier.update(chunk)
        buf += chunk
        if len(buf) >= UPLOAD_CHUNK:
            flush(bytes(buf))
            buf.clear()
    verifier.verify()
    if buf:
        flush(bytes(buf))
    url = _with_query(location, f"digest={desc.digest}")
    resp = session.send("PUT", url, scopes=(push_scope(repository),), headers={"Content-Length": "0"})
    if resp.status == 404 and blob_size(session, repository, desc.digest) == desc.size:
        # A retried final PUT whose first answer was lost: the session is gone because it completed.
        discard(resp)
        return
    if resp.status != 201:
        raise session.fail(resp, "PUT", url, what)
    discard(resp)


def _upload_offset(session: Session, repository: str, location: str, what: str, start: int, length: int) -> int:
    """How much of the current chunk the registry holds (GET on the upload session's Range)."""
    resp = session.send("GET", location, scopes=(push_scope(repository),))
    rng = resp.headers.get("Range", "")
    discard(resp)
    if resp.status != 204:
        raise RegistryError(
            f"{what}: upload session lost (HTTP {resp.status}); start the import again",
            status=resp.status,
        )
    try:
        end = int(rng.rpartition("-")[2]) + 1 if rng else 0
    except ValueError:
        end = 0
    if start == 0 and rng in ("0-0", "bytes=0-0"):
        # distribution reports an empty session as "0-0" (inclusive end), the same as one
        # holding one byte; a first chunk that failed is far likelier to have left nothing.
        end = 0
    return max(0, min(end - start, length))


def _cancel_upload(session: Session, repository: str, location: str) -> None:
    try:
        resp = session.send("DELETE", location, scopes=(push_scope(repository),), retry=False)
        discard(resp)
    except RegistryError:
        pass  # best effort: distribution purges abandoned uploads itself


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query
