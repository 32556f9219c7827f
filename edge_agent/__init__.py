"""footfall edge agent: the application that wires vision and RFID to durable MQTT sync."""

__version__ = "0.1.0"

__all__ = ["__version__"]
