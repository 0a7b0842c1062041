"""Scheduled check-ins and reminders: schedule rows, a tick, and a delivery ledger (exactly once)."""
