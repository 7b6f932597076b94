"""Control-plane commands that need no pipeline flow: ``configure --defaults`` (the ``-g`` default),
``keyvault set-policy`` without ``-g``, and ``storage container generate-sas`` offline, run as the
real console script."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

from airlock.testing.console import Console
from airlock.testing.registry_server import RegistryServer

# A well-formed (base64) storage account key that signs nothing real.
ACCOUNT_KEY = "a2V5LWZvci10ZXN0aW5nLW9ubHktbm90LWEtcmVhbC1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="


# ------------------------------------------------------------------------------------------ key vault


def test_set_policy_finds_the_vault_without_a_group(tmp_path: Path) -> None:
    """As az: -g is optional for set-policy; the vault's resource group is found by listing vaults.

    Needs the subscription-wide list GET /subscriptions/{sub}/providers/Microsoft.KeyVault/vaults in
    the API (ARM has it; airlock's API lists per resource group only).
    """
    cli = Console(tmp_path)
    cli("keyvault", "create", "-g", "vaultrg", "-n", "lonely-kv").json()
    run = cli("keyvault", "set-policy", "-n", "lonely-kv", "--object-id", "1234", "--secret-permissions", "get")
    assert run.json()["id"].endswith("/resourceGroups/vaultrg/providers/Microsoft.KeyVault/vaults/lonely-kv")


# ------------------------------------------------------------------------------------------ configure, defaults


def test_resource_group_default(tmp_path: Path, target_registry: RegistryServer) -> None:
    cli = Console(tmp_path)
    message = cli("acr", "list").only_error(2)
    assert "--resource-group/-g is required" in message
    assert "airlock configure --defaults group=" in message

    cli.ok("configure", "--defaults", "group=defaultrg")
    listed, created = cli.parallel(
        ("configure", "--list-defaults", "--query", "[].[name, value]"),
        ("acr", "create", "-n", "defaultreg1", "--login-server", target_registry.url),
    )
    assert listed.json() == [["group", "defaultrg"]]
    assert "/resourceGroups/defaultrg/" in created.json()["id"]


# ------------------------------------------------------------------------------------------ storage


def test_generate_sas_offline(tmp_path: Path) -> None:
    cli = Console(tmp_path)
    args = ("storage", "container", "generate-sas", "--name", "transfer", "--account-name", "myacct",
            "--account-key", ACCOUNT_KEY, "--expiry", "2030-01-31T12:00Z", "--permissions", "lwca",
            "--https-only")  # fmt: skip
    env_cli = Console(
        tmp_path,
        env={"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=myacct;AccountKey={ACCOUNT_KEY}"},
    )
    sas = ("storage", "container", "generate-sas", "--name", "t", "--account-name", "a")
    with ThreadPoolExecutor(max_workers=2) as pool:
        from_env_future = pool.submit(
            env_cli, "storage", "container", "generate-sas", "--name", "transfer", "--expiry", "2030-01-31T12:00Z",
            "--permissions", "lwca", "--https-only",
        )  # fmt: skip
        as_json, as_tsv, no_key, bad_perm, bad_date = cli.parallel(
            args,
            (*args, "-o", "tsv"),
            (*sas, "--expiry", "2030-01-01", "--permissions", "r"),
            (*sas, "--account-key", ACCOUNT_KEY, "--expiry", "2030-01-01", "--permissions", "rq"),
            (*sas, "--account-key", ACCOUNT_KEY, "--expiry", "next week", "--permissions", "r"),
        )
        from_env = from_env_future.result()
    token = as_json.json()
    assert isinstance(token, str)
    assert as_tsv.stdout == token + "\n"
    assert not token.startswith("?")
    fields = parse_qs(token)
    assert fields["sp"] == ["acwl"]  # the service's order
    assert fields["se"] == ["2030-01-31T12:00:00Z"]
    assert fields["spr"] == ["https"]
    assert fields["sr"] == ["c"]
    assert fields["sig"]
    assert from_env.json() == token  # the same account, key and parameters from the environment: the same SAS
    assert "no account key" in no_key.only_error(2)
    assert "invalid --permissions 'rq'" in bad_perm.only_error(2)
    assert "--expiry 'next week'" in bad_date.only_error(2)
