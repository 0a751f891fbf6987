"""NetworkPolicy compiled for each node (run by the node view, ``master/nodeview.py``): ``compile`` (Kubernetes'
semantics, pure), ``index`` (the cluster kept incrementally, pure; which nodes a change touches), ``documents``
(watches namespaces and policies, writes each node's document next to its pods in the node view bucket)."""
