"""Engine, sessions and the embedded server."""
