"""``k8n certs rotate-ca [--finish]``: rotation of the cluster CA in two steps (bus.pki), as kubeadm's manual one.

1. ``rotate-ca``: a new CA signs from now on, ``pki/ca.crt`` is the bundle new + former (what the kubeconfig, the
   pods' ``kube-root-ca.crt``, the NATS clients' ``nats-ca.crt`` and joining machines get from it at the next start of
   ``k8n up``), and every leaf (the gateway's, the NATS servers') is re-issued by the new CA. Restart k8n: the servers
   then present the new certificates, which clients trusting the bundle accept, as they still accept the old ones.
2. ``rotate-ca --finish``, once every client has the bundle: ``pki/ca.crt`` holds the new CA alone; restart k8n again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bus import config
from bus.cli.certs import certs
from bus.cli.common import DataDirOpt, fail
from bus.cli.common import CliError


def _restart_hint(ddir: Path) -> str:
    running = config.read_cluster_info(ddir)
    return ("restart k8n now (`systemctl restart k8n`, or stop and start `k8n up`) so that its servers use them"
            if running else "the next `k8n up` uses them")


@certs.command("rotate-ca")
def rotate_ca(data_dir: Optional[str] = DataDirOpt,
              finish: bool = typer.Option(False, "--finish", help="end the rotation: the former CA is trusted no "
                                          "more (once every client and joined machine has the bundle)")) -> None:
    """Rotate the cluster CA: a new CA and re-issued certificates, both CAs trusted (ca.crt is their bundle) until
    --finish."""
    from bus import pki

    ddir = config.data_dir(data_dir)
    directory = ddir / "pki"
    try:
        if finish:
            ca = pki.finish_ca_rotation(directory)
            print(f"{directory / 'ca.crt'} holds {ca.subject.rfc4514_string()} alone; {_restart_hint(ddir)}")
            return
        ca = pki.rotate_ca(directory)
    except (ValueError, OSError) as e:
        fail(CliError(str(e)))
    leaves = ", ".join(pki.leaf_names(directory)) or "none"
    print(f"new CA {ca.subject.rfc4514_string()} signs from now on; re-issued: {leaves}\n"
          f"{directory / 'ca.crt'} is the bundle of the new and the former CA; {_restart_hint(ddir)}.\n"
          f"Joined machines: copy {directory / 'ca.crt'} to their <data dir>/creds/nats-ca.crt before the restart; "
          "kubeconfigs copied elsewhere: take the new certificate-authority-data.\n"
          "Then: k8n certs rotate-ca --finish (and restart again)")
