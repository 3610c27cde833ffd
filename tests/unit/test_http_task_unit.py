"""The ``http`` task's pure parts: signing, Retry-After, the address classifier, host patterns
and payload validation (no network, no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobqueue.errors import ConfigurationError, Discard
from jobqueue.tasks.http import (
    HttpTaskConfig,
    classify_address,
    host_allowed,
    make_http_task,
    parse_host_patterns,
    parse_payload,
    parse_retry_after,
    resolve_target,
    sign,
    signing_key,
)

# The Standard Webhooks specification's published test vector (also used by its libraries).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- signing ---------------------------------------------------------------------------------


def test_sign_standard_webhooks_vector_matches() -> None:
    key = signing_key(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_sign_plain_secret_matches_independent_hmac() -> None:
    body = '{"event":"ünïcode"}'.encode()
    expected = hmac.new(b"plain secret", b"job_7.1700000000." + body, hashlib.sha256).digest()
    signature = sign(signing_key("plain secret"), "job_7", 1700000000, body)
    assert signature == "v1," + base64.b64encode(expected).decode()


def test_signing_key_whsec_prefix_is_base64_decoded() -> None:
    assert signing_key("whsec_" + base64.b64encode(b"\x00\x01key").decode()) == b"\x00\x01key"


def test_signing_key_bad_whsec_base64_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not base64"):
        signing_key("whsec_not*base64")


def test_make_http_task_bad_config_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="default_timeout_seconds"):
        make_http_task(HttpTaskConfig(default_timeout_seconds=0))


# --- Retry-After (RFC 9110, section 10.2.3) ---------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("99999999", 3600.0),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Sun Mar  1 12:00:10 2026", 10.0),  # obsolete asctime form
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after_valid_value_returns_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "²"])
def test_parse_retry_after_absent_or_invalid_returns_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_custom_cap_applies() -> None:
    later = (NOW + timedelta(hours=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=NOW, cap_seconds=60) == 60


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("100.64.0.1", "a non-public address"),
        ("fec0::1", "a site-local address"),
        ("::ffff:127.0.0.1", "a loopback address in IPv4-mapped form"),
        ("::ffff:10.0.0.1", "a private address in IPv4-mapped form"),
        ("2002:7f00:1::", "a loopback address in 6to4 form"),
        ("2002:a9fe:a9fe::", "a link-local address in 6to4 form"),
        ("64:ff9b::a00:1", "a private address in NAT64 form"),
    ],
)
def test_classify_address_non_public_gives_reason(address: str, reason: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
)
def test_classify_address_public_returns_none(address: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) is None


async def test_resolve_target_loopback_name_refused_with_clear_message() -> None:
    with pytest.raises(Discard, match=r"refused: 127\.0\.0\.1 resolves to 127\.0\.0\.1, a loop"):
        await resolve_target("127.0.0.1", 80, allow_private=False)


async def test_resolve_target_allow_private_returns_addresses() -> None:
    assert await resolve_target("127.0.0.1", 80, allow_private=True) == ["127.0.0.1"]


# --- host patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("hooks.example.com", ("*",), True),
        ("hooks.example.com", ("*.example.com",), True),
        ("HOOKS.Example.COM", ("*.EXAMPLE.com",), True),
        ("hooks.example.com.", ("*.example.com",), True),
        ("example.com", ("*.example.com",), False),
        ("example.com.evil.net", ("*.example.com",), False),
        ("api.other.org", ("*.example.com", "api.other.org"), True),
        ("anything", (), False),
    ],
)
def test_host_allowed_patterns(host: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert host_allowed(host, patterns) is allowed


def test_parse_host_patterns_splits_commas_and_drops_blanks() -> None:
    assert parse_host_patterns(" *.a.com, b.org ,,") == ("*.a.com", "b.org")


# --- payload validation -------------------------------------------------------------------------


def test_parse_payload_defaults_post_empty_body_default_timeout() -> None:
    spec = parse_payload({"url": "https://example.com/hook"}, 30.0)
    assert (spec.method, spec.content, spec.timeout_seconds) == ("POST", b"", 30.0)
    assert spec.headers == {}


def test_parse_payload_string_body_sent_as_is_without_content_type() -> None:
    spec = parse_payload({"url": "http://h/", "body": "a=1&b=é"}, 30.0)
    assert spec.content == "a=1&b=é".encode()
    assert spec.headers == {}


def test_parse_payload_json_body_encoded_with_content_type() -> None:
    spec = parse_payload({"url": "http://h/", "method": "put", "body": {"a": [1, None]}}, 30.0)
    assert (spec.method, spec.content) == ("PUT", b'{"a":[1,null]}')
    assert spec.headers == {"content-type": "application/json"}


def test_parse_payload_json_body_keeps_given_content_type() -> None:
    payload = {"url": "http://h/", "body": [1], "headers": {"Content-Type": "application/x+json"}}
    assert parse_payload(payload, 30.0).headers == {"Content-Type": "application/x+json"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "payload.url is required"),
        ({"url": 5}, "payload.url is required"),
        ({"url": "ftp://example.com/x"}, "http:// or https://"),
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"url": "http://"}, "payload.url"),
        ({"url": "http://h/", "method": "TRACE"}, "payload.method must be one of"),
        ({"url": "http://h/", "method": 1}, "payload.method must be one of"),
        ({"url": "http://h/", "headers": {"a": 1}}, "payload.headers must be an object"),
        ({"url": "http://h/", "headers": ["a"]}, "payload.headers must be an object"),
        ({"url": "http://h/", "headers": {"a b": "x"}}, "invalid header"),
        ({"url": "http://h/", "headers": {"a": "x\r\nb: y"}}, "invalid header"),
        ({"url": "http://h/", "headers": {"Host": "x"}}, "must not set 'Host'"),
        ({"url": "http://h/", "timeout_seconds": 0}, "payload.timeout_seconds must be a positive"),
        ({"url": "http://h/", "timeout_seconds": -1}, "payload.timeout_seconds must be a positive"),
        ({"url": "http://h/", "timeout_seconds": "5"}, "payload.timeout_seconds must be a posit"),
        ({"url": "http://h/", "timeout_seconds": True}, "payload.timeout_seconds must be a posit"),
        ({"url": "http://h/", "header": {}}, "unknown keys \\['header'\\]"),
    ],
)
def test_parse_payload_bad_payload_discards_with_message(
    payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(Discard, match=message):
        parse_payload(payload, 30.0)
