"""Files visitors and agents send: what a file is by its content, its image size, a safe
name. Pure: the caller reads the first bytes (`HEAD_BYTES`) and hands them over.

A file's type is never taken from its name or from what the sender claims: only from its
first bytes. A file that could be read as HTML or SVG by a browser that guesses is never
called an image or text here, so it is refused unless an admin allows that type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bridge.core.protocol import clean_text
from bridge.core.untrusted import ProtocolError

# Enough to recognise every type below and to read a JPEG's size in most files (its SOF
# marker follows the metadata segments, usually within the first 64 KiB).
HEAD_BYTES = 64 * 1024
MAX_NAME = 200
# Shown inline (the widget's <img>, Element, Conversations): decoded by the browser's image
# decoder only, never as a document.
RASTER = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
UNKNOWN = "application/octet-stream"
KNOWN_TYPES = frozenset(RASTER | {
    "application/pdf", "text/plain", "application/zip", "text/html", "image/svg+xml",
    "application/xml", UNKNOWN,
})
EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
    "application/pdf": "pdf", "text/plain": "txt", "application/zip": "zip",
}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),  # also .docx, .xlsx, .odt: all zip containers
)
# What a browser that sniffs would take for markup, after leading whitespace and a BOM.
_MARKUP = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe",
           b"<svg", b"<?xml", b"<!--", b"<style", b"<img", b"<a ", b"<div", b"<p>",
           b"<meta", b"<title", b"<table", b"<object", b"<embed", b"<form")


@dataclass(frozen=True)
class Kind:
    """What the first bytes say a file is."""

    mimetype: str
    width: int | None = None
    height: int | None = None

    @property
    def raster(self) -> bool:
        return self.mimetype in RASTER


def sniff(head: bytes) -> Kind:
    """The type of a file from its first bytes, with an image's size. An image whose
    header cannot be read is not called an image."""
    mimetype = _magic(head)
    if mimetype in RASTER:
        size = image_size(mimetype, head)
        if size is None:
            return Kind(UNKNOWN)
        return Kind(mimetype, *size)
    return Kind(mimetype)


def _magic(head: bytes) -> str:
    for magic, mimetype in _MAGIC:
        if head.startswith(magic):
            return mimetype
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return _text_kind(head)


def _text_kind(head: bytes) -> str:
    if b"\x00" in head:
        return UNKNOWN
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if start.startswith((b"<svg", b"<?xml")) and b"<svg" in start:
        return "image/svg+xml"
    if start.startswith(b"<?xml"):
        return "application/xml"
    if start.startswith(_MARKUP) or b"<script" in start or b"<html" in start:
        return "text/html"
    try:
        # The head may end inside a multi-byte character: up to 3 bytes are forgiven.
        head.decode("utf-8") if len(head) < HEAD_BYTES else head[:-3].decode("utf-8")
    except UnicodeDecodeError:
        return UNKNOWN
    return "text/plain"


def image_size(mimetype: str, head: bytes) -> tuple[int, int] | None:
    """Width and height from a raster image's header; None when it cannot be read."""
    try:
        size = _SIZE_READERS[mimetype](head)
    except (struct.error, IndexError, ValueError):
        return None
    if size is None or not (0 < size[0] <= 65535 and 0 < size[1] <= 65535):
        return None
    return size


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _gif_size(head: bytes) -> tuple[int, int] | None:
    width, height = struct.unpack("<HH", head[6:10])
    return width, height


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = struct.unpack(">H", head[at + 2:at + 4])[0]
        # SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC), hold the frame's size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1)
    return None


_SIZE_READERS = {"image/png": _png_size, "image/gif": _gif_size, "image/jpeg": _jpeg_size,
                 "image/webp": _webp_size}


def clean_name(raw: str, mimetype: str = "") -> str:
    """A file name safe to show and to offer for saving: the last part of any path, no
    control, bidi or path characters, at most MAX_NAME characters; "file" (with the type's
    extension) when nothing is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = clean_text(name, multiline=False)
    name = "".join("_" if ch in '<>:"|?*' else ch for ch in name).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 \
            else name[:MAX_NAME]
    if not name:
        name = "file." + EXTENSIONS.get(mimetype, "bin")
    return name


def check_allowed(kind: Kind, allowed: frozenset[str]) -> None:
    """Refuse a file whose content is not of an allowed type (`bad_type`)."""
    if kind.mimetype not in allowed:
        described = "an image that cannot be read" if kind.mimetype == UNKNOWN else kind.mimetype
        raise ProtocolError("bad_type", f"files of this kind are not accepted ({described})")


def human_size(size: int) -> str:
    """1.2 MB, 340 KB, 12 bytes: for transcripts and notices."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.0f} KB"
    return f"{size / 1_000_000:.1f} MB"
