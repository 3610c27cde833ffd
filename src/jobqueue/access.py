"""Access rules (standard library only): roles, API keys, signed dashboard sessions.

- :class:`Role`: ``read`` < ``write`` < ``admin``. ``read`` reads jobs, ``write`` also creates
  them, ``admin`` also cancels and retries them. ``worker`` stands apart: it may only lease and
  report jobs over the lease API (docs/workers.md), which ``admin`` may do too.
- :func:`parse_api_keys`: ``JOBQUEUE_API_KEYS``, a JSON list of ``{"name", "role", "key"}``
  (a ``worker`` key may add ``"queues"``: the only queues it may lease from).
- :class:`KeyRing`: finds the key a request presented: one dict lookup by SHA-256 digest and one
  constant-time compare, whatever the number of keys.
- :class:`SessionCodec`: the dashboard's session token, ``<payload>.<signature>`` with an
  HMAC-SHA256 signature (RFC 2104) over the key's name, role, a keyed fingerprint of the key and
  an expiry; never the key itself. Its CSRF token is derived from the session token, so a page
  can only ever send the token of its own session.

The HTTP side (headers, cookies, status codes) is in ``api/auth.py``; this module only decides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MIN_KEY_LENGTH = 32
MAX_KEY_LENGTH = 512
MIN_DISTINCT_KEY_CHARACTERS = 8
MIN_UNPREDICTABLE_KEY_CHARACTERS = 24
"""Characters of a key that neither repeat nor continue a run (``aaaa``, ``abcd``, ``4321``) of
the character before them; a ``secrets.token_urlsafe(32)`` key has about 41 of its 43."""
KEY_ADVICE = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
_PLACEHOLDERS = ("changeme", "change-me", "change_me", "replace-me", "replaceme")
MIN_SESSION_SECRET_LENGTH = 32
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: a header value, no spaces
_FIELDS = {"name", "role", "key"}
_OPTIONAL_FIELDS = {"queues"}
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")  # jobs.QUEUE_NAME_PATTERN
MAX_KEY_QUEUES = 100


class Role(StrEnum):
    """What a key may do. ``read`` < ``write`` < ``admin``: each includes the ones before it.
    ``worker`` is apart: only the lease API (lease, heartbeat, complete, fail, release), which
    ``admin`` includes too."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    WORKER = "worker"

    @property
    def rank(self) -> int:
        """0 for ``read``, 1 for ``write``, 2 for ``admin``; -1 for ``worker`` (no API role)."""
        return _RANKS.get(self, -1)

    def allows(self, needed: Role) -> bool:
        """True when this role includes ``needed`` (``admin`` allows ``write`` and ``worker``;
        ``worker`` allows only ``worker``)."""
        if needed is Role.WORKER:
            return self in (Role.WORKER, Role.ADMIN)
        return self.rank >= needed.rank


_RANKS = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class ApiKey:
    """One configured key.

    Attributes:
        name: who holds it, e.g. ``"ci"``; shown in logs and messages (the key never is).
        role: what it may do.
        secret: the key as sent in ``Authorization: Bearer <key>``; kept out of ``repr``.
        queues: for a ``worker`` key, the only queues it may lease from; None: any queue.
    """

    name: str
    role: Role
    secret: str = field(repr=False)
    queues: frozenset[str] | None = None
    digest: bytes = field(init=False, repr=False, compare=False)
    """SHA-256 of the key, computed once: fixed-length, so comparing it leaks not even the key's
    length."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self.secret))


def _digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Parse ``JOBQUEUE_API_KEYS``.

    Args:
        text: a JSON list of objects with ``name`` (1-64 of ``A-Za-z0-9_.-``), ``role``
            (``read``, ``write``, ``admin`` or ``worker``), ``key``, and for a ``worker`` key
            optionally ``queues`` (1 to 100 queue names it may lease from). ``key`` is 32 to
            512 visible ASCII characters that are not trivially guessable (see
            :func:`weak_key_reason`). Blank text means no keys.

    Returns:
        The keys in the given order; empty when ``text`` is blank.

    Raises:
        ValueError: invalid JSON, an empty list, a missing or unknown field, a bad name or role,
            a short or guessable key, duplicate names or duplicate keys. The message names the
            entry by index and name, never by its key.
    """
    if not text.strip():
        return ()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"JOBQUEUE_API_KEYS is not valid JSON ({exc.msg} at character {exc.pos}): give a "
            'list like [{"name": "ci", "role": "write", "key": "<32+ random characters>"}]'
        ) from None
    if not isinstance(value, list) or not value:
        raise ValueError(
            "JOBQUEUE_API_KEYS must be a non-empty JSON list of "
            '{"name", "role", "key"} objects (unset it to run without keys)'
        )
    keys = tuple(_parse_entry(index, entry) for index, entry in enumerate(value))
    _check_unique(keys)
    return keys


def _parse_entry(index: int, entry: Any) -> ApiKey:
    where = f"JOBQUEUE_API_KEYS[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f'{where} must be an object {{"name", "role", "key"}}')
    if not _FIELDS <= set(entry) <= _FIELDS | _OPTIONAL_FIELDS:
        missing = sorted(_FIELDS - set(entry))
        unknown = sorted(set(entry) - _FIELDS - _OPTIONAL_FIELDS)
        raise ValueError(
            f"{where} needs the fields name, role and key (and queues for a worker key)"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
        )
    name, role, secret = entry["name"], entry["role"], entry["key"]
    if not isinstance(name, str) or not _KEY_NAME.match(name):
        raise ValueError(f"{where}: name must be 1-64 of A-Za-z0-9_.-")
    where = f"{where} ({name!r})"
    if role not in list(Role):
        raise ValueError(f"{where}: role must be one of read, write, admin, worker")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"{where}: key must be a non-empty string")
    if not MIN_KEY_LENGTH <= len(secret) <= MAX_KEY_LENGTH:
        raise ValueError(
            f"{where}: key must be {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters, got "
            f"{len(secret)} ({KEY_ADVICE})"
        )
    if not _KEY_CHARS.match(secret):
        raise ValueError(f"{where}: key must be visible ASCII characters without spaces")
    if weak := weak_key_reason(secret):
        raise ValueError(f"{where}: key is too easy to guess ({weak}): {KEY_ADVICE}")
    queues = _key_queues(where, Role(role), entry.get("queues"), "queues" in entry)
    return ApiKey(name=name, role=Role(role), secret=secret, queues=queues)


def _key_queues(where: str, role: Role, value: Any, given: bool) -> frozenset[str] | None:
    if not given:
        return None
    if role is not Role.WORKER:
        raise ValueError(f"{where}: only a worker key has queues (this one is {role})")
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_KEY_QUEUES
        or not all(isinstance(q, str) and _QUEUE_NAME.match(q) for q in value)
    ):
        raise ValueError(
            f"{where}: queues must be a list of 1 to {MAX_KEY_QUEUES} queue names "
            '(1-100 of A-Za-z0-9_.:-), e.g. ["images"]'
        )
    return frozenset(value)


def weak_key_reason(secret: str) -> str | None:
    """Why ``secret`` is too easy to guess, or None when it looks random enough.

    Keys are compared as they are, with no rate limit on guesses (docs/security.md), so a key
    must carry its own strength. Refused: fewer than 8 distinct characters (``aaaa…``,
    ``abab…``), a pattern repeated over the whole key, fewer than 24 characters that neither
    repeat nor continue a run of the one before (``0123456789…``, ``abcdef…``), and an example
    placeholder (``change-me``). These catch the keys people type by hand; they cannot prove a
    key random, so generate keys (``secrets.token_urlsafe(32)``).
    """
    if len(set(secret)) < MIN_DISTINCT_KEY_CHARACTERS:
        return f"fewer than {MIN_DISTINCT_KEY_CHARACTERS} distinct characters"
    for period in range(1, len(secret) // 2 + 1):
        if len(secret) % period == 0 and secret == secret[:period] * (len(secret) // period):
            return "one short pattern repeated"
    unpredictable = sum(
        1 for before, char in itertools.pairwise(secret) if abs(ord(char) - ord(before)) > 1
    )
    if unpredictable + 1 < MIN_UNPREDICTABLE_KEY_CHARACTERS:
        return "mostly runs of repeated or consecutive characters"
    lowered = secret.lower()
    if any(placeholder in lowered for placeholder in _PLACEHOLDERS):
        return "it holds an example placeholder"
    return None


def _check_unique(keys: tuple[ApiKey, ...]) -> None:
    names: set[str] = set()
    owners: dict[bytes, str] = {}
    for key in keys:
        if key.name in names:
            raise ValueError(f"JOBQUEUE_API_KEYS: the name {key.name!r} is used twice")
        names.add(key.name)
        if key.digest in owners:
            raise ValueError(
                f"JOBQUEUE_API_KEYS: {owners[key.digest]!r} and {key.name!r} have the same key"
            )
        owners[key.digest] = key.name


class KeyRing:
    """The configured keys, found by the SHA-256 digest of the key presented.

    Args:
        keys: the keys (see :func:`parse_api_keys`); none means access is open.
    """

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys = tuple(keys)
        self._by_name = {key.name: key for key in self._keys}
        self._by_digest = {key.digest: key for key in self._keys}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._keys)

    def match(self, presented: str) -> ApiKey | None:
        """The key equal to ``presented``, or None.

        One dict lookup by the SHA-256 digest of ``presented`` and one
        :func:`hmac.compare_digest` of digests, the same work whether a key matched or not and
        however many keys there are. The lookup compares digests, never keys, so its timing can
        at most tell an attacker about a digest, from which no key can be worked out.
        """
        given = _digest(presented)
        key = self._by_digest.get(given)
        expected = key.digest if key is not None else _NO_MATCH
        if hmac.compare_digest(given, expected) and key is not None:
            return key
        return None

    def named(self, name: str) -> ApiKey | None:
        """The key called ``name``, or None (names are not secret)."""
        return self._by_name.get(name)


_NO_MATCH = bytes(32)
"""Compared against when no key matched, so that a miss costs what a hit does."""


@dataclass(frozen=True)
class Session:
    """A verified dashboard session.

    Attributes:
        name: the key's name.
        role: the key's role.
        expires_at: Unix time, seconds.
    """

    name: str
    role: Role
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and verifies session tokens and their CSRF tokens.

    A token is ``base64url(json) "." base64url(HMAC-SHA256(secret, "session|" + base64url(json)))``
    where the JSON holds ``name``, ``role``, ``kid`` (HMAC of the key under the secret: the
    session dies when its key is removed or replaced) and ``exp`` (Unix seconds).

    Args:
        secret: the signing secret (``JOBQUEUE_SESSION_SECRET``, or random per process).
        keys: the configured keys; a session is valid only while its key still is.
        max_age_seconds: how long a session lasts.
    """

    def __init__(self, secret: bytes, keys: KeyRing, max_age_seconds: int) -> None:
        self._secret = secret
        self._keys = keys
        self.max_age_seconds = max_age_seconds
        # One HMAC per key at start rather than one per request that carries a session.
        self._kids = {key.name: _b64(self._mac("kid", key.secret)[:16]) for key in keys}

    def __repr__(self) -> str:
        return f"SessionCodec(keys={len(self._keys)}, max_age_seconds={self.max_age_seconds})"

    def _mac(self, purpose: str, message: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}|{message}".encode(), hashlib.sha256).digest()

    def _kid(self, key: ApiKey) -> str:
        return self._kids[key.name]

    def issue(self, key: ApiKey, now: float) -> str:
        """A session token for ``key``, valid for ``max_age_seconds`` from ``now`` (Unix s)."""
        claims = {
            "name": key.name,
            "role": str(key.role),
            "kid": self._kid(key),
            "exp": int(now) + self.max_age_seconds,
        }
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64(self._mac('session', body))}"

    def verify(self, token: str, now: float) -> Session | None:
        """The session in ``token``, or None when it is malformed, forged, expired, or its key
        has been removed, replaced or given another role since."""
        body, dot, signature = token.partition(".")
        if not dot or len(token) > 1024:
            return None
        try:
            given = _unb64(signature)
            claims = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac("session", body)):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
            return None
        key = self._keys.named(str(claims.get("name")))
        if key is None or claims["exp"] <= now or claims.get("role") != str(key.role):
            return None
        if not hmac.compare_digest(str(claims.get("kid")), self._kid(key)):
            return None
        return Session(name=key.name, role=key.role, expires_at=claims["exp"])

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token that goes with ``session_token`` (embedded in the dashboard's pages,
        sent back in ``X-CSRF-Token``)."""
        return _b64(self._mac("csrf", session_token))

    def check_csrf(self, session_token: str, presented: str) -> bool:
        """True when ``presented`` is the CSRF token of ``session_token`` (constant time)."""
        return hmac.compare_digest(presented.encode(), self.csrf_token(session_token).encode())


def host_of(header: str) -> str:
    """The host name of a ``Host`` header value (RFC 9110, section 7.2), without its port and
    without the brackets of an IPv6 literal, lowercased: ``"[::1]:8000"`` → ``"::1"``,
    ``"LocalHost:80"`` → ``"localhost"``."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :] if end != -1 else "x"
        if end == -1 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return value  # not a well-formed IPv6 literal: matches no name
        return value[1:end]
    name, colon, port = value.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``, also in
    brackets); False for a wildcard (``0.0.0.0``, ``::``), any other address or name."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
