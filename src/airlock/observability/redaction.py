"""The one redaction of credentials in text a person or a log collector may see.

Applied to every log line (text and JSON), to the CLI's ``error:`` lines, and to the values of the
JSON log fields; the adapters already keep SAS tokens and passwords out of their messages
(``registry/client.py``, ``storage/azure_blob.py``), this is the net under them.
"""

from __future__ import annotations

import re

_SECRETS = [
    # A SAS signature, also URL-encoded once (…%26sig%3D…) as it appears inside another URL.
    (re.compile(r"(?i)(?<![a-z])sig(=|%3D)[^&\s\"']+"), r"sig\1REDACTED"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 REDACTED"),
    (re.compile(r"(?i)(accountkey|password|secret|token)=([^;&\s\"']+)"), r"\1=REDACTED"),
    # The same keys as JSON or a Python dict shows them: "password": "x", 'token': 'x'.
    (re.compile(r"(?i)([\"'](?:accountkey|password|secret|token)[\"']\s*:\s*[\"'])[^\"']*"), r"\1REDACTED"),
    # airlock's own API tokens (api/tokens.py), wherever they appear.
    (re.compile(r"\balt_[A-Za-z0-9_-]{20,}"), "alt_REDACTED"),
]


def redact(text: str) -> str:
    """Remove anything that looks like a credential (SAS signature, auth header, key=value secret,
    an airlock API token)."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text
