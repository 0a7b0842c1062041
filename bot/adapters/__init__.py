"""Transports: thin adapters that turn their input into engine events and engine replies into output."""
