"""The in-tree plugins (one module each) and the default profile: plugin order and score weights
as kube-scheduler's defaults (TaintToleration 3, NodeAffinity 2, spreading 2, resources 1)."""

from master.scheduler.plugins import (  # noqa: F401  (importing registers them)
    balanced_allocation, default_binder, node_affinity, node_name, node_ports, node_ready,
    node_resources_fit, node_unschedulable, selector_spread, taint_toleration,
)

DEFAULT_FILTERS = ("NodeReady", "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts",
                   "NodeResourcesFit")
DEFAULT_SCORES = {"TaintToleration": 3, "NodeAffinity": 2, "SelectorSpread": 2, "NodeResourcesFit": 1,
                  "NodeResourcesBalancedAllocation": 1}
DEFAULT_BINDERS = ("DefaultBinder",)
