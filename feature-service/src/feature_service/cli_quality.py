"""`feature-service quality report`: the data quality report without a server, from the raw
store (or the live summaries covering the period) or from a recording."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

app = typer.Typer(
    name="quality", help="Data quality reports.", add_completion=False, no_args_is_help=True
)
quality_app = app


def _time(value: str, name: str) -> int:
    from feature_service.api.errors import ApiError
    from feature_service.api.routes_quality import parse_time

    try:
        return parse_time(value, name)
    except ApiError as exc:
        raise typer.BadParameter(exc.message) from None


@app.command("report")
def report_cmd(
    symbol: Annotated[str | None, typer.Option(help="Symbol (required with the raw store)")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Period start, ISO-8601 UTC")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Period end, ISO-8601 UTC")] = None,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="A recording instead of the raw store")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the JSON here")
    ] = None,
) -> None:
    """Print the report as a table; exit code 0 whatever it finds."""
    from feature_service.config import load_settings
    from feature_service.quality.report import build_report, snap_period
    from feature_service.services.quality_live import quality_config
    from feature_service.services.quality_report import (
        InvalidPeriod,
        QualityReports,
        check_period,
        report_body,
        scan_events,
    )

    settings = load_settings()
    config = quality_config(settings)
    started = time.perf_counter()
    if input is not None:
        from feature_service.market.recording import iter_recording

        lo = _time(from_, "from") if from_ else None
        hi = _time(to, "to") if to else None
        wanted = symbol.upper() if symbol else None
        events = [
            e
            for e in iter_recording(input)
            if (wanted is None or e.symbol == wanted)
            and (lo is None or e.receive_ts >= lo)
            and (hi is None or e.receive_ts < hi)
        ]
        if not events:
            raise typer.BadParameter("no events in the recording for that symbol and period")
        minutes, incidents = scan_events(events, config)
        symbols = sorted({e.symbol for e in events})
        start, end = snap_period(
            lo if lo is not None else min(e.receive_ts for e in events),
            hi if hi is not None else max(e.receive_ts for e in events) + 1,
        )
        reports = [build_report(s, start, end, minutes, incidents, config) for s in symbols]
        bodies = [report_body(r, None, "recording") for r in reports]
    else:
        if not (symbol and from_ and to):
            raise typer.BadParameter("--symbol, --from and --to are needed without --input")
        start, end = _time(from_, "from"), _time(to, "to")
        try:
            check_period(start, end)
        except InvalidPeriod as exc:
            raise typer.BadParameter(str(exc)) from None
        from feature_service.adapters.qualitystore import QualityStore

        reports_ = QualityReports(
            settings.raw_dir, QualityStore(settings.quality_dir), None, config
        )
        report, source = reports_.compute(symbol.upper(), start, end)
        bodies = [report_body(report, None, source)]
    elapsed = time.perf_counter() - started
    for body in bodies:
        typer.echo(render_table(body))
    typer.echo(f"({elapsed:.2f} s)")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload: Any = bodies[0] if len(bodies) == 1 else bodies
        json_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))


def render_table(body: dict[str, Any]) -> str:
    lines = [
        f"{body['symbol']}  {body['period_start']} -> {body['period_end']}  ({body['source']})",
        f"  missing rate        {body['missing_rate']:.4f}",
        f"  anomaly rate        {body['anomaly_rate']:.4f}",
        f"  sequence gaps       {body['sequence_gaps']}",
        f"  desync events       {body['desynchronization_events']}",
    ]
    for stream, value in body["completeness"].items():
        lines.append(f"  completeness {stream:<9} {value:.4f}  ({body['messages'][stream]} msgs)")
    if body["incidents"]:
        lines.append(f"  {'kind':<20} {'stream':<10} {'start':<28} {'end':<28} magnitude")
        for inc in body["incidents"][:50]:
            lines.append(
                f"  {inc['kind']:<20} {inc['stream']:<10} {inc['start']:<28} "
                f"{inc['end'] or 'open':<28} {inc['magnitude']:.6g}"
            )
        if len(body["incidents"]) > 50:
            lines.append(f"  ... {len(body['incidents']) - 50} more (see --json)")
    lines += [f"  - {r}" for r in body["recommendations"]]
    return "\n".join(lines)
