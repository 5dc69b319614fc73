"""A local Web Push receiver for B4: ``python -m bench.receiver --port N``.

It plays the push service (RFC 8030) on 127.0.0.1: every POST is answered 201 at once, over
keep-alive HTTP/1.1, in an asyncio loop of its own process so it costs the workers nothing
but the socket. It counts pushes per endpoint path (a duplicate is a bug) and keeps the first
pushes whole (headers and encrypted body) so the benchmark can decrypt them. ``GET /stats``
answers the counts, ``GET /samples`` the kept pushes (bodies in base64).
"""

import argparse
import asyncio
import base64
import json
from collections import Counter

SAMPLES_KEPT = 50


class Receiver:
    def __init__(self):
        self.paths: Counter = Counter()
        self.samples: list[dict] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if method == "POST":
                    self.paths[path] += 1
                    if len(self.samples) < SAMPLES_KEPT:
                        self.samples.append(
                            {"path": path, "headers": headers, "body": base64.b64encode(body).decode("ascii")}
                        )
                    writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                else:
                    if path == "/stats":
                        payload = {"pushes": sum(self.paths.values()), "endpoints": len(self.paths),
                                   "duplicates": sum(n - 1 for n in self.paths.values() if n > 1)}  # fmt: skip
                    elif path == "/reset":
                        self.paths.clear()
                        self.samples.clear()
                        payload = {"reset": True}
                    else:
                        payload = {"samples": self.samples}
                    data = json.dumps(payload).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(data)).encode()
                        + b"\r\n\r\n"
                        + data
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def serve(port: int) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
