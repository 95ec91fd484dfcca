"""The bench's printed output: the check table, the ratio tables, the scale table.

Ratios are printed as ``median ±half-IQR`` of the per-round paired ratios:
the median is the number to read; the half interquartile range says how
much the rounds disagreed (a large one means a noisy machine: rerun with
more ``--rounds``). bench/README.md explains how to read them.
"""

from __future__ import annotations

from typing import Any

from scenarios import LOOKUP


def print_checks(rows: list[dict[str, Any]], names: list[str], routes: int) -> None:
    print(
        f"\nChecked {len(rows)} requests on every app: status, body, Content-Type and "
        "Content-Length as expected.\nAnswers to the scenarios (body bytes/header count; "
        "JSON bodies compared decoded):"
    )
    print(f"{'request':<34}" + "".join(f" {n:>9}" for n in names))
    for row in rows:
        if row["scenario"] != "probe" and row["routes"] == routes:
            cells = [f"{row['body_bytes'][n]}/{row['headers'][n]}" for n in names]
            print(f"{row['request']:<34}" + "".join(f" {c:>9}" for c in cells))


def ratio_cell(stats: dict[str, Any]) -> str:
    half_iqr = (stats["q3"] - stats["q1"]) / 2
    return f"{stats['median']:6.2f}x ±{half_iqr:4.2f}"


def print_report(
    meta: dict[str, Any], results: dict[str, Any], scale: dict[str, Any], skipped: dict[str, str]
) -> None:
    """The ratio table, the µs table and the routing-scale table."""
    names = meta["frameworks"]  # "bare" first; a skipped framework keeps its column
    others = names[1:]
    print(
        f"\nRatios vs bare WSGI: median of per-round paired ratios (±half IQR), "
        f"{meta['rounds']} rounds of ~{meta['batch_ms']:g} ms batches.\nEvery number includes "
        f"{meta['harness_us']:.2f} µs/call of harness (what a server does: environ copy, input "
        "stream,\nstart_response, body loop), measured with a do-nothing WSGI app."
    )
    if results:
        print(f"{'scenario':<13} {'bare µs':>8}" + "".join(f" {n:>13}" for n in others))
        for scenario, per_fw in results.items():
            cells = [
                ratio_cell(per_fw[n]["ratio"]) if n in per_fw else f"{'skipped':>13}"
                for n in others
            ]
            print(f"{scenario:<13} {per_fw['bare']['us']['median']:8.2f} " + " ".join(cells))
        print(f"\n{'µs per call':<13}" + "".join(f" {n:>9}" for n in names))
        for scenario, per_fw in results.items():
            cells = [
                f"{per_fw[n]['us']['median']:9.2f}" if n in per_fw else f"{'skipped':>9}"
                for n in names
            ]
            print(f"{scenario:<13} " + " ".join(cells))
    if scale:
        sizes = meta["scale_routes"]
        print(f"\nRouting scale: {LOOKUP.method} {LOOKUP.path}, registered last among N routes")
        print(
            f"{'framework':<10}"
            + "".join(f" {f'{n} µs':>9}" for n in sizes)
            + f" {f'{sizes[-1]}/{sizes[0]}':>14}"
        )
        for name in names:
            if name in scale:
                cells = "".join(f" {scale[name]['us'][n]['median']:9.2f}" for n in sizes)
                print(f"{name:<10}{cells} {ratio_cell(scale[name]['growth'])}")
            else:
                print(f"{name:<10} skipped")
    for name, why in skipped.items():
        print(f"\nNOTE: {name} was SKIPPED: {why}")
