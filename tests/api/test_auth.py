"""Access over HTTP against a real PostgreSQL: API keys per role and route, open endpoints,
/metrics closable, the dashboard's login, session cookie, CSRF and roles."""

from __future__ import annotations

import json
import re

import asyncpg
import httpx
import pytest

from jobqueue.access import Role
from jobqueue.api.ui.login import safe_next
from tests.conftest import AppFactory

READ_KEY = "QyLhkEfeuVVwWyhwKgFbXHRmSAYGlXudxtJq4g_-Gh8"
WRITE_KEY = "odC_VnsQT14Cd9XU4HZsQDBBdPQ3Z24XrX5CbiyPPIU"
ADMIN_KEY = "46F47OQZx4w-6A3Z4iiQhuMkCtj5d13guRxeAwlSb90"
WRONG_KEY = "KqnAv0cmxjOiEpA0dl_M1aPzxHllVTzVbva3F5vSxzw"
KEYS = json.dumps(
    [
        {"name": "dash", "role": "read", "key": READ_KEY},
        {"name": "ci", "role": "write", "key": WRITE_KEY},
        {"name": "ops", "role": "admin", "key": ADMIN_KEY},
    ]
)
KEY_OF = {Role.READ: READ_KEY, Role.WRITE: WRITE_KEY, Role.ADMIN: ADMIN_KEY}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def keyed_app(start_app: AppFactory, **overrides: object) -> httpx.AsyncClient:
    """An app with the three keys and no workers (jobs stay todo)."""
    return await start_app(api_keys=KEYS, workers_enabled=False, **overrides)


async def new_job(client: httpx.AsyncClient) -> int:
    response = await client.post("/jobs", json={"task": "echo"}, headers=bearer(ADMIN_KEY))
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


async def status_of(db: asyncpg.Connection, job_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
    return status


ROUTES = [
    ("GET", "/jobs", None, Role.READ),
    ("GET", "/jobs/{id}", None, Role.READ),
    ("GET", "/jobs/{id}/attempts", None, Role.READ),
    ("POST", "/jobs", {"task": "echo"}, Role.WRITE),
    ("POST", "/jobs/batch", {"jobs": [{"task": "echo"}]}, Role.WRITE),
    ("POST", "/jobs/{id}/cancel", None, Role.ADMIN),
    ("POST", "/jobs/{id}/retry", None, Role.ADMIN),
    ("GET", "/ui/api/overview", None, Role.READ),
    ("GET", "/ui/api/jobs/{id}", None, Role.READ),
    ("GET", "/ui/jobs/{id}/payload", None, Role.READ),
    ("GET", "/ui/jobs/{id}/result", None, Role.READ),
    ("POST", "/ui/api/jobs", {"task": "echo"}, Role.WRITE),
    ("POST", "/ui/api/jobs/{id}/cancel", None, Role.ADMIN),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "needed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
async def test_route_without_key_401_with_low_role_403_with_enough_allowed(
    start_app: AppFactory, method: str, path: str, body: object, needed: Role
) -> None:
    client = await keyed_app(start_app)
    url = path.replace("{id}", str(await new_job(client)))

    response = await client.request(method, url, json=body)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="jobqueue"'
    assert "Authorization: Bearer" in response.json()["detail"]

    response = await client.request(method, url, json=body, headers=bearer(WRONG_KEY))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="jobqueue", error="invalid_token"'

    for role, key in KEY_OF.items():
        response = await client.request(method, url, json=body, headers=bearer(key))
        if role.allows(needed):
            # allowed: whatever the route answers (a retry of a todo job is a 409), not 401/403
            assert response.status_code not in (401, 403), (role, response.text)
            assert response.status_code < 500, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert f"this needs the {needed} role" in response.json()["detail"]


async def test_key_in_other_scheme_is_401_invalid_token(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    for value in (f"Basic {ADMIN_KEY}", "Bearer", "Bearer    ", ADMIN_KEY):
        response = await client.get("/jobs", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert "invalid_token" in response.headers["www-authenticate"]


async def test_open_routes_stay_open_with_keys(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path
    assert (await client.get("/ui/static/dashboard.css")).status_code == 200


async def test_metrics_require_key_makes_metrics_need_read(start_app: AppFactory) -> None:
    client = await keyed_app(start_app, metrics_require_key=True)
    assert (await client.get("/metrics")).status_code == 401
    response = await client.get("/metrics", headers=bearer(READ_KEY))
    assert response.status_code == 200
    assert "jobqueue_jobs" in response.text
    assert (await client.get("/healthz")).status_code == 200


async def test_openapi_shows_bearer_scheme_on_job_routes_only(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["paths"]["/jobs"]["post"]["security"] == [{"bearer": []}]
    assert schema["paths"]["/jobs/{job_id}/cancel"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/jobs"]["get"]["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert not any(path.startswith("/ui/api/jobs") for path in schema["paths"])


async def test_no_keys_allows_everything_without_credentials(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "echo"})
    assert response.status_code == 201
    response = await client.post(f"/jobs/{response.json()['id']}/cancel")
    assert response.status_code in (200, 202, 409)  # the worker may hold or have finished it


async def test_no_keys_cross_site_post_is_403_and_changes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={"task": "echo"})).json()["id"]
    for headers in (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ):
        response = await client.post(f"/jobs/{job_id}/cancel", headers=headers)
        assert response.status_code == 403, headers
    assert await status_of(db, job_id) == "todo"
    same_site = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert (await client.post(f"/jobs/{job_id}/cancel", headers=same_site)).status_code == 200


# --- the dashboard ---


async def login(client: httpx.AsyncClient, key: str) -> tuple[str, str]:
    """Log in through the form; the session token and the CSRF token the pages embed. The
    client's cookie jar is emptied again, so each request below says what it sends."""
    response = await client.post("/ui/login", data={"key": key, "next": "/ui/jobs"})
    assert response.status_code == 303, response.text
    token = response.cookies["jq_session"]
    client.cookies.clear()
    page = await client.get("/ui", headers={"Cookie": f"jq_session={token}"})
    assert page.status_code == 200
    match = CSRF_META.search(page.text)
    assert match is not None
    return token, match.group(1)


async def test_ui_page_without_session_redirects_to_login(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    response = await client.get("/ui/jobs?status=todo")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%3Fstatus%3Dtodo"
    form = await client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="key" type="password"' in form.text
    assert 'name="next" value="/ui/jobs?status=todo"' in form.text


async def test_ui_login_sets_httponly_strict_cookie_without_the_key(
    start_app: AppFactory,
) -> None:
    client = await keyed_app(start_app)
    response = await client.post("/ui/login", data={"key": ADMIN_KEY, "next": "/ui/jobs"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/jobs"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("jq_session=")
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/ui" in cookie.lower()
    assert "max-age=43200" in cookie.lower()
    assert "secure" not in attributes  # plain http here
    assert ADMIN_KEY not in cookie


async def test_ui_login_over_https_sets_secure_cookie(start_app: AppFactory) -> None:
    app = (await keyed_app(start_app)).app  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://localhost"
    ) as client:
        response = await client.post("/ui/login", data={"key": READ_KEY})
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower().split("; ")


async def test_ui_login_wrong_key_is_401_form_without_cookie(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    response = await client.post("/ui/login", data={"key": WRONG_KEY})
    assert response.status_code == 401
    assert "That key is not valid." in response.text
    assert "set-cookie" not in response.headers


async def test_ui_login_from_other_site_is_403(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    response = await client.post(
        "/ui/login", data={"key": ADMIN_KEY}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ui/jobs/5?x=1", "/ui/jobs/5?x=1"),
        ("/ui", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("//evil.example/ui", "/ui"),
        ("/\\evil.example", "/ui"),
        ("/jobs", "/ui"),
        ("/uix", "/ui"),
        ("/ui/login", "/ui"),
        ("", "/ui"),
    ],
)
def test_ui_login_next_only_goes_to_dashboard_paths(value: str, expected: str) -> None:
    assert safe_next(value, "") == expected


async def test_ui_session_shows_pages_with_name_and_csrf_token(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    token, csrf = await login(client, WRITE_KEY)
    page = await client.get(f"/ui/jobs/{job_id}", headers={"Cookie": f"jq_session={token}"})
    assert page.status_code == 200
    assert 'id="session-user">ci' in page.text
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    assert WRITE_KEY not in page.text


async def test_ui_cookie_post_without_csrf_token_is_403_with_it_200(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    token, csrf = await login(client, ADMIN_KEY)
    cookie = {"Cookie": f"jq_session={token}"}
    url = f"/ui/api/jobs/{job_id}/cancel"

    response = await client.post(url, headers=cookie)
    assert response.status_code == 403
    assert "X-CSRF-Token" in response.json()["detail"]
    wrong = await client.post(url, headers={**cookie, "X-CSRF-Token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    cross = await client.post(
        url, headers={**cookie, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert await status_of(db, job_id) == "todo"

    response = await client.post(
        url,
        headers={
            **cookie,
            "X-CSRF-Token": csrf,
            "Origin": "http://localhost",
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert response.status_code == 200, response.text
    assert await status_of(db, job_id) == "cancelled"


async def test_bearer_post_needs_no_csrf_token(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    response = await client.post(
        "/jobs",
        json={"task": "echo"},
        headers={**bearer(WRITE_KEY), "Origin": "https://elsewhere.example"},
    )
    assert response.status_code == 201


async def test_ui_read_only_session_cannot_cancel(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await keyed_app(start_app)
    job_id = await new_job(client)
    token, csrf = await login(client, READ_KEY)
    cookie = {"Cookie": f"jq_session={token}"}
    page = await client.get(f"/ui/jobs/{job_id}", headers=cookie)
    assert re.search(r'data-allowed="false" data-action="cancel"[^>]*disabled>', page.text)
    assert 'id="role-note"' in page.text
    response = await client.post(
        f"/ui/api/jobs/{job_id}/cancel", headers={**cookie, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert "this needs the admin role; key 'dash' has the read role" in response.json()["detail"]
    assert await status_of(db, job_id) == "todo"


async def test_ui_forged_or_stale_cookie_is_401(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    token, _ = await login(client, ADMIN_KEY)
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    response = await client.get("/ui/api/overview", headers={"Cookie": f"jq_session={forged}"})
    assert response.status_code == 401
    page = await client.get("/ui", headers={"Cookie": f"jq_session={forged}"})
    assert page.status_code == 303


async def test_ui_logout_deletes_cookie(start_app: AppFactory) -> None:
    client = await keyed_app(start_app)
    token, _ = await login(client, ADMIN_KEY)
    response = await client.post("/ui/logout", headers={"Cookie": f"jq_session={token}"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith('jq_session=""') or cookie.startswith("jq_session=;")
    assert "max-age=0" in cookie
    assert "path=/ui" in cookie


async def test_ui_without_keys_needs_no_login(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    assert (await client.get("/ui")).status_code == 200
    response = await client.get("/ui/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui"


async def test_two_authorization_headers_are_refused_whatever_their_order(
    start_app: AppFactory,
) -> None:
    # The first one counted: "nope" then the admin key was a 401, the reverse a 200
    # (fresh-user finding). Behind a proxy that appends its own header that is a trap.
    client = await keyed_app(start_app)
    for first, second in ((ADMIN_KEY, "nope"), ("nope", ADMIN_KEY)):
        headers = [("authorization", f"Bearer {first}"), ("authorization", f"Bearer {second}")]
        response = await client.get("/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == ("the request has 2 Authorization headers: send one")
