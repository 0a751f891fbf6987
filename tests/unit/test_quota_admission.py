"""Quota admission's batched compare-and-set over a fake store: a request charged on one quota whose other quota's
write lost, and which that quota (read again) then refuses, is refused and its first charge given back."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from bus import errors
from bus.resources import by_plural
from master.apiserver.quota import QuotaAdmission
from tests import builders

PODS = by_plural("pods")


class Store:
    """Quotas by name; ``race`` writes a rival's charge into a quota just before our next write of it."""

    def __init__(self, *quotas: dict) -> None:
        self.objs = {q["metadata"]["name"]: q for q in quotas}
        self.rev = 10
        self.race: dict[str, dict] = {}

    def _put(self, obj: dict) -> dict:
        self.rev += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rev)
        self.objs[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    async def update(self, res, namespace, name, obj, revision):
        if name in self.race:
            cur = copy.deepcopy(self.objs[name])
            cur["status"]["used"] = self.race.pop(name)
            self._put(cur)
        if int(self.objs[name]["metadata"]["resourceVersion"]) != revision:
            raise errors.conflict("resourcequotas", name)
        return self._put(obj)

    async def get(self, res, namespace, name):
        if name not in self.objs:
            raise errors.not_found("resourcequotas", name)
        return copy.deepcopy(self.objs[name])


def quota(name: str, hard: dict, used: dict) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"}, "spec": {"hard": hard},
            "status": {"hard": hard, "used": used}}


@pytest.fixture
def admission():
    store = Store(quota("a", {"pods": "10"}, {"pods": "1"}), quota("b", {"requests.cpu": "1"}, {"requests.cpu": "0"}))
    adm = QuotaAdmission(store)  # type: ignore[arg-type]
    adm.quotas.informer.list = lambda ns=None: [copy.deepcopy(q) for q in store.objs.values()]
    return store, adm


def pod(name: str, cpu: str) -> dict:
    return builders.pod(name, containers=[builders.container("c", resources={"requests": {"cpu": cpu}})])


async def test_charges_both_quotas_once(admission):
    store, adm = admission
    charged = await adm.charge(PODS, "default", pod("p", "300m"), None)
    assert charged == {"a": {"pods": 1}, "b": {"requests.cpu": Decimal("0.3")}}
    assert store.objs["a"]["status"]["used"] == {"pods": "2"}
    assert store.objs["b"]["status"]["used"] == {"requests.cpu": "300m"}


async def test_refused_after_a_lost_write_gives_back_its_first_charge(admission):
    store, adm = admission
    store.race["b"] = {"requests.cpu": "900m"}  # another API server charged b meanwhile
    with pytest.raises(errors.ApiError) as exc:
        await adm.charge(PODS, "default", pod("p", "300m"), None)
    assert exc.value.code == 403
    assert exc.value.message == ('pods "p" is forbidden: exceeded quota: b, requested: requests.cpu=300m, '
                                 'used: requests.cpu=900m, limited: requests.cpu=1')
    assert store.objs["a"]["status"]["used"] == {"pods": "1"}  # charged, then given back
    assert store.objs["b"]["status"]["used"] == {"requests.cpu": "900m"}


async def test_a_lost_write_is_retried_on_the_quota_read_again(admission):
    store, adm = admission
    store.race["b"] = {"requests.cpu": "500m"}
    await adm.charge(PODS, "default", pod("p", "300m"), None)
    assert store.objs["b"]["status"]["used"] == {"requests.cpu": "800m"}
    assert store.objs["a"]["status"]["used"] == {"pods": "2"}


async def test_a_refusal_is_checked_against_the_stored_quota_not_a_stale_cache(admission):
    store, adm = admission
    stale = {name: copy.deepcopy(q) for name, q in store.objs.items()}
    stale["b"]["status"]["used"] = {"requests.cpu": "900m"}  # before the controller released 900m
    adm.quotas.informer.list = lambda ns=None: list(stale.values())
    store.objs["b"]["metadata"]["resourceVersion"] = "5"
    await adm.charge(PODS, "default", pod("p", "300m"), None)
    assert store.objs["b"]["status"]["used"] == {"requests.cpu": "300m"}
    assert store.objs["a"]["status"]["used"] == {"pods": "2"}
