"""Spanner: a self-hosted reflective coaching companion for boundary spanners.

Importing this package is the first thing every entry point does (the `spanner`
command, the benchmark, the tests), so the switches that must be set before a
native library loads live here. onnxruntime (our embedder, and chroma's) sends
telemetry from native code, out of reach of Python's own hooks: its DNS
lookups and a device-id file under ~/.cache/Microsoft. Only this variable,
set before onnxruntime is first imported, turns that off (promise 23).
faster-whisper imports huggingface_hub, which would fetch a model named by id:
offline mode makes any such attempt fail at once instead of reaching a hub.
"""

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # forced, not a default: nothing may leave the building
os.environ["HF_HUB_OFFLINE"] = "1"  # voice models are local folders only (bot/voice/model_files.py)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
