"""Health probes of a network's side of the gap (`shared.health`): its transfer directories,
its outbox backlog and unacknowledged batches (from `transfer_status`), and its quarantine.

A file waiting for a person (quarantined, or refused by the peer) is `degraded`: nothing is
broken, but nothing moves on until someone acts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from shared.health import Finding, Probe, degraded, down, ok
from shared.settings import FerrySettings
from transfer.operator.status import transfer_status
from transfer.protocol.config import transfer_dirs
from transfer.protocol.quarantine import list_quarantine

Reads = Callable[[], AbstractContextManager[Session]]
MB = 1024 * 1024


def directories_probe(settings: FerrySettings, *, min_free_mb: int, timeout_s: float) -> Probe:
    """Every transfer directory exists and is writable, with `min_free_mb` free."""

    def check() -> Finding:
        dirs: dict[str, dict] = {}
        missing, read_only, short = [], [], []
        for directory in transfer_dirs(settings):
            top = directory == settings.transfer_dir
            label = "." if top else directory.relative_to(settings.transfer_dir).as_posix()
            if not directory.is_dir():
                missing.append(label)
                dirs[label] = {"exists": False}
                continue
            writable = os.access(directory, os.W_OK | os.X_OK)
            free_mb = shutil.disk_usage(directory).free // MB
            dirs[label] = {"exists": True, "writable": writable, "free_mb": free_mb}
            if not writable:
                read_only.append(label)
            if free_mb < min_free_mb:
                short.append(f"{label} ({free_mb} MB)")
        details = {"path": str(settings.transfer_dir), "directories": dirs}
        if missing or read_only:
            said = [f"missing: {', '.join(missing)}"] if missing else []
            said += [f"not writable: {', '.join(read_only)}"] if read_only else []
            return down("; ".join(said), **details)
        if short:
            return degraded(f"less than {min_free_mb} MB free: {', '.join(short)}", **details)
        return ok(**details)

    return Probe("transfer_dirs", check, timeout_s)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def transfer_probe(
    settings: FerrySettings, batch_model: type, reads: Reads, *, timeout_s: float
) -> Probe:
    """The outbox backlog and the oldest unacknowledged batch; gaps in what arrived; batches
    the peer quarantined. Degraded past `unacked_flag_hours` or when a person must act."""

    def check() -> Finding:
        with reads() as session:
            status = transfer_status(
                session,
                batch_model,
                network_id=settings.network_id,
                peer=settings.peer_network_id,
                inbox=settings.inbox,
                outbox=settings.outbox,
                quarantine_dir=settings.quarantine_dir,
            )
        oldest = max((u.age_seconds for u in status.unacked), default=None)
        rejected = [f"{u.stream} seq {u.seq}" for u in status.unacked if u.peer_rejected]
        details = {
            "outbox": len(status.outbox),
            "carried": len(status.carried),
            "inbox": len(status.inbox),
            "unacked": len(status.unacked),
            "oldest_unacked_s": oldest,
            "gaps": status.gaps,
        }
        said = []
        if rejected:
            said.append(f"the peer quarantined {', '.join(rejected)}: fix and resend")
        if oldest is not None and oldest > settings.unacked_flag_hours * 3600:
            said.append(f"the oldest unacknowledged batch is {_hours(oldest)} old")
        if status.gaps:
            gaps = "; ".join(f"{s} {', '.join(map(str, g[:5]))}" for s, g in status.gaps.items())
            said.append(f"gaps in what arrived: {gaps}")
        if said:
            return degraded("; ".join(said), **details)
        return ok(**details)

    return Probe("transfer", check, timeout_s)


def quarantine_probe(settings: FerrySettings, *, timeout_s: float) -> Probe:
    def check() -> Finding:
        entries = list_quarantine(settings.quarantine_dir)
        details = {"count": len(entries)}
        if entries:
            newest = entries[-1]
            details["newest"] = {
                "file": newest.get("file"),
                "quarantined_at": newest.get("quarantined_at"),
            }
            return degraded(f"{len(entries)} file(s) in quarantine wait for an operator", **details)
        return ok(**details)

    return Probe("quarantine", check, timeout_s)


__all__ = ["directories_probe", "quarantine_probe", "transfer_probe"]
