"""`make bench` (or `python -m bench.run`): what one request costs, layer by layer.

One small request, a primary key lookup on `books`, run many times with a fixed number in
flight at once, through each layer in bench/layers.py. For each layer:

* requests per second and the ratio of its time per request to raw asyncpg's, both
  measured in the same repetition (the layers take turns, in a rotating order, so that
  a noisy machine slows them all alike), reported as the median over the repetitions
  with the spread (min–max) of the ratio;
* round trips per request, counted on the wire by bench/wire.py (not assumed), and what
  each of them was.

It prints a table, writes bench/results.json, and bench/results.md (a table for the README).
Sizes: `python -m bench.run --requests 2000 --reps 7 --concurrency 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from bench.layers import LAYERS, Layer, Request, asyncpg_args
from bench.wire import WireCounter
from dbkit import fresh_database, migrate

HERE = Path(__file__).resolve().parent
ROWS = 1000  # books in the table; requests cycle through their ids


async def fill(url: URL, rows: int = ROWS) -> None:
    """The project's tables (migrations), and `rows` books by one author."""
    await migrate.upgrade(url)
    conn = await asyncpg.connect(**asyncpg_args(url))
    try:
        author = await conn.fetchval(
            "INSERT INTO authors (name) VALUES ('Ursula K. Le Guin') RETURNING id"
        )
        await conn.executemany(  # ids 1..rows, as the requests ask for them
            "INSERT INTO books (id, title, author_id, published) VALUES ($1, $2, $3, $4)",
            [(i, f"Book {i}", author, 1900 + i % 120) for i in range(1, rows + 1)],
        )
        await conn.execute("SELECT setval('books_id_seq', $1)", rows)
        await conn.execute("ANALYZE books")
    finally:
        await conn.close()


async def prepare(name: str = "bench", rows: int = ROWS) -> URL:
    """A fresh database (dbkit_<name>) with the project's tables and `rows` books."""
    url = await fresh_database(name)
    await fill(url, rows)
    return url


async def drive(request: Request, n: int, concurrency: int, rows: int = ROWS) -> None:
    """Run `n` requests, `concurrency` at a time (each worker is its own asyncio task, as
    each request is in a web server), checking every answer."""
    ids = iter(range(n))

    async def worker() -> None:
        for i in ids:  # one iterator shared by the workers: n requests in all
            book_id = i % rows + 1
            title = await request(book_id)
            if title != f"Book {book_id}":
                raise AssertionError(f"request {book_id} returned {title!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass
class Trips:
    per_request: float  # counted over many requests
    one: list[str]  # what one request sent, round trip by round trip
    connects: int  # connections opened while counting (0: the pool was warm)


async def count_round_trips(
    layer: Layer, url: URL, *, concurrency: int = 10, n: int = 100, warmup: int = 50
) -> Trips:
    """Round trips per request through the counting proxy, once the pool is warm (its
    connections open, its statements prepared, the pre-ping's `;` included): steady
    state, as a busy service runs."""
    async with WireCounter(url) as wire, layer.open(wire.url, concurrency) as request:
        await drive(request, warmup, concurrency)
        for _ in range(10):  # until no connection opens or prepares anything any more
            wire.reset()
            await drive(request, 4 * concurrency, concurrency)
            if not wire.connects and not any(t.startswith("prepare") for t in wire.trips):
                break
        wire.reset()
        await drive(request, n, concurrency)
        per_request, connects = len(wire.trips) / n, wire.connects
        wire.reset()
        await drive(request, 1, 1)
        return Trips(per_request, list(wire.trips), connects + wire.connects)


async def count_calls(
    layer: Layer, url: URL, *, concurrency: int = 10, n: int = 300, warmup: int = 50
) -> float:
    """Python function calls per request (cProfile), pool warm: the client's work, in a
    unit that a busy machine does not blur."""
    async with layer.open(url, concurrency) as request:
        await drive(request, warmup, concurrency)
        profile = cProfile.Profile()
        profile.enable()
        try:
            await drive(request, n, concurrency)
        finally:
            profile.disable()
    return pstats.Stats(profile).total_calls / n  # type: ignore[attr-defined]


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)  # one per repetition
    cpu: list[float] = field(default_factory=list)  # this process's CPU seconds, likewise
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)


async def time_layers(
    layers: Sequence[Layer],
    url: URL,
    *,
    requests: int,
    reps: int,
    concurrency: int,
    warmup: int,
    progress: bool = False,
) -> dict[str, Timing]:
    """Time every layer `reps` times, taking turns in a rotating order; ratios are to the
    baseline's time in the same repetition."""
    timings = {layer.key: Timing() for layer in layers}
    baseline = next(layer.key for layer in layers if layer.baseline)
    for rep in range(reps):
        order = list(layers[rep % len(layers) :]) + list(layers[: rep % len(layers)])
        for layer in order:
            async with layer.open(url, concurrency) as request:
                await drive(request, warmup, concurrency)
                start, cpu = time.perf_counter(), time.process_time()
                await drive(request, requests, concurrency)
                timings[layer.key].seconds.append(time.perf_counter() - start)
                timings[layer.key].cpu.append(time.process_time() - cpu)
        base, base_cpu = timings[baseline].seconds[-1], timings[baseline].cpu[-1]
        for layer in layers:
            t = timings[layer.key]
            t.ratios.append(t.seconds[-1] / base)
            t.cpu_ratios.append(t.cpu[-1] / base_cpu)
        if progress:
            print(f"  repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    return timings


async def server_version(url: URL) -> str:
    conn = await asyncpg.connect(**asyncpg_args(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "sqlalchemy": version("sqlalchemy"),
        "asyncpg": version("asyncpg"),
        "psycopg": version("psycopg"),
    }


async def bench(
    *,
    requests: int = 2000,
    reps: int = 7,
    concurrency: int = 10,
    warmup: int = 200,
    layers: Sequence[Layer] = LAYERS,
    name: str = "bench",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole benchmark; return what results.json holds."""
    started, load_before = time.perf_counter(), os.getloadavg()
    url = await prepare(name)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    say("counting round trips on the wire ...")
    trips = {
        layer.key: await count_round_trips(layer, url, concurrency=concurrency) for layer in layers
    }
    for key, t in trips.items():
        if t.connects:
            say(f"warning: {key} opened {t.connects} connection(s) while its trips were counted")
    say("counting Python function calls per request ...")
    calls = {layer.key: await count_calls(layer, url, concurrency=concurrency) for layer in layers}
    say(f"timing {len(layers)} layers x {reps} repetitions x {requests} requests ...")
    timings = await time_layers(
        layers,
        url,
        requests=requests,
        reps=reps,
        concurrency=concurrency,
        warmup=warmup,
        progress=progress,
    )
    base = next(layer for layer in layers if layer.baseline)
    base_s = statistics.median(timings[base.key].seconds)
    rows = []
    for layer in layers:
        t = timings[layer.key]
        rows.append(
            {
                "name": layer.name,
                "key": layer.key,
                "req_per_s": round(requests / statistics.median(t.seconds)),
                "ratio": round(statistics.median(t.ratios), 2),
                "ratio_min": round(min(t.ratios), 2),
                "ratio_max": round(max(t.ratios), 2),
                "cpu_us_per_request": round(statistics.median(t.cpu) / requests * 1e6),
                "cpu_ratio": round(statistics.median(t.cpu_ratios), 2),
                "round_trips": trips[layer.key].per_request,
                "trips": trips[layer.key].one,
                "python_calls": round(calls[layer.key]),
                "recommended": layer.recommended,
                "recommended_write": layer.recommended_write,
                "seed": layer.seed,
            }
        )
    return {
        "baseline": {
            "name": base.name,
            "req_per_s": round(requests / base_s),
            "us_per_request": round(base_s / requests * 1e6, 1),
            "cpu_us_per_request": round(statistics.median(timings[base.key].cpu) / requests * 1e6),
            "round_trips": trips[base.key].per_request,
        },
        "rows": rows,
        "config": {
            "requests": requests,
            "repetitions": reps,
            "concurrency": concurrency,
            "pool_size": concurrency,
            "warmup": warmup,
            "query": "primary key lookup on books (1000 rows)",
        },
        "machine": {
            **machine(),
            "postgresql": await server_version(url),
            "connection": "unix socket"
            if str(asyncpg_args(url)["host"]).startswith("/")
            else "TCP",
        },
        "seconds": round(time.perf_counter() - started, 1),
        # the machine's load average (1, 5, 15 minutes) as `uptime` shows it, before and
        # after: a busy machine stretches every ratio (bench/README.md)
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
    }


QUIET_LOAD = 1.0  # a 1-minute load average above this, before or after: not a quiet machine
GOALS = {  # issue 13, on a quiet machine, medians, one run
    "read_ratio": 2.5,
    "read_round_trips": 2,
    "read_calls_vs_baseline": 2.0,
    "write_ratio": 4.0,
    "write_round_trips": 3,
}


def goals(results: dict[str, Any]) -> list[str]:
    """One line per goal: the goal, this run's figure, met or not."""
    rows = results["rows"]
    base = next(r for r in rows if r["key"] == "asyncpg")
    read = next(r for r in rows if r["recommended"])
    write = next(r for r in rows if r.get("recommended_write"))
    calls = read["python_calls"] / base["python_calls"]
    checks = [
        (
            "recommended read, time",
            f"≤ {GOALS['read_ratio']}x",
            f"{read['ratio']:.2f}x",
            read["ratio"] <= GOALS["read_ratio"],
        ),
        (
            "recommended read, round trips",
            f"≤ {GOALS['read_round_trips']}",
            f"{read['round_trips']:g}",
            read["round_trips"] <= GOALS["read_round_trips"],
        ),
        (
            "recommended read, Python calls",
            f"≤ {GOALS['read_calls_vs_baseline']}x raw asyncpg's",
            f"{calls:.2f}x ({read['python_calls']} / {base['python_calls']})",
            calls <= GOALS["read_calls_vs_baseline"],
        ),
        (
            "unit of work, time",
            f"≤ {GOALS['write_ratio']}x",
            f"{write['ratio']:.2f}x",
            write["ratio"] <= GOALS["write_ratio"],
        ),
        (
            "unit of work, round trips",
            f"≤ {GOALS['write_round_trips']}",
            f"{write['round_trips']:g}",
            write["round_trips"] <= GOALS["write_round_trips"],
        ),
    ]
    lines = ["| goal | target | this run | met |", "|---|---|---|---|"]
    lines += [
        f"| {name} | {target} | {got} | {'yes' if ok else '**no**'} |"
        for name, target, got, ok in checks
    ]
    load = results.get("load_average")
    if load and max(load["before"][0], load["after"][0]) > QUIET_LOAD:
        lines += [
            "",
            f"The time goals are for a quiet machine; this one was not (1-minute load average "
            f"above {QUIET_LOAD:g}): other work on the cores slows the baseline too, which "
            "squeezes every ratio. Read its times as one busy run's; the round trips and "
            "Python calls do not move with the load.",
        ]
    return lines


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table, with the machine and the run's sizes under it."""
    cfg, m = results["config"], results["machine"]
    lines = [
        "| layer | req/s | time per request vs raw asyncpg | spread | client CPU vs raw asyncpg "
        "| Python calls per request | round trips per request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        mark = (
            " **(recommended)**"
            if row["recommended"] or row.get("recommended_write")
            else " *(seed)*"
            if row["seed"]
            else ""
        )
        lines.append(
            f"| {row['name']}{mark} | {row['req_per_s']:,} | **{row['ratio']:.2f}x** "
            f"| {row['ratio_min']:.2f}–{row['ratio_max']:.2f} | {row['cpu_ratio']:.2f}x "
            f"| {row['python_calls']} | {row['round_trips']:g} |"
        )
    lines += [
        "",
        f"{cfg['requests']:,} requests per layer and repetition, {cfg['concurrency']} in flight "
        f"(pool size {cfg['pool_size']}), {cfg['repetitions']} repetitions taking turns in a "
        "rotating order; req/s and ratio are medians, spread is the ratio's min–max. "
        "Round trips are counted on the wire (bench/wire.py) and Python calls with cProfile, "
        "per request, pool warm. Client CPU is this process's CPU time (time.process_time).",
        f"Machine: {m['cores']} cores, {m['platform']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']} ({m.get('connection', 'unix socket')}), "
        f"SQLAlchemy {m['sqlalchemy']}, "
        f"asyncpg {m['asyncpg']}, psycopg {m.get('psycopg', '?')}.",
    ]
    if "load_average" in results:
        la = results["load_average"]
        lines.append(
            f"Load average (1, 5, 15 min, as `uptime` shows it): "
            f"{', '.join(f'{x:.2f}' for x in la['before'])} before the run, "
            f"{', '.join(f'{x:.2f}' for x in la['after'])} after; "
            f"the run took {results['seconds']:.0f} s."
        )
    lines += ["", *goals(results)]
    return "\n".join(lines)


BEGIN_TABLE = "<!-- bench table: written by `make bench` from bench/results.json -->"
END_TABLE = "<!-- end of bench table -->"
DOCS = [HERE / "README.md", HERE.parent / "README.md"]  # where the table is shown


def with_table(text: str, md: str) -> str:
    """`text` with the block between BEGIN_TABLE and END_TABLE replaced by `md`."""
    start, end = text.index(BEGIN_TABLE) + len(BEGIN_TABLE), text.index(END_TABLE)
    return text[:start] + "\n" + md + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--requests", type=int, default=2000, help="per layer and repetition")
    parser.add_argument("--reps", type=int, default=7, help="repetitions")
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--only", nargs="*", help="layer keys to run (the baseline always runs)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    layers = [x for x in LAYERS if x.baseline or not args.only or x.key in args.only]
    results = asyncio.run(
        bench(
            requests=args.requests,
            reps=args.reps,
            concurrency=args.concurrency,
            warmup=args.warmup,
            layers=layers,
        )
    )
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    md = table(results)
    args.out.with_suffix(".md").write_text(md + "\n")
    if args.out == HERE / "results.json" and set(layers) == set(LAYERS):
        for doc in DOCS:  # a full run: the READMEs show its table, never a hand-copied one
            doc.write_text(with_table(doc.read_text(), md))
    print(md)
    print(
        f"\nwrote {args.out.name} and {args.out.with_suffix('.md').name} "
        f"in {results['seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
