"""An open-loop sender: requests at a fixed arrival rate, latency without coordinated omission.

    python -m bench.openloop --port PORT --requests FILE --rate 300

Request i is due at ``start + i / rate`` whatever happened to the others. A pool of
keep-alive connections (raw HTTP/1.1 over asyncio streams) sends each request as soon as it
is due and a connection is free; its latency runs from when it was *due*, not from when it
could be sent, so a stalled server shows up in the percentiles instead of silently slowing
the generator down (wrk2's correction; wrk2 is not in Debian). The largest delay from due
to sent is reported too: every connection busy (the server behind), or the sender itself
late (then its CPU, reported by the caller, says so). Prints
one JSON line; the caller reads this process's CPU from the kernel when it exits.

Each line of FILE is an upload (device secret, tab, JSON body), or with ``--get PATH`` a
device secret alone (a phone's GET of PATH). The file is read as the requests fall due, so
a half-hour soak's uploads never sit in memory at once. ``--tls`` speaks HTTPS (to nginx,
whose certificate is the bench's own, so it is not verified) and ``--sources N`` spreads the
connections over N loopback addresses (127.0.0.2, …, or from ``--first-source``): nginx
limits requests per client address, and phones each come from their own. The numbers of
the requests not answered 2xx are listed whole, so a caller can leave exactly those out.
"""

import argparse
import asyncio
import json
import ssl
import sys
import time

REQUEST_HEAD = (
    "POST /api/v1/visits HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)
GET_HEAD = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n\r\n"


def prepared(path: str, get_path: str | None = None):
    """The requests of ``path``, one at a time, ready to write."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if get_path is not None:
                yield GET_HEAD.format(path=get_path, secret=line.strip()).encode()
                continue
            secret, body = line.rstrip("\n").split("\t", 1)
            payload = body.encode()
            yield REQUEST_HEAD.format(secret=secret, length=len(payload)).encode() + payload


async def _answer(reader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection after it)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, closing = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            closing = value.strip().lower() == b"close"
    return status, await reader.readexactly(length), closing


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))] * 1000


def _buckets(samples: list[tuple[float, float, int]], seconds: float) -> list[dict]:
    """Per ``seconds`` of due time: requests, latency p50/p99/max, statuses."""
    grouped: dict[int, list[tuple[float, int]]] = {}
    for due, latency, status in samples:
        grouped.setdefault(int(due // seconds), []).append((latency, status))
    buckets = []
    for number in sorted(grouped):
        latencies = sorted(latency for latency, _ in grouped[number])
        statuses: dict[str, int] = {}
        for _, status in grouped[number]:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        buckets.append({
            "bucket": number, "requests": len(latencies), "p50_ms": _percentile(latencies, 0.5),
            "p99_ms": _percentile(latencies, 0.99), "max_ms": latencies[-1] * 1000, "statuses": statuses,
        })  # fmt: skip
    return buckets


async def run(
    port: int,
    requests,
    rate: float,
    connections: int,
    *,
    tls: bool = False,
    sources: int = 0,
    first_source: int = 2,
    bucket_seconds: float = 0.0,
) -> dict:
    if sources and first_source + sources - 1 > 254:
        raise SystemExit("--first-source and --sources go past 127.0.0.254")
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    latencies, statuses, lag = [], {}, [0.0]
    samples: list[tuple[float, float, int]] = []
    failed: list[int] = []
    tokens, reconnects = [0], [0]
    numbered = enumerate(requests)
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    async def connection(number: int) -> None:
        reader = writer = None
        local = (f"127.0.0.{first_source + number % sources}", 0) if sources else None
        for index, request in numbered:
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag[0] = max(lag[0], -delay)
            for _attempt in range(3):  # a keep-alive connection the server closed (worker recycled)
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, local_addr=local)
                    writer.write(request)
                    status, body, closing = await _answer(reader)
                    if closing:
                        writer.close()
                        writer = None
                    break
                except (OSError, asyncio.IncompleteReadError):  # ssl.SSLError is an OSError
                    writer, reconnects[0] = None, reconnects[0] + 1
            else:
                status, body = 0, b""
            latency = loop.time() - due
            latencies.append(latency)
            if bucket_seconds:
                samples.append((due - start, latency, status))
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202:
                tokens[0] += json.loads(body)["accepted"]
            elif status >= 300 or status == 0:
                failed.append(index)
        if writer is not None:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(number) for number in range(connections)))
    seconds = time.perf_counter() - began - 0.5
    latencies.sort()

    result = {
        "requests": len(latencies), "seconds": seconds, "rate_asked": rate, "rate_achieved": len(latencies) / seconds,
        "statuses": {str(code): count for code, count in statuses.items()}, "tokens": tokens[0],
        "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
        "p999_ms": _percentile(latencies, 0.999), "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "schedule_lag_ms": lag[0] * 1000, "reconnects": reconnects[0], "connections": connections,
        "failed_indices": sorted(failed),
    }  # fmt: skip
    if bucket_seconds:
        result["buckets"] = _buckets(samples, bucket_seconds)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="one upload a line: secret, tab, JSON body")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--get", default=None, metavar="PATH", help="GET PATH with each line's device secret")
    parser.add_argument("--tls", action="store_true", help="HTTPS, the certificate not verified")
    parser.add_argument("--sources", type=int, default=0, help="spread connections over N loopback addresses")
    parser.add_argument("--first-source", type=int, default=2, help="the first of them: 127.0.0.N (default 2)")
    parser.add_argument("--bucket-seconds", type=float, default=0.0, help="figures per this many seconds too")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.port, prepared(args.requests, args.get), args.rate, args.connections,
            tls=args.tls, sources=args.sources, first_source=args.first_source,
            bucket_seconds=args.bucket_seconds,
        )
    )  # fmt: skip
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
