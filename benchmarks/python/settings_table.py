"""Markdown table of several settings-sweep runs side by side.

    benchmarks/.venv/bin/python benchmarks/python/settings_table.py 10 default layout-type ...

reads benchmarks/results/sf<SF>-set-<LABEL>.json and prints, per query and
run, the Seglake/DuckDB ratio of the medians and (in parentheses) both
medians in ms, then each run's geomean ratio and geomeans. The README's
settings tables are made with it.
"""

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
SEGLAKE = "seglake-inproc"


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    sf, labels = argv[0], argv[1:]
    runs = {l: json.loads((RESULTS / f"sf{sf}-set-{l}.json").read_text()) for l in labels}
    names = [q["name"] for q in runs[labels[0]]["queries"]]
    print("| query | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for i, name in enumerate(names):
        cells = []
        for l in labels:
            q = runs[l]["queries"][i]
            if q["name"] != name:
                sys.exit(f"{l}: query {i} is {q['name']}, not {name}")
            s = q["engines"][SEGLAKE]["summary"]["median"]
            d = q["engines"]["duckdb"]["summary"]["median"]
            cells.append(f"{s / d:.2f} ({s * 1000:.0f}/{d * 1000:.0f})")
        print(f"| {name[:3]} | " + " | ".join(cells) + " |")
    print(
        "| **geomean ratio** | "
        + " | ".join(f"**{runs[l]['geomean_ratio'][SEGLAKE]:.2f}**" for l in labels)
        + " |"
    )
    print(
        "| Seglake / DuckDB geomean | "
        + " | ".join(
            f"{runs[l]['geomean_seconds'][SEGLAKE] * 1000:.0f} / "
            f"{runs[l]['geomean_seconds']['duckdb'] * 1000:.0f} ms"
            for l in labels
        )
        + " |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
