"""docs/wire-format.md cannot drift from the code: every example decodes against its topic."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge_agent import wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


def test_every_documented_example_decodes_against_its_topic() -> None:
    text = DOC.read_text()
    examples = re.findall(r"Topic `([^`]+)`, (\d+) bytes as sent.*?```json\n(.*?)```", text, re.S)
    assert len(examples) >= 5
    kinds = set()
    for topic, size, body in examples:
        compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
        msg = wire.decode(compact, topic)
        kinds.add(msg.kind)
        # The size quoted is the size of the real encoding of that message.
        assert len(wire.encode(msg)) == int(size)
    assert kinds == set(wire.KINDS)
