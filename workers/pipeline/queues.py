"""What the broker knows of the queues: messages waiting in each, and the workers consuming
each (for the pipeline page, ``health`` and the metrics)."""

from __future__ import annotations

from workers.pipeline.counters import redis_url_of
from workers.pipeline.submit import broker_error
from workers.settings import Settings

# The queues are the stage table's (``stages.QUEUES``): imported when asked, so that a command that
# only reads them (``health``, the metrics) does not load the stages' libraries at start.

# Kombu keeps a priority's messages in a list of their own (``score\x06\x169``: the timeline follow-ups).
PRIORITY_SUFFIXES = ("", *(f"\x06\x16{p}" for p in (3, 6, 9)))


def queue_lengths(settings: Settings) -> tuple[dict[str, int | None], str | None]:
    """Messages waiting per queue, asked of the Redis broker; (Nones, why) when it cannot be."""
    from workers.pipeline.stages import QUEUES

    url = redis_url_of(settings.broker_url)
    if url is None:
        return {q: None for q in QUEUES}, "no Redis broker configured (TT_BROKER_URL)"
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        with client.pipeline(transaction=False) as pipe:
            for q in QUEUES:
                for suffix in PRIORITY_SUFFIXES:
                    pipe.llen(q + suffix)
            lengths = [int(n) for n in pipe.execute()]
        per = len(PRIORITY_SUFFIXES)
        return {q: sum(lengths[i * per : (i + 1) * per]) for i, q in enumerate(QUEUES)}, None
    except redis.RedisError as exc:
        return {q: None for q in QUEUES}, broker_error(url, exc)


def queue_consumers(settings: Settings, timeout: float = 1.0) -> tuple[dict[str, int] | None, str | None]:
    """Worker processes consuming each queue (Celery's ``inspect active_queues``, answered by every
    worker within ``timeout`` s: a busy or paused worker that does not answer is not counted);
    (None, why) when the broker cannot be asked."""
    if not settings.broker_url:
        return None, "no broker configured (TT_BROKER_URL)"
    from workers.pipeline.celery_app import app
    from workers.pipeline.stages import QUEUES

    try:
        with app.connection_for_write(settings.broker_url) as conn:
            answers = app.control.inspect(timeout=timeout, connection=conn).active_queues() or {}
    except Exception as exc:  # noqa: BLE001 - kombu wraps every transport error differently
        return None, broker_error(settings.broker_url, exc)
    counts = {q: 0 for q in QUEUES}
    for queues in answers.values():
        for name in {q.get("name") for q in queues or ()}:
            if name in counts:
                counts[name] += 1
    return counts, None
