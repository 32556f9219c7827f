"""Multi-object tracking: ByteTrack-class tracker over Detections."""

from vision.tracker.bytetrack import ByteTracker, TrackState

__all__ = ["ByteTracker", "TrackState"]
