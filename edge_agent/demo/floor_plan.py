"""The simulated store: one overhead-ish camera over a small shop floor, and what is on its shelves.

Everything is in the pixel coordinates of that camera (640x480, x right, y down), so the same
geometry drives the shoppers, the rendered frames and the real counting configuration.
The door is at the bottom: a sidewalk runs past the storefront, and the door line is drawn so
that walking into the store (upwards in the image) is `in` by the project's convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from rfid.epc import gtin_check_digit
from vision.config import CameraConfig, LineConfig, ZoneConfig

FRAME_W_PX = 640
FRAME_H_PX = 480
PX_PER_M = 40.0  # a 16 m wide shop floor fills the frame width

CAMERA_ID = "floor-cam"
DOOR_LINE_ID = "door"
STOREFRONT_Y_PX = 418.0  # the door line lies on the storefront
DOOR_X_PX = (270.0, 370.0)
SIDEWALK_Y_PX = (446.0, 472.0)
INSIDE_DOOR_PX = (320.0, 378.0)
OUTSIDE_DOOR_PX = (320.0, 458.0)

# Zones the camera measures dwell in. The two shelves also carry RFID-tagged products.
ZONES_PX: dict[str, list[tuple[float, float]]] = {
    "shelf_a": [(30, 130), (200, 130), (200, 330), (30, 330)],
    "shelf_b": [(440, 130), (610, 130), (610, 330), (440, 330)],
    "checkout": [(240, 40), (400, 40), (400, 150), (240, 150)],
}
# Where a shopper stands while browsing a zone (a rectangle well inside it, so sway stays in).
BROWSE_AREA_PX: dict[str, tuple[float, float, float, float]] = {
    "shelf_a": (70, 170, 170, 300),
    "shelf_b": (470, 170, 570, 300),
    "checkout": (280, 80, 360, 130),
}
# Physical shelf units drawn along the walls (x1, y1, x2, y2).
SHELF_UNITS_PX: dict[str, tuple[int, int, int, int]] = {
    "shelf_a": (30, 120, 52, 340),
    "shelf_b": (588, 120, 610, 340),
}
CHECKOUT_COUNTER_PX = (270, 30, 370, 50)

# Person box height shrinks with distance from the camera (smaller y = further away).
PERSON_H_NEAR_PX = 96.0
PERSON_H_FAR_PX = 52.0
PERSON_ASPECT = 0.42  # width / height


@dataclass(frozen=True, slots=True)
class Product:
    """An RFID-tagged product and its shelf; `initial` items are tagged SGTIN-96 at the start."""

    gtin: str
    name: str
    zone: str
    initial: int
    low_threshold: int
    price: float
    demand_ratio: float  # expected wants over the simulated day / initial stock (>1 sells out)


def _gtin(company_prefix: str, item_ref: str) -> str:
    """GTIN-14 as the SGTIN encodes it: indicator digit + prefix + item ref + check digit."""
    body = item_ref[0] + company_prefix + item_ref[1:]
    return body + str(gtin_check_digit(body))


COMPANY_PREFIX = "0614141"  # the GS1 documentation prefix: obviously not a real brand
PRODUCTS: tuple[Product, ...] = (
    Product(_gtin(COMPANY_PREFIX, "100001"), "Espresso beans 1kg", "shelf_a", 4, 1, 18.9, 1.8),
    Product(_gtin(COMPANY_PREFIX, "100002"), "Olive oil 750ml", "shelf_a", 9, 2, 11.5, 0.5),
    Product(_gtin(COMPANY_PREFIX, "100003"), "Dark chocolate 200g", "shelf_b", 5, 1, 4.2, 1.6),
    Product(_gtin(COMPANY_PREFIX, "100004"), "Green tea 100 bags", "shelf_b", 8, 2, 6.8, 0.4),
)
RFID_ZONES: tuple[str, ...] = ("shelf_a", "shelf_b")


def camera_config(fps: float) -> CameraConfig:
    """The real counting configuration for the simulated camera (the source is never opened)."""
    (xa, xb), y = DOOR_X_PX, STOREFRONT_Y_PX
    return CameraConfig(
        id=CAMERA_ID,
        source="simulated",
        fps=fps,
        realtime=False,
        resolution=[FRAME_W_PX, FRAME_H_PX],
        # Right to left along the storefront: moving up (into the shop) is `in`.
        lines=[LineConfig(id=DOOR_LINE_ID, points=[[xb, y], [xa, y]])],
        zones=[
            ZoneConfig(id=zone_id, polygon=[[float(x), float(y)] for x, y in poly])
            for zone_id, poly in ZONES_PX.items()
        ],
    )


__all__ = [
    "BROWSE_AREA_PX",
    "CAMERA_ID",
    "DOOR_LINE_ID",
    "FRAME_H_PX",
    "FRAME_W_PX",
    "PRODUCTS",
    "PX_PER_M",
    "RFID_ZONES",
    "ZONES_PX",
    "Product",
    "camera_config",
]
