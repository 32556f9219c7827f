"""Device health: the Status message (published retained, periodically) and its log line.

Per source: state, frames/s or reads/s, inference time, last-data age and error counters;
the outbox: depth, oldest undelivered age, dropped counts (cap and age, per kind); the broker
connection. The same document feeds `systemctl status` (STATUS=) and the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from edge_agent import __version__, wire
from edge_agent.config import AgentConfig
from edge_agent.outbox import Outbox
from edge_agent.workers import Worker


class HealthReporter:
    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        workers: Sequence[Worker],
        broker: Callable[[], dict[str, Any]],
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.workers = workers
        self.broker = broker
        self.extra = extra or dict
        self.start_mono = time.monotonic()

    def sources(self) -> list[wire.SourceHealth]:
        out = []
        now = time.monotonic()
        for w in self.workers:
            if w.kind == "aggregator":
                continue
            doc = w.health()
            age = doc.get("last_data_age_s")
            if age is None and w.last_data_mono is not None:
                age = now - w.last_data_mono
            out.append(
                wire.SourceHealth(
                    id=w.source_id,
                    kind="camera" if w.kind == "camera" else "reader",
                    state=str(doc["state"]),
                    rate_hz=float(doc.get("rate_hz") or 0.0),
                    last_data_age_s=None if age is None else round(max(0.0, age), 3),
                    errors={k: int(v) for k, v in doc["errors"].items()},
                    inference_ms=doc.get("inference_ms"),
                )
            )
        return out

    def status(self, state: Literal["online", "offline"]) -> wire.Status:
        st = self.outbox.stats()
        extra = {"broker": self.broker(), "outbox_dropped_by": st.dropped, **self.extra()}
        return wire.Status(
            store_id=self.cfg.store.id,
            device_id=self.cfg.device.id,
            # Status is not stored in the outbox: its seq echoes the last committed seq, so
            # central can tell how far delivery lags (see docs/wire-format.md).
            seq=max(1, st.last_seq),
            state=state,
            version=__version__,
            uptime_s=round(time.monotonic() - self.start_mono, 1),
            sources=self.sources() if state == "online" else [],
            outbox_depth=st.depth,
            outbox_oldest_age_s=None if st.oldest_age_s is None else round(st.oldest_age_s, 1),
            outbox_dropped=st.dropped_total,
            extra=extra,
        )

    @staticmethod
    def one_line(status: wire.Status) -> str:
        parts = []
        for s in status.sources:
            rate = f" {s.rate_hz:g}/s" if s.rate_hz else ""
            inf = f" {s.inference_ms:g}ms" if s.inference_ms is not None else ""
            err = f" err={sum(s.errors.values())}" if s.errors else ""
            parts.append(f"{s.kind} {s.id}: {s.state}{rate}{inf}{err}")
        broker = status.extra.get("broker", {})
        age = status.outbox_oldest_age_s
        parts.append(
            f"outbox {status.outbox_depth} pending"
            + (f", oldest {age:.0f}s" if age is not None else "")
            + (f", {status.outbox_dropped} dropped" if status.outbox_dropped else "")
        )
        parts.append(f"broker {broker.get('state', '?')}")
        return "; ".join(parts)


__all__ = ["HealthReporter"]
