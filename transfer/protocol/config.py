"""Build the exchange's Outbound/Inbound from a network's settings, and lay out its
transfer directory."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from shared.settings import FerrySettings
from transfer.format import Limits
from transfer.format.keys import load_public_keys, load_signing_key
from transfer.protocol.archive import ACKED, CARRIED
from transfer.protocol.exchange import Inbound, Outbound


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


#: Owner and group read, write and enter; nobody else. The set-group-id bit keeps files
#: written inside in the directory's group, so an operator account in that group can carry
#: them out of the outbox and into the inbox.
TRANSFER_DIR_MODE = 0o2770


def transfer_dirs(settings: FerrySettings) -> list[Path]:
    """Every directory of the network's side of the gap, parents first."""
    outbox = settings.outbox
    return [
        settings.transfer_dir,
        settings.inbox,
        outbox,
        outbox / CARRIED,
        outbox / ACKED,
        settings.quarantine_dir,
        settings.processed_dir,
    ]


def make_transfer_dirs(settings: FerrySettings) -> list[Path]:
    """Create the directories that do not exist yet (mode `TRANSFER_DIR_MODE`, whatever
    the umask); returns those created. Existing ones keep the mode an administrator gave
    them. A path taken by something that is not a directory is an error (`ValueError`)."""
    created = []
    for directory in transfer_dirs(settings):
        if directory.is_dir():
            continue
        if os.path.lexists(directory):
            raise ValueError(
                f"{directory} is in the way of the transfer directory: not a directory"
            )
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:  # another process of the network made it meanwhile
            continue
        os.chmod(directory, TRANSFER_DIR_MODE)
        created.append(directory)
    return created
