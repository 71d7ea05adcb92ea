"""Stream helpers for Amaranth-simulator testbenches (`async def testbench(ctx)`).

`stream_put` / `stream_get` move one payload through a `stream.Signature` interface, following the
stream rules: valid is raised without looking at ready, and the payload holds until the transfer.
The `*_all` forms add random idle cycles (source) or backpressure (sink) from a `random.Random`.
"""

__all__ = ["stream_put", "stream_get", "stream_put_all", "stream_get_all"]


async def stream_put(ctx, stream, payload):
    """Offer `payload` on `stream` (a source-side interface: we drive valid/payload) until taken."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload from `stream` (we drive ready); returns it as sampled at the transfer
    (an `int`, or a `data.Const` for layouts: `beat.data`, `beat.last`)."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def stream_put_all(ctx, stream, payloads, *, rng=None, idle=0.0):
    """`stream_put` each payload; before each, with probability `idle`, wait 1-3 idle cycles."""
    for payload in payloads:
        if rng is not None and rng.random() < idle:
            await ctx.tick().repeat(rng.randint(1, 3))
        await stream_put(ctx, stream, payload)


async def stream_get_all(ctx, stream, count, *, rng=None, backpressure=0.0):
    """`stream_get` `count` payloads; before each, with probability `backpressure`, hold ready low
    for 1-3 cycles."""
    payloads = []
    for _ in range(count):
        if rng is not None and rng.random() < backpressure:
            await ctx.tick().repeat(rng.randint(1, 3))
        payloads.append(await stream_get(ctx, stream))
    return payloads
