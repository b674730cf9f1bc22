"""Data quality: a pure monitor of the event stream (no I/O, no clock) and the report built
from its per-minute summaries.

Layering: imports only ``market/`` and ``book/``; ``engine/`` feeds it, ``services/`` stores
and reports what it found. The live engine and a replay of stored raw data feed it the same
events in the same order, so both see the same incidents.
"""
