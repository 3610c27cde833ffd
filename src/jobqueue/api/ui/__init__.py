"""``/ui``: the web dashboard, server-rendered with jinja2 (autoescaped) plus a little JS.

``pages.py`` has the overview and job pages, ``ops_pages.py`` the queues, schedules and
processes pages, ``login.py`` the session login, ``_render.py`` the templates and
security headers, ``schemas.py`` the JSON the overview polls. Templates and static files live
beside them (``templates/``, ``static/``): nothing is loaded from elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from jobqueue.api.auth import LoginRequired
from jobqueue.api.middleware import UI_API_PREFIX
from jobqueue.api.routes import jobs, queues, schedules
from jobqueue.api.ui import login, ops_pages, pages
from jobqueue.api.ui._render import STATIC_DIR

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the dashboard on ``app``: the static files at ``/ui/static``, the pages, the login
    form (and the redirect of pages without a session to it), and the JSON job, queue and
    schedule APIs again under ``/ui/api`` for the pages' scripts (the session cookie's Path is
    ``/ui``, so a browser sends it nowhere else; the HTTP metrics count those calls under
    ``/ui/api/...`` routes)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(pages.router)
    app.include_router(ops_pages.router)
    app.include_router(jobs.router, prefix=UI_API_PREFIX, include_in_schema=False)
    app.include_router(queues.router, prefix=UI_API_PREFIX, include_in_schema=False)
    app.include_router(schedules.router, prefix=UI_API_PREFIX, include_in_schema=False)
    app.include_router(login.router)
    app.add_exception_handler(LoginRequired, login.to_login)
