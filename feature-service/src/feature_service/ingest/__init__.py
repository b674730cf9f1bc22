"""The ingest boundary: venue parsing + idempotent sequencing in front of the feature engine."""

from feature_service.ingest.boundary import IngestBoundary, Ingested
from feature_service.ingest.sequencer import Sequencer
from feature_service.ingest.venue import BybitAdapter, VenueAdapter

__all__ = [
    "BybitAdapter",
    "IngestBoundary",
    "Ingested",
    "Sequencer",
    "VenueAdapter",
]
