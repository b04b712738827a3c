"""The floor the request API is measured against: the least a submit and a read can do.

A pydantic body, one Redis INCR and one INSERT for a submit; one SELECT by primary key for
a read; for a response read, one SELECT of its stored JSON text (`/row`: the floor of a read
from the database) or one Redis GET of its bytes (`/blob`: the floor of a read from a
cache), sent as they are. The same engine and pool settings as Ferry's
(`shared.db.get_engine`). Served by bench/bench_api.py with the same uvicorn settings as
`ferry request serve`.
"""

import os
import uuid

import redis
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import text

from shared.db import get_engine

engine = get_engine(os.environ["FLOOR_DATABASE_URL"])
cache = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
app = FastAPI()


class Submit(BaseModel):
    profile_type: str
    query: dict


@app.post("/submit", status_code=202)
def submit(body: Submit) -> dict:
    cache.incr("floor:count")
    request_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO floor_requests (id, profile_type, query) VALUES (:i, :p, :q)"),
            {"i": request_id, "p": body.profile_type, "q": str(body.query)},
        )
    return {"id": request_id, "status": "PENDING"}


@app.get("/status/{request_id}")
def status(request_id: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT id, profile_type, query FROM floor_requests WHERE id = :i"),
            {"i": request_id},
        ).one_or_none()
    if row is None:
        raise HTTPException(404)
    return {"id": row.id, "profile_type": row.profile_type, "query": row.query}


@app.get("/row/{request_id}")
def row(request_id: str) -> Response:
    with engine.connect() as conn:
        body = conn.execute(
            text("SELECT body FROM floor_responses WHERE id = :i"), {"i": request_id}
        ).scalar_one_or_none()
    if body is None:
        raise HTTPException(404)
    return Response(body.encode(), media_type="application/json")


@app.get("/blob/{request_id}")
def blob(request_id: str) -> Response:
    body = cache.get(f"floor:resp:{request_id}")
    if body is None:
        raise HTTPException(404)
    return Response(body, media_type="application/json")
