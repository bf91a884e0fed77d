"""A Python prompt steering the trail that server.py serves (start that first).

    python examples/separate_client_and_server/client.py

``example`` prints what each call did: example.start(), example.status(),
example.pause(foo='bar', dry_run=False), example.shutdown(dry_run=False), ...
"""

from __future__ import annotations

import os
import tempfile

from trail import InteractiveTrail, TrailClient, interactive

socket_file = os.environ.get("TRAIL_EXAMPLE_SOCKET") or os.path.join(
    tempfile.gettempdir(), "trail.example.server")
example = InteractiveTrail(TrailClient(socket_file))

interactive(globals(), prompt="Example Trail>")
