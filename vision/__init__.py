"""footfall vision: a pure library from frames to people-counting events (no threads, no I/O
beyond reading frames, time passed in)."""
