"""The local web dashboard of footfall central: `serve(storage)` / `make_server(...)`."""

from central.dashboard.server import DashboardServer, make_server, serve

__all__ = ["DashboardServer", "make_server", "serve"]
