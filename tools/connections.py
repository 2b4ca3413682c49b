"""How many connections each notebook holds on the server at its peak: what an instructor
needs to size a shared server for a room (INSTRUCTORS.md).

Runs every solved notebook in a kernel of its own, in a namespace of its own, while a
sampler counts that namespace's backends in pg_stat_activity every 5 ms (its own
connection not counted). Notebooks 09 and 10 also start private servers of their own:
those connections are not on the shared server and are not counted.

    python -m tools.connections            # every notebook
    python -m tools.connections 07 11      # some
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import nbformat
from nbclient import NotebookClient

from dbkit.database import database_url
from dbkit.databases import PREFIX, namespace

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


async def peak_while(path: Path, ns: str) -> int:
    url = database_url()
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    sampler = await asyncpg.connect(plain)
    peak = 0
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
        "(datname LIKE $1 OR (datname = $2 AND usename = current_user))"
    )
    client = NotebookClient(
        nbformat.read(path, as_version=4),
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    os.environ["DBKIT_NAMESPACE"] = ns  # the kernel inherits it
    run = asyncio.create_task(client.async_execute())
    while not run.done():
        count = await sampler.fetchval(query, f"{PREFIX}{ns}\\_%", url.database)
        peak = max(peak, count)
        await asyncio.sleep(0.005)
    await run
    await sampler.close()
    return peak


async def main(wanted: list[str]) -> None:
    ns = "conn" + namespace()
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    paths = [p for p in paths if not wanted or p.name[:2] in wanted]
    print("| notebook | peak connections |\n|---|---:|")
    for path in paths:
        print(f"| {path.stem} | {await peak_while(path, ns)} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
