"""Side-by-side benchmark: microweb, a bare WSGI callable, Falcon, Bottle and Flask.

    python bench/run.py                    # full run, about 1-2 minutes
    python bench/run.py --quick            # about 15 seconds, rougher
    python bench/run.py --scenario lookup --scenario scale --rounds 30
    python bench/run.py --json results.json

Method (bench/README.md says how to read the output):

1. Build every app in-process from the same route table (``scenarios.py``):
   200 routes for the scenarios, 10, 100 and 1000 for the routing scale.
2. Check first: call every app once per scenario through the PEP 3333
   validator and compare status, body (bytes for text, decoded JSON for
   JSON), Content-Type and Content-Length with the expected answer. Any
   difference stops the run: comparing unlike work would be a defect.
3. Time in rounds. A round times one batch per framework, in an order
   shuffled per round (interleaved, so a noisy second hurts everyone alike).
   A batch is N calls timed with ``perf_counter_ns``; N is calibrated per
   app so that a batch lasts ``--batch-ms``. Each round gives each framework
   a *paired* ratio, its time over the bare app's time in the same round.
4. Report the median over rounds of those ratios, and the median µs per
   call.

Garbage collection stays on during batches, as in a server. Once the apps
are built and checked, ``gc.freeze()`` moves them to the permanent
generation: this process holds twenty apps (five frameworks, four route
counts) where a server worker holds one, and a full collection triggered in
one framework's batch should not pay for scanning the other nineteen. Then
``gc.collect()`` runs before each batch (now cheap), so that no batch pays
for the garbage of the one before.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import random
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[1:1] = [str(HERE.parent)]  # NOTE: the checkout's microweb, even when not installed

from harness import (  # noqa: E402
    call_once,
    calls_per_batch,
    check,
    environ_template,
    null_app,
    time_calls,
)
from report import print_checks, print_report  # noqa: E402
from scenarios import LOOKUP, SCENARIOS, Scenario, filler_probes  # noqa: E402

FRAMEWORKS = ("bare", "microweb", "stack", "falcon", "bottle", "flask")
ROUTES = 200
SCALE = (10, 100, 1000)


def load_builders(wanted: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``{name: build}`` for every framework that imports; ``{name: why}`` for the others."""
    builders, skipped = {}, {}
    for name in wanted:
        try:
            builders[name] = importlib.import_module(f"apps_{name}").build
        except ImportError as exc:
            if name == "bare":
                raise
            skipped[name] = f"import failed: {exc!r}"
    return builders, skipped


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("microweb", "WebOb", "falcon", "bottle", "Flask", "Werkzeug"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    module = sys.modules.get("microweb")
    if module is None:
        found["microweb"] += " (not imported)"
    else:
        found["microweb"] = f"{getattr(module, '__version__', '?')} from {module.__file__}"
    if "falcon" in sys.modules:
        compiled = not importlib.import_module("falcon.app").__file__.endswith(".py")
        found["falcon"] += " (Cython-compiled)" if compiled else " (pure Python)"
    return found


def run_checks(apps: dict[str, dict[int, Any]]) -> list[dict[str, Any]]:
    """Check every app on every scenario and probe; exit loudly on any difference."""
    rows, failures = [], []
    requests = [(s, s.path, ROUTES) for s in SCENARIOS]
    probe = Scenario("probe", "GET", "", 200, "text", b"ok")  # a filler route answers "ok"
    for size in sorted({n for per_size in apps.values() for n in per_size}):
        requests += [(LOOKUP, LOOKUP.path, size)] if size != ROUTES else []
        requests += [(probe, path, size) for path in filler_probes(size)]
    for scenario, path, size in requests:
        answers = {}
        for name, per_size in apps.items():
            answer = call_once(per_size[size], scenario.method, path, scenario.body)
            answers[name] = answer
            for problem in check(scenario, answer):
                failures.append(f"{name} {scenario.method} {path} ({size} routes): {problem}")
        rows.append(
            {
                "scenario": scenario.name,
                "request": f"{scenario.method} {path}",
                "routes": size,
                "status": scenario.status,
                "body_bytes": {n: len(a.body) for n, a in answers.items()},
                "headers": {n: len(a.headers) for n, a in answers.items()},
            }
        )
    if failures:
        print("\nCHECK FAILED: the apps do not do the same work, so nothing is timed.")
        print("\n".join(f"  - {line}" for line in failures))
        sys.exit(1)
    return rows


def measure(
    jobs: dict[Any, tuple[Any, dict[str, Any], bytes]],
    args: argparse.Namespace,
    rng: random.Random,
    label: str,
) -> dict[Any, list[float]]:
    """``{key: [µs per call, one per round]}`` for `jobs` = ``{key: (app, template, body)}``."""
    batch_ns = args.batch_ms * 1e6
    sizes = {key: calls_per_batch(app, t, b, batch_ns) for key, (app, t, b) in jobs.items()}
    times: dict[Any, list[float]] = {key: [] for key in jobs}
    print(f"  {label:<12}", end="", file=sys.stderr, flush=True)
    for _ in range(args.rounds):
        order = list(jobs)
        rng.shuffle(order)
        for key in order:
            app, template, body = jobs[key]
            gc.collect()
            times[key].append(time_calls(app, template, body, sizes[key]) / 1000)
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return times


def summary(values: list[float]) -> dict[str, Any]:
    """Median and interquartile range of per-round values."""
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values * 3)
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "rounds": values}


def paired(times: list[float], reference: list[float]) -> dict[str, Any]:
    """Summary of the per-round ratios ``times[i] / reference[i]`` (same round, same noise)."""
    return summary([t / r for t, r in zip(times, reference, strict=True)])


def bench_scenarios(
    apps: dict[str, Any], names: list[str], args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    results = {}
    for scenario in (s for s in SCENARIOS if s.name in names):
        template = environ_template(scenario.method, scenario.path, scenario.body)
        jobs = {name: (app, template, scenario.body) for name, app in apps.items()}
        times = measure(jobs, args, rng, scenario.name)
        results[scenario.name] = {
            name: {"us": summary(times[name]), "ratio": paired(times[name], times["bare"])}
            for name in apps
        }
    return results


def bench_scale(
    apps: dict[str, dict[int, Any]], args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    template = environ_template(LOOKUP.method, LOOKUP.path)
    jobs = {(name, n): (app, template, b"") for name, per in apps.items() for n, app in per.items()}
    times = measure(jobs, args, rng, "scale")
    lo, hi = SCALE[0], SCALE[-1]
    return {
        name: {
            "us": {n: summary(times[name, n]) for n in SCALE},
            "growth": paired(times[name, hi], times[name, lo]),
        }
        for name in apps
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS] + ["scale"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~15 s)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 15, quick 7)")
    parser.add_argument("--batch-ms", type=float, help="length of a batch (default 70, quick 25)")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS[1:]),
        help="comma-separated frameworks besides bare (default: all)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the round order shuffle")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (7 if args.quick else 15)
    args.batch_ms = args.batch_ms or (25.0 if args.quick else 70.0)
    args.scenario = args.scenario or names
    unknown = set(args.frameworks.split(",")) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown framework(s) {', '.join(sorted(unknown))}; known: {FRAMEWORKS}")
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the ratios are medians over rounds)")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress (stderr) stays in order
    wanted = ["bare"] + [n for n in FRAMEWORKS[1:] if n in args.frameworks.split(",")]
    builders, skipped = load_builders(wanted)
    for name, why in skipped.items():
        print(f"NOTE: {name} is SKIPPED: {why}", flush=True)
    meta = {
        "frameworks": wanted,
        "scale_routes": SCALE,
        "versions": versions(),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "batch_ms": args.batch_ms,
        "seed": args.seed,
        "platform": platform.platform(),
    }
    print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    sizes = [ROUTES] + (list(SCALE) if "scale" in args.scenario else [])
    apps = {name: {n: build(n) for n in sizes} for name, build in builders.items()}

    started = time.monotonic()
    checks = run_checks(apps)
    print_checks(checks, list(apps), ROUTES)
    gc.collect()
    gc.freeze()  # see the module docstring
    rng = random.Random(args.seed)
    template = environ_template("GET", "/hello")
    n = calls_per_batch(null_app, template, b"", args.batch_ms * 1e6)
    overhead = [time_calls(null_app, template, b"", n) / 1000 for _ in range(5)]
    meta["harness_us"] = statistics.median(overhead)
    print(f"timing ({os.cpu_count()} CPUs, seed {args.seed}):", file=sys.stderr)
    results = bench_scenarios({n: per[ROUTES] for n, per in apps.items()}, args.scenario, args, rng)
    scale = {}
    if "scale" in args.scenario:
        scale = bench_scale({n: {s: per[s] for s in SCALE} for n, per in apps.items()}, args, rng)
    meta["seconds"] = round(time.monotonic() - started, 1)
    print_report(meta, results, scale, skipped)
    if args.json:
        document = {
            "meta": meta,
            "skipped": skipped,
            "checks": checks,
            "scenarios": results,
            "scale": scale,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
