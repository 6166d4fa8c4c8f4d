"""Does the web process give memory back after heavy pages? RSS of a served app (as
bench/pages.py serves it) before, at the peak of and 5 s after a burst of heavy requests, with
`RS_MEMORY_TRIM` on and off, on a world bench/pages.py built.

    .venv/bin/python bench/memory_trim.py --scale 0.005 [--requests 24]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pages import (  # noqa: E402
    DEFAULT_SERVER,
    _rss_kib,
    _sign_in,
    load_world,
    start_server,
)


async def burst(port: int, email: str, paths: list[str], pid: int, requests: int) -> int:
    import httpx

    peak = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        await _sign_in(client, email)
        for _ in range(requests):
            for path in paths:
                await client.get(path)
                peak = max(peak, _rss_kib(pid))
    return peak


def one(trim: bool, args: argparse.Namespace) -> tuple[float, float, float]:
    world = load_world(args.server, args.scale)
    os.environ["RS_MEMORY_TRIM"] = "true" if trim else "false"
    server = start_server(world.url, args.port, 6.0, ROOT / "bench" / ".pages_server.log")
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        p = world.project_id
        paths = [
            f"/projects/{p}/agreement/runs/{world.run_ids['all']}",
            f"/projects/{p}/disagreements/{world.run_ids['all']}",
            f"/projects/{p}/rollouts?q=liability&sort=rank",
        ]
        start = _rss_kib(server.pid)
        peak = asyncio.run(burst(args.port, world.email, paths, server.pid, args.requests))
        time.sleep(5)
        return start / 1024, peak / 1024, _rss_kib(server.pid) / 1024
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.005)
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--requests", type=int, default=24)
    args = parser.parse_args()
    for trim in (False, True):
        start, peak, final = one(trim, args)
        print(
            f"RS_MEMORY_TRIM={str(trim).lower()}: {start:.0f} MiB at start, peak {peak:.0f} MiB, "
            f"{final:.0f} MiB 5 s after the last request"
        )


if __name__ == "__main__":
    main()
