"""Retail analytics over central storage: the library the CLI report and the dashboard share."""

from central.analytics.dwell import dwell, histogram_quantile, transitions, weighted_quantile
from central.analytics.footfall import (
    Footfall,
    ReportRange,
    conversion,
    footfall,
    local_iso,
    occupancy,
    report_range,
)
from central.analytics.stock import StockOut, current_counts, stock, stock_outs

__all__ = [
    "Footfall",
    "ReportRange",
    "StockOut",
    "conversion",
    "current_counts",
    "dwell",
    "footfall",
    "histogram_quantile",
    "local_iso",
    "occupancy",
    "report_range",
    "stock",
    "stock_outs",
    "transitions",
    "weighted_quantile",
]
