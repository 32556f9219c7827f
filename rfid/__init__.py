"""footfall RFID: a pure library from reader bytes to stock events (time passed in)."""
