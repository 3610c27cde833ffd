"""The ``http`` task's bounded content decoding: the Content-Encoding parser, the gzip / deflate
(and br, when installed) decoders, and :func:`read_body` on raw response streams (no network)."""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from jobqueue.tasks.http import (
    CODING_OVERHEAD_BYTES,
    CorruptBody,
    UnsupportedCoding,
    make_decoder,
    read_body,
    response_coding,
    supported_codings,
)

HAS_BROTLI = importlib.util.find_spec("brotli") is not None


# --- Content-Encoding (RFC 9110, section 8.4) ---------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "coding"),
    [
        ([], "identity"),
        ([""], "identity"),
        (["identity"], "identity"),
        (["gzip"], "gzip"),
        (["GZip "], "gzip"),
        (["x-gzip"], "gzip"),
        (["deflate"], "deflate"),
        (["identity, gzip"], "gzip"),
        ([" , gzip,"], "gzip"),
    ],
)
def test_response_coding_one_coding_named(lines: list[str], coding: str) -> None:
    assert response_coding(lines) == coding


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["gzip, gzip"],
            "Content-Encoding 'gzip, gzip', 2 stacked codings: at most one is decoded",
        ),
        (["gzip", "gzip"], "Content-Encoding 'gzip, gzip', 2 stacked codings: at most one is"),
        (["deflate,gzip,br"], "Content-Encoding 'deflate,gzip,br', 3 stacked codings"),
        (["compress"], "Content-Encoding 'compress', which is not supported (supported: gzip, "),
        (["zstd"], "Content-Encoding 'zstd', which is not supported"),
    ],
)
def test_response_coding_stacked_or_unknown_refused(lines: list[str], message: str) -> None:
    with pytest.raises(UnsupportedCoding) as caught:
        response_coding(lines)
    assert str(caught.value).startswith(message)


def test_supported_codings_br_only_with_brotli_installed() -> None:
    expected = ("gzip", "deflate", "br") if HAS_BROTLI else ("gzip", "deflate")
    assert supported_codings() == expected


# --- the decoders -------------------------------------------------------------------------------

TEXT = b"The quick brown fox jumps over the lazy dog. " * 500  # 22,500 bytes


def _zlib(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT),
    "deflate": _zlib(TEXT, zlib.MAX_WBITS),  # RFC 9110: the zlib format
    "raw deflate": _zlib(TEXT, -zlib.MAX_WBITS),  # what some servers send instead
}


def _decode_all(coding: str, data: bytes, step: int, max_length: int) -> bytes:
    decoder = make_decoder(coding)
    assert decoder is not None
    out = []
    for start in range(0, len(data), step):
        part = decoder.decode(data[start : start + step], max_length)
        assert len(part) <= max_length
        out.append(part)
    out.append(decoder.finish(max_length))
    return b"".join(out)


@pytest.mark.parametrize("kind", sorted(ENCODED))
@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_decoder_any_chunking_gives_the_original(kind: str, step: int) -> None:
    coding = kind.removeprefix("raw ")
    assert _decode_all(coding, ENCODED[kind], step, max_length=len(TEXT) + 1) == TEXT


def test_decoder_gzip_members_decoded_one_after_the_other() -> None:
    data = gzip.compress(b"first,") + gzip.compress(b"second")  # RFC 1952, section 2.2
    assert _decode_all("gzip", data, 5, max_length=100) == b"first,second"


@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_decoder_returns_at_most_max_length(kind: str) -> None:
    decoder = make_decoder(kind.removeprefix("raw "))
    assert decoder is not None
    assert decoder.decode(ENCODED[kind], 1000) == TEXT[:1000]


@pytest.mark.parametrize(
    ("coding", "data", "message"),
    [
        ("gzip", b"not gzip at all", "the gzip data is not valid (Error -3 while decompressing"),
        ("gzip", gzip.compress(b"x") + b"junk", "the gzip data is not valid"),
        ("deflate", ENCODED["deflate"] + b"junk", "the deflate data goes on after its end"),
    ],
)
def test_decoder_corrupt_data_raises_corrupt_body(coding: str, data: bytes, message: str) -> None:
    decoder = make_decoder(coding)
    assert decoder is not None
    with pytest.raises(CorruptBody) as caught:
        decoder.decode(data, len(TEXT) + 1)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("coding", "data"), [("gzip", ENCODED["gzip"][:-9]), ("deflate", b"x")])
def test_decoder_data_ending_early_raises_corrupt_body(coding: str, data: bytes) -> None:
    decoder = make_decoder(coding)
    assert decoder is not None
    decoder.decode(data, len(TEXT) + 1)
    with pytest.raises(CorruptBody, match=f"^the {coding} data ends before its end$"):
        decoder.finish(len(TEXT) + 1)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_decoder_no_body_at_all_is_empty(coding: str) -> None:
    decoder = make_decoder(coding)  # a HEAD answer or a 204 may name a coding and have no body
    assert decoder is not None
    assert decoder.finish(10) == b""


@pytest.mark.skipif(not HAS_BROTLI, reason="the brotli package is not installed")
def test_decoder_br_bounded_and_complete() -> None:
    import brotli  # type: ignore[import-not-found,unused-ignore]

    data = brotli.compress(bytes(10_000_000))
    assert _decode_all("br", data, 7, max_length=10_000_001) == bytes(10_000_000)
    decoder = make_decoder("br")
    assert decoder is not None
    assert decoder.decode(data, 1000) == bytes(1000)


@pytest.mark.skipif(not HAS_BROTLI, reason="the brotli package is not installed")
def test_decoder_br_corrupt_short_or_empty() -> None:
    import brotli  # type: ignore[import-not-found,unused-ignore]

    data = brotli.compress(TEXT)
    assert _decode_all("br", data, 3, max_length=len(TEXT)) == TEXT
    decoder = make_decoder("br")
    assert decoder is not None
    with pytest.raises(CorruptBody, match=r"^the br data is not valid"):
        decoder.decode(b"\xff" * 64, 100)
    decoder = make_decoder("br")
    assert decoder is not None
    decoder.decode(data[:-3], len(TEXT) + 1)
    with pytest.raises(CorruptBody, match=r"^the br data ends before its end$"):
        decoder.finish(len(TEXT) + 1)
    decoder = make_decoder("br")
    assert decoder is not None
    assert decoder.finish(10) == b""


# --- read_body on raw response streams ---------------------------------------------------------


class Chunks(httpx.AsyncByteStream):
    """A raw response stream sending ``chunks`` as they are, counting the bytes taken."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += len(chunk)
            yield chunk


def _response(stream: httpx.AsyncByteStream, coding: str | None = None) -> httpx.Response:
    headers = {} if coding is None else {"content-encoding": coding}
    return httpx.Response(200, headers=headers, stream=stream)


async def test_read_body_plain_over_limit_cut_without_decoding() -> None:
    body = await read_body(_response(Chunks(b"abc", b"defgh", b"ijk")), 6)
    assert (body.data, body.coding, body.overflow) == (b"abcdef", "identity", "6 bytes")


async def test_read_body_plain_at_limit_complete() -> None:
    body = await read_body(_response(Chunks(b"abc", b"def")), 6)
    assert (body.data, body.overflow) == (b"abcdef", None)


async def test_read_body_gzip_decoded() -> None:
    body = await read_body(_response(Chunks(ENCODED["gzip"]), "gzip"), len(TEXT))
    assert (body.data, body.coding, body.overflow) == (TEXT, "gzip", None)


async def test_read_body_gzip_over_limit_stops_reading() -> None:
    zeros = gzip.compress(bytes(10_000_000))
    stream = Chunks(*(zeros[i : i + 1000] for i in range(0, len(zeros), 1000)))
    body = await read_body(_response(stream, "gzip"), 100)
    assert (body.data, body.overflow) == (bytes(100), "100 bytes after decoding")
    assert stream.sent == 1000  # the first raw chunk already decoded to more than 100 bytes


async def test_read_body_coded_raw_bytes_over_limit_stop_reading() -> None:
    # A gzip header whose file name never ends: zlib takes the bytes and decodes nothing.
    header = b"\x1f\x8b\x08\x08" + bytes(4) + b"\x00\xff"  # FLG.FNAME set (RFC 1952, 2.3.1)
    stream = Chunks(header, *(b"a" * 1000 for _ in range(200)))
    body = await read_body(_response(stream, "gzip"), 10)
    assert (body.data, body.overflow) == (
        b"",
        f"{10 + CODING_OVERHEAD_BYTES} bytes before decoding",
    )
    assert stream.sent == len(header) + 66 * 1000  # the first chunk past 65,546 bytes


async def test_read_body_stacked_codings_refused_before_reading() -> None:
    stream = Chunks(gzip.compress(gzip.compress(b"x")))
    with pytest.raises(UnsupportedCoding, match="2 stacked codings"):
        await read_body(_response(stream, "gzip, gzip"), 100)
    assert stream.sent == 0
