"""AutoTrail's ``autotrail.helpers.context`` name: a context shared by every step."""

from trail.layer2.steps import threadsafe_class

__all__ = ["threadsafe_class"]
