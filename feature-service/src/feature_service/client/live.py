"""features.live for a client: its own queue bound to the exchange, vectors as they come."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from feature_service.client.models import FeatureVector

# A client that stops reading must not grow the broker without bound; it only wants the latest.
OWN_QUEUE_ARGUMENTS = {"x-max-length": 10_000, "x-overflow": "drop-head"}


async def iter_vectors(
    amqp_url: str,
    exchange: str,
    symbols: Iterable[str] | None = None,
    intervals: Iterable[str] | None = None,
) -> AsyncIterator[FeatureVector]:
    import aio_pika  # only this feature of the client needs it

    wanted_symbols = {s.upper() for s in symbols} if symbols else None
    wanted_intervals = set(intervals) if intervals else None
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.declare_queue(
            "", exclusive=True, auto_delete=True, arguments=OWN_QUEUE_ARGUMENTS
        )
        await queue.bind(exchange)
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                headers = message.headers or {}
                if wanted_symbols is not None and headers.get("symbol") not in wanted_symbols:
                    continue
                if wanted_intervals is not None and headers.get("interval") not in wanted_intervals:
                    continue
                yield FeatureVector.model_validate_json(message.body)
    finally:
        await connection.close()
