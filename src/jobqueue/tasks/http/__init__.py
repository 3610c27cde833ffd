"""The built-in ``http`` task: deliver one HTTP request per attempt (webhook delivery).

Payload (a JSON object; unknown keys are refused so that a typo is not silently ignored)::

    {"url": "https://hooks.example.com/in",   # required, http or https
     "method": "POST",                          # GET HEAD POST PUT PATCH DELETE OPTIONS
     "headers": {"x-kind": "order.paid"},       # str -> str
     "body": {"id": 7},                         # a string is sent as-is (UTF-8); any other JSON
                                                # value is JSON-encoded with application/json
     "timeout_seconds": 10}                     # whole request, seconds (default from config)

The URL has a host, no userinfo (``user:password@``: send an ``Authorization`` header instead)
and a port in 1-65535 if any. Headers follow RFC 9110: names are tokens (section 5.6.2), each
given once (case-insensitively); values are field values (section 5.5): visible ASCII with
spaces and tabs inside only, no control character, no non-ASCII. At most 100 headers, 256 bytes a
name, 8 KiB a value, 64 KiB in all. ``host``, ``content-length``, ``transfer-encoding``,
``connection`` and ``accept-encoding`` may not be set. These are checked at enqueue (a 422 when
the task is registered with :func:`make_payload_check`) and again when the job runs.

Result of a 2xx answer: ``{"status": int, "headers": {name: value}, "body": str,
"truncated": bool, "elapsed_ms": float}``; ``body`` is the decoded text of at most
``max_response_bytes`` bytes, read as a stream that stops at the cap.

Response bodies are read as raw bytes and their content coding (RFC 9110, section 8.4) is undone
here, never by httpx (which decodes without a bound): the task sends ``Accept-Encoding:
identity``, and decodes at most ONE coding a server uses anyway (``gzip``, ``deflate``, and
``br`` when a ``brotli`` 1.2+ package is installed), each step bounded, so memory stays near
``max_response_bytes`` whatever the body would expand to. A plain 2xx body over the cap is cut
(``"truncated": true``). A compressed 2xx body that decodes to more than ``max_response_bytes``
(or takes more than ``max_response_bytes`` + 64 KiB raw bytes) fails the attempt with
"response exceeds N bytes after decoding": :class:`Discard`, since retrying will not make the
answer smaller. So do stacked codings (``Content-Encoding: gzip, gzip``) and unknown codings
(:class:`Discard`); a corrupt compressed body is a :class:`DeliveryError` (retried).

How an answer becomes the job's next state (see :mod:`jobqueue.worker.outcome`):

- 2xx: done.
- 408, 429, 5xx, network errors, timeouts, DNS failures: retried. With a ``Retry-After`` header
  (RFC 9110, section 10.2.3: delta-seconds or an HTTP-date), :class:`RetryLater` waits that long
  (at most :data:`MAX_RETRY_AFTER_SECONDS`); otherwise :class:`DeliveryError` takes the normal
  backoff. 408 is retried because RFC 9110 section 15.5.9 lets the client repeat the request.
- 3xx: :class:`Discard`. Redirects are never followed: the target would escape the host allow-list
  and the address checks, and a signed body would go to a host the job did not name (the
  receiver should publish its final URL instead).
- other 4xx and bad payloads: :class:`Discard` (retrying cannot help).

Signing follows the Standard Webhooks spec (https://www.standardwebhooks.com/): ``webhook-id`` is
``job_<id>`` (the same for every attempt, so receivers can drop duplicates), ``webhook-timestamp``
is the send time in integer unix seconds, ``webhook-signature`` is ``v1,`` + base64 of
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``. A ``whsec_<base64>`` secret is base64-decoded to
the key; any other secret is used as UTF-8 bytes.

Target policy, against server-side request forgery: the URL's host must match one of
``allowed_hosts`` (``fnmatch``, case-insensitive; ``*.example.com`` does not match
``example.com``), and unless ``allow_private`` every address the host resolves to must be public
(:func:`classify_address`). A host that is a non-public IP address written literally, in any form
a client or the resolver reads as one (``127.0.0.1``, ``[::1]``, ``2130706433``, ``0x7f000001``,
``0177.0.0.1``, ``127.1``, ``0``, ``[::ffff:127.0.0.1]``, ``[64:ff9b::a00:1]`` …), is already
refused at enqueue (:func:`refuse_literal_address`). DNS rebinding is closed by pinning: the
request is sent to an address that was checked (the URL's host is replaced by that address),
with the ``Host`` header and the TLS server name (SNI, and so certificate verification) still the
original host name. Each delivery uses its own connection (no pool shared across hosts, so a TLS
connection verified for one name is never reused for another on the same address); only the TLS
context is shared. Environment proxies (``HTTP_PROXY`` …) and ``.netrc`` are ignored, since a
proxy would undo the pinning. Error messages name the method, scheme and host only: paths and
queries of webhook URLs often carry secrets, and the first line of an error is logged.

The package's modules are private; everything public is imported from here: the payload
(``_payload``), signing (``_signing``), targets (``_targets``), content codings (``_decoding``),
sending and reading (``_transport``), the task (``_task``).
"""

from jobqueue.tasks.http._config import HttpTaskConfig, TransportFactory, default_transport
from jobqueue.tasks.http._decoding import (
    CodingError,
    CorruptBody,
    UnsupportedCoding,
    make_decoder,
    response_coding,
    supported_codings,
)
from jobqueue.tasks.http._errors import DeliveryError, DeliveryTimeout
from jobqueue.tasks.http._payload import (
    FORBIDDEN_HEADERS,
    MAX_HEADER_NAME_BYTES,
    MAX_HEADER_VALUE_BYTES,
    MAX_HEADERS,
    MAX_HEADERS_TOTAL_BYTES,
    METHODS,
    PAYLOAD_KEYS,
    HttpRequest,
    check_headers,
    check_url,
    parse_payload,
)
from jobqueue.tasks.http._signing import sign, signing_key, webhook_headers
from jobqueue.tasks.http._targets import (
    check_allowed_host,
    classify_address,
    host_allowed,
    literal_address,
    parse_host_patterns,
    parse_inet_aton,
    refuse_literal_address,
    resolve_target,
)
from jobqueue.tasks.http._task import (
    ACCEPT_ENCODING,
    USER_AGENT,
    make_http_task,
    make_payload_check,
)
from jobqueue.tasks.http._transport import (
    CODING_OVERHEAD_BYTES,
    ERROR_SNIPPET_BYTES,
    MAX_RETRY_AFTER_SECONDS,
    Body,
    deliver,
    outcome,
    parse_retry_after,
    read_body,
    send_pinned,
)

__all__ = [
    "ACCEPT_ENCODING",
    "CODING_OVERHEAD_BYTES",
    "ERROR_SNIPPET_BYTES",
    "FORBIDDEN_HEADERS",
    "MAX_HEADERS",
    "MAX_HEADERS_TOTAL_BYTES",
    "MAX_HEADER_NAME_BYTES",
    "MAX_HEADER_VALUE_BYTES",
    "MAX_RETRY_AFTER_SECONDS",
    "METHODS",
    "PAYLOAD_KEYS",
    "USER_AGENT",
    "Body",
    "CodingError",
    "CorruptBody",
    "DeliveryError",
    "DeliveryTimeout",
    "HttpRequest",
    "HttpTaskConfig",
    "TransportFactory",
    "UnsupportedCoding",
    "check_allowed_host",
    "check_headers",
    "check_url",
    "classify_address",
    "default_transport",
    "deliver",
    "host_allowed",
    "literal_address",
    "make_decoder",
    "make_http_task",
    "make_payload_check",
    "outcome",
    "parse_host_patterns",
    "parse_inet_aton",
    "parse_payload",
    "parse_retry_after",
    "read_body",
    "refuse_literal_address",
    "resolve_target",
    "response_coding",
    "send_pinned",
    "sign",
    "signing_key",
    "supported_codings",
    "webhook_headers",
]
