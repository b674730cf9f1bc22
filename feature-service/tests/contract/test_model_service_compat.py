"""The Model Service's own FeatureVector parses every vector we send (issue 15): during
warm-up, after a book desync and in steady state; the include_nulls form is the one it would
reject. The message also matches specs/.../features-live.schema.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from pydantic import ValidationError

from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import vector_to_json
from feature_service.engine.vector import FeatureVector as OurVector
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.events import BookDelta, Kline, MarketEvent
from tests.fixtures.model_service import FeatureVector

SCHEMA_PATH = (
    Path(__file__).resolve().parents[3]
    / "specs/005-feature-service/contracts/features-live.schema.json"
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _run(events: list[MarketEvent]) -> list[OurVector]:
    engine = FeatureEngine(intervals_s=[1, 3, 15, 60])
    out: list[OurVector] = []
    for event in events:
        out.extend(engine.process(event))
    return out


def _check(vector: OurVector, validator: jsonschema.Draft202012Validator) -> dict[str, object]:
    message = orjson.loads(vector_to_json(vector))  # exactly what features.live carries
    validator.validate(message)
    parsed = FeatureVector.model_validate(message)
    assert parsed.symbol == vector.symbol
    assert set(parsed.features) | set(message["null_reasons"]) == set(FEATURE_NAMES)
    assert not set(parsed.features) & set(message["null_reasons"])
    return message


def test_warm_up_vectors_parse(
    sample_events: list[MarketEvent], validator: jsonschema.Draft202012Validator
) -> None:
    # Only the dense part: no candle history, so every candle feature is warming up.
    dense = [e for e in sample_events if not isinstance(e, Kline)][:3000]
    vectors = _run(dense)
    assert vectors
    with_nulls = 0
    for vector in vectors:
        message = _check(vector, validator)
        with_nulls += bool(message["null_reasons"])
    assert with_nulls == len(vectors)  # every warm-up vector has nulls, and still parses
    first = vectors[0]
    assert "rsi_14" in first.null_reasons
    # The form with nulls is what the Model Service rejects (why the default drops them).
    with pytest.raises(ValidationError):
        FeatureVector.model_validate(first.to_message(include_nulls=True))


def test_vectors_after_a_desync_parse(
    sample_events: list[MarketEvent], validator: jsonschema.Draft202012Validator
) -> None:
    deltas = [i for i, e in enumerate(sample_events) if isinstance(e, BookDelta)]
    cut = deltas[len(deltas) // 2]
    delta = sample_events[cut]
    assert isinstance(delta, BookDelta)
    gap = dataclasses.replace(delta, update_id=delta.update_id + 1_000_000)
    # After the gap the book waits for a snapshot: its features are null until then.
    events = [*sample_events[:cut], gap, *sample_events[cut + 1 : cut + 400]]
    vectors = [v for v in _run(events) if v.timestamp > gap.receive_ts]
    assert vectors
    desynced = [v for v in vectors if "mid_price" in v.null_reasons]
    assert desynced, "the gap must leave vectors without a book"
    for vector in vectors:
        message = _check(vector, validator)
        assert ("mid_price" in message["features"]) == (vector not in desynced)


def test_steady_state_vectors_parse(
    sample_events: list[MarketEvent], validator: jsonschema.Draft202012Validator
) -> None:
    vectors = _run(sample_events)
    for vector in vectors[-50:]:
        message = _check(vector, validator)
        assert message["features"]["mid_price"] > 0
