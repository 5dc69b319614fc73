"""An open-loop sender: uploads at a fixed arrival rate, latency without coordinated omission.

    python -m bench.openloop --port PORT --requests FILE --rate 300

Request i is due at ``start + i / rate`` whatever happened to the others. A pool of
keep-alive connections (raw HTTP/1.1 over asyncio streams) sends each request as soon as it
is due and a connection is free; its latency runs from when it was *due*, not from when it
could be sent, so a stalled server shows up in the percentiles instead of silently slowing
the generator down (wrk2's correction; wrk2 is not in Debian). The largest delay from due
to sent is reported too: every connection busy (the server behind), or the sender itself
late (then its CPU, reported by the caller, says so). Prints
one JSON line; the caller reads this process's CPU from the kernel when it exits.
"""

import argparse
import asyncio
import json
import sys
import time

REQUEST_HEAD = (
    "POST /api/v1/visits HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)


def prepared(path: str) -> list[bytes]:
    requests = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            secret, body = line.rstrip("\n").split("\t", 1)
            payload = body.encode()
            requests.append(REQUEST_HEAD.format(secret=secret, length=len(payload)).encode() + payload)
    return requests


async def _answer(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run(port: int, requests: list[bytes], rate: float, connections: int) -> dict:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    latencies, statuses, lag = [], {}, [0.0]
    tokens, reconnects = [0], [0]
    next_index = iter(range(len(requests)))

    async def connection() -> None:
        reader = writer = None
        for index in next_index:
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag[0] = max(lag[0], -delay)
            for _attempt in range(3):  # a keep-alive connection the server closed (worker recycled)
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(requests[index])
                    status, body = await _answer(reader)
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer, reconnects[0] = None, reconnects[0] + 1
            else:
                status, body = 0, b""
            latencies.append(loop.time() - due)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202:
                tokens[0] += json.loads(body)["accepted"]
        if writer is not None:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    seconds = time.perf_counter() - began - 0.5
    latencies.sort()

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, max(0, round(fraction * len(latencies) + 0.5) - 1))] * 1000

    return {
        "requests": len(latencies), "seconds": seconds, "rate_asked": rate, "rate_achieved": len(latencies) / seconds,
        "statuses": {str(code): count for code, count in statuses.items()}, "tokens": tokens[0],
        "p50_ms": percentile(0.5), "p99_ms": percentile(0.99), "max_ms": latencies[-1] * 1000,
        "schedule_lag_ms": lag[0] * 1000, "reconnects": reconnects[0], "connections": connections,
    }  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="one upload a line: secret, tab, JSON body")
    parser.add_argument("--rate", type=float, required=True, help="uploads per second")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.port, prepared(args.requests), args.rate, args.connections))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
