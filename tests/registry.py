"""A tiny private registry for tests: the Docker Registry HTTP API v2 (pull side only) over plain HTTP on
127.0.0.1 (dockerd treats 127.0.0.0/8 registries as insecure, so no TLS), with HTTP Basic authentication.

It serves one image, made from a local image with ``docker save``: a schema-2 manifest
(``application/vnd.docker.distribution.manifest.v2+json``) whose config and gzipped layers are served as blobs by
digest, for HEAD and GET. Every request without the right credentials gets 401 with
``WWW-Authenticate: Basic realm=...``; the users that authenticated are recorded in ``users``.

    with Registry.from_image("k8n/busybox:latest", "private/busybox", "latest", {"alice": "s3cret"}) as reg:
        image = f"{reg.host}/private/busybox:latest"
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def saved_image(image: str) -> tuple[bytes, list[bytes]]:
    """(config, uncompressed layers) of a local image, from ``docker save`` (the legacy and the OCI layouts both
    carry a ``manifest.json`` naming the config and layer files)."""
    tar = subprocess.run(["docker", "save", image], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        def read(name: str) -> bytes:
            f = t.extractfile(name)
            assert f is not None, name
            return f.read()
        manifest = json.loads(read("manifest.json"))[0]
        return read(manifest["Config"]), [read(layer) for layer in manifest["Layers"]]


class Registry:
    def __init__(self, repository: str, tag: str, config: bytes, layers: list[bytes],
                 users: dict[str, str]) -> None:
        self.repository, self.tag = repository, tag
        gz = [gzip.compress(layer, mtime=0) for layer in layers]
        self.blobs = {_digest(b): b for b in [config, *gz]}
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_GZIP, "size": len(b), "digest": _digest(b)} for b in gz],
        }).encode()
        self.accounts = users
        self.users: list[str] = []  # who authenticated, one entry per authenticated request
        self.refused: list[str] = []  # request paths answered 401
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-registry", daemon=True)

    @classmethod
    def from_image(cls, image: str, repository: str, tag: str, users: dict[str, str]) -> "Registry":
        config, layers = saved_image(image)
        return cls(repository, tag, config, layers, users)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "Registry":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _user(self, header: str | None) -> str | None:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return user if user in self.accounts and self.accounts[user] == password else None

    def _answer(self, path: str) -> tuple[int, bytes, str]:
        prefix = f"/v2/{self.repository}/"
        if path == "/v2/":
            return 200, b"{}", "application/json"
        if path.startswith(prefix + "manifests/"):
            ref = path[len(prefix + "manifests/"):]
            if ref in (self.tag, _digest(self.manifest)):
                return 200, self.manifest, MANIFEST_V2
        elif path.startswith(prefix + "blobs/") and (blob := self.blobs.get(path[len(prefix + "blobs/"):])):
            return 200, blob, "application/octet-stream"
        body = {"errors": [{"code": "MANIFEST_UNKNOWN" if "/manifests/" in path else "NAME_UNKNOWN",
                            "message": "not found"}]}
        return 404, json.dumps(body).encode(), "application/json"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self, with_body: bool) -> None:
                path = self.path.split("?", 1)[0]
                user = registry._user(self.headers.get("Authorization"))
                if user is None:
                    registry.refused.append(path)
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "authentication required"}]}).encode()
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="k8n test registry"')
                    ctype = "application/json"
                else:
                    registry.users.append(user)
                    status, body, ctype = registry._answer(path)
                    self.send_response(status)
                    if status == 200 and path != "/v2/":
                        self.send_header("Docker-Content-Digest", _digest(body))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve(True)

            def do_HEAD(self) -> None:
                self._serve(False)

        return Handler
