"""The aggregator: interval alignment in the store's zone, counts, zero intervals, recovery."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent import wire
from edge_agent.aggregate import Aggregator, next_boundary
from edge_agent.outbox import Outbox
from rfid.events import ItemMoved, StockLow, StockOut
from tests.edge_agent.helpers import agent_config
from vision.events import CrossingEvent, ZoneOccupancy, ZoneTransition, ZoneVisit


def walk(ts: float, until: float, interval_s: int, tz: str) -> list[tuple[float, float]]:
    zone = ZoneInfo(tz)
    out = []
    while ts < until:
        end = next_boundary(ts, interval_s, zone)
        out.append((ts, end))
        ts = end
    return out


@pytest.mark.parametrize(
    ("tz", "start_utc", "interval_s", "expected_local_minutes"),
    [
        # Europe/Paris spring forward (02:00 -> 03:00 local at 01:00 UTC) and fall back.
        ("Europe/Paris", datetime(2026, 3, 29, 0, 7, tzinfo=UTC), 900, {0, 15, 30, 45}),
        ("Europe/Paris", datetime(2026, 10, 25, 0, 7, tzinfo=UTC), 3600, {0}),
        # A +05:45 zone: hourly boundaries fall at :15 UTC, not :00.
        ("Asia/Kathmandu", datetime(2026, 6, 1, 3, 1, tzinfo=UTC), 3600, {0}),
        # New York, 1-minute intervals across the March change.
        ("America/New_York", datetime(2026, 3, 8, 6, 55, tzinfo=UTC), 60, set(range(60))),
    ],
)
def test_intervals_are_contiguous_and_aligned_in_local_time(
    tz: str, start_utc: datetime, interval_s: int, expected_local_minutes: set[int]
) -> None:
    t0 = start_utc.timestamp()
    spans = walk(t0, t0 + 4 * 3600, interval_s, tz)
    zone = ZoneInfo(tz)
    offsets = set()
    for (a, b), (c, _) in itertools.pairwise(spans):
        assert b == c, "contiguous"
        assert 0 < b - a <= interval_s
        local = datetime.fromtimestamp(b, zone)
        assert local.second == 0 and local.minute in expected_local_minutes
        assert local.minute % (interval_s // 60 or 1) == 0
        offsets.add(local.utcoffset())
        offsets.add(datetime.fromtimestamp(a, zone).utcoffset())
    if tz != "Asia/Kathmandu":
        assert len(offsets) == 2, "the walk crossed a DST change"
    if tz == "Asia/Kathmandu":
        assert all(datetime.fromtimestamp(b, UTC).minute == 15 for _, b in spans[:-1])


def test_interval_is_cut_at_an_offset_change_inside_it() -> None:
    # Lord Howe shifts by 30 minutes: the hour containing the change is cut there.
    zone = ZoneInfo("Australia/Lord_Howe")
    t0 = datetime(2026, 10, 3, 14, 0, tzinfo=UTC).timestamp()
    spans = walk(t0, t0 + 3 * 3600, 3600, "Australia/Lord_Howe")
    cuts = [b for _, b in spans if datetime.fromtimestamp(b, zone).minute != 0]
    assert len(cuts) == 1
    before = datetime.fromtimestamp(cuts[0] - 1, zone).utcoffset()
    after = datetime.fromtimestamp(cuts[0], zone).utcoffset()
    assert before != after
    assert all(0 < b - a <= 3600 for a, b in spans)


def test_counts_zero_intervals_and_local_alignment(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, tz="Europe/Paris", interval_s=60)
    t0 = datetime(2026, 3, 29, 0, 59, 30, tzinfo=UTC).timestamp()  # 01:59:30 CET
    agg = Aggregator(cfg, t0)
    out: list[wire.Summary | wire.StockEventMsg] = []
    out += agg.add(CrossingEvent("door", "entrance", "in", 1, t0 + 1, 0))
    out += agg.add(CrossingEvent("door", "entrance", "in", 2, t0 + 2, 1))
    out += agg.add(CrossingEvent("door", "entrance", "out", 3, t0 + 3, 2))
    for i, n in enumerate([0, 1, 2, 2, 1]):
        out += agg.add(ZoneOccupancy("door", t0 + 4 + i, {"front": n, "back": 0}))
    for dwell in (2.0, 4.0, 6.0, 40.0):
        out += agg.add(ZoneVisit("door", "front", 7, t0 + 10 - dwell, t0 + 10))
    out += agg.add(ZoneTransition("door", "front", "back", t0 + 11))
    out += agg.tick(t0 + 30 + 180)  # three more minutes: zero intervals are still summaries
    summaries = [m for m in out if isinstance(m, wire.Summary)]
    assert len(summaries) == 4
    first = summaries[0]
    assert first.interval_start.timestamp() == t0  # the run's real start
    assert first.interval_end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    line = first.lines[0]
    assert (line.camera_id, line.line_id, line.in_count, line.out_count) == (
        "door",
        "entrance",
        2,
        1,
    )
    zones = {z.zone_id: z for z in first.zones}
    front = zones["front"]
    assert front.visits == 2  # 0 -> 1 -> 2: two entries
    assert front.occupancy_max == 2 and front.occupancy_mean == pytest.approx(6 / 5)
    assert front.dwell_count == 4
    assert front.dwell_mean_s == pytest.approx(13.0)
    assert front.dwell_median_s == pytest.approx(5.0)
    assert front.dwell_hist is not None and sum(front.dwell_hist.counts) == 4
    assert zones["back"].visits == 0 and zones["back"].dwell_count == 0
    assert [(t.from_zone, t.to_zone, t.count) for t in first.transitions] == [("front", "back", 1)]
    # Zero intervals: every configured line and zone, with zeros, over full aligned minutes.
    for s in summaries[1:]:
        assert (s.interval_end - s.interval_start) == timedelta(minutes=1)
        assert s.lines[0].in_count == 0 and s.lines[0].out_count == 0
        assert {z.zone_id for z in s.zones} == {"front", "back"}
        assert all(z.visits == 0 and z.dwell_count == 0 for z in s.zones)
        assert s.timezone == "Europe/Paris"
    # Contiguous coverage.
    for a, b in itertools.pairwise(summaries):
        assert a.interval_end == b.interval_start


def test_stock_events_are_forwarded_immediately(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path)
    agg = Aggregator(cfg, 1000.0)
    msgs = agg.add(StockLow("80614141123458", "shelf-a", 1, 2, 1001.5))
    msgs += agg.add(StockOut("80614141123458", "shelf-a", 1002.0))
    msgs += agg.add(ItemMoved("ABCD1234", None, "shelf-a", "shelf-b", "r1", 1003.0))
    assert [m.kind for m in msgs] == ["stock"] * 3
    low, out, moved = msgs
    assert isinstance(low, wire.StockEventMsg) and low.threshold == 2 and low.count == 1
    assert isinstance(out, wire.StockEventMsg) and out.count == 0
    assert isinstance(moved, wire.StockEventMsg) and moved.from_zone == "shelf-a"
    assert moved.ts.timestamp() == 1003.0
    # Round trip through the wire format.
    for m in msgs:
        assert wire.decode(wire.encode(m)) == m


def test_flush_uses_the_real_end_and_recovery_sends_committed_counts_once(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, interval_s=60)
    t0 = 1_800_000_000.0  # aligned to the minute
    ob = Outbox(tmp_path / "o.db")
    agg = Aggregator(cfg, t0)
    agg.add(CrossingEvent("door", "entrance", "in", 1, t0 + 5, 0))
    ob.set_state("open", agg.checkpoint())
    agg.add(CrossingEvent("door", "entrance", "in", 2, t0 + 7, 0))  # never checkpointed
    # Crash. A new run recovers the checkpoint as a summary ending at the last covered time.
    agg2 = Aggregator(cfg, t0 + 20)
    rec = agg2.recover(ob.get_state("open"))
    assert len(rec) == 1
    assert rec[0].interval_end.timestamp() == t0 + 5 and rec[0].lines[0].in_count == 1
    ob.append(rec, {"open": agg2.checkpoint()})
    # A second crash right now must not resend it: the checkpoint was replaced atomically.
    agg3 = Aggregator(cfg, t0 + 21)
    assert agg3.recover(ob.get_state("open")) == []
    # Graceful stop: the partial interval is flushed with its real end.
    agg3.add(CrossingEvent("door", "entrance", "out", 3, t0 + 30, 0))
    flushed = agg3.flush(t0 + 42)
    assert len(flushed) == 1
    assert flushed[0].interval_start.timestamp() == t0 + 21
    assert flushed[0].interval_end.timestamp() == t0 + 42
    assert flushed[0].lines[0].out_count == 1
    ob.close()


def test_a_clock_jump_does_not_flood_zero_intervals(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, interval_s=60)
    agg = Aggregator(cfg, 1020.0)  # 1020 is a whole minute: one interval until 1080
    agg.add(CrossingEvent("door", "entrance", "in", 1, 1025.0, 0))
    agg.tick(1030.0)
    out = agg.tick(1030.0 + 86400 * 30)
    # One summary for what was observed (ending at the last observed time), no zero flood.
    assert len(out) == 1
    assert out[0].interval_end.timestamp() == 1030.0 and out[0].lines[0].in_count == 1
    assert agg.open_start == 1030.0 + 86400 * 30
