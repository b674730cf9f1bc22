"""Stable OpenAPI export (sorted keys, fixed settings) so the committed file can be diffed."""

from __future__ import annotations

import json

from feature_service.config import Settings


def export_openapi() -> str:
    from feature_service.app import create_app

    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
