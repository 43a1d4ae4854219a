"""The benchmark's results: the table (grouped by shape), issue 15's targets under it, the CSV."""

from __future__ import annotations

import collections
import csv
import statistics

from converge_run import SCENARIOS, Row

SHAPE_TITLES = {
    "meta": "one system_recipes:service section per service",
    "explicit": "five level-1 sections per service",
}
HEADER = (
    "tool",
    "N",
    "scenario",
    "runs",
    "median s",
    "min s",
    "max s",
    "converge s",
    "peak RSS MB",
    "files",
    "reported",
    "validators",
    "x sr",
)
CSV_COLUMNS = (
    "tool",
    "shape",
    "n",
    "scenario",
    "run",
    "wall_s",
    "maxrss_kb",
    "files_written",
    "reported",
    "validators",
    "validators_detail",
    "status",
    "note",
    "stand_ins",
)


def summarize(rows: list[Row], order: list[str]) -> list[dict]:
    """One entry per (shape, tool, N, scenario), ``system-recipes converge`` runs folded into
    system-recipes' entries as ``converge`` (the median)."""
    groups: dict[tuple, list[Row]] = collections.defaultdict(list)
    for row in rows:
        groups[(row.shape, row.tool, row.n, row.scenario)].append(row)
    medians = {}
    for key, group in groups.items():
        ok = [r.wall for r in group if r.status == "ok"]
        if ok:
            medians[key] = statistics.median(ok)
    shapes = list(dict.fromkeys(row.shape for row in rows))
    table = []
    keys = [key for key in groups if key[1] != "converge"]
    for key in sorted(
        keys, key=lambda k: (shapes.index(k[0]), k[2], SCENARIOS.index(k[3]), order.index(k[1]))
    ):
        shape, tool, n, scenario = key
        group = groups[key]
        ok = [r for r in group if r.status == "ok"]
        failed = [r for r in group if r.status != "ok"]
        entry = {
            "shape": shape,
            "tool": tool,
            "n": n,
            "scenario": scenario,
            "runs": len(ok),
            "status": failed[0].status if failed else "ok",
            "note": "; ".join(sorted({r.note for r in group if r.note})),
        }
        if ok:
            walls = [r.wall for r in ok]
            entry.update(
                median=statistics.median(walls),
                min=min(walls),
                max=max(walls),
                rss_mb=max(r.maxrss_kb or 0 for r in ok) / 1024,
                files=max(r.files or 0 for r in ok),
                reported=ok[-1].reported,
            )
            if ok[0].validators is not None:
                worst = max(ok, key=lambda r: r.validators or 0)
                entry.update(validators=worst.validators, validators_detail=worst.validators_detail)
            base = medians.get((shape, "system-recipes", n, scenario))
            if tool != "system-recipes" and base:
                entry["ratio"] = entry["median"] / base
        if tool == "system-recipes":
            converge = groups.get((shape, "converge", n, scenario), [])
            if any(r.status != "ok" for r in converge):
                entry["converge"] = "failed"
            elif (shape, "converge", n, scenario) in medians:
                entry["converge"] = f"{medians[(shape, 'converge', n, scenario)]:.3f}"
        table.append(entry)
    return table


def format_table(table: list[dict], notes: list[str], converge_shown: bool) -> str:
    lines = []
    for e in table:
        if "median" not in e:
            cells = [e["tool"], str(e["n"]), e["scenario"], "0", e["status"]]
            lines.append((e["shape"], tuple(cells + [""] * (len(HEADER) - len(cells)))))
            continue
        validators = "-"
        if "validators" in e:
            validators = str(e["validators"]) + (
                f" ({e['validators_detail']})" if e["validators_detail"] else ""
            )
        converge = ""
        if converge_shown:
            converge = e.get("converge", "-") if e["tool"] == "system-recipes" else "-"
        cells = [
            e["tool"],
            str(e["n"]),
            e["scenario"],
            str(e["runs"]),
            f"{e['median']:.3f}",
            f"{e['min']:.3f}",
            f"{e['max']:.3f}",
            converge,
            f"{e['rss_mb']:.1f}",
            str(e["files"]),
            e["reported"] or "-",
            validators,
            f"{e['ratio']:.1f}" if "ratio" in e else "-",
        ]
        lines.append((e["shape"], tuple(cells)))
    widths = [
        max(len(h), *(len(line[i]) for _, line in lines)) if lines else len(h)
        for i, h in enumerate(HEADER)
    ]
    out: list[str] = []
    previous: tuple | None = None
    for shape, line in lines:
        if previous is None or shape != previous[0]:
            out += [
                "",
                f"shape {shape}: {SHAPE_TITLES.get(shape, shape)}",
                "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)),
                "  ".join("-" * w for w in widths),
            ]
        elif line[1] != previous[1]:
            out.append("")
        previous = (shape, line[1])
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(notes + out)


def _median(table: list[dict], shape: str, tool: str, n: int, scenario: str) -> float | None:
    for e in table:
        if (e["shape"], e["tool"], e["n"], e["scenario"]) == (shape, tool, n, scenario):
            return e.get("median")
    return None


def targets(table: list[dict]) -> list[str]:
    """Issue 15's targets, each ``target ...: measured ... PASS/MISS`` (``n/a`` and what is
    missing when this run did not measure it). Medians of the meta shape unless named."""
    lines = []

    def ratio_line(text: str, measured: tuple | None, passes, unit: str = "x") -> None:
        if measured is None:
            lines.append(f"target {text}: not measured in this run n/a")
            return
        value, detail = measured
        verdict = "PASS" if passes(value) else "MISS"
        lines.append(f"target {text}: measured {value:.1f}{unit} ({detail}) {verdict}")

    def faster(n_sr: int, n_peer: int, scenario: str, peer: str = "salt") -> tuple | None:
        sr = _median(table, "meta", "system-recipes", n_sr, scenario)
        other = _median(table, "meta", peer, n_peer, scenario)
        if sr is None or other is None:
            return None
        return other / sr, f"{sr:.3f} s vs {peer} {other:.3f} s"

    def growth(shape: str, tool: str, scenario: str) -> tuple | None:
        small = _median(table, shape, tool, 100, scenario)
        large = _median(table, shape, tool, 1000, scenario)
        if small is None or large is None:
            return None
        return large / small, f"{large:.3f} s at N=1000 vs {small:.3f} s at N=100"

    ratio_line("N=100 no-op >= 4x faster than Salt", faster(100, 100, "noop"), lambda v: v >= 4)
    ratio_line(
        "N=100 first run >= 2x faster than Salt", faster(100, 100, "first"), lambda v: v >= 2
    )
    ratio_line(
        "N=100 one change >= 2x faster than Salt", faster(100, 100, "change"), lambda v: v >= 2
    )
    ratio_line("N=1000 no-op >= 8x faster than Salt", faster(1000, 1000, "noop"), lambda v: v >= 8)
    ratio_line(
        "N=1000 no-op <= 10x own N=100 no-op",
        growth("meta", "system-recipes", "noop"),
        lambda v: v <= 10,
    )
    # the issue's title scopes the memory target: "a no-op run of ... 1000 in two, in under
    # 80 MB"; a full run's peak is printed beside it, with no target (buildout's import and its
    # own load of a 1000-service configuration already reach ~70 MB before any recipe runs)
    peaks = {
        e["scenario"]: e["rss_mb"]
        for e in table
        if (e["shape"], e["tool"], e["n"]) == ("meta", "system-recipes", 1000) and "rss_mb" in e
    }
    if "noop" in peaks:
        verdict = "PASS" if peaks["noop"] <= 80 else "MISS"
        lines.append(
            f"target N=1000 no-op peak RSS <= 80 MB: measured {peaks['noop']:.1f} MB {verdict}"
        )
    else:
        lines.append("target N=1000 no-op peak RSS <= 80 MB: not measured in this run n/a")
    full = [
        f"{scenario} {peaks[scenario]:.1f} MB"
        for scenario in ("first", "change", "plan")
        if scenario in peaks
    ]
    if full:
        lines.append(f"(no target) N=1000 full runs' peak RSS: {', '.join(full)}")
    ratio_line(
        "explicit N=1000 no-op <= 12x its N=100 no-op",
        growth("explicit", "system-recipes", "noop"),
        lambda v: v <= 12,
    )
    converge = floor = None
    for e in table:
        if (e["shape"], e["n"], e["scenario"]) == ("meta", 100, "noop"):
            if e["tool"] == "system-recipes" and e.get("converge") not in (None, "failed"):
                converge = float(e["converge"])
            if e["tool"] == "floor":
                floor = e.get("median")
    ratio_line(
        "converge no-op at N=100 <= 3x the floor's no-op",
        (converge / floor, f"{converge:.3f} s vs floor {floor:.3f} s")
        if converge and floor
        else None,
        lambda v: v <= 3,
    )
    return lines


def write_csv(path: str, rows: list[Row], stand_ins: list[str]) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.tool,
                    r.shape,
                    r.n,
                    r.scenario,
                    r.run,
                    "" if r.wall is None else f"{r.wall:.6f}",
                    "" if r.maxrss_kb is None else r.maxrss_kb,
                    "" if r.files is None else r.files,
                    r.reported,
                    "" if r.validators is None else r.validators,
                    r.validators_detail,
                    r.status,
                    r.note,
                    " ".join(stand_ins),
                ]
            )
