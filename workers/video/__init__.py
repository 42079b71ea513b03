"""Video files: probing and frame sampling (no Celery, no database)."""

from workers.video.sampling import (
    Frame,
    SampledVideo,
    VideoInfo,
    content_hash,
    frame_step,
    probe_video,
    read_frames_at,
    read_sampled,
    sample_frames,
)

__all__ = [
    "Frame",
    "SampledVideo",
    "VideoInfo",
    "content_hash",
    "frame_step",
    "probe_video",
    "read_frames_at",
    "read_sampled",
    "sample_frames",
]
