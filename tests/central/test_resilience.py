"""Ingest keeps going: a row the database refuses is isolated into the dead letters, and a
database outage is waited out (the batch is retried until PostgreSQL is back)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from central.config import IngestConfig
from central.ingest import BatchWriter, RawMessage
from central.storage import open_storage
from edge_agent import wire
from tests.central.conftest import PgCluster
from tests.central.factory import stock, summary

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def raw(msg: wire.Summary | wire.StockEventMsg) -> RawMessage:
    return RawMessage(wire.topic_for(msg.store_id, msg.device_id, msg.kind), wire.encode(msg),
                      time.time())  # fmt: skip


REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON stock_events WHEN NEW.zone = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'zone refused by policy'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.zone = 'poison' THEN "
        "RAISE EXCEPTION 'zone refused by policy'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON stock_events FOR EACH ROW "
        "EXECUTE FUNCTION refuse()",
    ],
}


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    storage_url: str,
) -> None:
    st = open_storage(storage_url)
    for sql in REFUSE[st.dialect]:  # type: ignore[attr-defined]
        st._execute(sql)  # type: ignore[attr-defined]
    writer = BatchWriter(st, IngestConfig(), lambda: open_storage(storage_url))
    good = [summary(i, T0 + timedelta(minutes=i), lines={"c/l": (1, 0)}) for i in range(1, 6)]
    poison = stock(6, T0, "stock_out", zone="poison", gtin="09506000134352", count=0)
    result = writer.write([raw(m) for m in good[:3]] + [raw(poison)] + [raw(m) for m in good[3:]])
    assert result.stored == {"summary": 5}
    assert result.dead_letters == 1
    (dead,) = st.dead_letters()
    assert "storage refused" in dead.reason and "zone refused by policy" in dead.reason
    assert dead.topic == "footfall/v1/s1/d1/stock"
    assert writer.stats.storage_errors >= 1
    st.close()


@pytest.mark.postgres
def test_database_outage_is_retried_until_it_returns(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database()
    writer = BatchWriter(open_storage(url), IngestConfig(), lambda: open_storage(url))
    batch = [raw(summary(i, T0 + timedelta(minutes=i), lines={"c/l": (2, 1)})) for i in (1, 2)]
    pg_cluster.halt()
    results: list[object] = []
    t = threading.Thread(target=lambda: results.append(writer.write(batch)))
    try:
        t.start()
        time.sleep(2.0)
        assert t.is_alive() and not results  # waiting for the database, not failing
    finally:
        pg_cluster.start()
    t.join(60)
    assert not t.is_alive()
    assert writer.stats.stored == 2 and writer.stats.storage_errors >= 1
    with open_storage(url) as st:
        assert st.message_count("summary") == 2
    writer.storage.close()
