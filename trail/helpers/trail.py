"""AutoTrail's ``autotrail.helpers.trail`` name: watching a trail's status."""

from trail.layer2.monitor import monitor_trail

__all__ = ["monitor_trail"]
