"""One credential source, in kubectl's order, for Kopf's login and Stanch's client alike."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from stanch.adapters import credentials
from stanch.adapters.credentials import CredentialsError, Selection, resolve
from stanch.wiring.handlers import startup


def kubeconfig(
    path: Path,
    server: str,
    *,
    user: dict[str, Any] | None = None,
    context: str = "main",
    extra_contexts: dict[str, str] | None = None,
    current: str | None = "main",
) -> Path:
    contexts = [{"name": context, "context": {"cluster": context, "user": context, "namespace": "shop"}}]
    clusters = [{"name": context, "cluster": {"server": server}}]
    for name, other in (extra_contexts or {}).items():
        contexts.append({"name": name, "context": {"cluster": name, "user": context}})
        clusters.append({"name": name, "cluster": {"server": other}})
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": context, "user": user or {"token": "file-token"}}],
        "contexts": contexts,
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def service_account(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text("sa-token\n")
    (directory / "namespace").write_text("stanch-system")
    return {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_kubeconfig_wins_over_the_service_account(tmp_path: Path) -> None:
    # The bug: Kopf used KUBECONFIG, lightkube the ServiceAccount: two API servers at once.
    env = service_account(tmp_path / "sa")
    env["KUBECONFIG"] = str(kubeconfig(tmp_path / "config", "https://127.0.0.1:6443"))
    creds = resolve(env=env, service_account_dir=tmp_path / "sa", home=tmp_path)
    assert (creds.server, creds.source) == ("https://127.0.0.1:6443", f"KUBECONFIG={env['KUBECONFIG']}")


def test_the_flag_wins_over_kubeconfig(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "a", "https://a:1"))}
    flag = kubeconfig(tmp_path / "b", "https://b:1", extra_contexts={"other": "https://c:1"})
    assert resolve(Selection(kubeconfig=str(flag)), env=env, home=tmp_path).server == "https://b:1"
    chosen = resolve(Selection(kubeconfig=str(flag), context="other"), env=env, home=tmp_path)
    assert chosen.server == "https://c:1"


def test_home_config_then_service_account(tmp_path: Path) -> None:
    env = service_account(tmp_path / "sa")
    creds = resolve(env=env, service_account_dir=tmp_path / "sa", home=tmp_path)
    assert (creds.server, creds.namespace, creds.source) == (
        "https://10.0.0.1:443",
        "stanch-system",
        "in-cluster ServiceAccount",
    )
    (tmp_path / ".kube").mkdir()
    kubeconfig(tmp_path / ".kube" / "config", "https://home:1")
    assert resolve(env=env, service_account_dir=tmp_path / "sa", home=tmp_path).server == "https://home:1"


def test_a_kubeconfig_list_merges_first_wins(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", "https://a:1", current=None)
    second = kubeconfig(tmp_path / "b", "https://b:1", extra_contexts={"b-only": "https://b2:1"})
    env = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)])}
    # current-context from the second file; the cluster "main" from the first.
    assert resolve(env=env, home=tmp_path).server == "https://a:1"
    assert resolve(Selection(context="b-only"), env=env, home=tmp_path).server == "https://b2:1"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("nothing", "no Kubernetes credentials found; pass --kubeconfig FILE"),
        ("missing-flag", "--kubeconfig /nonexistent: no such file"),
        ("missing-env", "KUBECONFIG=/nonexistent: no such file"),
        ("no-current", "no current context; pass --context NAME (contexts: main)"),
        ("bad-context", "--context 'nope' is not defined (contexts: main)"),
        ("not-yaml", "is not valid YAML"),
        ("context-without-cluster", "names cluster 'gone', which is not defined"),
    ],
)
def test_what_is_missing_is_one_line_with_the_fix(tmp_path: Path, setup: str, message: str) -> None:
    env: dict[str, str] = {}
    selection = Selection()
    path = tmp_path / "config"
    if setup == "missing-flag":
        selection = Selection(kubeconfig="/nonexistent")
    elif setup == "missing-env":
        env["KUBECONFIG"] = "/nonexistent"
    elif setup == "no-current":
        env["KUBECONFIG"] = str(kubeconfig(path, "https://a:1", current=None))
    elif setup == "bad-context":
        env["KUBECONFIG"] = str(kubeconfig(path, "https://a:1"))
        selection = Selection(context="nope")
    elif setup == "not-yaml":
        path.write_text("clusters: [\n")
        env["KUBECONFIG"] = str(path)
    elif setup == "context-without-cluster":
        kubeconfig(path, "https://a:1")
        doc = yaml.safe_load(path.read_text())
        doc["contexts"][0]["context"]["cluster"] = "gone"
        path.write_text(yaml.safe_dump(doc))
        env["KUBECONFIG"] = str(path)
    with pytest.raises(CredentialsError) as caught:
        resolve(selection, env=env, service_account_dir=tmp_path / "no-sa", home=tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def plugin(tmp_path: Path, token: str, *, expires: datetime | None = None, exit_code: int = 0) -> Path:
    script = tmp_path / "plugin.py"
    status: dict[str, Any] = {"token": token}
    if expires is not None:
        status["expirationTimestamp"] = expires.isoformat().replace("+00:00", "Z")
    body = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}
    script.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        f"open({str(tmp_path / 'calls')!r}, 'a').write(os.environ.get('KUBERNETES_EXEC_INFO', '') + '\\n')\n"
        f"if {exit_code}: sys.stderr.write('login expired\\n'); sys.exit({exit_code})\n"
        f"print(json.dumps({body!r}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def exec_config(tmp_path: Path, script: Path, api: str = "client.authentication.k8s.io/v1") -> Path:
    return kubeconfig(
        tmp_path / "config",
        "https://127.0.0.1:6443",
        user={"exec": {"apiVersion": api, "command": str(script), "installHint": "install the plugin"}},
    )


def test_kopf_login_runs_an_exec_plugin_and_passes_its_expiry(tmp_path: Path) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=10)
    path = exec_config(tmp_path, plugin(tmp_path, "exec-token", expires=expires))
    credentials.select(Selection(kubeconfig=str(path)))
    info = asyncio.run(startup.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("t")))
    assert (info.server, info.token, info.scheme) == ("https://127.0.0.1:6443", "exec-token", "Bearer")
    assert info.expiration is not None
    assert abs((info.expiration - expires).total_seconds()) < 1
    assert info.default_namespace == "shop"
    sent = json.loads((tmp_path / "calls").read_text().splitlines()[0])
    assert sent == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


def test_the_exec_token_is_reused_until_it_nears_expiry(tmp_path: Path) -> None:
    path = exec_config(tmp_path, plugin(tmp_path, "t1", expires=datetime.now(UTC) + timedelta(hours=1)))
    exec_plugin = resolve(Selection(kubeconfig=str(path))).exec_plugin()
    assert exec_plugin is not None

    async def twice() -> list[str]:
        return [await exec_plugin.token(), await exec_plugin.token()]

    assert asyncio.run(twice()) == ["t1", "t1"]
    assert len((tmp_path / "calls").read_text().splitlines()) == 1

    soon = exec_config(tmp_path, plugin(tmp_path, "t2", expires=datetime.now(UTC) + timedelta(seconds=5)))
    expiring = resolve(Selection(kubeconfig=str(soon))).exec_plugin()
    assert expiring is not None

    async def again() -> list[str]:
        return [await expiring.token(), await expiring.token()]

    assert asyncio.run(again()) == ["t2", "t2"]
    assert len((tmp_path / "calls").read_text().splitlines()) == 3  # within the margin: asked again


@pytest.mark.parametrize(
    ("api", "exit_code", "message"),
    [
        ("client.authentication.k8s.io/v1", 1, "exited 1: login expired (install the plugin)"),
        (
            "client.authentication.k8s.io/v2",
            0,
            "apiVersion 'client.authentication.k8s.io/v2' is not supported",
        ),
    ],
)
def test_a_failing_exec_plugin_is_one_line(tmp_path: Path, api: str, exit_code: int, message: str) -> None:
    path = exec_config(tmp_path, plugin(tmp_path, "x", exit_code=exit_code), api=api)
    creds = resolve(Selection(kubeconfig=str(path)))
    with pytest.raises(CredentialsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(creds.login_info())


def test_auth_provider_tokens_and_their_absence(tmp_path: Path) -> None:
    oidc = kubeconfig(
        tmp_path / "oidc",
        "https://a:1",
        user={"auth-provider": {"name": "oidc", "config": {"id-token": "idt"}}},
    )
    assert asyncio.run(resolve(Selection(kubeconfig=str(oidc))).login_info()).token == "idt"
    gcp = kubeconfig(tmp_path / "gcp", "https://a:1", user={"auth-provider": {"name": "gcp", "config": {}}})
    with pytest.raises(CredentialsError, match="gke-gcloud-auth-plugin"):
        resolve(Selection(kubeconfig=str(gcp))).auth()


def test_relative_paths_are_relative_to_their_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = kubeconfig(tmp_path / "sub" / "config", "https://a:1", user={"tokenFile": "token"})
    (tmp_path / "sub" / "token").write_text("from-file\n")
    info = asyncio.run(resolve(Selection(kubeconfig=str(path))).login_info())
    assert info.token == "from-file"


def test_the_process_resolves_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "a", "https://a:1")))
    credentials.select(Selection())
    first = credentials.current()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "b", "https://b:1")))
    assert credentials.current() is first  # Kopf's re-login and every client: the same server
    credentials.select(Selection(kubeconfig=str(tmp_path / "b")))
    assert credentials.current().server == "https://b:1"
    credentials.select(Selection())
