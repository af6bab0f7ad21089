"""Where Stanch's Kubernetes credentials come from: one resolution for the whole process.

kubectl's order: an explicit ``--kubeconfig`` (and ``--context``), else ``$KUBECONFIG`` (a list of
files, merged, the first definition of a name winning), else ``~/.kube/config``, else the Pod's
ServiceAccount. Both Kopf (through the ``stanch-login`` handler) and Stanch's own client take their
connection from the same :class:`Credentials`, so they cannot talk to two different API servers
(they did: Kopf read KUBECONFIG first, lightkube the ServiceAccount first).

Parsing and the model of a kubeconfig are lightkube's; on top of it this adds what a user of
kubectl expects and lightkube lacks: merged KUBECONFIG lists, ``client.authentication.k8s.io/v1``
exec plugins with ``KUBERNETES_EXEC_INFO`` and token expiry, the token an ``auth-provider`` left in
the kubeconfig, impersonation, and one-line errors that say what is missing and how to fix it.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import User, UserExec
from lightkube.core.exceptions import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)
EXEC_TIMEOUT_SECONDS = 60.0
# A token is renewed this long before the expiry its plugin announced, so a request never carries
# one that expires in flight.
EXPIRY_MARGIN = timedelta(seconds=30)
# Paths in a kubeconfig are relative to the file that holds them (kubectl resolves them so).
_CLUSTER_PATHS = ("certificate-authority",)
_USER_PATHS = ("client-certificate", "client-key", "tokenFile")

FIX = (
    "pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, create ~/.kube/config,"
    " or run in a Pod with a ServiceAccount token"
)


class CredentialsError(Exception):
    """The configuration cannot give credentials; the message names what is missing and the fix."""


@dataclass(frozen=True)
class Selection:
    """What the user chose on the command line (kubectl's flags of the same names)."""

    kubeconfig: str | None = None
    context: str | None = None
    user: str | None = None
    """``--as``: impersonate this user (needs RBAC ``impersonate``)."""
    groups: tuple[str, ...] = ()
    """``--as-group``, repeatable."""


@dataclass(frozen=True)
class LoginInfo:
    """Everything an HTTP client needs to reach the API server as this identity, in the shape of
    Kopf's ConnectionInfo (built from it in the wiring ring: adapters do not import Kopf)."""

    server: str
    ca_path: str | None = None
    ca_data: str | None = None
    """Base64 PEM, as kubeconfig's ``certificate-authority-data``."""
    insecure: bool = False
    token: str | None = None
    username: str | None = None
    password: str | None = None
    certificate_path: str | None = None
    certificate_data: str | None = None
    private_key_path: str | None = None
    private_key_data: str | None = None
    namespace: str | None = None
    expiration: datetime | None = None


@dataclass
class ExecPlugin:
    """A kubeconfig ``exec`` credential plugin (``aws eks get-token``, ``gke-gcloud-auth-plugin``,
    ``kubelogin``): runs it, keeps its token until the expiry it announces."""

    spec: UserExec
    interactive: bool = False
    _token: str | None = None
    _expires: datetime | None = None
    _lock: asyncio.Lock | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        if self.spec.apiVersion not in EXEC_API_VERSIONS:
            raise CredentialsError(
                f"exec plugin {self.spec.command}: apiVersion {self.spec.apiVersion!r} is not supported;"
                f" use one of {', '.join(EXEC_API_VERSIONS)}"
            )
        env = dict(os.environ)
        env.update((v.name, v.value) for v in self.spec.env or ())
        # What client-go passes: the plugin may need to know whether it can prompt.
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {
                "apiVersion": self.spec.apiVersion,
                "kind": "ExecCredential",
                "spec": {"interactive": self.interactive},
            }
        )
        return [self.spec.command, *(self.spec.args or ())], env

    def _parse(self, output: bytes) -> str:
        try:
            status = json.loads(output)["status"]
            token = status["token"]
        except (ValueError, KeyError, TypeError):
            if b"clientCertificateData" in output:
                raise CredentialsError(
                    f"exec plugin {self.spec.command} returned a client certificate; Stanch takes"
                    " tokens from exec plugins only: configure the plugin to issue a token"
                ) from None
            raise CredentialsError(
                f"exec plugin {self.spec.command} did not print an ExecCredential with status.token"
            ) from None
        if not isinstance(token, str) or not token:
            raise CredentialsError(f"exec plugin {self.spec.command} returned an empty token")
        expires = status.get("expirationTimestamp")
        self._expires = _parse_time(expires) if isinstance(expires, str) else None
        self._token = token
        return token

    def _fresh(self, now: datetime) -> str | None:
        if self._token is None:
            return None
        if self._expires is not None and now >= self._expires - EXPIRY_MARGIN:
            return None
        return self._token

    def _failure(self, what: str) -> CredentialsError:
        hint = f" ({self.spec.installHint.strip()})" if self.spec.installHint else ""
        return CredentialsError(f"exec plugin {self.spec.command}: {what}{hint}")

    async def token(self, *, refresh: bool = False) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            cached = None if refresh else self._fresh(datetime.now(UTC))
            if cached is not None:
                return cached
            command, env = self._command()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                raise self._failure(f"cannot run it: {exc.strerror or exc}") from None
            try:
                out, err = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT_SECONDS)
            except TimeoutError:
                proc.kill()
                raise self._failure(f"no answer within {EXEC_TIMEOUT_SECONDS:.0f}s") from None
            if proc.returncode != 0:
                last = (err.decode(errors="replace").strip().splitlines() or [""])[-1][:300]
                raise self._failure(f"exited {proc.returncode}: {last}")
            return self._parse(out)

    def token_sync(self) -> str:
        """For the synchronous login of a process without a running event loop."""
        return asyncio.run(self.token())

    @property
    def expiration(self) -> datetime | None:
        return self._expires


class _ExecAuth(httpx.Auth):
    """Bearer token from an exec plugin; on a 401 the plugin is asked again once."""

    def __init__(self, plugin: ExecPlugin) -> None:
        self._plugin = plugin

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._plugin.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._plugin.token(refresh=True)}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("Stanch's Kubernetes client is asynchronous")


class _TokenFileAuth(httpx.Auth):
    """Bearer token read from a file (a projected ServiceAccount token, rotated by the kubelet):
    read again on a 401."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._bearer: str | None = None

    def _read(self) -> str:
        try:
            return "Bearer " + Path(self._path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialsError(f"token file {self._path}: {exc.strerror or exc}") from None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._bearer is None:
            self._bearer = self._read()
        request.headers["Authorization"] = self._bearer
        response = yield request
        if response.status_code == 401:
            self._bearer = self._read()
            request.headers["Authorization"] = self._bearer
            yield request


@dataclass
class Credentials:
    """One resolved identity and server, shared by every client of the process."""

    config: SingleConfig
    source: str
    """Where they came from, for logs and errors: ``--kubeconfig FILE``, ``KUBECONFIG``, …"""
    selection: Selection = field(default_factory=Selection)
    _ssl: ssl.SSLContext | None = None
    _auth: httpx.Auth | None = None
    _exec: ExecPlugin | None = None
    _auth_built: bool = False

    @property
    def server(self) -> str:
        return str(self.config.cluster.server)

    @property
    def namespace(self) -> str:
        """The context's namespace (kubectl's default for ``-n``)."""
        return self.config.namespace

    @property
    def user(self) -> User:
        return self.config.user or User()

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                self._ssl = verify_cluster(
                    self.config.cluster, self.user, self.config.abs_file, trust_env=False
                )
            except (OSError, ssl.SSLError, ConfigError) as exc:
                raise CredentialsError(
                    f"{self.source}: cannot load the CA or client certificate: {exc}"
                ) from None
        return self._ssl

    def exec_plugin(self) -> ExecPlugin | None:
        if self._exec is None and self.user.exec is not None:
            self._exec = ExecPlugin(self.user.exec)
        return self._exec

    def auth(self) -> httpx.Auth | None:
        if not self._auth_built:
            self._auth = self._build_auth()
            self._auth_built = True
        return self._auth

    def _build_auth(self) -> httpx.Auth | None:
        user = self.user
        if user.token_file is not None:
            return _TokenFileAuth(str(self.config.abs_file(user.token_file)))
        token = user.token or _provider_token(user, self.source)
        if token is not None:
            return _StaticBearer(token)
        plugin = self.exec_plugin()
        if plugin is not None:
            return _ExecAuth(plugin)
        if user.username and user.password:
            return httpx.BasicAuth(user.username, user.password)
        return None

    def headers(self) -> dict[str, str]:
        """Impersonation (kubectl's ``--as``/``--as-group``)."""
        headers: dict[str, str] = {}
        if self.selection.user:
            headers["Impersonate-User"] = self.selection.user
        return headers

    def http_client(self, timeout: httpx.Timeout) -> httpx.AsyncClient:
        headers = list(self.headers().items())
        headers += [("Impersonate-Group", g) for g in self.selection.groups]
        return httpx.AsyncClient(
            base_url=self.server,
            verify=self.ssl_context(),
            auth=self.auth(),
            timeout=timeout,
            # Proxies come from the kubeconfig or not at all: an HTTPS_PROXY meant for the registry
            # must not capture the API server's traffic.
            trust_env=False,
            headers=headers,
        )

    async def login_info(self) -> LoginInfo:
        """The same identity, as the fields of Kopf's ConnectionInfo. An exec plugin runs now and
        its expiry is passed on, so Kopf logs in again before the token expires."""
        cluster, user = self.config.cluster, self.user
        token = user.token or _provider_token(user, self.source)
        expiration = None
        if user.token_file is not None:
            path = str(self.config.abs_file(user.token_file))
            try:
                token = _read_token(path)
            except OSError as exc:
                raise CredentialsError(f"token file {path}: {exc.strerror or exc}") from None
        elif token is None and (plugin := self.exec_plugin()) is not None:
            token = await plugin.token(refresh=True)
            expiration = plugin.expiration
        return LoginInfo(
            server=self.server,
            ca_path=_path(self.config, cluster.certificate_auth),
            ca_data=cluster.certificate_auth_data,
            insecure=bool(cluster.insecure),
            token=token,
            username=user.username,
            password=user.password,
            certificate_path=_path(self.config, user.client_cert),
            certificate_data=user.client_cert_data,
            private_key_path=_path(self.config, user.client_key),
            private_key_data=user.client_key_data,
            namespace=self.config.context.namespace,
            expiration=expiration,
        )


class _StaticBearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._bearer = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._bearer
        yield request


def _read_token(path: str) -> str:
    # A few bytes from a local (tmpfs) file, once per login: not worth a thread.
    return Path(path).read_text(encoding="utf-8").strip()


def _path(config: SingleConfig, value: str | None) -> str | None:
    return None if value is None else str(config.abs_file(value))


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _provider_token(user: User, source: str) -> str | None:
    """The token an ``auth-provider`` (oidc, and the gcp/azure providers kubectl dropped in 1.26)
    cached in the kubeconfig. Stanch does not refresh it: an expired one is refused by the API
    server, and the fix is the exec plugin that replaced the provider."""
    provider = user.auth_provider
    if not provider:
        return None
    config = provider.get("config") or {}
    name = provider.get("name", "?")
    token = config.get("id-token") if name == "oidc" else config.get("access-token")
    if not token:
        raise CredentialsError(
            f"{source}: auth-provider {name} holds no token; kubectl replaced auth providers with exec"
            " plugins (gke-gcloud-auth-plugin, kubelogin, aws eks get-token): configure the user's exec"
        )
    return str(token)


# ---- resolution --------------------------------------------------------------------------------


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(f"kubeconfig {path}: {exc.strerror or exc}; {FIX}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise CredentialsError(f"kubeconfig {path} is not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CredentialsError(
            f"kubeconfig {path} is not a kubeconfig (a YAML mapping of clusters, users, contexts)"
        )
    return data


def _absolute(entry: Mapping[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    out = dict(entry)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            out[key] = str(base / value)
        elif isinstance(value, str) and value.startswith("~"):
            out[key] = str(Path(value).expanduser())
    return out


def merge_kubeconfigs(paths: list[Path]) -> dict[str, Any]:
    """kubectl's merge of a KUBECONFIG list: the first file to define a name (cluster, user,
    context) or the current context wins. Relative paths are resolved against their own file."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    for path in paths:
        data = _load_file(path)
        if merged.get("current-context") is None and data.get("current-context"):
            merged["current-context"] = data["current-context"]
        for section, inner, keys in (
            ("clusters", "cluster", _CLUSTER_PATHS),
            ("users", "user", _USER_PATHS),
            ("contexts", "context", ()),
        ):
            for item in data.get(section) or ():
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise CredentialsError(f"kubeconfig {path}: every entry of {section} needs a name")
                if item["name"] in seen[section]:
                    continue
                seen[section].add(item["name"])
                body = item.get(inner) or {}
                if not isinstance(body, dict):
                    raise CredentialsError(f"kubeconfig {path}: {section} {item['name']} is not a mapping")
                body = _absolute(body, keys, path.parent)
                if section == "users" and isinstance(body.get("exec"), dict):
                    command = body["exec"].get("command")
                    # kubectl runs a relative command with a path separator from the file's folder.
                    if isinstance(command, str) and os.sep in command and not Path(command).is_absolute():
                        body["exec"] = {**body["exec"], "command": str(path.parent / command)}
                merged[section].append({"name": item["name"], inner: body})
    return merged


def _select(merged: dict[str, Any], context: str | None, source: str, first: Path) -> SingleConfig:
    try:
        config = KubeConfig.from_dict(merged, fname=first)
    # lightkube's msgspec.ValidationError is a ValueError.
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"{source}: not a valid kubeconfig ({exc})") from None
    name = context or config.current_context
    if not name:
        names = ", ".join(sorted(config.contexts)) or "none"
        raise CredentialsError(
            f"{source}: no current context; pass --context NAME (contexts: {names})"
            " or run `kubectl config use-context NAME`"
        )
    ctx = config.contexts.get(name)
    if ctx is None:
        names = ", ".join(sorted(config.contexts)) or "none"
        flag = "--context" if context else "current-context"
        raise CredentialsError(f"{source}: {flag} {name!r} is not defined (contexts: {names})")
    if ctx.cluster not in config.clusters:
        raise CredentialsError(
            f"{source}: context {name!r} names cluster {ctx.cluster!r}, which is not defined"
        )
    if ctx.user and ctx.user not in config.users:
        raise CredentialsError(f"{source}: context {name!r} names user {ctx.user!r}, which is not defined")
    single = config.get(name)
    assert single is not None
    return single


def _from_files(paths: list[Path], context: str | None, source: str) -> SingleConfig:
    return _select(merge_kubeconfigs(paths), context, source, paths[0])


def _in_cluster(env: Mapping[str, str], directory: Path) -> SingleConfig | None:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host:
        host = f"[{host}]"
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    ca = directory / "ca.crt"
    config = KubeConfig.from_dict(
        {
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {
                        "server": f"https://{host}:{port}",
                        **({"certificate-authority": str(ca)} if ca.is_file() else {}),
                    },
                }
            ],
            "users": [{"name": "serviceaccount", "user": {"tokenFile": str(token)}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {
                        "cluster": "in-cluster",
                        "user": "serviceaccount",
                        **({"namespace": namespace} if namespace else {}),
                    },
                }
            ],
            "current-context": "in-cluster",
        }
    )
    return config.get()


def resolve(
    selection: Selection = Selection(),
    *,
    env: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    home: Path | None = None,
) -> Credentials:
    """The credentials kubectl would use with the same flags and environment."""
    env = os.environ if env is None else env
    if selection.kubeconfig:
        path = Path(selection.kubeconfig).expanduser()
        if not path.is_file():
            raise CredentialsError(f"--kubeconfig {selection.kubeconfig}: no such file")
        source = f"--kubeconfig {selection.kubeconfig}"
        return Credentials(_from_files([path], selection.context, source), source, selection)
    listed = env.get("KUBECONFIG", "")
    if listed:
        # kubectl skips the files of the list that do not exist; all missing is an error.
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        present = [p for p in paths if p.is_file()]
        if not present:
            raise CredentialsError(f"KUBECONFIG={listed}: no such file; {FIX}")
        source = f"KUBECONFIG={listed}"
        return Credentials(_from_files(present, selection.context, source), source, selection)
    default = (home / ".kube" / "config") if home is not None else Path(DEFAULT_KUBECONFIG).expanduser()
    if default.is_file():
        return Credentials(_from_files([default], selection.context, str(default)), str(default), selection)
    in_cluster = _in_cluster(env, service_account_dir)
    if in_cluster is not None:
        if selection.context:
            raise CredentialsError(f"--context {selection.context}: no kubeconfig to take it from; {FIX}")
        return Credentials(in_cluster, "in-cluster ServiceAccount", selection)
    raise CredentialsError(f"no Kubernetes credentials found; {FIX}")


# ---- the process's one resolution --------------------------------------------------------------

_lock = threading.Lock()
_selection = Selection()
_current: Credentials | None = None


def select(selection: Selection) -> None:
    """Set the command line's choice for the whole process, before the first client is made."""
    global _selection, _current
    with _lock:
        _selection = selection
        _current = None


def current() -> Credentials:
    """The process's credentials, resolved on first use and then shared by every client (Kopf's
    login included). Raises :class:`CredentialsError`."""
    global _current
    with _lock:
        if _current is None:
            _current = resolve(_selection)
        return _current


def unreachable(exc: BaseException) -> str | None:
    """A one-line explanation when ``exc`` is a failure to reach the API server, else None."""
    if isinstance(exc, httpx.TimeoutException):
        return "the API server did not answer in time"
    if isinstance(exc, httpx.TransportError):
        reason = str(exc).strip() or type(exc).__name__
        if isinstance(exc, httpx.ConnectError) and "certificate" in reason.lower():
            return f"TLS verification failed: {reason}"
        return f"cannot connect to the API server: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    return None
