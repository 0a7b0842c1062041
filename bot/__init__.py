"""Spanner: a self-hosted reflective coaching companion for boundary spanners.

Importing this package is the first thing every entry point does (the `spanner`
command, the benchmark, the tests), so the switches that must be set before a
native library loads live here. onnxruntime (our embedder, and chroma's) sends
telemetry from native code, out of reach of Python's own hooks: its DNS
lookups and a device-id file under ~/.cache/Microsoft. Only this variable,
set before onnxruntime is first imported, turns that off (promise 23).
"""

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # forced, not a default: nothing may leave the building
