"""The reference peer: the tutorial's per-video flow, as its README describes it.

One process per video: load VGG16 and the head, decode *every* frame with
OpenCV, write one JPEG per second to a folder, read them back with
matplotlib, resize each with scikit-image, predict, apply the 1/3 rule.
Run by ``bench/run.py`` as ``python bench/reference_tutorial.py VIDEO HEAD``;
prints one JSON line with the verdict and the positive frame count.

This file reproduces the peer's *work*, not its code; it is only used to
measure the tutorial's cost on the same machine in the same run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(video: str, head_path: str) -> None:
    import cv2
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from keras.applications.imagenet_utils import preprocess_input
    from skimage.transform import resize

    from workers.settings import get_settings

    cfg = get_settings()
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    if cfg.vgg16_weights not in ("random", "imagenet"):
        base.load_weights(cfg.vgg16_weights)
    head = keras.saving.load_model(head_path, compile=False)

    with tempfile.TemporaryDirectory() as folder:
        cap = cv2.VideoCapture(video)
        rate = cap.get(cv2.CAP_PROP_FPS)
        names = []
        count = 0
        while cap.isOpened():
            frame_id = cap.get(cv2.CAP_PROP_POS_FRAMES)
            ok, frame = cap.read()  # decodes and converts every frame
            if not ok:
                break
            if frame_id % math.floor(rate) == 0:
                name = os.path.join(folder, f"test{count}.jpg")
                count += 1
                cv2.imwrite(name, frame)
                names.append(name)
        cap.release()
        images = np.array([plt.imread(n) for n in names])
    batch = np.array([resize(img, preserve_range=True, output_shape=(224, 224)).astype(int) for img in images])
    batch = preprocess_input(batch.astype("float32"), mode=cfg.vgg16_preprocessing or "caffe")
    features = base.predict(batch, verbose=0)
    probs = np.asarray(head.predict(features, verbose=0))[:, -1]
    positives = int(np.sum(probs >= 0.5))
    verdict = "positive" if positives >= len(probs) / 3 else "negative"
    print(json.dumps({"video": video, "frames": int(len(probs)), "positive_frames": positives, "verdict": verdict}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
