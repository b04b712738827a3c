"""Build the exchange's Outbound/Inbound from a network's settings."""

from __future__ import annotations

from datetime import timedelta

from shared.settings import FerrySettings
from transfer.exchange import Inbound, Outbound
from transfer.format import Limits
from transfer.keys import load_public_keys, load_signing_key


def limits_from(settings: FerrySettings) -> Limits:
    return Limits(
        max_batch_bytes=settings.batch_max_bytes,
        max_records=settings.batch_max_records,
        max_line_bytes=settings.batch_max_line_bytes,
    )


def outbound_from(settings: FerrySettings) -> Outbound:
    return Outbound(
        source=settings.network_id,
        destination=settings.peer_network_id,
        outbox=settings.outbox,
        signing_key=load_signing_key(settings.signing_key),
        limits=limits_from(settings),
        ttl=timedelta(hours=settings.batch_ttl_hours),
    )


def inbound_from(settings: FerrySettings) -> Inbound:
    return Inbound(
        network_id=settings.network_id,
        peer=settings.peer_network_id,
        inbox=settings.inbox,
        processed=settings.processed_dir,
        quarantine=settings.quarantine_dir,
        public_keys=load_public_keys(settings.peer_public_keys),
        limits=limits_from(settings),
    )
