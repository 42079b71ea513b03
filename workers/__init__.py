"""tiktok-tracker: find a face or a symbol in short videos.

Pure logic lives in ``video`` (frame sampling), ``detect`` (backbones, targets,
scoring), ``training`` (datasets and heads) and ``verdict``; ``storage`` holds
the SQL models; ``scan`` runs everything in-process; ``pipeline`` wraps the
same functions in Celery tasks; ``cli`` is the ``tiktok-tracker`` command.
"""

__version__ = "0.1.0"

import os as _os

# FFmpeg (inside OpenCV) prints its own complaints about corrupt files on
# stderr; we report those files ourselves, in one line. Quiet unless asked.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
