"""Spanner: a self-hosted reflective coaching companion for boundary spanners."""
