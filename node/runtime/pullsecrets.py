"""Registry credentials from a pod's image pull secrets, found as the kubelet finds them (Kubernetes'
``pkg/credentialprovider``: ``keyring.go``, ``config.go`` and ``secrets.MakeDockerKeyring``).

- A Secret of type ``kubernetes.io/dockerconfigjson`` gives the ``auths`` of its ``.dockerconfigjson``; one of type
  ``kubernetes.io/dockercfg`` gives its ``.dockercfg`` map itself; other Secrets give nothing. An entry's ``auth``
  (base64 ``user:password``) overrides its ``username``/``password``.
- A registry key is a URL with or without scheme: ``https://index.docker.io/v1/``, ``registry:5000``,
  ``quay.io/team``. The scheme goes, a ``/v1/`` or ``/v2/`` path counts as the host alone, and the key matches
  the repository of an image when the ports are equal, the hosts have as many dot-separated parts and each
  matches (``*`` globs allowed: ``*.example.com``), and the key's path is a prefix of the repository's path.
  Every matching entry is tried, the most specific key first. With no match, an image of Docker Hub
  (``busybox``, ``team/app``, ``docker.io/…``) takes the credentials of ``index.docker.io``.

Pure functions: the agent fetches the Secrets (``node.podworker``) and the runtime passes each credential to
Docker's pull as ``auth_config`` (``DockerRuntime.ensure_image``)."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY = "kubernetes.io/dockerconfigjson", ".dockerconfigjson"
DOCKERCFG_TYPE, DOCKERCFG_KEY = "kubernetes.io/dockercfg", ".dockercfg"
DEFAULT_REGISTRY_HOST = "index.docker.io"
_DOCKER_HUB = ("docker.io", "index.docker.io")


class CredentialError(ValueError):
    """A pull secret whose content cannot be read (the kubelet fails the pull with it)."""


@dataclass(frozen=True)
class AuthConfig:
    username: str
    password: str
    email: str = ""

    def docker(self) -> dict[str, str]:
        """The docker SDK's ``auth_config``."""
        out = {"username": self.username, "password": self.password}
        if self.email:
            out["email"] = self.email
        return out


def _entry(value: Any) -> AuthConfig:
    """One DockerConfigEntry: ``auth`` (base64 ``user:password``) wins over ``username``/``password``."""
    value = value if isinstance(value, Mapping) else {}
    username, password = str(value.get("username") or ""), str(value.get("password") or "")
    if auth := value.get("auth"):
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError) as e:
            raise CredentialError(f"illegal base64 data in auth field: {e}") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialError("unable to parse auth field, must be formatted as base64(username:password)")
    return AuthConfig(username, password, str(value.get("email") or ""))


def _secret_value(secret: Mapping, key: str) -> bytes:
    data, plain = secret.get("data") or {}, secret.get("stringData") or {}
    if key in plain:  # stringData wins, as the API merges it over data
        return str(plain[key]).encode()
    try:
        return base64.b64decode(data.get(key) or "")
    except (binascii.Error, ValueError):
        raise CredentialError(f"{key} is not valid base64 data") from None


def docker_config(secret: Mapping) -> dict[str, AuthConfig]:
    """Registry key → credentials of one pull secret ({} when it is of another type or empty)."""
    kind = secret.get("type")
    key = {DOCKER_CONFIG_JSON_TYPE: DOCKER_CONFIG_JSON_KEY, DOCKERCFG_TYPE: DOCKERCFG_KEY}.get(kind or "")
    if key is None:
        return {}
    raw = _secret_value(secret, key)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise CredentialError(f"{key}: {e}") from None
    if not isinstance(parsed, dict):
        raise CredentialError(f"{key}: not a JSON object")
    if kind == DOCKER_CONFIG_JSON_TYPE:
        parsed = {} if parsed.get("auths") is None else parsed["auths"]
        if not isinstance(parsed, dict):
            raise CredentialError(f"{key}: auths is not a JSON object")
    return {str(loc): _entry(v) for loc, v in parsed.items()}


def registry_key(loc: str) -> str:
    """The schemeless index key of a registry location (keyring.go ``Add``)."""
    parsed = urlsplit(loc if loc.startswith(("https://", "http://")) else "https://" + loc)
    path = parsed.path
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return parsed.netloc + path if path and path != "/" else parsed.netloc


def _split(schemeless: str) -> tuple[list[str], str, str]:
    """(host parts, port, path) of a schemeless URL."""
    parsed = urlsplit("https://" + schemeless)
    host, port = parsed.netloc, ""
    if ":" in host and not host.endswith("]"):
        host, _, port = host.rpartition(":")
    return host.split("."), port, parsed.path


def urls_match(glob: str, target: str) -> bool:
    """Whether the credential key ``glob`` matches the repository ``target`` (keyring.go ``URLsMatch``)."""
    glob_parts, glob_port, glob_path = _split(glob)
    parts, port, path = _split(target)
    if glob_port != port or len(glob_parts) != len(parts) or not path.startswith(glob_path):
        return False
    return all(fnmatch.fnmatchcase(p, g) for g, p in zip(glob_parts, parts))


def is_default_registry(repo: str) -> bool:
    """Whether a repository is pulled from Docker Hub (keyring.go ``isDefaultRegistryMatch``)."""
    first, sep, _ = repo.partition("/")
    if not first:
        return False
    return not sep or first in _DOCKER_HUB or not any(ch in first for ch in ".:")


def repository(image: str) -> str:
    """The repository of an image reference, without tag or digest (``busybox:1.36`` → ``busybox``)."""
    name = image.split("@", 1)[0]
    head, sep, last = name.rpartition("/")
    return head + sep + last.split(":", 1)[0]


class Keyring:
    """Credentials indexed by registry key, tried most specific first (keyring.go ``BasicDockerKeyring``)."""

    def __init__(self) -> None:
        self.creds: dict[str, list[AuthConfig]] = {}

    def add(self, config: Mapping[str, AuthConfig]) -> None:
        for loc, auth in config.items():
            self.creds.setdefault(registry_key(loc), []).append(auth)

    def lookup(self, image: str) -> list[AuthConfig]:
        repo = repository(image)
        found = [a for key in sorted(self.creds, reverse=True) if urls_match(key, repo) for a in self.creds[key]]
        if not found and is_default_registry(repo):
            found = list(self.creds.get(DEFAULT_REGISTRY_HOST, ()))
        return found


def keyring(secrets: Iterable[Mapping]) -> Keyring:
    """The keyring of a pod's pull secrets, in their order; ``CredentialError`` for an unreadable one."""
    ring = Keyring()
    for secret in secrets:
        ring.add(docker_config(secret))
    return ring
