"""Which storage endpoints get a pipeline's credential (airlock.storage.hosts.StorageHosts)."""

from __future__ import annotations

import pytest

from airlock.errors import UsageError
from airlock.storage.hosts import StorageHosts

LISTED = StorageHosts(frozenset({"127.0.0.1:10000", "azurite.internal", "*.blob.local.azurestack.external"}))


@pytest.mark.parametrize(
    ("uri", "trusted"),
    [
        ("https://acct.blob.core.windows.net/transfer", True),
        ("https://acct.blob.core.chinacloudapi.cn/transfer", True),
        ("https://acct.blob.core.usgovcloudapi.net/transfer", True),
        ("https://acct.z12.blob.storage.azure.net/transfer", True),
        ("HTTPS://ACCT.BLOB.CORE.WINDOWS.NET/transfer", True),
        ("http://acct.blob.core.windows.net/transfer", False),  # a SAS would travel in clear
        ("https://acct.blob.core.windows.net.evil.example/transfer", False),
        ("https://blob.core.windows.net@evil.example/transfer", False),
        ("http://127.0.0.1:10000/acct/transfer", True),
        ("http://127.0.0.1:10001/acct/transfer", False),  # another local listener
        ("http://127.0.0.1/acct/transfer", False),
        ("https://azurite.internal:8443/acct/transfer", True),
        ("https://acct.blob.local.azurestack.external/transfer", True),
        ("https://blob.local.azurestack.external.evil/transfer", False),
        ("ftp://acct.blob.core.windows.net/transfer", False),
        ("http://127.0.0.1:notaport/acct/transfer", False),
        # Read as another host by HTTP clients than by urlsplit: never trusted (review finding).
        ("https://evil.example\\.blob.core.windows.net/transfer", False),
        ("https://evil.example%5c.blob.core.windows.net/transfer", False),
        ("https://evil.example .blob.core.windows.net/transfer", False),
        ("https://evil.example\t.blob.core.windows.net/transfer", False),
    ],
)
def test_credentials_go_only_to_azure_blob_over_https_or_listed_hosts(uri: str, trusted: bool) -> None:
    assert LISTED.trusts(uri) is trusted


def test_nothing_but_azure_is_trusted_by_default_and_the_refusal_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRLOCK_STORAGE_HOSTS", raising=False)
    assert not StorageHosts.from_env().trusts("http://127.0.0.1:10000/acct/c")
    with pytest.raises(UsageError, match="AIRLOCK_STORAGE_HOSTS"):
        StorageHosts.from_env().check("http://127.0.0.1:10000/acct/c", "import pipeline p")
    monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", " 127.0.0.1:10000 , ,Other.Host ")
    assert StorageHosts.from_env().extra == {"127.0.0.1:10000", "other.host"}


def test_security_a_backslash_host_is_no_blob_uri_at_all() -> None:
    """Regression: urlsplit saw an Azure host in ``evil.example\\.blob.core.windows.net`` while the SDK
    sent the request, with its SAS, to evil.example."""
    from airlock.errors import UsageError
    from airlock.storage.location import parse_container_uri

    with pytest.raises(UsageError, match="plain DNS name"):
        parse_container_uri("https://evil.example\\.blob.core.windows.net/transfer")
