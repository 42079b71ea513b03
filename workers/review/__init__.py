"""Reviews of detections and what they change: corrections of targets, rescans, retraining (used by web and CLI)."""
