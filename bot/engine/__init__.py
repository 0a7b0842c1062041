"""The pure conversation engine. It imports no transport, database or model library (see tests)."""
