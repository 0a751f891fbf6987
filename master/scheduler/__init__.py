"""The k8n scheduler: a Kubernetes-style scheduling framework (``framework``), one module per
plugin (``plugins/``), the cache with assumed pods (``cache``, ``nodetable``), the scheduling queue
(``queue``) and the loop (``scheduler``). ``run`` is the ``scheduler`` component."""

from master.scheduler.scheduler import DEFAULT_NAME, Scheduler, run

__all__ = ["DEFAULT_NAME", "Scheduler", "run"]
