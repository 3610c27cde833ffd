"""Undoing a response body's content coding (RFC 9110, section 8.4) with bounded memory.

httpx decodes ``Content-Encoding`` without a bound on the output, and decodes stacked codings
(``gzip, gzip``) one after the other: a reply of 1,827 bytes can then become 1 GiB or more. So
the task reads the raw bytes and decodes them here: at most ONE coding, each call producing at
most the bytes asked for (``zlib``'s ``max_length`` with ``unconsumed_tail``, brotli's
``output_buffer_limit``).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

IDENTITY = "identity"
"""The name of "no coding" (RFC 9110, section 12.5.3)."""

_ALIASES = {"x-gzip": "gzip"}  # RFC 9110, section 8.4.1.3


class CodingError(Exception):
    """A body that cannot be decoded. ``str(err)`` says why."""


class UnsupportedCoding(CodingError):
    """Stacked codings (``gzip, gzip``) or a coding that is not supported: retrying cannot help."""


class CorruptBody(CodingError):
    """Data that is not valid for its coding, or that ends before the coding's end."""


def _brotli_module() -> Any | None:
    """The ``brotli`` package when installed in a version that can bound its output (1.2+)."""
    try:
        module = importlib.import_module("brotli")
    except ImportError:
        return None
    return module if hasattr(module.Decompressor, "can_accept_more_data") else None


_BROTLI = _brotli_module()


def supported_codings() -> tuple[str, ...]:
    """The content codings that can be decoded: ``gzip``, ``deflate``, and ``br`` when a
    ``brotli`` package (1.2 or later, whose output can be bounded) is installed."""
    return ("gzip", "deflate") + (("br",) if _BROTLI is not None else ())


def response_coding(field_lines: Iterable[str]) -> str:
    """The one content coding of a response, from its ``Content-Encoding`` field lines.

    Names are case-insensitive; ``x-gzip`` is ``gzip`` (RFC 9110, section 8.4.1.3); empty
    members and ``identity`` are ignored.

    Args:
        field_lines: the ``Content-Encoding`` values (``headers.get_list("content-encoding")``).

    Returns:
        ``"identity"`` when there is no coding, else one of :func:`supported_codings`.

    Raises:
        UnsupportedCoding: two or more codings (``gzip, gzip``: only one is ever decoded), or one
            that is not supported.
    """
    lines = list(field_lines)
    codings = [
        _ALIASES.get(name, name)
        for line in lines
        for name in (member.strip().lower() for member in line.split(","))
        if name and name != IDENTITY
    ]
    if not codings:
        return IDENTITY
    shown = ", ".join(lines)
    if len(codings) > 1:
        raise UnsupportedCoding(
            f"Content-Encoding {shown!r}, {len(codings)} stacked codings: at most one is decoded"
        )
    if codings[0] not in supported_codings():
        raise UnsupportedCoding(
            f"Content-Encoding {shown!r}, which is not supported "
            f"(supported: {', '.join(supported_codings())})"
        )
    return codings[0]


class Decoder(Protocol):
    """A bounded, incremental decoder of one content coding."""

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Decode the next raw ``data``; return at most ``max_length`` (>= 1) bytes.

        When ``max_length`` bytes come back, the caller stops: the body is over its bound (the
        rest of ``data`` may be left undecoded).

        Raises:
            CorruptBody: the data is not valid for the coding.
        """

    def finish(self, max_length: int) -> bytes:
        """The last decoded bytes (at most ``max_length``) once the raw body has ended.

        Raises:
            CorruptBody: the body ended before the coding's end.
        """


class ZlibDecoder:
    """``gzip`` (RFC 1952; several members are decoded one after the other, as section 2.2 allows)
    or ``deflate`` (RFC 9110 section 8.4.1.2: the zlib format of RFC 1950; raw RFC 1951 data, which
    some servers send, is recognised by its missing zlib header)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._head = b""  # the first raw bytes, until the format is known
        self._inflate: Any = None  # zlib's Decompress; its type is not public

    def _start(self, data: bytes) -> Any:
        if self._coding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # A zlib header (RFC 1950, section 2.2): method 8, and CMF*256 + FLG a multiple of 31.
        zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def decode(self, data: bytes, max_length: int) -> bytes:
        """See :meth:`Decoder.decode`."""
        if self._inflate is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            self._inflate = self._start(data)
        out: list[bytes] = []
        room = max_length
        while data and room > 0:
            if self._inflate.eof:
                if self._coding != "gzip":
                    raise CorruptBody(f"the {self._coding} data goes on after its end")
                self._inflate = self._start(data)  # the next gzip member
            try:
                chunk: bytes = self._inflate.decompress(data, room)
            except zlib.error as exc:
                raise CorruptBody(f"the {self._coding} data is not valid ({exc})") from None
            out.append(chunk)
            room -= len(chunk)
            data = self._inflate.unconsumed_tail or (
                self._inflate.unused_data if self._inflate.eof else b""
            )
        return b"".join(out)

    def finish(self, max_length: int) -> bytes:
        """See :meth:`Decoder.finish`."""
        if self._inflate is None and not self._head:
            return b""  # no body at all (a HEAD answer, a 204): nothing to decode
        if self._inflate is None or not self._inflate.eof:
            raise CorruptBody(f"the {self._coding} data ends before its end")
        return b""


class BrotliDecoder:
    """``br`` (RFC 7932), with the ``brotli`` package's ``output_buffer_limit`` (1.2+)."""

    def __init__(self, module: Any) -> None:
        self._decompressor = module.Decompressor()
        self._error: type[Exception] = module.error
        self._fed = False  # whether any raw byte came

    def _process(self, data: bytes, max_length: int) -> bytes:
        try:
            out: bytes = self._decompressor.process(data, max_length)
        except self._error as exc:
            raise CorruptBody(f"the br data is not valid ({exc})") from None
        return out

    def decode(self, data: bytes, max_length: int) -> bytes:
        """See :meth:`Decoder.decode`. brotli may return up to one buffer (~32 KiB) more than
        asked; the excess is dropped (the caller stops at ``max_length`` anyway)."""
        self._fed = self._fed or bool(data)
        out = [self._process(data, max_length)]
        room = max_length - len(out[0])
        while room > 0 and not self._decompressor.can_accept_more_data():
            out.append(self._process(b"", room))
            room -= len(out[-1])
        return b"".join(out)[:max_length]

    def finish(self, max_length: int) -> bytes:
        """See :meth:`Decoder.finish`."""
        if not self._fed:
            return b""  # no body at all (a HEAD answer, a 204): nothing to decode
        out: list[bytes] = []
        room = max_length
        while room > 0 and not self._decompressor.is_finished():
            chunk = self._process(b"", room)
            if not chunk:
                raise CorruptBody("the br data ends before its end")
            out.append(chunk)
            room -= len(chunk)
        return b"".join(out)[:max_length]


def make_decoder(coding: str) -> Decoder | None:
    """A bounded decoder for ``coding`` (from :func:`response_coding`), None for identity."""
    if coding == IDENTITY:
        return None
    if coding == "br" and _BROTLI is not None:
        return BrotliDecoder(_BROTLI)
    return ZlibDecoder(coding)
