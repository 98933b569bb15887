"""Markdown table of suite runs side by side (the README's main table).

    benchmarks/.venv/bin/python benchmarks/python/suite_table.py sf1 sf10 sf100

reads benchmarks/results/<LABEL>.json and prints, per query, each Seglake
engine's median and its ratio to DuckDB's median in the same run (bold
above 2x), then the geometric means and every engine's peak RSS.
"""

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
SEGLAKE = ("seglake-flight", "seglake-inproc")
SHORT = {"seglake-flight": "flight", "seglake-inproc": "in-process"}


def ms(seconds):
    v = seconds * 1000
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def mib(n):
    return "" if n is None else f"{n / 2**20:.0f} MiB"


def ratio(r):
    return f"**{r:.2f}**" if r > 2 else f"{r:.2f}"


def main(labels):
    if not labels:
        sys.exit(__doc__)
    runs = [(l, json.loads((RESULTS / f"{l}.json").read_text())) for l in labels]
    # (label, run, engine) for each Seglake engine a run measured.
    cols = [
        (l, r, e)
        for l, r in runs
        for e in SEGLAKE
        if any(x["name"] == e for x in r["engines"])
    ]
    head = [f"{l} {SHORT[e]} | ratio" for l, _, e in cols]
    print("| query | " + " | ".join(head) + " |")
    print("|---|" + "---:|---:|" * len(cols))
    names = [(q["name"], q["title"]) for q in runs[0][1]["queries"]]
    for name, title in names:
        cells = []
        for l, r, e in cols:
            q = next((q for q in r["queries"] if q["name"] == name), None)
            if q is None or q["engines"][e]["summary"] is None:
                cells.append(" | ")
                continue
            s = q["engines"][e]["summary"]["median"]
            d = q["engines"]["duckdb"]["summary"]["median"]
            cells.append(f"{ms(s)} | {ratio(s / d)}")
        short = title.split(":")[0].lower()
        print(f"| {name[:3]} {short} | " + " | ".join(cells) + " |")
    print(
        "| **geometric mean** | "
        + " | ".join(
            f"**{ms(r['geomean_seconds'][e])}** | **{r['geomean_ratio'][e]:.2f}**"
            for _, r, e in cols
        )
        + " |"
    )
    print(
        "| DuckDB geometric mean | "
        + " | ".join(f"{ms(r['geomean_seconds']['duckdb'])} | " for _, r, _ in cols)
        + " |"
    )

    def rss(r, name):
        return next(x["peak_rss_bytes"] for x in r["engines"] if x["name"] == name)

    print("| peak RSS | " + " | ".join(f"{mib(rss(r, e))} | " for _, r, e in cols) + " |")
    print(
        "| DuckDB peak RSS | "
        + " | ".join(f"{mib(rss(r, 'duckdb'))} | " for _, r, _ in cols)
        + " |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
