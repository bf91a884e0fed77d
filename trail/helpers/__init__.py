"""AutoTrail's ``autotrail.helpers`` import paths, for runbooks and tools that use them."""
