"""The ``http`` task's pure parts: signing, Retry-After, the address classifier, host patterns
and payload validation (no network, no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import itertools
import platform
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobqueue.errors import ConfigurationError, Discard
from jobqueue.tasks.http import (
    HttpTaskConfig,
    check_headers,
    classify_address,
    host_allowed,
    literal_address,
    make_http_task,
    make_payload_check,
    parse_host_patterns,
    parse_inet_aton,
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


def test_parse_retry_after_more_digits_than_int_parses_is_the_cap() -> None:
    assert parse_retry_after("9" * 5000, now=NOW, cap_seconds=60) == 60


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


def test_parse_payload_headers_are_kept_as_given() -> None:
    headers = {"X-Kind": "order.paid", "authorization": "Bearer a b\tc", "x-empty": ""}
    assert parse_payload({"url": "http://h/", "headers": headers}, 30.0).headers == headers


# --- header fields (RFC 9110, sections 5.5 and 5.6.2) -------------------------------------------

VALUE_RULE = "(RFC 9110, section 5.5: visible ASCII, with spaces and tabs only inside)"


@pytest.mark.parametrize(
    "value", ["", "a", "a b", "a\tb", "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "x" * 8192]
)
def test_check_headers_valid_field_value_accepted(value: str) -> None:
    assert check_headers({"x-v": value}) == {"x-v": value}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (" a", "its value starts or ends with whitespace"),
        ("a ", "its value starts or ends with whitespace"),
        ("\ta", "its value starts or ends with whitespace"),
        ("a\t", "its value starts or ends with whitespace"),
        (" ", "its value starts or ends with whitespace"),
        ("a\rb", "its value holds a control character, U+000D, at index 1"),
        ("ab\n", "its value holds a control character, U+000A, at index 2"),
        ("x\r\nb: y", "its value holds a control character, U+000D, at index 1"),
        ("\x00", "its value holds a control character, U+0000, at index 0"),
        ("a\x01", "its value holds a control character, U+0001, at index 1"),
        ("a\x7f", "its value holds a control character, U+007F, at index 1"),
        ("a\x1bb", "its value holds a control character, U+001B, at index 1"),
        ("café", "its value holds a non-ASCII character, U+00E9, at index 3"),
        ("\x80", "its value holds a non-ASCII character, U+0080, at index 0"),
        ("a\u2028b", "its value holds a non-ASCII character, U+2028, at index 1"),
        ("x" * 8193, "its value is 8193 characters long; at most 8192"),
    ],
)
def test_check_headers_invalid_field_value_names_header_and_problem(
    value: str, problem: str
) -> None:
    with pytest.raises(Discard) as caught:
        check_headers({"X-Token": value})
    assert str(caught.value) == f"payload.headers has an invalid header 'X-Token': {problem} " + (
        VALUE_RULE
    )


def test_check_headers_message_never_quotes_the_value() -> None:
    with pytest.raises(Discard) as caught:
        check_headers({"authorization": "Bearer s3cret\n"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("name", ["a b", "a:b", "", "é", "a\r\n", "x" * 257])
def test_check_headers_invalid_name_refused(name: str) -> None:
    with pytest.raises(Discard) as caught:
        check_headers({name: "v"})
    assert str(caught.value).startswith(f"payload.headers has an invalid header name {name[:64]!r}")


def test_check_headers_name_of_256_characters_accepted() -> None:
    assert check_headers({"x" * 256: "v"}) == {"x" * 256: "v"}


def test_check_headers_more_than_100_refused() -> None:
    headers = {f"x-{i}": "v" for i in range(101)}
    with pytest.raises(Discard) as caught:
        check_headers(headers)
    assert str(caught.value) == "payload.headers has 101 headers; at most 100"
    del headers["x-100"]
    assert len(check_headers(headers)) == 100


def test_check_headers_total_over_64_kib_refused() -> None:
    headers = {f"x-{i}": "v" * 8000 for i in range(9)}  # 9 * (3 + 8000) = 72,027 bytes
    with pytest.raises(Discard) as caught:
        check_headers(headers)
    assert str(caught.value) == (
        "payload.headers holds 72027 bytes of names and values; at most 65536"
    )


def test_check_headers_same_name_twice_case_insensitive_refused() -> None:
    with pytest.raises(Discard) as caught:
        check_headers({"X-Kind": "a", "x-kind": "b"})
    assert str(caught.value) == (
        "payload.headers names 'X-Kind' and 'x-kind': header names are case-insensitive, "
        "give each once"
    )


@pytest.mark.parametrize("name", ["accept-encoding", "Accept-Encoding"])
def test_check_headers_accept_encoding_refused(name: str) -> None:
    with pytest.raises(Discard) as caught:
        check_headers({name: "gzip"})
    assert str(caught.value) == (
        f"payload.headers must not set {name!r}: the task sends its own "
        "(it decodes at most one content coding)"
    )


# --- URLs: ports, userinfo, empty hosts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:0/", "payload.url has port 0: a port is 1 to 65535"),
        ("http://h:65536/", "payload.url has port 65536: a port is 1 to 65535"),
        ("https://h:99999/x", "payload.url has port 99999: a port is 1 to 65535"),
        ("http://h:-1/", "payload.url has port -1: a port is 1 to 65535"),
        (
            "http://user:pa55@h/",
            "payload.url must not hold credentials (user:password@host): send them in "
            'payload.headers instead, e.g. {"authorization": "Basic …"}',
        ),
        ("http://user@h/", "payload.url must not hold credentials (user:password@host)"),
        ("ftp://user:pa55@h/", "payload.url must be an http:// or https:// URL with a host"),
        ("http:///path", "payload.url must be an http:// or https:// URL with a host, got "),
        ("http://:80/", "payload.url must be an http:// or https:// URL with a host, got "),
        ("http://./", "payload.url must be an http:// or https:// URL with a host, got "),
        ("http://0177.0.0.1/", "payload.url is not a valid URL: Invalid IPv4 address"),
        ("http://127.0.0.1 /", "payload.url contains a space or control character"),
        ("http://h/a b", "payload.url contains a space or control character"),
        ("http://h/\t", "payload.url contains a space or control character"),
        ("https://a..com/", "payload.url has a host name DNS cannot hold"),
        ("https://" + "a" * 64 + ".com/", "payload.url has a host name DNS cannot hold"),
    ],
)
def test_parse_payload_bad_url_discards_with_message(url: str, message: str) -> None:
    with pytest.raises(Discard) as caught:
        parse_payload({"url": url}, 30.0)
    assert str(caught.value).startswith(message)
    assert "pa55" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://h:1/", "https://h:65535/", "http://h:80/", "http://@h/"])
def test_parse_payload_port_in_range_accepted(url: str) -> None:
    assert parse_payload({"url": url}, 30.0).url.host == "h"


# --- literal IP addresses, refused at enqueue unless allow_private --------------------------------

RULE = "only public addresses may be called (set JOBQUEUE_HTTP_ALLOW_PRIVATE=true to allow)"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1/", "127.0.0.1, a loopback address"),
        ("http://127.0.0.1:8080/x?y=1", "127.0.0.1, a loopback address"),
        ("http://[::1]/", "::1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1, a private address"),
        ("http://192.168.0.1/", "192.168.0.1, a private address"),
        ("http://0.0.0.0/", "0.0.0.0, an unspecified address"),
        ("http://2130706433/", "'2130706433', that is 127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "'0x7f000001', that is 127.0.0.1, a loopback address"),
        ("http://0X7F.1/", "'0x7f.1', that is 127.0.0.1, a loopback address"),
        ("http://0177.0.1/", "'0177.0.1', that is 127.0.0.1, a loopback address"),
        ("http://0x7f.0.0.1/", "'0x7f.0.0.1', that is 127.0.0.1, a loopback address"),
        ("http://127.1/", "'127.1', that is 127.0.0.1, a loopback address"),
        ("http://10.1/", "'10.1', that is 10.0.0.1, a private address"),
        ("http://0/", "'0', that is 0.0.0.0, an unspecified address"),
        ("http://127.0.0.1./", "'127.0.0.1.', that is 127.0.0.1, a loopback address"),
        ("http://%31%32%37.0.0.1/", "'%31%32%37.0.0.1', that is 127.0.0.1, a loopback address"),
        (
            "http://[::ffff:127.0.0.1]/",
            "'::ffff:127.0.0.1', that is ::ffff:7f00:1, a loopback address in IPv4-mapped form",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "::ffff:a9fe:a9fe, a link-local address in IPv4-mapped form",
        ),
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1, a loopback address in NAT64 form"),
        ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1, a private address in NAT64 form"),
        ("http://[2002:7f00:1::]/", "2002:7f00:1::, a loopback address in 6to4 form"),
        ("http://[fe80::1%25eth0]/", "'fe80::1%25eth0', that is fe80::1, a link-local address"),
        ("http://[fc00::1]/", "fc00::1, a private address"),
        ("http://[::]/", "::, an unspecified address"),
        ("http://[::127.0.0.1]/", "'::127.0.0.1', that is ::7f00:1, a reserved address"),
    ],
)
def test_payload_check_literal_non_public_address_refused_at_enqueue(url: str, named: str) -> None:
    check = make_payload_check(HttpTaskConfig())
    with pytest.raises(ValueError, match=r"^payload\.url names the IP address ") as caught:
        check({"url": url})
    assert str(caught.value) == f"payload.url names the IP address {named}: {RULE}"


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/",
        "http://0x08080808/",
        "http://134744072/",  # 8.8.8.8
        "http://[2606:4700:4700::1111]/",
        "http://[::ffff:8.8.8.8]/",
        "http://localhost/",  # a name: resolved and checked when the job runs
        "http://hooks.example.com/",
        "http://1.2.3.4.5/",  # not an address for inet_aton: a (non-resolving) name
        "http://08/",  # 8 is not an octal digit: a name for inet_aton too
    ],
)
def test_payload_check_public_literal_or_name_accepted(url: str) -> None:
    make_payload_check(HttpTaskConfig())({"url": url})


def test_payload_check_allow_private_accepts_literal_private_addresses() -> None:
    check = make_payload_check(HttpTaskConfig(allow_private=True))
    for url in ("http://127.0.0.1/", "http://[::1]/", "http://0x7f000001/", "http://10.1/"):
        check({"url": url})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"url": "http://h:0/"}, "payload.url has port 0"),
        ({"url": "http://u:p@h/"}, "payload.url must not hold credentials"),
        ({"url": "http://h/", "headers": {"accept-encoding": "gzip"}}, "must not set"),
        ({"url": "http://h/", "headers": {"x": "a\nb"}}, "invalid header 'x'"),
    ],
)
def test_payload_check_bad_payload_raises_value_error(
    payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_payload_check(HttpTaskConfig(allow_private=True))(payload)


def _inet_aton(text: str) -> str | None:
    try:
        return socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        return None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="compares with glibc's inet_aton")
def test_parse_inet_aton_agrees_with_glibc_on_every_short_string() -> None:
    alphabet = "0178x.fa"
    texts = ["".join(t) for n in range(1, 6) for t in itertools.product(alphabet, repeat=n)]
    texts += ["2130706433", "4294967295", "4294967296", "0xffffffff", "0x100000000", "1.16777215"]
    texts += ["1.16777216", "1.2.65535", "1.2.65536", "1.2.3.255", "1.2.3.256", "0" * 40 + "177"]
    disagree = [
        t for t in texts if (str(a) if (a := parse_inet_aton(t)) else None) != _inet_aton(t)
    ]
    assert disagree == []
    assert len(texts) > 37_000


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("%30x7f000001", "127.0.0.1"),
        ("::1", "::1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("example.com", None),
        ("1" * 5000, None),
        ("127.0.0.1..", None),
        ("::zz", None),
    ],
)
def test_literal_address_reads_client_forms(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert (None if found is None else str(found)) == address


# --- the package's face -------------------------------------------------------------------------


def test_package_exports_what_callers_import() -> None:
    import jobqueue.tasks.http as http

    for name in http.__all__:
        assert getattr(http, name) is not None, name
    for name in ("HttpTaskConfig", "make_http_task", "make_payload_check", "parse_host_patterns"):
        assert name in http.__all__
    assert http.__doc__ is not None
    assert http.__doc__.startswith("The built-in ``http`` task: deliver one HTTP request")
    assert HttpTaskConfig.__doc__ is not None
    assert "``create_app`` builds it from the settings" in HttpTaskConfig.__doc__
    assert "the lead" not in HttpTaskConfig.__doc__
