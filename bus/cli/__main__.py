"""``python -m bus.cli``: the ``k8n`` command without the console script."""

from bus.cli.main import main

main()
