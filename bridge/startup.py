"""Start-up failures in one line each: what went wrong and which config key fixes it.

A failure at start-up is nearly always a setting (a host name, a password, a port, a path),
so the admin gets the key path and the cause, never a traceback. Each function here turns
one library exception into that line; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import sqlite3
import ssl
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp

from bridge.backends.base import BackendUnavailable
from bridge.config import Config
from bridge.store import Store, StoreError

# What to suggest when the listen port is taken; the demo replaces it with its own options.
RUN_LISTEN_HINT = "--listen HOST:PORT or [server] listen"
T = TypeVar("T")


class StartupError(Exception):
    """A start-up failure the admin fixes in the config: `key: reason (what to do)`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


# -- network (a homeserver or XMPP server) ---------------------------------------------------


def connect_problem(exc: BaseException, key: str, target: str) -> str:
    """`key: why target cannot be reached`, for a failed first connection."""
    cert = _certificate_error(exc)
    if cert is not None:
        return (f"{key}: the TLS certificate of {target} does not verify ({cert}) (expected "
                "a certificate this machine trusts, or the private CA that signed it)")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return f"{key}: TLS with {target} failed ({_os_reason(exc)}) (is it a TLS port?)"
    if _is_dns_failure(exc):
        return f"{key}: cannot resolve the host name of {target} (check the spelling)"
    if _is_refused(exc):
        return f"{key}: connection refused by {target} (is the server running on that port?)"
    if isinstance(exc, TimeoutError):
        return f"{key}: no answer from {target} in time (is the address right? a firewall?)"
    return f"{key}: cannot connect to {target} ({_os_reason(exc)})"


async def first_contact(request: Awaitable[T], homeserver: str) -> T:
    """The first request to a homeserver: failing here, it is nearly always the URL or the
    server's certificate, so the message names `matrix.homeserver` and the cause."""
    try:
        return await request
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        problem = connect_problem(exc, "matrix.homeserver", url_target(homeserver))
        raise BackendUnavailable(problem) from None


def refusal(response: object) -> str:
    """A refused login or token as the server put it, e.g. "M_FORBIDDEN: Invalid password"."""
    code = getattr(response, "status_code", None)
    message = getattr(response, "message", None)
    return ": ".join(str(part) for part in (code, message) if part) or str(response)


def xmpp_connect_problem(host: str | None, port: int, jid: str, failure: object) -> str:
    """Why the first connection of the XMPP bot failed, naming the key to fix."""
    target = f"{host}:{port}" if host else f"the server of {jid} (DNS SRV records)"
    if not isinstance(failure, BaseException):
        failure = OSError(str(failure))  # slixmpp reports some failures as plain text
    if _certificate_error(failure) is not None:
        return connect_problem(failure, "xmpp.ca_file", target)
    if _is_dns_failure(failure):
        return connect_problem(failure, "xmpp.host" if host else "xmpp.jid", target)
    return connect_problem(failure, "xmpp.port" if _is_refused(failure) else "xmpp.host", target)


def url_target(url: str) -> str:
    """host:port of a URL, as the admin would look for it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _certificate_error(exc: BaseException) -> str | None:
    chain = _chain(exc)
    for cause in chain:
        message = getattr(cause, "verify_message", None)  # aiohttp's wrapper has none
        if isinstance(cause, ssl.SSLCertVerificationError) and message:
            return f"CERTIFICATE_VERIFY_FAILED: {message}"
    if any("CERTIFICATE_VERIFY_FAILED" in str(cause) for cause in chain):
        return "CERTIFICATE_VERIFY_FAILED"  # e.g. slixmpp's text, without the details
    return None


def _is_dns_failure(exc: BaseException) -> bool:
    return any(isinstance(c, (socket.gaierror, aiohttp.ClientConnectorDNSError))
               or "No DNS record" in str(c) for c in _chain(exc))


def _is_refused(exc: BaseException) -> bool:
    return any(isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None)
               == errno.ECONNREFUSED for c in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (aiohttp keeps the OSError as os_error and cause)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        wrapped = getattr(current, "os_error", None)
        current = wrapped if isinstance(wrapped, BaseException) else (
            current.__cause__ or current.__context__)
    return seen


def _os_reason(exc: BaseException) -> str:
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return str(exc) or type(exc).__name__


# -- the listen address ------------------------------------------------------------------------


def check_listen_free(host: str, port: int, hint: str = RUN_LISTEN_HINT) -> None:
    """Bind the visitors' address once and let go, before anything slow starts: a port in
    use is reported at once, not after logging in to the messenger."""
    if port == 0:
        return  # any free port: nothing to collide with
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError("server.listen", f"cannot resolve {host!r} ({exc.strerror}) "
                           "(expected an address of this machine, e.g. 127.0.0.1:8080)") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As aiohttp binds: a port in TIME_WAIT is free to take, so it is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise listen_error(exc, host, port, hint) from None


def listen_error(exc: OSError, host: str, port: int, hint: str = RUN_LISTEN_HINT) -> StartupError:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if exc.errno == errno.EADDRINUSE:
        return StartupError("server.listen", f"port {port} on {host} is already in use "
                            f"(pick another: {hint})")
    if exc.errno == errno.EACCES:
        return StartupError("server.listen", f"no permission to listen on {where} (ports "
                            f"below 1024 need privileges; pick another: {hint})")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError("server.listen", f"{host} is not an address of this machine "
                            f"(expected e.g. 127.0.0.1 or 0.0.0.0; {hint})")
    return StartupError("server.listen", f"cannot listen on {where} ({exc.strerror or exc})")


def with_listen(config: Config, listen: str) -> Config:
    """The config with `--listen HOST:PORT` in place of `[server] listen`. A public URL that
    was only the default (the old listen address) follows the new one."""
    host, _, port = listen.rpartition(":")
    server = config.server
    old = f"http://{_bracketed(server.host)}:{server.port}"
    public_url = server.public_url if server.public_url != old else f"http://{listen}"
    return dataclasses.replace(config, server=dataclasses.replace(
        server, host=host.strip("[]"), port=int(port), public_url=public_url))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- the database --------------------------------------------------------------------------------


def open_store(path: Path) -> Store:
    """The store, or a StartupError naming `[storage] path` and why it cannot be opened."""
    try:
        return Store(path)
    except StoreError as exc:
        raise StartupError("storage.path", f"{path}: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        raise StartupError("storage.path", f"cannot open the database {path}: "
                           f"{_storage_reason(exc)} (expected a file in a directory the bridge "
                           "may write to)") from None


def _storage_reason(exc: OSError | sqlite3.Error) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return f"{exc.filename} is not a directory"  # a file where a folder should be
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return str(exc)  # sqlite: "unable to open database file", "readonly database"
