"""Pure helpers for files on XMPP: out-of-band URLs (XEP-0066), HTTP upload slots
(XEP-0363) and the addresses the bridge may fetch from. No slixmpp, no I/O.

An agent's client uploads a file to its server's upload service and posts the download
URL as the body of a group chat line with `<x xmlns="jabber:x:oob"><url>...</url></x>`;
Conversations, Gajim and Dino show such a line inline. The bridge fetches only URLs under
the upload service's download prefix: anything else an agent posts stays text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

OOB_NS = "jabber:x:oob"
UPLOAD_NS = "urn:xmpp:http:upload:0"
OOB_URL = f"{{{OOB_NS}}}x/{{{OOB_NS}}}url"
_DISCO_INFO = "http://jabber.org/protocol/disco#info"
_DATA = "jabber:x:data"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# XEP-0363 §5: the only headers of a slot a client passes on with its PUT.
_PUT_HEADERS = {"authorization", "cookie", "expires"}
# Characters on which URL parsers disagree (an HTTP client may strip or rewrite them).
_UNSAFE_IN_URL = frozenset("\\ \t\r\n\x00")
FALLBACK_NAME = "file"


@dataclass(frozen=True)
class HttpAddress:
    """An http(s) URL split into what a prefix is matched on."""

    scheme: str
    host: str  # lowercase
    port: int  # explicit, or the scheme's default
    netloc: str  # as written (host and port), for rebuilding a prefix
    path: str  # still percent-encoded; "/" at least


@dataclass(frozen=True)
class Slot:
    """Where to PUT a file and where it is downloaded from afterwards (XEP-0363)."""

    put_url: str
    get_url: str
    headers: tuple[tuple[str, str], ...]  # the allowed headers to send with the PUT


def http_address(url: str) -> HttpAddress | None:
    """An http(s) URL with a host and no user info, and no path segment that walks up
    ("..", also percent-encoded: HTTP clients normalise them away); None for anything
    else."""
    if not url or any(char in _UNSAFE_IN_URL for char in url):
        return None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    path = parts.path or "/"
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        return None
    return HttpAddress(scheme, host.lower(), port or _DEFAULT_PORTS[scheme],
                       parts.netloc.lower(), path)


def under_prefix(url: str, prefix: str) -> bool:
    """Whether `url` is at or below `prefix`: same scheme, host and port, and its path
    inside the prefix's path taken as a directory."""
    address, base = http_address(url), http_address(prefix)
    if address is None or base is None:
        return False
    directory = base.path if base.path.endswith("/") else base.path + "/"
    return ((address.scheme, address.host, address.port) == (base.scheme, base.host, base.port)
            and address.path.startswith(directory))


def download_prefix(get_url: str) -> str | None:
    """The download prefix an upload service's GET URL shows: its first path segment when
    a slot's own segments follow it (Prosody: /file_share/<slot>/<name>; ejabberd:
    /upload/<user>/<slot>/<name>), else the site's root."""
    address = http_address(get_url)
    if address is None:
        return None
    segments = address.path.split("/")[1:]
    first = f"{segments[0]}/" if len(segments) >= 3 and segments[0] else ""
    return f"{address.scheme}://{address.netloc}/{first}"


def service_prefix(service: str) -> str:
    """The prefix assumed for an upload service whose downloads were never seen."""
    return f"https://{service.lower()}/"


def name_from_url(url: str) -> str:
    """The file's name: the URL's last path segment, percent-decoded."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return FALLBACK_NAME
    return unquote(path.rstrip("/").rpartition("/")[2]) or FALLBACK_NAME


def oob_url(xml: ET.Element) -> str | None:
    """The out-of-band URL (XEP-0066) a message carries, if any."""
    url = (xml.findtext(OOB_URL) or "").strip()
    return url or None


def oob_element(url: str) -> ET.Element:
    oob = ET.Element(f"{{{OOB_NS}}}x")
    ET.SubElement(oob, f"{{{OOB_NS}}}url").text = url
    return oob


def slot_request(filename: str, size: int, content_type: str) -> ET.Element:
    """The payload of an iq asking the upload service for a slot."""
    return ET.Element(f"{{{UPLOAD_NS}}}request", {
        "filename": filename or FALLBACK_NAME, "size": str(size), "content-type": content_type,
    })


def parse_slot(iq: ET.Element) -> Slot | None:
    """The slot an upload service's answer gives; None when it gives no usable one."""
    slot = iq.find(f"{{{UPLOAD_NS}}}slot")
    put = slot.find(f"{{{UPLOAD_NS}}}put") if slot is not None else None
    get = slot.find(f"{{{UPLOAD_NS}}}get") if slot is not None else None
    if put is None or get is None:
        return None
    put_url, get_url = put.get("url") or "", get.get("url") or ""
    if http_address(put_url) is None or http_address(get_url) is None:
        return None
    headers = []
    for header in put.findall(f"{{{UPLOAD_NS}}}header"):
        name, value = header.get("name") or "", (header.text or "").strip()
        if name.lower() in _PUT_HEADERS and "\r" not in value and "\n" not in value:
            headers.append((name, value))
    return Slot(put_url, get_url, tuple(headers))


def offers_upload(info: ET.Element) -> bool:
    """Whether a disco#info answer is an HTTP upload service's."""
    return any(feature.get("var") == UPLOAD_NS
               for feature in info.iter(f"{{{_DISCO_INFO}}}feature"))


def max_file_size(info: ET.Element) -> int | None:
    """The largest file an upload service takes, from its disco#info form; None if it
    names no limit."""
    for form in info.iter(f"{{{_DATA}}}x"):
        values = {field.get("var"): field.findtext(f"{{{_DATA}}}value")
                  for field in form.iter(f"{{{_DATA}}}field")}
        if values.get("FORM_TYPE") != UPLOAD_NS:
            continue
        try:
            return int(values.get("max-file-size") or "")
        except ValueError:
            return None
    return None
