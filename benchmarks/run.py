"""`make bench`: speed figures, written to benchmarks/results/ (never asserted by tests).

Run all: `python -m benchmarks.run`; one: `python -m benchmarks.run lab`.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = ["lab", "storage", "provision", "backup", "collect", "forecast", "fleet", "manage", "multisite", "watch", "dr",
          "containers"]


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{name}: {json.dumps(data)}")
    return path


def main(argv: list[str]) -> int:
    for suite in argv or SUITES:
        importlib.import_module(f"benchmarks.bench_{suite}").run(write_result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
