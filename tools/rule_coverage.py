"""Which room rules (../shared/spec/room-rules.md, or the path given) have a test
named after them (``test_R_<AREA>_<NN>_...``).

    python tools/rule_coverage.py [path/to/room-rules.md]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    spec = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "spec" / "room-rules.md"
    rules = sorted(set(re.findall(r"\*\*(R-[A-Z]+-\d\d)", spec.read_text())))
    tested: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for name in re.findall(r"def (test_R_[A-Z]+_\d\d\w*)", path.read_text()):
            # test_R_STR_02_R_SUB_01_...: every (area, numbers) group the name lists
            for area, nums in re.findall(r"R_([A-Z]+)_((?:\d\d_?)+)", name):
                for num in re.findall(r"\d\d", nums):
                    tested.setdefault(f"R-{area}-{num}", []).append(f"{path.name}::{name}")
    covered = [r for r in rules if r in tested]
    print(f"{len(covered)} of {len(rules)} rules have a named test")
    try:
        for rule in rules:
            mark = "x" if rule in tested else " "
            print(f"[{mark}] {rule}" + (f"  {tested[rule][0]}" if rule in tested else ""))
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
