"""The service proxy (kube-proxy's job): Services and Endpoints programmed into the kernel with
nftables. ``model`` (desired datapath, pure), ``nft`` (ruleset, transactions), ``proxy`` (the sync
loop); ``python -m node.proxy`` runs one standalone."""

from .proxy import ServiceProxy

__all__ = ["ServiceProxy"]
