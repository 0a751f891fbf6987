"""The scheduling framework: one small protocol per extension point, a ``Status`` with a code,
and a registry name -> factory (kube-scheduler's framework, vectorised over nodes).

Filter and Score run once per pod over the whole :class:`~master.scheduler.nodetable.NodeTable`
(numpy arrays indexed by node slot) instead of once per node:

- ``PreFilter.pre_filter(state, pod, nodes) -> Status``: ``Skip`` skips this plugin's Filter for
  the pod, ``Unschedulable*`` fails the pod on every node with the status's reasons.
- ``Filter.filter(state, pod, nodes, alive) -> [(reason, failing_mask), ...]``: the nodes among
  ``alive`` that do not fit, per reason (a node may fail for several reasons of one plugin, e.g.
  ``Insufficient cpu`` and ``Insufficient memory``). The framework stops evaluating a node at its
  first failing plugin, as kube-scheduler does.
- ``Score.score(state, pod, nodes, idx) -> float array`` for the feasible node slots ``idx`` (or None:
  no opinion, e.g. a pod without preferred affinity); ``Score.normalize(state, pod, scores) -> 0..100``
  (optional); weighted by the profile.
- ``Reserve.reserve(state, pod, node) -> Status`` / ``unreserve(state, pod, node)``.
- ``Bind.bind(state, pod, node) -> Status`` (async).

Each extension point is a ``Protocol`` below; :func:`register` refuses a plugin class that implements only part of
one (e.g. ``reserve`` without ``unreserve``) or none at all, and a :class:`Framework` refuses a plugin configured at
an extension point it does not implement (kube-scheduler: "plugin %q does not extend %s plugin").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from master.scheduler.nodetable import NodeTable
    from master.scheduler.podinfo import PodInfo

MAX_NODE_SCORE = 100.0
MIN_FEASIBLE_NODES_TO_FIND = 100  # kube-scheduler's minFeasibleNodesToFind
MIN_FEASIBLE_NODES_PERCENTAGE = 5  # minFeasibleNodesPercentageToFind


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes a cycle looks for before it stops and scores them (kube-scheduler's
    ``numFeasibleNodesToFind``): all of them below 100 nodes; else ``percentage`` of the nodes (0: adaptive,
    50 % minus 1 % per 125 nodes, at least 5 %), never fewer than 100."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage <= 0:
        percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - num_nodes // 125)
    return max(MIN_FEASIBLE_NODES_TO_FIND, num_nodes * min(percentage, 100) // 100)


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 4


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code in (Code.SUCCESS, Code.SKIP)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @classmethod
    def unschedulable(cls, *reasons: str, unresolvable: bool = False, plugin: str = "") -> "Status":
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE, reasons, plugin)

    @classmethod
    def error(cls, message: str, plugin: str = "") -> "Status":
        return cls(Code.ERROR, (message,), plugin)


SUCCESS = Status()
SKIP = Status(Code.SKIP)

FilterResult = list[tuple[str, np.ndarray]]


class CycleState(dict):
    """Per-pod scratch space shared by the plugins of one scheduling cycle."""


class Plugin(Protocol):
    """What every plugin has: the name it was registered under (set by :func:`register`)."""

    name: str


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable") -> Status: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable", alive: np.ndarray) -> FilterResult: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable", idx: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ReservePlugin(Protocol):
    name: str

    def reserve(self, state: CycleState, pod: "PodInfo", node: str) -> Status: ...

    def unreserve(self, state: CycleState, pod: "PodInfo", node: str) -> None: ...


@runtime_checkable
class BindPlugin(Protocol):
    name: str

    async def bind(self, state: CycleState, pod: "PodInfo", node: str) -> Status: ...


# extension point -> the protocol a plugin configured there implements (PreFilter: optional, for Filter plugins)
EXTENSION_POINTS: dict[str, type] = {"PreFilter": PreFilterPlugin, "Filter": FilterPlugin, "Score": ScorePlugin,
                                     "Reserve": ReservePlugin, "Bind": BindPlugin}


def _methods(protocol: type) -> list[str]:
    """The methods an extension point's protocol declares (``name`` aside)."""
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]


def check_plugin(plugin: Any, point: str) -> Any:
    """``plugin``, if it implements extension point ``point``; else a ``TypeError`` naming what it lacks."""
    protocol = EXTENSION_POINTS[point]
    if isinstance(plugin, protocol):
        return plugin
    missing = [f"{m}()" for m in _methods(protocol) if not callable(getattr(plugin, m, None))]
    if not isinstance(getattr(plugin, "name", None), str):
        missing.append("a name (register it with @register)")
    name = getattr(plugin, "name", None) or type(plugin).__name__
    raise TypeError(f"scheduler plugin {name!r} is configured as a {point} plugin but lacks {', '.join(missing)}")


def reverse_normalize(scores: np.ndarray) -> np.ndarray:
    """Higher raw = worse: 100 for the lowest, 0 for the highest (kube's DefaultNormalizeScore reverse)."""
    top = scores.max() if len(scores) else 0.0
    if top <= 0:
        return np.full(len(scores), MAX_NODE_SCORE)
    return MAX_NODE_SCORE - scores * (MAX_NODE_SCORE / top)


def normalize(scores: np.ndarray) -> np.ndarray:
    """Scale so the best node gets 100 (kube's DefaultNormalizeScore)."""
    top = scores.max() if len(scores) else 0.0
    if top <= 0:
        return scores
    return scores * (MAX_NODE_SCORE / top)


# ---- registry ----------------------------------------------------------------------------------

Factory = Callable[[dict, Any], Plugin]  # (args, handle) -> plugin
REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Any], Any]:
    """Class decorator: ``@register("NodePorts")`` makes ``REGISTRY["NodePorts"]`` build it. The class must
    implement at least one extension point, each one it starts fully (all of the protocol's methods)."""
    def deco(cls: Any) -> Any:
        implemented = []
        for point, protocol in EXTENSION_POINTS.items():
            methods = _methods(protocol)
            have = [m for m in methods if callable(getattr(cls, m, None))]
            if have and len(have) < len(methods):
                lacking = ", ".join(f"{m}()" for m in methods if m not in have)
                raise TypeError(f"scheduler plugin {name!r} ({cls.__name__}) implements part of the {point} "
                                f"extension point: it has {', '.join(f'{m}()' for m in have)} but lacks {lacking}")
            if have:
                implemented.append(point)
        if not implemented:
            raise TypeError(f"scheduler plugin {name!r} ({cls.__name__}) implements no extension point: it needs "
                            f"one of {', '.join('/'.join(_methods(p)) + '()' for p in EXTENSION_POINTS.values())}")
        cls.name = name
        create = getattr(cls, "create", None)
        REGISTRY[name] = create if create is not None else (lambda args, handle: cls(**(args or {})))
        return cls
    return deco


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: reason -> number of nodes, plus the PreFilter message if any."""
    reasons: dict[str, int] = field(default_factory=dict)
    pre_filter: str = ""
    unresolvable: bool = False


class FitError(Exception):
    def __init__(self, num_nodes: int, diagnosis: Diagnosis) -> None:
        self.num_nodes = num_nodes
        self.diagnosis = diagnosis
        super().__init__(self.message())

    def message(self) -> str:
        """kube-scheduler's text: reasons counted per node, as ``"<n> <reason>"`` sorted as strings."""
        if self.num_nodes == 0:
            return "no nodes available to schedule pods"
        msg = f"0/{self.num_nodes} nodes are available:"
        if self.diagnosis.pre_filter:
            return f"{msg} {self.diagnosis.pre_filter}."
        parts = sorted(f"{n} {reason}" for reason, n in self.diagnosis.reasons.items())
        return f"{msg} {', '.join(parts)}." if parts else msg


class SchedulingError(Exception):
    """A plugin failed (not a fit problem): the pod is retried after its backoff."""


class Framework:
    """One profile: plugins built from the registry, run at each extension point in order."""

    def __init__(self, filters: tuple[str, ...], scores: dict[str, float], binders: tuple[str, ...],
                 reserves: tuple[str, ...] = (), handle: Any = None, args: dict[str, dict] | None = None,
                 seed: int | None = None, percentage_of_nodes_to_score: int = 0) -> None:
        args = args or {}
        built: dict[str, Any] = {}

        def plugin(name: str) -> Any:
            if name not in built:
                if name not in REGISTRY:
                    raise KeyError(f"unknown scheduler plugin {name!r}")
                built[name] = REGISTRY[name](args.get(name) or {}, handle)
            return built[name]

        self.filters = [check_plugin(plugin(n), "Filter") for n in filters]
        self.pre_filters = [p for p in self.filters if isinstance(p, PreFilterPlugin)]
        self.scores = [(check_plugin(plugin(n), "Score"), float(w)) for n, w in scores.items()]
        self.reserves = [check_plugin(plugin(n), "Reserve") for n in reserves]
        self.binders = [check_plugin(plugin(n), "Bind") for n in binders]
        self._random = random.Random(seed)
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score  # 0: adaptive (kube-scheduler's default)
        self.next_start_slot = 0  # where the next cycle starts looking (nextStartNodeIndex)

    def find_feasible(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable") -> np.ndarray:
        """Slots of the nodes the pod fits; raises :class:`FitError` saying why when there are none.
        The fast pass only narrows the mask; reasons are counted per node only when nothing fits.
        As kube-scheduler, a cycle keeps only the first :func:`num_feasible_nodes_to_find` feasible nodes in
        node order from where the previous cycle stopped (``next_start_slot``), so that each is scored in turn."""
        valid = nodes.view("valid")
        total = int(np.count_nonzero(valid))
        filters = self._active_filters(state, pod, nodes, total)
        alive = valid.copy()
        for p in filters:
            for _, mask in p.filter(state, pod, nodes, alive):
                alive &= ~mask
            if not np.count_nonzero(alive):  # (ndarray.any() costs several times more)
                raise FitError(total, self._diagnose(state, pod, nodes, filters))
        return self._sample(alive.nonzero()[0], num_feasible_nodes_to_find(total, self.percentage_of_nodes_to_score),
                            len(valid))

    def _sample(self, feasible: np.ndarray, want: int, slots: int) -> np.ndarray:
        """The first ``want`` of ``feasible`` (ascending slots) at or after ``next_start_slot``, wrapping around;
        the next cycle starts just after the last node this one examined."""
        if len(feasible) <= want:
            return feasible  # every node examined: the next cycle starts where this one did
        first = int(np.searchsorted(feasible, self.next_start_slot))
        picked = feasible.take(np.arange(first, first + want), mode="wrap")
        self.next_start_slot = (int(picked[-1]) + 1) % slots
        return picked

    def _active_filters(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable", total: int) -> list:
        if total == 0:
            raise FitError(0, Diagnosis())
        skip = set()
        for p in self.pre_filters:
            st = p.pre_filter(state, pod, nodes)
            if st.code == Code.SKIP:
                skip.add(p.name)
            elif st.code == Code.ERROR:
                raise SchedulingError(f"{p.name}: {st.message}")
            elif not st.ok:
                raise FitError(total, Diagnosis(pre_filter=st.message))
        return [p for p in self.filters if p.name not in skip]

    def _diagnose(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable", filters: list) -> Diagnosis:
        """Each node fails at its first failing plugin, with every reason that plugin gives."""
        diag = Diagnosis()
        alive = nodes.view("valid").copy()
        for p in filters:
            failed = np.zeros_like(alive)
            for reason, mask in p.filter(state, pod, nodes, alive):
                hit = mask & alive
                n = int(np.count_nonzero(hit))
                if n:
                    diag.reasons[reason] = diag.reasons.get(reason, 0) + n
                    failed |= hit
            alive &= ~failed
        return diag

    def score(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable", idx: np.ndarray) -> np.ndarray:
        """Weighted sum of the normalised (0..100) plugin scores of nodes ``idx``."""
        total = np.zeros(len(idx))
        for p, weight in self.scores:
            s = p.score(state, pod, nodes, idx)
            if s is None:  # no opinion on this pod: the same for every node
                continue
            norm = getattr(p, "normalize", None)
            if norm is not None:
                s = norm(state, pod, s)
            total += weight * s
        return total

    def select_host(self, state: CycleState, pod: "PodInfo", nodes: "NodeTable") -> str:
        idx = self.find_feasible(state, pod, nodes)
        if len(idx) == 1:
            return nodes.names[int(idx[0])]
        total = self.score(state, pod, nodes, idx)
        best = (total >= total.max() - 1e-9).nonzero()[0]
        pick = best[0] if len(best) == 1 else best[self._random.randrange(len(best))]
        return nodes.names[int(idx[pick])]

    def reserve(self, state: CycleState, pod: "PodInfo", node: str) -> Status:
        for i, p in enumerate(self.reserves):
            st = p.reserve(state, pod, node)
            if not st.ok:
                for q in reversed(self.reserves[: i + 1]):
                    q.unreserve(state, pod, node)
                return st
        return SUCCESS

    def unreserve(self, state: CycleState, pod: "PodInfo", node: str) -> None:
        for p in reversed(self.reserves):
            p.unreserve(state, pod, node)

    async def bind(self, state: CycleState, pod: "PodInfo", node: str) -> Status:
        for p in self.binders:
            st = await p.bind(state, pod, node)
            if st.code != Code.SKIP:
                return st
        return Status.error("no bind plugin bound the pod")
