"""Cost of keyword fields: ``get_logger(name).info(msg, **fields)`` against ``extra=``.

Both calls write the same line through logging_config's formatter to /dev/null; CPU time per
record, rounds interleaved, best and median reported.

    python bench/keyword_logger.py --records 20000 --rounds 7
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import logging_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with open("/dev/null", "w") as sink:
        logging_config.configure(service="bench", stream=sink)
        plain = logging.getLogger("bench.extra")
        keywords = logging_config.get_logger("bench.keywords")

        def with_extra() -> None:
            for _ in range(args.records):
                plain.info("Company created", extra={"plan": "pro", "seats": 3, "region": "eu"})

        def with_keywords() -> None:
            for _ in range(args.records):
                keywords.info("Company created", plan="pro", seats=3, region="eu")

        results: dict[str, list[float]] = {"extra=": [], "keywords": []}
        with logging_config.context(request_id="r-1", user_id="u-1", company_id="c-1"):
            for _ in range(args.rounds):
                for name, fn in (("extra=", with_extra), ("keywords", with_keywords)):
                    start = time.process_time()
                    fn()
                    results[name].append((time.process_time() - start) / args.records * 1e6)
    print(f"{args.records} records x {args.rounds} rounds, µs per record (best / median)")
    for name, values in results.items():
        print(f"{name:10} {min(values):7.2f} {statistics.median(values):7.2f}")


if __name__ == "__main__":
    main()
