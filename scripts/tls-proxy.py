#!/usr/bin/env python3
"""A TLS front for a plain-HTTP server on loopback, for tests of private
certificate authorities: listens on 127.0.0.1 (an ephemeral port, printed
on the first line of stdout), terminates TLS with the given certificate
and key, and copies bytes both ways to the upstream address. Runs until
killed or until stdin closes (so it ends with the test that started it).

    tls-proxy.py CERT KEY UPSTREAM_HOST:PORT
"""
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    cert, key, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = upstream.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def serve(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with server:
        await asyncio.wait(
            [asyncio.ensure_future(server.serve_forever()), stdin_closed],
            return_when=asyncio.FIRST_COMPLETED,
        )


if __name__ == "__main__":
    asyncio.run(main())
