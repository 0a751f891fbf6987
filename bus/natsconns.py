"""What is connected to the bus: every nats-server's client connections, asked through the system account
(``$SYS.REQ.SERVER.PING.CONNZ``, answered by each server of a cluster), as a short-lived system user minted from the
cluster's keys (:meth:`bus.natsauth.ClusterAuth.mint_system_user`). The API server's tool for ``k8n upgrade plan``:
each k8n component names its connection ``<identity> k8n/<version>`` (bus.skew); and ``k8n certs rotate-bus-key
--finish``'s, which looks for connections whose user JWT a former signing key issued (:attr:`Connection.issuer`)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from dataclasses import dataclass

import nats
from nats.aio.client import RawCredentials

from bus import skew, subjects
from bus.natsauth import SYSTEM_USER_NAME, AuthError, ClusterAuth, decode_jwt
from bus.natsrevoke import _tls

ANSWER_WINDOW = 0.5  # seconds after the last server's answer to wait for another
LIMIT = 100_000  # connections per server asked for at most


@dataclass(frozen=True)
class Connection:
    server: str  # the nats-server's name
    name: str  # the client's connection name
    address: str  # ip:port
    version: str | None  # the k8n version its name says (None: none said, k8n 0.1 or not k8n)
    identity: str  # the bus identity it authenticated as (its user JWT's name: ``apiserver``, ``node:w1``…)
    #: the public key that issued its user JWT (the JWT's ``iss``: the account signing key that signed it; None
    #: without a JWT). ``k8n certs rotate-bus-key --finish`` waits for none to be a former signing key.
    issuer: str | None = None

    @property
    def role(self) -> str:
        return self.identity.partition(":")[0]


def _jwt_claims(jwt: object) -> dict:
    """The claims of a user JWT (unverified: the server verified it), {} when it is none."""
    try:
        claims = decode_jwt(jwt) if isinstance(jwt, str) else None
    except AuthError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse(reply: dict) -> list[Connection]:
    """One server's CONNZ answer as connections (its own system connections left out)."""
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, dict):
        return []
    server = str(((reply.get("server") or {}).get("name")) or data.get("server_id") or "?")
    out = []
    for c in data.get("connections") or []:
        name = str(c.get("name") or "")
        if name == SYSTEM_USER_NAME or c.get("kind") not in (None, "Client"):
            continue
        claims = _jwt_claims(c.get("jwt"))  # k8n mints each user JWT with its identity's token as the name
        identity = _str(claims.get("name")) or name.split(" ", 1)[0]
        out.append(Connection(server, name, f"{c.get('ip', '?')}:{c.get('port', '?')}",
                              skew.version_of_connection(name), identity, _str(claims.get("iss"))))
    return out


async def connections(url: str, auth: ClusterAuth, tls_ca: str | os.PathLike | ssl.SSLContext | None = None,
                      timeout: float = 5.0) -> list[Connection]:
    """Every client connection of the servers at ``url`` (each server's answer once)."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        nc = await nats.connect(servers, user_credentials=RawCredentials(auth.mint_system_user(
                                    allow=(subjects.SYS_CONNZ,))),
                                inbox_prefix=subjects.inbox_prefix(SYSTEM_USER_NAME), tls=_tls(url, tls_ca),
                                name=SYSTEM_USER_NAME, allow_reconnect=False, max_reconnect_attempts=1,
                                connect_timeout=timeout)
    except Exception as e:  # noqa: BLE001 - said as an AuthError
        raise AuthError(f"cannot connect to the NATS server(s) {url} as the system account's user: "
                        f"{str(e) or type(e).__name__}") from None
    answers: dict[str, list[Connection]] = {}
    arrived = asyncio.Event()

    async def on_answer(msg) -> None:
        try:
            reply = json.loads(msg.data)
        except ValueError:
            return
        server = str(((reply.get("server") or {}).get("id")) or len(answers))
        answers[server] = parse(reply)
        arrived.set()

    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_answer)
        await nc.publish(subjects.SYS_CONNZ, json.dumps({"limit": LIMIT, "auth": True}).encode(), reply=inbox)
        try:
            await asyncio.wait_for(arrived.wait(), timeout)
        except asyncio.TimeoutError:
            raise AuthError(f"no NATS server at {url} listed its connections") from None
        while True:  # the others of a cluster answer within a moment of the first
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), ANSWER_WINDOW)
            except asyncio.TimeoutError:
                break
        await sub.unsubscribe()
    finally:
        await nc.close()
    return [c for got in answers.values() for c in got]
