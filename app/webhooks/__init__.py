"""Webhooks: signed event notifications with retries, a delivery log and an SSRF-guarded client.

Importing the package registers the event listener that turns recorded events into deliveries."""
from ..events.service import on_events


def _fan_out(rows):
    from .dispatch import fan_out
    fan_out(rows)


on_events(_fan_out)
