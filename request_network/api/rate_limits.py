"""Rate limits routes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["rate-limits"])
