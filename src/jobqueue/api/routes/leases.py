"""``/leases``: the HTTP lease API for workers in any language (docs/workers.md).

A worker leases jobs (``POST /leases``, a long-poll), renews its leases (``POST
/leases/heartbeat``), and reports each job complete, failed or released, by its lease token.
Every report is fenced by the lease (``leases/_remote.py``): a lost lease answers 409
``lease_lost`` and changes nothing; repeating a report already written answers 200 with
``"repeated": true``.

Roles (``api/auth.py``): ``worker`` (or ``admin``); a worker key with ``queues`` may lease only
from those, and a token is accepted only from the key that leased it (else 404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from jobqueue import leases
from jobqueue.access import Role
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.deps import get_runtime
from jobqueue.api.disconnect import CLIENT_CLOSED_REQUEST, unless_disconnected
from jobqueue.api.routes._lease_schemas import (
    CompleteIn,
    CompleteManyIn,
    FailIn,
    FailManyIn,
    HeartbeatIn,
    HeartbeatOneIn,
    LeaseIn,
    LeasesOut,
    RenewalOneOut,
    RenewalOut,
    RenewalsOut,
    ReportOut,
    ReportsOut,
    TokensIn,
    leases_answer,
    renewals_answer,
    reports_answer,
)
from jobqueue.api.routes.jobs import WRITE_ERRORS, JobsRoute
from jobqueue.api.schemas import ErrorOut
from jobqueue.api.state import Runtime
from jobqueue.errors import LeaseLost

BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    status: answer for status, answer in WRITE_ERRORS.items() if status != 409
}
router = APIRouter(
    prefix="/leases",
    tags=["leases"],
    responses={**ACCESS_RESPONSES, **BODY_ERRORS},
    route_class=JobsRoute,  # the role check first, then UTF-8 and duplicate keys refused
)
WORKER = needs(Role.WORKER)

Token = Annotated[
    str,
    Path(
        min_length=1,
        max_length=leases.MAX_TOKEN_CHARS,
        description="The lease token POST /leases gave.",
    ),
]

LOST: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The lease is lost (`code: lease_lost`)."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such lease for this key."}
}


async def get_remote(runtime: Annotated[Runtime, Depends(get_runtime)]) -> leases.RemoteLeases:
    """The app's :class:`~jobqueue.leases.RemoteLeases` (built in the lifespan)."""
    return runtime.leases


Remote = Annotated[leases.RemoteLeases, Depends(get_remote)]


def caller(request: Request) -> leases.Caller:
    """Who calls: the key's name and the queues it may lease from."""
    principal: Any = request.state.principal
    return leases.Caller(principal.name, principal.queues)


@router.post(
    "",
    response_model=LeasesOut,
    openapi_extra=WORKER,
    responses={
        **NOT_FOUND,
        429: {"model": ErrorOut, "description": "Too many waiting lease requests."},
    },
)
async def lease(body: LeaseIn, request: Request, remote: Remote) -> Response:
    """Lease up to ``max_jobs`` jobs of ``queues`` (and ``tasks``), waiting up to
    ``wait_seconds`` (0 to 20 s) when none is due: answered as soon as one is, else with an
    empty list at the end of the wait. A waiting request holds no database connection.

    Each lease has a token for the reports, its expiry, and the heartbeat interval to use
    (seconds). ``drain: true``: the service is stopping; stop leasing for a few seconds.

    Reports may ride on the call: ``complete`` and ``fail`` take the items of ``POST
    /leases/complete`` and ``/leases/fail``, are written first (fenced as there) and answered
    in ``completed`` and ``failed``; such a call does not wait. One request per batch instead
    of two: a remote drain's API and worker CPU per job fell by about a fifth (docs/workers.md).

    Errors: 403 (a queue the key may not lease from), 404 (a report's token malformed or not
    this key's: nothing was written or leased), 422 (a bad body, or a result that cannot be
    stored: nothing written or leased), 429 (this key, or the process, has too many waiting
    requests: retry after ``Retry-After``; reports it carried were written), 503.
    """
    who = caller(request)
    completed: list[leases.Report] = []
    failed: list[leases.Report] = []
    if body.carries_reports:
        completed, failed = await remote.report(
            who,
            [(i.token, i.result) for i in body.complete or ()],
            [(i.token, i.failure()) for i in body.fail or ()],
        )
    request_ = body.to_request(_client_host(request), remote.default_lease_seconds)
    granted = await unless_disconnected(request.receive, remote.lease(who, request_))
    if granted is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return leases_answer(granted, remote.draining, completed, failed)


def _client_host(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/heartbeat", response_model=RenewalsOut, openapi_extra=WORKER, responses=NOT_FOUND)
async def heartbeat_many(body: HeartbeatIn, request: Request, remote: Remote) -> Response:
    """Renew a worker's leases in one statement: each is ``extended``, ``lost`` (stop the job,
    drop its outcome) or ``busy`` (being written by someone else: neither; send it again),
    with ``cancel_requested``; ``drain`` as for ``POST /leases``.

    Errors: 404 (a token malformed or not this key's: nothing was renewed), 422, 503.
    """
    renewals = await remote.heartbeat(caller(request), body.tokens, body.lease_seconds)
    return renewals_answer(renewals, remote.draining)


@router.post(
    "/{token}/heartbeat",
    response_model=RenewalOneOut,
    openapi_extra=WORKER,
    responses={**NOT_FOUND, **LOST},
)
async def heartbeat_one(
    token: Token,
    request: Request,
    remote: Remote,
    body: Annotated[HeartbeatOneIn | None, Body()] = None,
) -> RenewalOneOut:
    """Renew one lease (see ``POST /leases/heartbeat``).

    Errors: 404, 409 ``lease_lost``, 422, 503.
    """
    seconds = body.lease_seconds if body is not None else None
    who = caller(request)
    (renewal,) = await remote.heartbeat(who, [token], seconds)
    if renewal.status == "lost":
        parsed = leases.LeaseToken.decode(token, who.key_name)
        raise LeaseLost(parsed.job_id, parsed.attempt, None)
    return RenewalOneOut(**RenewalOut.of(renewal).model_dump(), drain=remote.draining)


@router.post("/complete", response_model=ReportsOut, openapi_extra=WORKER, responses=NOT_FOUND)
async def complete_many(body: CompleteManyIn, request: Request, remote: Remote) -> Response:
    """Complete leased jobs with their results; a lost lease is reported per item
    (``"status": "lease_lost"``), nothing of it written.

    Errors: 404 (a token malformed or not this key's), 422 (a result over
    ``JOBQUEUE_MAX_RESULT_BYTES``, too deep, or not storable): nothing was written; 503.
    """
    items = [(item.token, item.result) for item in body.leases]
    return reports_answer(await remote.complete(caller(request), items))


@router.post(
    "/{token}/complete",
    response_model=ReportOut,
    openapi_extra=WORKER,
    responses={**NOT_FOUND, **LOST},
)
async def complete_one(
    token: Token, request: Request, remote: Remote, body: CompleteIn | None = None
) -> ReportOut:
    """Complete a leased job: ``done`` with ``result`` (any JSON; null when the body is
    omitted). Repeating it answers 200 with ``repeated: true`` and changes nothing.

    Errors: 404, 409 ``lease_lost`` (nothing written), 422 (see the batch form), 503.
    """
    result = body.result if body is not None else None
    (report,) = await remote.complete(caller(request), [(token, result)])
    return ReportOut.of(report.raise_lost())


@router.post("/fail", response_model=ReportsOut, openapi_extra=WORKER, responses=NOT_FOUND)
async def fail_many(body: FailManyIn, request: Request, remote: Remote) -> Response:
    """Report leased jobs failed (see ``POST /leases/{token}/fail``); a lost lease is reported
    per item. Errors: 404, 422, 503."""
    items = [(item.token, item.failure()) for item in body.leases]
    return reports_answer(await remote.fail(caller(request), items))


@router.post(
    "/{token}/fail",
    response_model=ReportOut,
    openapi_extra=WORKER,
    responses={**NOT_FOUND, **LOST},
)
async def fail_one(
    token: Token, request: Request, remote: Remote, body: FailIn | None = None
) -> ReportOut:
    """Report a leased job failed: with ``retryable`` (default true) and attempts left it goes
    back to ``todo`` after ``retry_delay_seconds`` (else the service's backoff); otherwise it
    ends ``failed``; ``cancelled`` when a cancel was requested. Repeating it answers 200 with
    ``repeated: true``.

    Errors: 404, 409 ``lease_lost`` (nothing written), 422, 503.
    """
    failure = (body or FailIn()).failure()
    (report,) = await remote.fail(caller(request), [(token, failure)])
    return ReportOut.of(report.raise_lost())


@router.post("/release", response_model=ReportsOut, openapi_extra=WORKER, responses=NOT_FOUND)
async def release_many(body: TokensIn, request: Request, remote: Remote) -> Response:
    """Give leased jobs back to ``todo`` without using up their attempt (a stopping worker);
    one already gone is ``lease_lost``. Errors: 404, 422, 503."""
    return reports_answer(await remote.release(caller(request), body.tokens))


@router.post(
    "/{token}/release",
    response_model=ReportOut,
    openapi_extra=WORKER,
    responses={**NOT_FOUND, **LOST},
)
async def release_one(token: Token, request: Request, remote: Remote) -> ReportOut:
    """Give a leased job back to ``todo`` without using up its attempt.

    Errors: 404, 409 ``lease_lost`` (the job is no longer yours: harmless), 503.
    """
    (report,) = await remote.release(caller(request), [token])
    return ReportOut.of(report.raise_lost())
