"""``k8n certs check-expiration|renew|rotate-sa-key|prune-sa-keys|rotate-bus-key``: the certificates and keys k8n
made, as ``kubeadm certs`` handles kubeadm's.

- ``check-expiration``: kubeadm's tables: every leaf certificate (the gateway's ``apiserver``, the NATS servers'
  ``nats`` and the copies each rendered cluster server uses), the CA, the expiry of the bus credentials' JWTs
  (``<data dir>/creds/*.creds``; ``<never>`` when they have none) with the signing key that issued each (current or
  former), and the bus signing keys (since when the current one signs, when each former one was retired).
- ``renew all|<name>``: re-issues leaf certificates from the existing CA (new key and serial, same subject and
  SANs; files replaced atomically, keys 0600). The CA itself is never renewed here. The processes serving them
  read them at start: the gateway must be restarted, the NATS servers reloaded (SIGHUP) or restarted.
- ``rotate-sa-key``: a new ServiceAccount token signing key (``bus.tokens.rotate_key``); the former public key stays
  accepted, and API servers pick up the change on their next token request or review (no restart).
  ``prune-sa-keys``: drop former keys whose every token has expired.
- ``rotate-bus-key``: a new signing key for the bus credentials (the NATS account's, ``bus.natsauth``), in two steps
  with no outage. First the new key signs and the former one stays in the account JWT's signing keys; the account
  JWT is pushed to the running NATS servers (``bus.natsrevoke.push_account``; with no cluster running, the next
  start's server config preloads it), and only then is every ``<data dir>/creds/*.creds`` minted again with the new
  key (same identities and expiry; a new user key pair; files replaced atomically, 0600). Running components keep
  their connections, and nats.py reads the credentials file again at each reconnect, so they switch when they
  reconnect (a restart of the component, or of a NATS server). API servers read the key files again when they
  change. ``--finish`` then drops the former keys and pushes: it refuses (exit 1, naming them) while connections
  whose user JWT a former key issued are connected (``bus.natsconns``), since nats-server closes those connections
  when the update arrives and refuses them at connect from then on; ``--force`` finishes anyway.
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

certs = typer.Typer(help="Certificates and signing keys: check expiration, renew, rotate the ServiceAccount and bus "
                         "signing keys.",
                    no_args_is_help=True)
app.add_typer(certs, name="certs")

CA_NAME = "ca"
LEAF_NAMES = ("apiserver", "nats")  # in <data dir>/pki: the gateway's serving certificate, the NATS servers'
KEY_FILE_ENV = "K8N_SERVICE_ACCOUNT_KEY_FILE"
MAX_TOKEN_SECONDS = 1 << 32  # TokenRequest's expirationSeconds cap: the longest a token can live
AUTH_DIR = "nats-auth"  # in the data dir: the bus's operator, account and signing keys (bus.natsauth)


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


def _bus_auth(ddir: Path):
    """The cluster's bus keys in ``<data dir>/nats-auth`` (None where there are none: a joined node's data dir)."""
    from bus.natsauth import AuthError, ClusterAuth

    if not (ddir / AUTH_DIR).is_dir():
        return None
    try:
        return ClusterAuth.load(ddir / AUTH_DIR)
    except AuthError:
        return None


def credential_rows(ddir: Path) -> list[Row]:
    """The bus credentials (``<data dir>/creds/*.creds``) with their JWTs' expiry (None: they have none) and, as
    their authority, the bus signing key that issued them: ``current``, ``former`` (a rotation not finished) or
    ``unknown`` (another cluster's, or a key dropped: the servers refuse them); empty without the cluster's keys."""
    from bus.natsauth import AuthError, decode_jwt

    auth = _bus_auth(ddir)
    keys = auth.signing_keys() if auth else []
    rows = []
    for p in sorted((ddir / "creds").glob("*.creds")):
        try:
            jwt = p.read_text().split("-----BEGIN NATS USER JWT-----", 1)[1].split("------END", 1)[0].strip()
            claims = decode_jwt(jwt)
        except (IndexError, AuthError, OSError, UnicodeDecodeError):
            continue
        exp = claims.get("exp")
        t = datetime.datetime.fromtimestamp(exp, datetime.timezone.utc) if isinstance(exp, (int, float)) else None
        signer = "" if not keys else "current" if claims.get("iss") == keys[0] else \
            "former" if claims.get("iss") in keys else "unknown"
        rows.append(Row(p.stem, p, t, signer))
    return rows


def signing_key_rows(ddir: Path, now: datetime.datetime) -> list[list[str]]:
    """``[state, public key, since]`` of the bus signing keys: the current one (made when) and the former ones
    (retired when) of a rotation not finished."""
    auth = _bus_auth(ddir)
    if auth is None:
        return []
    since = auth.signing_key_since()
    made = datetime.datetime.fromtimestamp(since, datetime.timezone.utc) if since is not None else None
    rows = [["current", auth.signing_keys()[0], f"made {_when(made)} ({_age(made, now)} ago)" if made else "?"]]
    for key, at in auth.former_signing.items():
        retired = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
        rows.append(["former", key, f"retired {_when(retired)} ({_age(retired, now)} ago)"])
    return rows


def _age(t: datetime.datetime, now: datetime.datetime) -> str:
    """How long ago ``t`` was, in ``residual``'s units."""
    return residual(now + (now - t), now) if t <= now else "0s"


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
        out.append(_table(["BUS CREDENTIAL", "EXPIRES", "RESIDUAL TIME", "SIGNING KEY"],
                          [[r.name, _when(r.expires), residual(r.expires, now), r.authority] for r in creds]))
    keys = signing_key_rows(ddir, now)
    if keys:
        out.append(_table(["BUS SIGNING KEY", "PUBLIC KEY", "SINCE"], keys))
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


# ---- the bus credentials' signing key ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bus:
    """Where the running cluster's NATS servers are, as this data dir says (url None: no cluster runs from it)."""

    url: str | None
    tls_ca: Path | None = None


def running_bus(ddir: Path, server: str | None = None) -> Bus:
    """``--server``, else the NATS URL ``k8n up`` (or a control-plane machine) recorded in the data dir's
    cluster info while it runs (None when none is recorded or the process that recorded it is gone), with the
    NATS CA of ``<data dir>/creds`` for ``tls://`` URLs."""
    from bus.cli.runner import _alive

    ca = ddir / "creds" / "nats-ca.crt"
    tls_ca = ca if ca.exists() else None
    if server:
        return Bus(server, tls_ca)
    info = config.read_cluster_info(ddir) or {}
    pid = info.get("pid")
    if not info.get("server") or (pid and not _alive(int(pid))):
        return Bus(None)
    return Bus(str(info["server"]), tls_ca)


class StillConnected(CliError):
    """``--finish`` refused: connections made with JWTs of a former signing key are connected."""


async def rotate_bus_key(ddir: Path, bus: Bus, report=print) -> tuple[str, str]:
    """Step 1: a new signing key, the account JWT (current + former keys) pushed to ``bus`` when it runs, then every
    ``<data dir>/creds/*.creds`` minted again with the new key. ``(former, new)`` public keys. CliError when the
    keys are not there or the running servers did not take the update (then nothing was re-minted: the running
    servers would refuse the new credentials)."""
    from bus.natsauth import AuthError, ClusterAuth
    from bus.natsrevoke import push_account

    try:
        auth = ClusterAuth.load(ddir / AUTH_DIR)
        old, new = auth.rotate_signing_key()
    except AuthError as e:
        raise CliError(f"no bus keys to rotate: {e}") from None
    report(f"bus signing key rotated: {old} -> {new} ({ddir / AUTH_DIR}); {old} stays accepted until "
           "`k8n certs rotate-bus-key --finish`")
    if bus.url:
        try:
            await push_account(bus.url, auth, bus.tls_ca)
        except AuthError as e:
            raise CliError(f"the running NATS servers did not take the new signing key ({e}); no credentials were "
                           f"minted again. Run `k8n certs rotate-bus-key` again once they answer (the key just made "
                           "then stays accepted as a former one as well)") from None
        report(f"account update pushed to {bus.url}")
    else:
        report("no cluster runs from this data dir: the NATS servers' config carries the new key at the next start")
    done, skipped = auth.remint_creds(ddir / "creds")
    for p in done:
        report(f"  credentials minted again with the new key: {p}")
    for why in skipped:
        report(f"  left alone: {why}")
    return old, new


async def finish_bus_key_rotation(ddir: Path, bus: Bus, force: bool = False, report=print) -> list[str]:
    """Step 2: drop the former signing keys and push the account JWT (the former keys dropped). Unless ``force``,
    StillConnected (naming them) while connections of the running cluster authenticated with a JWT a former key
    issued, or CliError when they cannot be listed."""
    from bus import natsconns
    from bus.natsauth import AuthError, ClusterAuth
    from bus.natsrevoke import push_account

    try:
        auth = ClusterAuth.load(ddir / AUTH_DIR)
    except AuthError as e:
        raise CliError(f"no bus keys: {e}") from None
    former = dict(auth.former_signing)
    if former and bus.url:
        try:
            stale = [c for c in await natsconns.connections(bus.url, auth, bus.tls_ca) if c.issuer in former]
        except AuthError as e:
            if not force:
                raise CliError(f"cannot tell whether credentials of a former signing key are still in use: {e} "
                               "(--force finishes anyway)") from None
            stale = []
            report(f"warning: {e}")
        if stale:
            names = "\n".join(f"  {c.identity} ({c.name or 'unnamed'}) from {c.address} on {c.server}, signed by "
                              f"{c.issuer}" for c in sorted(stale, key=lambda c: (c.identity, c.address)))
            what = (f"{len(stale)} connection(s) still use credentials signed by a former bus signing key:\n{names}\n"
                    "NATS closes them when the former keys are dropped, and refuses them from then on. Restart those "
                    "components so that they reconnect with their new credentials (a joined node needs new "
                    "credentials first: stop its agent, `k8n join` again with a new token), or finish with --force")
            if not force:
                raise StillConnected(what)
            report(f"warning (--force): {what}")
    dropped = auth.drop_former_signing_keys()
    for key in dropped:
        report(f"former bus signing key dropped: {key}")
    if not dropped:
        report("no former bus signing key: nothing to drop")
    if bus.url:  # pushed also when nothing was dropped: a finish whose push failed is made good by running it again
        try:
            await push_account(bus.url, auth, bus.tls_ca)
        except AuthError as e:
            raise CliError(f"the running NATS servers did not take the update ({e}): they accept the former key(s) "
                           "until they get it. Run `k8n certs rotate-bus-key --finish` again once they answer") \
                from None
        report(f"account update pushed to {bus.url}: credentials of the former key(s) are refused from now on")
    for row in credential_rows(ddir):
        if row.authority == "unknown":
            report(f"warning: {row.path} was not signed by the current key: it is refused (mint it again with "
                   "`k8n credentials`)")
    return dropped


@certs.command("rotate-bus-key")
def rotate_bus_key_cmd(data_dir: Optional[str] = DataDirOpt,
                       finish: bool = typer.Option(False, "--finish", help="end the rotation: drop the former "
                                                   "keys (refused while connections still use their credentials)"),
                       force: bool = typer.Option(False, "--force", help="with --finish: even while such "
                                                  "connections are connected (NATS closes them)"),
                       server: Optional[str] = typer.Option(None, "--server", "-s", help="the NATS URL(s) of the "
                                                            "running cluster (default: what the data dir records)")) \
        -> None:
    """Rotate the signing key of the bus credentials (NATS user JWTs) without an outage: a new key signs and every
    <data dir>/creds/*.creds is minted again, the former key stays accepted until --finish."""
    import asyncio

    if force and not finish:
        _fail("--force goes with --finish")
    ddir = config.data_dir(data_dir)
    bus = running_bus(ddir, server)
    try:
        if finish:
            asyncio.run(finish_bus_key_rotation(ddir, bus, force))
            return
        asyncio.run(rotate_bus_key(ddir, bus))
    except CliError as e:
        fail(e)
    print("Running components keep their connections and use the new credentials when they reconnect: restart k8n\n"
          "(`systemctl restart k8n`, or stop and start `k8n up`), or each component. Other control-plane machines:\n"
          f"copy {ddir / AUTH_DIR}/account-signing.nk and account-signing-former.json there now. Joined nodes: their\n"
          "credentials were signed by the former key; on each, stop the agent and run `k8n join` again with a new\n"
          "token (`k8n token create`). Then: k8n certs rotate-bus-key --finish (it names the connections that still\n"
          "use a former key)")


# `k8n certs rotate-ca` registers on `certs` (imported last: it needs `certs` defined)
from bus.cli import carotation  # noqa: E402,F401
