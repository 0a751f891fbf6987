"""``k8n certs check-expiration|renew|rotate-sa-key|prune-sa-keys``: the certificates and keys k8n made, as
``kubeadm certs`` handles kubeadm's.

- ``check-expiration``: kubeadm's tables: every leaf certificate (the gateway's ``apiserver``, the NATS servers'
  ``nats`` and the copies each rendered cluster server uses), the CA, and the expiry of the bus credentials' JWTs
  (``<data dir>/creds/*.creds``; ``<never>`` when they have none).
- ``renew all|<name>``: re-issues leaf certificates from the existing CA (new key and serial, same subject and
  SANs; files replaced atomically, keys 0600). The CA itself is never renewed here. The processes serving them
  read them at start: the gateway must be restarted, the NATS servers reloaded (SIGHUP) or restarted.
- ``rotate-sa-key``: a new ServiceAccount token signing key (``bus.tokens.rotate_key``); the former public key stays
  accepted, and API servers pick up the change on their next token request or review (no restart).
  ``prune-sa-keys``: drop former keys whose every token has expired.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Optional

import typer

from bus import config
from bus.cli.common import CliError, DataDirOpt, fail
from bus.cli.main import app

certs = typer.Typer(help="Certificates and signing keys: check expiration, renew, rotate the ServiceAccount key.",
                    no_args_is_help=True)
app.add_typer(certs, name="certs")

CA_NAME = "ca"
LEAF_NAMES = ("apiserver", "nats")  # in <data dir>/pki: the gateway's serving certificate, the NATS servers'
KEY_FILE_ENV = "K8N_SERVICE_ACCOUNT_KEY_FILE"
MAX_TOKEN_SECONDS = 1 << 32  # TokenRequest's expirationSeconds cap: the longest a token can live


@dataclass(frozen=True)
class Row:
    name: str
    path: Path
    expires: datetime.datetime | None  # None: never
    authority: str = ""
    external: bool = False


def residual(expires: datetime.datetime | None, now: datetime.datetime) -> str:
    """kubeadm's RESIDUAL TIME (``duration.ShortHumanDuration``): ``45s``, ``12m``, ``30h``, ``364d``, ``9y``."""
    if expires is None:
        return "<never>"
    s = int((expires - now).total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    if s < 2 * 365 * 86400:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


def _when(t: datetime.datetime | None) -> str:
    return "<never>" if t is None else t.astimezone(datetime.timezone.utc).strftime("%b %d, %Y %H:%M UTC")


def _cert(path: Path):
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as e:
        raise CliError(f"{path}: not a PEM certificate ({e})") from None


def leaf_paths(ddir: Path) -> dict[str, Path]:
    """name -> certificate file of every leaf certificate k8n made in ``ddir``."""
    out = {n: ddir / "pki" / f"{n}.crt" for n in LEAF_NAMES if (ddir / "pki" / f"{n}.crt").exists()}
    for p in sorted((ddir / "pki").glob("*.crt")):
        if p.stem != CA_NAME:
            out.setdefault(p.stem, p)
    for p in sorted(ddir.glob("nats/*/pki/nats.crt")):
        out[f"nats-{p.parent.parent.name}"] = p
    return out


def certificate_rows(ddir: Path) -> tuple[list[Row], list[Row]]:
    """``(leaf certificates, certificate authorities)`` of the data directory."""
    ca_path = ddir / "pki" / f"{CA_NAME}.crt"
    external = not (ddir / "pki" / f"{CA_NAME}.key").exists()
    cas, ca_subject = [], None
    if ca_path.exists():
        ca = _cert(ca_path)
        ca_subject = ca.subject
        cas.append(Row(CA_NAME, ca_path, ca.not_valid_after_utc, "", external))
    leaves = []
    for name, p in leaf_paths(ddir).items():
        c = _cert(p)
        signer = CA_NAME if ca_subject is not None and c.issuer == ca_subject else c.issuer.rfc4514_string()
        leaves.append(Row(name, p, c.not_valid_after_utc, signer, external))
    return leaves, cas


def credential_rows(ddir: Path) -> list[Row]:
    """The bus credentials (``<data dir>/creds/*.creds``) with their JWTs' expiry (None: they have none)."""
    from bus.natsauth import AuthError, decode_jwt

    rows = []
    for p in sorted((ddir / "creds").glob("*.creds")):
        try:
            jwt = p.read_text().split("-----BEGIN NATS USER JWT-----", 1)[1].split("------END", 1)[0].strip()
            exp = decode_jwt(jwt).get("exp")
        except (IndexError, AuthError, OSError, UnicodeDecodeError):
            continue
        t = datetime.datetime.fromtimestamp(exp, datetime.timezone.utc) if isinstance(exp, (int, float)) else None
        rows.append(Row(p.stem, p, t))
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def expiration_report(ddir: Path, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    leaves, cas = certificate_rows(ddir)
    yes = {True: "yes", False: "no"}
    out = [_table(["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"],
                  [[r.name, _when(r.expires), residual(r.expires, now), r.authority, yes[r.external]]
                   for r in leaves]),
           _table(["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"],
                  [[r.name, _when(r.expires), residual(r.expires, now), yes[r.external]] for r in cas])]
    creds = credential_rows(ddir)
    if creds:
        out.append(_table(["BUS CREDENTIAL", "EXPIRES", "RESIDUAL TIME"],
                          [[r.name, _when(r.expires), residual(r.expires, now)] for r in creds]))
    return "\n\n".join(out)


def _fail(message: str) -> NoReturn:
    fail(CliError(message))


@certs.command("check-expiration")
def check_expiration(data_dir: Optional[str] = DataDirOpt) -> None:
    """List every certificate k8n made (and the CA) with its expiry, as `kubeadm certs check-expiration`."""
    ddir = config.data_dir(data_dir)
    if not (ddir / "pki").is_dir():
        _fail(f"no certificates in {ddir / 'pki'}")
    try:
        print(expiration_report(ddir))
    except CliError as e:
        fail(e)


RESTART = {"apiserver": "restart the gateway (`k8n up`, or its service) to serve it",
           "nats": "reload every NATS server (`nats-server --signal reload`, SIGHUP) or restart it to use it"}


def renew_leaf(ddir: Path, name: str) -> list[Path]:
    """Re-issue the leaf certificate ``name`` (``nats``: also copied to each rendered cluster server); the files
    written."""
    from bus import pki
    from bus.files import write_private

    pki.renew(ddir / "pki", name)
    written = [ddir / "pki" / f"{name}.crt"]
    if name == "nats":
        for d in sorted(ddir.glob("nats/*/pki")):
            if (d / "nats.crt").exists():
                for f in ("nats.crt", "nats.key"):
                    write_private(d / f, (ddir / "pki" / f).read_bytes())
                written.append(d / "nats.crt")
    return written


@certs.command("renew")
def renew(name: str = typer.Argument(..., help="all, or a certificate of `k8n certs check-expiration` "
                                                 "(apiserver, nats)"),
          data_dir: Optional[str] = DataDirOpt) -> None:
    """Re-issue leaf certificates from the existing CA (same names; new key, serial and expiry). The CA is not
    renewed by this command."""
    ddir = config.data_dir(data_dir)
    known = [n for n in leaf_paths(ddir) if (ddir / "pki" / f"{n}.crt").exists()]
    if name == CA_NAME:
        _fail("the CA is not renewed by `k8n certs renew`: every certificate, kubeconfig and node trusts it")
    names = known if name == "all" else [name]
    for n in names:
        if n not in known:
            _fail(f"no certificate {n!r} in {ddir / 'pki'} (known: {', '.join(known) or 'none'})")
    if not (ddir / "pki" / f"{CA_NAME}.key").exists():
        _fail(f"no CA key in {ddir / 'pki'}: the certificates are externally managed")
    for n in names:
        try:
            written = renew_leaf(ddir, n)
        except (ValueError, OSError) as e:  # a certificate that does not parse, or lacks its SANs
            _fail(f"certificate {n} not renewed: {e}")
        for p in written:
            print(f"certificate {n} renewed: {p}")
        print(f"  {RESTART.get(n, 'restart the process that serves it to use it')}")


def sa_key_path(ddir: Path, key_file: str | None) -> Path:
    """The API server's ServiceAccount signing key: ``--key-file``, else ``$K8N_SERVICE_ACCOUNT_KEY_FILE``, else
    ``<data dir>/pki/sa.key`` (where the API server looks)."""
    return Path(key_file or os.environ.get(KEY_FILE_ENV) or ddir / "pki" / "sa.key").expanduser()


KeyFileOpt = typer.Option(None, "--key-file", help=f"the signing key (default ${KEY_FILE_ENV}, else "
                                                   "<data dir>/pki/sa.key)")
MaxLifetimeOpt = typer.Option(MAX_TOKEN_SECONDS, "--max-token-lifetime",
                              help="seconds the longest token lives (default: TokenRequest's cap, 2^32)")


@certs.command("rotate-sa-key")
def rotate_sa_key(data_dir: Optional[str] = DataDirOpt, key_file: Optional[str] = KeyFileOpt,
                  max_token_lifetime: int = MaxLifetimeOpt) -> None:
    """Make a new ServiceAccount token signing key; tokens signed with former keys stay valid until they expire.
    API servers reading these files switch at their next token request (no restart)."""
    from bus import tokens

    path = sa_key_path(config.data_dir(data_dir), key_file)
    if not path.exists():
        _fail(f"no ServiceAccount signing key at {path}")
    old, new = tokens.rotate_key(path)
    print(f"ServiceAccount signing key rotated: {old} -> {new} ({path})")
    _prune(path, max_token_lifetime)
    print("  other control-plane machines: copy pki/sa.key, sa.pub and sa.retired.json there")


def _prune(path: Path, max_token_lifetime: int) -> None:
    from bus import tokens

    for kid in tokens.prune_keys(path, max_token_lifetime):
        print(f"  dropped former key {kid}: every token it signed has expired")
    for kid, at in sorted(tokens.read_retired(path).items()):
        until = datetime.datetime.fromtimestamp(min(at + max_token_lifetime + tokens.LEEWAY_SECONDS, 253402300799),
                                                datetime.timezone.utc)
        print(f"  former key {kid} accepted until {_when(until)}")


@certs.command("prune-sa-keys")
def prune_sa_keys(data_dir: Optional[str] = DataDirOpt, key_file: Optional[str] = KeyFileOpt,
                  max_token_lifetime: int = MaxLifetimeOpt) -> None:
    """Drop former ServiceAccount signing keys retired more than --max-token-lifetime ago."""
    path = sa_key_path(config.data_dir(data_dir), key_file)
    if not path.exists():
        _fail(f"no ServiceAccount signing key at {path}")
    _prune(path, max_token_lifetime)


# `k8n certs rotate-ca` registers on `certs` (imported last: it needs `certs` defined)
from bus.cli import carotation  # noqa: E402,F401
