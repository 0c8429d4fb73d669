"""Scheduled audit jobs (the command stays for manual runs and for dropping old partitions)."""

from aihelper.core.scheduling import scheduled_task
from audit.services.partitions import event_partitions_ensure


@scheduled_task("ensure_event_partitions")
def ensure_event_partitions(timestamp: int) -> None:
    event_partitions_ensure(months_ahead=3)
