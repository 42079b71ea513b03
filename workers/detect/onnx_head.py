"""A classifier head's forward pass as ONNX, so scoring needs no TensorFlow.

The head is trained and kept in Keras (``head.keras``: the bundle's model, its
version and weights). When the bundle is written, the same forward pass is also
saved as ``head.onnx`` (tf2onnx). A scan or score worker whose VGG16 runs on
OpenVINO or ONNX Runtime then imports no TensorFlow at all: that import was
3-4 s of a scan's start-up on 2 cores and about 500 MB. The scores equal the
Keras head's to float32 rounding (``tests/test_onnx_head.py``). Bundles
without the file (older ones, or written where tf2onnx could not run) are
scored by Keras as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workers.detect.onnx_backbone import OPSET, installed, keras_backend, ort_session

log = logging.getLogger(__name__)

HEAD_ONNX = "head.onnx"
INPUT_NAME = "features"


def can_export() -> bool:
    return keras_backend() == "tensorflow" and all(installed(p) for p in ("tensorflow", "tf2onnx", "onnx"))


def can_run() -> bool:
    return installed("onnxruntime")


def export(model, out: Path) -> bool:
    """Write the Keras head ``model`` as ONNX at ``out``; False (and a warning) where it
    cannot be exported: the bundle is complete without it, only slower to start."""
    if not can_export():
        log.info("head not exported to ONNX (needs TensorFlow's Keras backend and tf2onnx): Keras will score it")
        return False
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME),)
    try:
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(out))
    except Exception as exc:  # an unusual layer tf2onnx cannot convert: Keras scores it instead
        log.warning("head not exported to ONNX (%s: %s): Keras will score it", type(exc).__name__, exc)
        out.unlink(missing_ok=True)
        return False
    return True


def session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from VGG16 feature maps to the head's class probabilities (one thread:
    the head is a few hundred thousand multiply-adds a frame, VGG16 has the cores)."""
    try:
        return ort_session(path, threads=1)
    except Exception as exc:  # ONNX Runtime's own exception types: a damaged or foreign file
        raise ValueError(f"{path.name} is not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
