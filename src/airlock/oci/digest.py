"""Content digests (OCI image spec, descriptor.md#digests) and a verifying hasher."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable
from functools import total_ordering
from typing import Any

from airlock.errors import IntegrityError, UsageError

# Only sha256 and sha512 are registered algorithms in the OCI image spec; registries in the wild
# use sha256 exclusively, and accepting anything else would let an archive name a hash we cannot
# verify.
_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)\Z")  # \Z, not $: no trailing newline


@total_ordering
class Digest:
    """A validated ``algorithm:hex`` content digest. ``str()`` gives the canonical form.

    Immutable, hashable and ordered by its text. It holds just that text, interned: a
    10,000-artifact bundle has tens of thousands of them alive at once, and one string per digest
    (instead of an algorithm, a hex part and a ``__dict__``) halves what they cost; interned, every
    Digest of one content (its catalog entry's, its manifest descriptors', its archive member's)
    shares a single string instead of each holding a copy.
    """

    __slots__ = ("_text",)
    _text: str

    def __init__(self, algorithm: str, hex: str) -> None:
        object.__setattr__(self, "_text", sys.intern(f"{algorithm}:{hex}"))

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 hex>``.

        Raises:
            UsageError: the text is not a well-formed digest of a supported algorithm.
        """
        m = _DIGEST_RE.match(text)
        if not m or len(m.group(2)) != _ALGORITHMS[m.group(1)]:
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise UsageError(f"invalid digest {shown!r}: expected sha256:<64 lowercase hex digits>")
        digest = object.__new__(cls)
        object.__setattr__(digest, "_text", sys.intern(text))
        return digest

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` (which is small: manifests, configs)."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @property
    def algorithm(self) -> str:
        return self._text[: self._text.index(":")]

    @property
    def hex(self) -> str:
        return self._text[self._text.index(":") + 1 :]

    def hasher(self) -> Any:
        """A fresh hashlib object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Digest({self._text!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Digest is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and self._text == other._text

    def __lt__(self, other: Digest) -> bool:
        return self._text < other._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Digest, (self.algorithm, self.hex))

    @property
    def short(self) -> str:
        """``sha256:0123456789ab`` — for progress lines, never for identity."""
        return self._text[: self._text.index(":") + 13]


class Verifier:
    """Hashes bytes as they pass and checks size and digest at the end.

    Feed every chunk to :meth:`update`; call :meth:`verify` once all bytes are seen. ``update``
    raises as soon as more bytes than expected arrive, so a hostile stream cannot run on.
    """

    __slots__ = ("_h", "expected", "seen", "size", "what")

    def __init__(self, expected: Digest, size: int, *, what: str) -> None:
        self.expected = expected
        self.size = size
        self.what = what
        self.seen = 0
        self._h = expected.hasher()

    def update(self, chunk: bytes | memoryview) -> None:
        """Add ``chunk``. Raises IntegrityError when the stream exceeds its declared size."""
        self.seen += len(chunk)
        if self.seen > self.size:
            raise IntegrityError(f"{self.what} {self.expected}: more than the declared {self.size} bytes arrived")
        self._h.update(chunk)

    def check(self, chunks: Iterable[bytes | memoryview]) -> None:
        """Feed every chunk of ``chunks`` and verify; raises IntegrityError on any mismatch."""
        for chunk in chunks:
            self.update(chunk)
        self.verify()

    def verify(self) -> None:
        """Raises IntegrityError unless exactly ``size`` bytes with the expected digest were seen."""
        if self.seen != self.size:
            raise IntegrityError(
                f"{self.what} {self.expected}: size mismatch, expected {self.size} bytes, got {self.seen}"
            )
        actual = self._h.hexdigest()
        if actual != self.expected.hex:
            raise IntegrityError(
                f"{self.what} {self.expected}: digest mismatch, content hashes to {self.expected.algorithm}:{actual}"
            )
