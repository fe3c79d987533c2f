"""`make bench`: run every benchmark module, or those named on the command line."""
import importlib
import sys

BENCHMARKS = ["booking"]


def main(names: list[str]) -> int:
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
