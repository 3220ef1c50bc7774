"""Board tops and build entry points."""
