"""``make bench``'s figures, goals and tables: each entry's repetitions summed up as
min/median/max, every goal judged on its worst repetition, and the same tables as text and
as docs/benchmarks.md's Markdown.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

# (job, contender, reference, measure, bound): adpipe's rows/s over the reference's must be at
# least the bound; its peak memory over the reference's at most the bound
GOALS = [
    ("load", "adpipe", "copy-ceiling", "rows_per_s", 0.7),
    ("api-load", "adpipe", "copy-ceiling", "rows_per_s", 0.45),
    ("load", "adpipe", "dlt-merge", "rows_per_s", 3.0),
    ("api-load", "adpipe", "dlt-rest-api", "rows_per_s", 3.0),
    ("api-load", "adpipe", "insert_rows", "rows_per_s", 2.5),
    ("extract", "adpipe", "fetch-ceiling", "rows_per_s", 0.8),
    ("archive", "adpipe", "export-only", "rows_per_s", 0.8),
    ("archive", "adpipe", "sql_to_s3", "rows_per_s", 3.0),
    ("archive", "adpipe", "sql_to_s3", "peak_mb", 0.25),
]
# from 1M to 10M rows, every adpipe job's time per row and peak memory grow at most this much
SCALING = ("1M", "10M", {"time per row": 1.1, "peak MB": 1.2})
JOBS = ("api-load", "extract", "load", "archive")
FIGURES = ("seconds", "wall_seconds", "peak_mb")


def spread(values: list[Any]) -> dict[str, Any]:
    """min/median/max of a figure's repetitions; None throughout for a figure not measured
    (peak memory, where the quick bench may not weigh)."""
    if any(v is None for v in values):
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def entry(
    job: str, size: str, contender: str, runs: list[dict[str, Any]], rows: int, expected: int
) -> dict[str, Any]:
    """One line of the results: a contender's repetitions of one job at one size.

    ``runs`` hold each repetition's ``seconds`` (the work, as the process reported it),
    ``wall_seconds`` (the whole process), ``peak_mb`` (its cgroup's anonymous memory) and
    ``rows`` (as the process reported them); ``rows`` is the job's rows at this size, the
    unit of rows/s for every contender; ``expected`` what each repetition had to report.
    """
    figures = {name: spread([r[name] for r in runs]) for name in FIGURES}
    seconds = figures["seconds"]
    phases = [r["phase_seconds"] for r in runs if r.get("phase_seconds")]
    names = list(dict.fromkeys(n for p in phases for n in p))
    return {
        "job": job,
        "size": size,
        "contender": contender,
        "rows": rows,
        "rows_reported": runs[-1]["rows"],
        "rows_expected": expected,
        "repetitions": len(runs),
        **figures,
        "rows_per_s": {
            "min": round(rows / seconds["max"]),
            "median": round(rows / seconds["median"]),
            "max": round(rows / seconds["min"]),
        },
        "phase_seconds": {
            n: round(statistics.median(p[n] for p in phases if n in p), 3) for n in names
        },
        "runs": runs,
    }


@dataclass(frozen=True)
class Goal:
    what: str
    median: float  # adpipe's median repetition against the reference's median
    worst: float  # adpipe's worst repetition against the reference's median
    bound: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.worst >= self.bound if self.at_least else self.worst <= self.bound

    def verdict(self) -> str:
        if self.met:
            return "met"
        short = self.bound / self.worst if self.at_least else self.worst / self.bound
        return f"missed by {short:.2f}x"


def goals(results: list[dict[str, Any]]) -> list[Goal]:
    """Every goal the results can judge, each on adpipe's worst repetition (its slowest, or
    its highest peak) against the reference's median."""

    def one(job: str, contender: str, size: str) -> dict[str, Any] | None:
        found = [
            r for r in results if (r["job"], r["contender"], r["size"]) == (job, contender, size)
        ]
        return found[0] if found else None

    judged = []
    sizes = list(dict.fromkeys(r["size"] for r in results))
    for job, mine, reference, measure, bound in GOALS:
        for size in sizes:
            a, b = one(job, mine, size), one(job, reference, size)
            if not a or not b:
                continue
            if measure == "rows_per_s":
                per_row = b["seconds"]["median"] / b["rows"]
                median = per_row / (a["seconds"]["median"] / a["rows"])
                worst = per_row / (a["seconds"]["max"] / a["rows"])
                what = f"{job} {size}: rows/s {mine} / {reference}"
            elif a["peak_mb"]["median"] is None or b["peak_mb"]["median"] is None:
                continue  # not weighed
            else:
                median = a["peak_mb"]["median"] / b["peak_mb"]["median"]
                worst = a["peak_mb"]["max"] / b["peak_mb"]["median"]
                what = f"{job} {size}: peak MB {mine} / {reference}"
            judged.append(Goal(what, median, worst, bound, measure == "rows_per_s"))
    small, large, bounds = SCALING
    for job in JOBS:
        a, b = one(job, "adpipe", small), one(job, "adpipe", large)
        if not a or not b:
            continue
        per_row = a["seconds"]["median"] / a["rows"]
        grew = {
            "time per row": (
                b["seconds"]["median"] / b["rows"] / per_row,
                b["seconds"]["max"] / b["rows"] / per_row,
            ),
            "peak MB": (
                b["peak_mb"]["median"] / a["peak_mb"]["median"],
                b["peak_mb"]["max"] / a["peak_mb"]["median"],
            ),
        }
        for measure, (median, worst) in grew.items():
            what = f"{job}: {measure} {large} / {small}"
            judged.append(Goal(what, median, worst, bounds[measure], False))
    return judged


def megabytes(peak: float | None) -> str:
    return "not weighed" if peak is None else f"{peak:.0f} MB"


def _span(figure: dict[str, Any], digits: int = 2) -> str:
    if figure["median"] is None:
        return "-"
    return (
        f"{figure['min']:.{digits}f} / {figure['median']:.{digits}f} / {figure['max']:.{digits}f}"
    )


def table(results: list[dict[str, Any]]) -> list[Goal]:
    """Print every result (min / median / max of each figure), where adpipe's time goes, and
    every goal; returns the goals missed."""
    print(
        f"\n{'job':<9}{'size':>5}  {'contender':<20}{'rows':>10}  {'seconds min/med/max':<22}"
        f"{'wall med':>9}{'rows/s med':>11}  peak MB min/med/max"
    )
    for r in results:
        print(
            f"{r['job']:<9}{r['size']:>5}  {r['contender']:<20}{r['rows']:>10}  "
            f"{_span(r['seconds']):<22}{r['wall_seconds']['median']:>9.2f}"
            f"{r['rows_per_s']['median']:>11}  {_span(r['peak_mb'], 0)}"
        )
    print("\nwhere adpipe's time goes (median seconds per phase, from the jobs' summaries):")
    for r in results:
        if r["contender"] == "adpipe" and r["phase_seconds"]:
            spent = ", ".join(f"{n} {v:.2f}" for n, v in r["phase_seconds"].items())
            print(f"  {r['job']} {r['size']} ({r['seconds']['median']:.2f} s): {spent}")
    judged = goals(results)
    print(f"\n{'goal':<46}{'median':>8}{'worst':>8}{'bound':>8}  verdict (on the worst)")
    for goal in judged:
        bound = f"{'>=' if goal.at_least else '<='}{goal.bound:.2f}"
        print(f"{goal.what:<46}{goal.median:>8.2f}{goal.worst:>8.2f}{bound:>8}  {goal.verdict()}")
    return [goal for goal in judged if not goal.met]


def markdown(report: dict[str, Any]) -> str:
    """The results and goals as Markdown tables, as docs/benchmarks.md shows them."""
    lines = [
        "| job | size | contender | rows | seconds min / median / max | wall s (median) "
        "| rows/s (median) | peak MB min / median / max |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['job']} | {r['size']} | {r['contender']} | {r['rows']:,} | "
            f"{_span(r['seconds'])} | {r['wall_seconds']['median']:.2f} | "
            f"{r['rows_per_s']['median']:,} | {_span(r['peak_mb'], 0)} |"
        )
    lines += [
        "",
        "| goal | ratio (median) | ratio (worst) | bound | met |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for goal in goals(report["results"]):
        bound = f"{'≥' if goal.at_least else '≤'} {goal.bound:.2f}"
        verdict = "yes" if goal.met else f"**no**, {goal.verdict()}"
        lines.append(
            f"| {goal.what} | {goal.median:.2f} | {goal.worst:.2f} | {bound} | {verdict} |"
        )
    return "\n".join(lines)
