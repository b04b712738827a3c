"""Governed settings on their authority (DESIGN.md §9): list, change, export, and the
history of the changes (`setting_history`, their audit rows).

An admin changes keys all or nothing (`set_values`); each change raises the key's version
by one and is audited with who, the old and the new value; a value set again unchanged is
not versioned again. The export (`export_settings`) writes the keys changed since the last
one (`exported_version < version`) as `setting` records into the `settings` stream, or a
full snapshot of every registry key on demand. A `setting` record arriving from the request
network is refused (`refuse_settings`): the batch is quarantined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import cast, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from response_network.models import AuditLog, Batch, GovernedSetting
from shared import audit
from shared.db import is_postgres, utcnow
from shared.governed import (
    REGISTRY,
    InForce,
    governed_values,
    lookup,
    resolve,
    validate_values,
)
from shared.records import SettingData
from shared.sorting import sort_order
from transfer.format import Record
from transfer.protocol.exchange import ExportedBatch, Outbound, RecordRefused, export_records

__all__ = [
    "HistorySort",
    "export_settings",
    "get_setting",
    "in_force",
    "list_settings",
    "refuse_settings",
    "set_values",
    "setting_history",
]

SETTING_CHANGED = "setting.changed"

#: Serialises changes (a stable signed 64-bit advisory lock id), so each reads what the one
#: before committed: no version is raised twice to the same number.
_CHANGE_LOCK = int.from_bytes(
    hashlib.sha256(b"ferry.response.governed_settings.change").digest()[:8], "big", signed=True
)


def _rows(session: Session) -> dict[str, GovernedSetting]:
    return {row.key: row for row in session.scalars(select(GovernedSetting))}


def in_force(settings: Any, *, session: Session) -> InForce:
    """The value in force of every key on this network: the one set here, else this
    deployment's own setting, else the default."""
    stored = {key: row.value for key, row in _rows(session).items()}
    return resolve(governed_values(stored), settings)


def _describe(key: str, row: GovernedSetting | None, now_in_force: InForce) -> dict[str, Any]:
    entry = REGISTRY[key]
    version = row.version if row is not None else 0
    exported = row.exported_version if row is not None else 0
    return {
        "key": key,
        "value": now_in_force.values[key],
        "source": now_in_force.sources[key],
        "governed_value": row.value if row is not None else None,
        "default": entry.default,
        "type": entry.type,
        **entry.bounds(),
        "description": entry.description,
        "version": version,
        "exported_version": exported,
        "replicated": exported >= version,
        "updated_at": row.updated_at if row is not None else None,
        "updated_by": row.updated_by if row is not None else None,
    }


def list_settings(settings: Any, *, session: Session) -> list[dict[str, Any]]:
    """Every registry key: its value in force and where it comes from, default, type and
    bounds, description, version, who changed it last and whether it has been exported."""
    rows = _rows(session)
    now = resolve(governed_values({k: r.value for k, r in rows.items()}), settings)
    return [_describe(key, rows.get(key), now) for key in REGISTRY]


def get_setting(key: str, settings: Any, *, session: Session) -> dict[str, Any]:
    """One key as `list_settings` describes it; `InvalidSettings` for an unknown key."""
    lookup(key)
    return next(item for item in list_settings(settings, session=session) if item["key"] == key)


def set_values(
    values: Mapping[str, Any], settings: Any, *, session: Session, actor: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Change keys, all or nothing: every value is validated before any is written (one
    `InvalidSettings` names every key refused). Null sets a key back to its default. Each
    key whose value changes gets version + 1 and an audit row `setting.changed` (actor, old,
    new, version); an unchanged one is left alone. Returns (every key described, the keys
    changed)."""
    checked = validate_values(values)
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHANGE_LOCK})
    now = utcnow()
    changed = []
    for key in sorted(checked):
        new = checked[key]
        row = session.get(GovernedSetting, key, populate_existing=True)
        old = row.value if row is not None else None
        if old == new and (row is not None or new is None):
            continue  # the same value again (never set and set to null: still the default)
        if row is None:
            row = GovernedSetting(key=key, version=0, exported_version=0)
            session.add(row)
        row.value, row.version = new, row.version + 1
        row.updated_at, row.updated_by = now, actor[:64]
        changed.append(key)
        audit.record(
            session,
            AuditLog,
            actor=actor[:64],
            action=SETTING_CHANGED,
            target=key,
            detail={"old": old, "new": new, "version": row.version},
        )
    session.flush()
    return list_settings(settings, session=session), changed


HistorySort = Literal[
    "at", "-at", "key", "-key", "old", "-old", "new", "-new", "version", "-version",
    "actor", "-actor",
]  # fmt: skip


def _value(session: Session, name: str) -> Any:
    """A change's `old` or `new` value as it sorts: numbers by size, then objects (JSONB's
    order on PostgreSQL; SQLite's, numbers before text, elsewhere)."""
    if is_postgres(session):
        return cast(AuditLog.detail[name], JSONB)
    return func.json_extract(AuditLog.detail, f"$.{name}")


def setting_history(
    *,
    session: Session,
    key: str | None = None,
    limit: int,
    offset: int,
    sort: HistorySort = "-at",
) -> tuple[list[dict[str, Any]], int]:
    """A page of governed-setting changes (of one key, or all) and how many there are:
    when, who, the key, the old and the new value, the version it made (their
    `setting.changed` audit rows). `sort`: a column, `-` first for descending (default:
    newest first); ties newest first."""
    query = select(AuditLog).where(AuditLog.action == SETTING_CHANGED)
    if key is not None:
        query = query.where(AuditLog.target == key)
    total = session.execute(
        query.with_only_columns(func.count(), maintain_column_froms=True)
    ).scalar_one()
    columns = {
        "at": AuditLog.at,
        "key": AuditLog.target,
        "old": _value(session, "old"),
        "new": _value(session, "new"),
        "version": AuditLog.detail["version"].as_integer(),
        "actor": AuditLog.actor,
    }
    order = sort_order(columns, sort, AuditLog.id.desc(), missing=("old", "new", "version"))
    rows = session.scalars(query.order_by(*order).limit(limit).offset(offset))
    return [
        {
            "at": row.at,
            "actor": row.actor,
            "key": row.target,
            "old": (row.detail or {}).get("old"),
            "new": (row.detail or {}).get("new"),
            "version": (row.detail or {}).get("version"),
        }
        for row in rows
    ], total


def export_settings(out: Outbound, *, session: Session, full: bool = False) -> list[ExportedBatch]:
    """Keys changed since the last export as `setting` records (the `settings` stream), or
    with `full` every registry key: each at its version with its value (null: not governed,
    the request network's own setting applies; a key never set goes at version 0). The
    rows sent are marked exported; the caller commits."""
    query = select(GovernedSetting).order_by(GovernedSetting.key).with_for_update()
    if not full:
        query = query.where(GovernedSetting.exported_version < GovernedSetting.version)
    rows = {row.key: row for row in session.scalars(query) if row.key in REGISTRY}
    keys = list(REGISTRY) if full else list(rows)
    if not keys:
        return []
    records = []
    for key in sorted(keys):
        row = rows.get(key)
        value = row.value if row is not None else None
        records.append(
            Record(
                type="setting",
                id=key,
                version=row.version if row is not None else 0,
                data=SettingData(key=key, value=value).model_dump(mode="json"),
            )
        )
    batches = export_records(session, Batch, out, stream="settings", records=records)
    for row in rows.values():
        row.exported_version = row.version
    session.flush()
    return batches


def refuse_settings(_session: Session, records: list[Record], _batch_id: str) -> None:
    """Settings never come from the request network: the batch is quarantined."""
    raise RecordRefused(
        records[0],
        "settings are governed by the response network (this network); "
        "a setting record from the request network is refused",
    )
