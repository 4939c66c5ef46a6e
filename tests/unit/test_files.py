"""Files, the pure part and the disk: types by content, image sizes, safe names, the
`[files]` table, and content-addressed storage with its sweep."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.blobs import GRACE_S, Blobs, TooLarge
from bridge.config import ConfigError
from bridge.core.files import check_allowed, clean_name, human_size, sniff
from bridge.core.untrusted import ProtocolError
from tests.fakes.hub import hub_config


def png(width: int, height: int, tail: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x00\x00\x00" * width)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels * height)
            + chunk(b"IEND", b"") + tail)


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(("content", "expected"), [
    (png(640, 480), ("image/png", 640, 480)),
    (jpeg(1024, 768), ("image/jpeg", 1024, 768)),
    (b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 20, ("image/gif", 32, 16)),
    (b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99).to_bytes(3, "little")
     + (49).to_bytes(3, "little"), ("image/webp", 100, 50)),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", ("application/pdf", None, None)),
    (b"PK\x03\x04" + b"\x00" * 30, ("application/zip", None, None)),
    ("Order 12345 — Grüße\n".encode(), ("text/plain", None, None)),
    (b"\xef\xbb\xbf  <!DOCTYPE html><p>hi", ("text/html", None, None)),
    (b"<script>alert(1)</script>", ("text/html", None, None)),
    (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>",
     ("image/svg+xml", None, None)),
    (b"\x89PNG\r\n\x1a\nnot a header at all", ("application/octet-stream", None, None)),
    (b"\x00\x01\x02binary", ("application/octet-stream", None, None)),
])
def test_a_file_is_known_by_its_first_bytes(content: bytes,
                                            expected: tuple[str, int | None, int | None]
                                            ) -> None:
    kind = sniff(content)
    assert (kind.mimetype, kind.width, kind.height) == expected


def test_an_html_file_named_png_is_refused_and_a_png_with_html_after_it_is_an_image() -> None:
    allowed = frozenset({"image/png", "text/plain"})
    with pytest.raises(ProtocolError) as refused:
        check_allowed(sniff(b"<html><body onload=alert(1)>"), allowed)
    assert refused.value.code == "bad_type"
    # A polyglot: a real PNG header, markup after it. It is stored and served as image/png
    # with nosniff, so no browser reads the markup (tests/integration/test_files.py).
    assert sniff(png(2, 2, b"<html><script>alert(1)</script>")).mimetype == "image/png"


@pytest.mark.parametrize(("raw", "expected"), [
    ("invoice.pdf", "invoice.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\anna\\Desktop\\screen shot.png", "screen shot.png"),
    ("evil\u202egnp.exe", "evilgnp.exe"),
    ("line\nbreak\x00.txt", "line break.txt"),
    ('a<b>:"c"|?*.txt', "a_b___c____.txt"),
    ("...", "file.pdf"),
    ("", "file.pdf"),
])
def test_names_lose_paths_and_control_characters(raw: str, expected: str) -> None:
    assert clean_name(raw, "application/pdf") == expected


def test_a_long_name_keeps_its_extension() -> None:
    name = clean_name("x" * 500 + ".pdf")
    assert len(name) == 200 and name.endswith(".pdf")


def test_sizes_read_like_people_say_them() -> None:
    assert [human_size(n) for n in (12, 340_000, 1_234_567)] == ["12 bytes", "340 KB", "1.2 MB"]


def test_the_files_table_is_checked_with_key_paths() -> None:
    def tweak(raw: dict[str, object]) -> None:
        raw["files"] = {"max_bytes": 0, "types": ["image/png", "image/bmp"], "per_hour": -1,
                        "size": 1}
    with pytest.raises(ConfigError) as error:
        hub_config(tweak)
    problems = "\n".join(error.value.problems)
    assert "files.max_bytes: 0 is out of range" in problems
    assert "files.types[1]: 'image/bmp' is not a type" in problems
    assert "files.per_hour: -1 is negative" in problems
    assert "files.size: unknown key" in problems
    config = hub_config(lambda raw: raw.update(files={"types": ["application/pdf"]}))
    assert config.files.types == frozenset({"application/pdf"})
    assert config.files.max_bytes == 10 * 1024 * 1024


# -- storage ------------------------------------------------------------------------------

async def chunks_of(content: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start:start + size]


async def test_a_file_is_stored_once_under_its_hash(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    first = await blobs.receive(chunks_of(b"hello" * 1000), 10_000)
    second = await blobs.receive(chunks_of(b"hello" * 1000), 10_000)
    path = await blobs.keep(first)
    assert await blobs.keep(second) == path
    assert path.read_bytes() == b"hello" * 1000
    assert path.name == first.sha256 and path.parent.name == first.sha256[:2]
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left waiting


async def test_reading_stops_past_the_cap_and_leaves_nothing(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(TooLarge):
        await blobs.receive(endless(), 5000)
    assert pulled == 6  # one chunk past the cap, not one more
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_the_head_is_checked_before_the_rest_is_read(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    pulled = 0

    async def html() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"<html>" + b" " * 65530

    def refuse(head: bytes) -> None:
        check_allowed(sniff(head), frozenset({"image/png"}))

    with pytest.raises(ProtocolError):
        await blobs.receive(html(), 100_000_000, refuse)
    assert pulled == 1  # refused on its first 64 KiB
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_the_sweep_removes_old_leftovers_and_keeps_what_is_referred_to(
        tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    kept = await blobs.keep(await blobs.receive(chunks_of(b"kept"), 100))
    orphan = await blobs.keep(await blobs.receive(chunks_of(b"orphan"), 100))
    fresh_orphan = await blobs.keep(await blobs.receive(chunks_of(b"fresh"), 100))
    unfinished = tmp_path / "tmp" / "abc.part"
    unfinished.write_bytes(b"half")
    now = 1_000_000_000.0
    for path in (kept, orphan, unfinished):
        os.utime(path, (now - GRACE_S - 1, now - GRACE_S - 1))
    os.utime(fresh_orphan, (now - 10, now - 10))
    asked: list[set[str]] = []

    def in_use(names: object) -> set[str]:
        asked.append(set(names))  # type: ignore[call-overload]
        return {kept.name}

    assert blobs.sweep(in_use, now) == 2
    assert kept.exists() and fresh_orphan.exists()
    assert not orphan.exists() and not unfinished.exists()
    assert asked == [{kept.name, orphan.name}]  # young files are not even looked up
