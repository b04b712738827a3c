# syntax=docker/dockerfile:1
#
# One image for both networks; the compose files pick the sub-command:
#   docker build -t ferry:local .
#   docker run --rm ferry:local --help
#
# The build needs PyPI (uv and the locked dependencies), Debian's packages (a C compiler
# for the native line checker) and the python:3.11-slim base image. For an air-gapped
# site, build on a connected build host and carry the image over with `docker save` /
# `docker load`; the compose files then find it by tag.

ARG PYTHON_IMAGE=python:3.11-slim

# ── build: resolve nothing, install exactly what uv.lock says ─────────────────────────
FROM ${PYTHON_IMAGE} AS build

# uv from PyPI (no other registry needed); pinned so builds are reproducible.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the source tree, and the project itself (editable, so `shared.migrate` finds
# alembic.ini and migrations/ beside the packages).
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# The native line checker of `ferry transfer verify` (transfer/format/linecheck.c), built as
# `make install` builds it; the runtime stage gets the library, not the compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && sh transfer/format/build_native.sh --require

# ── runtime: the venv and the source, no uv, no build tools, not root ────────────────
FROM ${PYTHON_IMAGE} AS runtime

ARG FERRY_UID=10001
ARG FERRY_GID=10001

RUN groupadd --system --gid "${FERRY_GID}" ferry \
    && useradd --system --uid "${FERRY_UID}" --gid ferry --home-dir /home/ferry \
        --create-home --shell /usr/sbin/nologin ferry \
    && mkdir -p /srv/ferry/transfer /etc/ferry/keys \
    && chown ferry:ferry /srv/ferry/transfer

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY --from=build --chown=root:root /app /app

USER ferry:ferry

ENTRYPOINT ["ferry"]
CMD ["--help"]
