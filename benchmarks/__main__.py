"""`make bench`: run every benchmark module, or those named on the command line.

`--quick` (or BENCH_QUICK=1): the SIP load benchmarks run a small smoke version (under a minute each).
"""
import importlib
import os
import sys

BENCHMARKS = ["booking", "agi_routing", "provisioning", "web", "console"]


def main(names: list[str]) -> int:
    if "--quick" in names:
        os.environ["BENCH_QUICK"] = "1"
        names = [n for n in names if n != "--quick"]
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
