"""The Keras runtime, imported once and quietly.

TensorFlow's native libraries print start-up chatter straight to file
descriptor 2 (CUDA probing, oneDNN notices) before any Python logging
setting applies. Users should see our one-line messages, not that, so the
first import and device initialisation run with fd 2 pointed at /dev/null,
unless ``TF_CPP_MIN_LOG_LEVEL`` is set below 2 (for debugging).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_keras = None


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    if int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") or 0) < 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras():
    """The ``keras`` module, its backend initialised (first call is quiet)."""
    global _keras
    if _keras is None:
        with _lock:
            if _keras is None:
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                with native_stderr_silenced():
                    import keras as module

                    module.ops.convert_to_numpy(module.ops.zeros((1,)))  # device probing happens here
                    if module.backend.backend() == "tensorflow":
                        import tensorflow as tf  # noqa: F401  (only to quiet its Python logger)

                        tf.get_logger().setLevel("ERROR")
                _keras = module
    return _keras
