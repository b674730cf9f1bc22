"""The bundled sample recording (``btcusdt-sample.jsonl.gz``) and its seeded generator.

Import from ``feature_service.sample.generator``; this package does not import it eagerly so that
``python -m feature_service.sample.generator`` runs without a double-import warning.
"""
