"""Stand-ins for many sites and servers, for bench_watch: one process serving HTTPS (any SNI name, a self-signed
certificate) on --https PORT and an SSH banner on --ssh PORT, on 127.0.0.1. Run as its own process so its CPU is
not counted as the watcher's, and stopped by its PID.

    python -m benchmarks.watch_targets --cert C --key K --https 8443 [--ssh 8022]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

BODY = b"<html><body>pressfleet benchmark site</body></html>"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(args) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    servers = [await asyncio.start_server(_http, "127.0.0.1", args.https, ssl=ctx, backlog=1024)]
    if args.ssh:
        servers.append(await asyncio.start_server(_ssh, "127.0.0.1", args.ssh, backlog=1024))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--https", type=int, required=True)
    ap.add_argument("--ssh", type=int, default=0)
    asyncio.run(main(ap.parse_args()))
