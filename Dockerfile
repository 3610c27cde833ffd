# jobqueue service image. Production sets JOBQUEUE_DATABASE_URL; the embedded PostgreSQL is for
# laptops and is not meant for containers.
# The image listens on 0.0.0.0, so it needs JOBQUEUE_API_KEYS (see docs/security.md): without
# keys `jobqueue serve` refuses a non-loopback address and exits with code 2. Only on a network
# you trust, JOBQUEUE_INSECURE=true lets it run without keys. For example:
#   docker run -e JOBQUEUE_DATABASE_URL=postgresql://… \
#     -e JOBQUEUE_API_KEYS='[{"name":"ci","role":"write","key":"…"}]' -p 8000:8000 jobqueue
# /healthz (the HEALTHCHECK below) needs no key. Put a TLS proxy in front: the service speaks
# plain HTTP.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 jobqueue
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER jobqueue
WORKDIR /home/jobqueue
ENV JOBQUEUE_HOST=0.0.0.0 \
    JOBQUEUE_PORT=8000 \
    JOBQUEUE_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
STOPSIGNAL SIGTERM
CMD ["jobqueue", "serve"]
