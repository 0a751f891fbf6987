"""The token cleaner (Kubernetes' ``tokencleaner`` controller, which kubeadm turns on): a bootstrap token's Secret
(``kube-system/bootstrap-token-<id>``, ``bus.bootstraptoken``) is deleted once its ``expiration`` has passed, so
expired tokens do not pile up — and with them what they own (the sealed control-plane keys of
``k8n token create --control-plane``, through the garbage collector)."""

from __future__ import annotations

import logging
import time
from typing import Callable

from bus import bootstraptoken, errors, subjects
from bus.controller import Controller
from bus.informer import Informer, key_of
from bus.workqueue import Result

log = logging.getLogger(__name__)


def setup(ctx) -> list:
    cleaner = TokenCleaner(ctx.client, ctx.informers.informer("secrets", bootstraptoken.NAMESPACE))
    return [cleaner.controller]


def seconds_left(secret: dict, now: float) -> float | None:
    """Seconds until a bootstrap token Secret expires (<= 0: expired); None when it is not one or never expires."""
    if secret.get("type") != bootstraptoken.SECRET_TYPE:
        return None
    try:
        token = bootstraptoken.BootstrapToken.from_secret(secret)
    except ValueError:
        return None
    return None if token.expiration is None else token.expiration.timestamp() - now


class TokenCleaner:
    def __init__(self, client, secrets: Informer, wall: Callable[[], float] = time.time) -> None:
        self.client, self.secrets, self.wall = client, secrets, wall
        self.controller = Controller("tokencleaner", self.reconcile)
        self.controller.watches(secrets, lambda s: key_of(s) if s.get("type") == bootstraptoken.SECRET_TYPE
                                else None)

    async def reconcile(self, key: str) -> Result:
        ns, name = subjects.parse_key(key)
        secret = self.secrets.get(ns, name)
        if secret is None:
            return Result()
        left = seconds_left(secret, self.wall())
        if left is None:
            return Result()
        if left > 0:
            return Result(requeue_after=left)
        meta = secret["metadata"]
        try:
            await self.client.delete("secrets", name, ns, preconditions={"uid": meta["uid"]})
            log.info("tokencleaner: deleted expired bootstrap token %s", name)
        except (errors.NotFound, errors.Conflict):
            pass
        return Result()
