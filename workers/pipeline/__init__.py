"""The distributed pipeline: download -> frames -> score -> verdict -> alert.

- ``stages``: the stages as plain functions (no Celery), shared with ``workers.scan``
- ``media``: the media store (videos, frame batches, scores, evidence) by key
- ``evidence``: thumbnails of positive frames
- ``celery_app``: the Celery app, its configuration and queue routing
- ``tasks``: one thin Celery task per stage, chained per video
- ``submit``: recording jobs and publishing their chains (``enqueue``)

Importing this package imports neither Celery nor a model runtime.
"""
