"""`custody run`: the scheduler and its HTTP endpoints."""
