"""Kept for model files written against the first layout.

``from logging_backend.stage import StageLog`` keeps working.

The stage logger lives in :mod:`logging_backend.capture.stage`.
"""

from logging_backend.capture.stage import NullStageLog, StageLog, StageLogger

__all__ = ["NullStageLog", "StageLog", "StageLogger"]
