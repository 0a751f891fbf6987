"""The controller manager: one module per controller, each a ``reconcile(key)`` over informers."""
