"""The literature embedder's model: the packaged MiniLM with its matrix products in int8.

The packaged file stores its weights as int8 but turns them back into floats when the session
starts, so every matrix product runs in float32: about 190 texts a second on 2 cores, short of
the 200 chunks a second that `spanner ingest` promises. onnxruntime's own dynamic quantisation
(int8 weights per output channel, activations quantised on the fly) runs the same network in
integer arithmetic at about twice that speed, with vectors within 0.98 cosine of the packaged
model's (0.992 on average over the literature's chunks).

Only the literature index uses it: the chunks and cues it stores and the words it is asked
about are embedded by the same model, so its scores stay consistent. The risk screen and journal
search keep the packaged model their floors were calibrated on.

The file is derived, never downloaded: built once from the packaged model (a few seconds) into
the data directory's cache/, named by the source's hash so a changed source makes a new one, and
written under a temporary name then renamed, so processes starting together never read half a file.
The build is deterministic (the same bytes every time), which `spanner setup` relies on.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ..package_files import content_id

PREFIX = "minilm-dynamic-int8"


def quantized_path(source: Path, cache_dir: Path) -> Path:
    """Where the quantised form of `source` lives (whether or not it has been built yet)."""
    return Path(cache_dir) / f"{PREFIX}-{content_id(Path(source))}.onnx"


def quantized_model(source: Path, cache_dir: Path) -> Path:
    """The quantised form of `source`, built under `cache_dir` if it is not there yet."""
    target = quantized_path(source, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as work:
        folded = Path(work) / "folded.onnx"
        # Fold the packaged int8-to-float steps into plain float weights first: the quantiser only
        # rewrites a matrix product whose weights are constants.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        built = Path(work) / "quantized.onnx"
        # The quantiser logs advice about pre-processing on the root logger at WARNING; it does not apply here.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(folded), str(built), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        os.replace(built, target)
    return target
