"""Access rules without a database: key parsing, constant-time lookup, sessions, secrets."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest
from pydantic import ValidationError

from jobqueue import access
from jobqueue.access import (
    ApiKey,
    KeyRing,
    Role,
    SessionCodec,
    host_of,
    is_loopback_host,
    parse_api_keys,
    weak_key_reason,
)
from jobqueue.settings import Settings
from jobqueue.tasks.http import HttpTaskConfig

READ_KEY = "l6cLvHM9RNWPDA1mXz6nc8OuMuEwvTsRn-rFcXlmC84"
WRITE_KEY = "ClGYCygNmqx3nDCtiMGJaY4p6zyYmWphjOCGOmiv2cU"
ADMIN_KEY = "GsXxSienEJpeVFk1L9GMD-ZEjPwLqJblI3a6WUxSC38"
NEW_KEY = "yv8FnmDR9AoqbQ-fTfC3eyARMB_d-7koHk6C10IoP0E"


def keys_json(*entries: tuple[str, str, str]) -> str:
    return json.dumps([{"name": n, "role": r, "key": k} for n, r, k in entries])


THREE = keys_json(("ro", "read", READ_KEY), ("ci", "write", WRITE_KEY), ("ops", "admin", ADMIN_KEY))


def test_role_order_read_write_admin() -> None:
    assert Role.ADMIN.allows(Role.WRITE)
    assert Role.ADMIN.allows(Role.READ)
    assert Role.WRITE.allows(Role.READ)
    assert not Role.WRITE.allows(Role.ADMIN)
    assert not Role.READ.allows(Role.WRITE)


def test_role_worker_allows_only_the_lease_api_and_admin_includes_it() -> None:
    assert Role.WORKER.allows(Role.WORKER)
    assert Role.ADMIN.allows(Role.WORKER)
    assert not Role.WORKER.allows(Role.READ)
    assert not Role.WRITE.allows(Role.WORKER)
    assert not Role.READ.allows(Role.WORKER)


def test_parse_api_keys_worker_key_with_queues() -> None:
    text = json.dumps(
        [
            {"name": "img", "role": "worker", "key": NEW_KEY, "queues": ["images", "thumbs"]},
            {"name": "any", "role": "worker", "key": READ_KEY},
        ]
    )
    keys = parse_api_keys(text)
    assert [(k.name, k.role, k.queues) for k in keys] == [
        ("img", Role.WORKER, frozenset({"images", "thumbs"})),
        ("any", Role.WORKER, None),
    ]


def test_parse_api_keys_valid_list_gives_names_roles_keys() -> None:
    keys = parse_api_keys(THREE)
    assert [(k.name, k.role, k.secret) for k in keys] == [
        ("ro", Role.READ, READ_KEY),
        ("ci", Role.WRITE, WRITE_KEY),
        ("ops", Role.ADMIN, ADMIN_KEY),
    ]
    assert parse_api_keys("  ") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{name", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('{"name": "x"}', "non-empty JSON list"),
        ('["key"]', r"JOBQUEUE_API_KEYS\[0\] must be an object"),
        (keys_json(("ci", "owner", WRITE_KEY)), "role must be one of read, write, admin, worker"),
        (
            '[{"name": "ci", "role": "write", "key": "' + WRITE_KEY + '", "queues": ["a"]}]',
            "only a worker key has queues",
        ),
        (
            '[{"name": "w", "role": "worker", "key": "' + WRITE_KEY + '", "queues": []}]',
            "queues must be a list of 1 to 100 queue names",
        ),
        (
            '[{"name": "w", "role": "worker", "key": "' + WRITE_KEY + '", "queues": ["a b"]}]',
            "queues must be a list",
        ),
        (keys_json(("ci", "write", "")), "key must be a non-empty string"),
        (keys_json(("ci", "write", "short-key")), "key must be 32 to 512 characters, got 9"),
        (keys_json(("ci", "write", WRITE_KEY[:31])), "key must be 32 to 512 characters, got 31"),
        (keys_json(("ci", "write", "k" * 40)), r"too easy to guess \(fewer than 8 distinct"),
        (keys_json(("ci", "write", "has spaces in the key, " + WRITE_KEY[:20])), "without spaces"),
        (keys_json(("c i", "write", WRITE_KEY)), "name must be 1-64"),
        ('[{"name": "ci", "role": "write"}]', "missing: key"),
        (
            '[{"name": "ci", "role": "write", "key": "' + WRITE_KEY + '", "x": 1}]',
            "unknown: x",
        ),
        (
            keys_json(("ci", "write", WRITE_KEY), ("ci", "read", READ_KEY)),
            "the name 'ci' is used twice",
        ),
        (
            keys_json(("ci", "write", WRITE_KEY), ("ci2", "read", WRITE_KEY)),
            "'ci' and 'ci2' have the same key",
        ),
    ],
)
def test_parse_api_keys_bad_value_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_api_keys(text)
    assert WRITE_KEY not in str(caught.value)


def test_keyring_match_finds_each_key_and_refuses_others() -> None:
    ring = KeyRing(parse_api_keys(THREE))
    assert ring.match(READ_KEY) == ApiKey("ro", Role.READ, READ_KEY)
    assert ring.match(ADMIN_KEY).name == "ops"  # type: ignore[union-attr]
    for wrong in ("", WRITE_KEY[:-1], WRITE_KEY + "x", "ops", "\udcff" * 20):
        assert ring.match(wrong) is None


def test_keyring_match_one_compare_of_digests_for_a_hit_and_a_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ring = KeyRing(parse_api_keys(THREE))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented, found in ((READ_KEY, "ro"), (ADMIN_KEY, "ops"), ("no-such-key-at-all", None)):
        calls.clear()
        key = ring.match(presented)
        # one dict lookup and one compare, whatever the outcome and the number of keys; both
        # sides are 32-byte digests, so not even the length of a key shows in the time taken
        assert (key.name if key else None, len(calls)) == (found, 1)
        assert all(len(a) == len(b) == 32 for a, b in calls)


def test_keyring_match_with_1000_keys_finds_the_last_with_one_compare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    many = [ApiKey(f"k{n}", Role.READ, f"{NEW_KEY}-{n}") for n in range(1000)]
    ring = KeyRing(many)
    calls: list[object] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)

    assert ring.match(f"{NEW_KEY}-999") == many[-1]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("a" * 40, "fewer than 8 distinct characters"),
        ("abababab" * 5, "fewer than 8 distinct characters"),
        ("Xy3-pQ7_" * 5, "one short pattern repeated"),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "mostly runs of repeated or consecutive characters",
        ),
        ("ci-key-0123456789abcdefghijklmnopq", "mostly runs of repeated or consecutive characters"),
        ("ci-key-change-me-" + NEW_KEY[:20], "it holds an example placeholder"),
    ],
)
def test_weak_key_reason_names_why_a_key_is_guessable(secret: str, reason: str) -> None:
    assert len(secret) >= 32
    assert weak_key_reason(secret) == reason


@pytest.mark.parametrize(
    "secret", [READ_KEY, WRITE_KEY, ADMIN_KEY, NEW_KEY, "9b1e4d7a2c8f0b5e3d6a1c9f4e7b2d8a"]
)
def test_weak_key_reason_random_keys_pass(secret: str) -> None:
    assert weak_key_reason(secret) is None


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8000", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("[::1]x", "[::1]x"),
        ("localhost:", "localhost:"),
        ("evil.example:8000", "evil.example"),
        ("", ""),
    ],
)
def test_host_of_strips_port_and_brackets_only_when_well_formed(header: str, host: str) -> None:
    assert host_of(header) == host


def test_api_key_repr_hides_the_key() -> None:
    assert ADMIN_KEY not in repr(parse_api_keys(THREE))


def codec(max_age: int = 3600, secret: bytes = b"s" * 32, entries: str = THREE) -> SessionCodec:
    return SessionCodec(secret, KeyRing(parse_api_keys(entries)), max_age)


def test_session_issue_then_verify_gives_name_role_expiry_and_never_the_key() -> None:
    sessions = codec()
    (key,) = [k for k in parse_api_keys(THREE) if k.name == "ci"]
    token = sessions.issue(key, now=1000.0)
    assert sessions.verify(token, now=1001.0) == access.Session("ci", Role.WRITE, 4600)
    body = token.partition(".")[0]
    claims = json.loads(access._unb64(body))
    assert set(claims) == {"name", "role", "kid", "exp"}
    assert WRITE_KEY not in token
    assert WRITE_KEY not in json.dumps(claims)


@pytest.mark.parametrize("case", ["expired", "tampered", "other_secret", "garbage", "removed"])
def test_session_verify_refuses_bad_token(case: str) -> None:
    sessions = codec()
    (key,) = [k for k in parse_api_keys(THREE) if k.name == "ci"]
    token = sessions.issue(key, now=1000.0)
    now = 1001.0
    if case == "expired":
        now = 1000.0 + 3600
    elif case == "tampered":
        claims = json.loads(access._unb64(token.partition(".")[0]))
        claims["role"] = "admin"
        forged = access._b64(json.dumps(claims).encode())
        token = f"{forged}.{token.partition('.')[2]}"
    elif case == "other_secret":
        sessions = codec(secret=b"x" * 32)
    elif case == "garbage":
        token = "not a token at all"
    elif case == "removed":  # the key was replaced: the old session dies with it
        sessions = codec(entries=keys_json(("ci", "write", NEW_KEY)))
    assert sessions.verify(token, now=now) is None


def test_session_csrf_token_belongs_to_its_session_only() -> None:
    sessions = codec()
    keys = parse_api_keys(THREE)
    first, second = sessions.issue(keys[0], 1000.0), sessions.issue(keys[1], 1000.0)
    assert sessions.check_csrf(first, sessions.csrf_token(first))
    assert not sessions.check_csrf(first, sessions.csrf_token(second))
    assert not sessions.check_csrf(first, "")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_settings_repr_and_str_hide_every_secret() -> None:
    settings = Settings(
        _env_file=None,
        api_keys=THREE,
        session_secret="z" * 40,
        http_signing_secret="whsec_c2VjcmV0LXNpZ25pbmcta2V5",
        database_url="postgresql://app:db-password-123@db:5432/jobs",
    )
    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        for secret in (READ_KEY, WRITE_KEY, ADMIN_KEY, "z" * 40, "c2VjcmV0", "db-password-123"):
            assert secret not in text
    assert [k.name for k in settings.api_key_list] == ["ro", "ci", "ops"]
    assert settings.database_url_value == "postgresql://app:db-password-123@db:5432/jobs"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_keys": keys_json(("ci", "write", WRITE_KEY), ("x", "read", WRITE_KEY))}, "same"),
        ({"api_keys": keys_json(("ci", "boss", WRITE_KEY))}, "role must be one of"),
        ({"api_keys": "[" + WRITE_KEY}, "not valid JSON"),
        ({"session_secret": "short-" + WRITE_KEY[:20]}, "at least 32 characters"),
    ],
)
def test_settings_bad_access_value_is_clear_error_without_the_secret(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(_env_file=None, **overrides)  # type: ignore[arg-type]
    assert WRITE_KEY not in str(caught.value)


def test_settings_blank_api_keys_mean_no_keys() -> None:
    assert Settings(_env_file=None, api_keys="").api_key_list == ()
    assert Settings(_env_file=None).api_key_list == ()


def test_http_task_config_repr_hides_signing_secret() -> None:
    config = HttpTaskConfig(signing_secret="whsec_c2VjcmV0LXNpZ25pbmcta2V5")
    assert "c2VjcmV0" not in repr(config)
