"""What users touch: TrailServer, TrailClient, and (later) the helpers, CLI and diagrams."""

from trail.layer2.client import EventStream, TrailClient
from trail.layer2.server import TrailServer

__all__ = ["EventStream", "TrailClient", "TrailServer"]
