"""Video files: probing and frame sampling (no Celery, no database)."""

from workers.video.sampling import Frame, VideoInfo, frame_step, probe_video, sample_frames

__all__ = ["Frame", "VideoInfo", "frame_step", "probe_video", "sample_frames"]
