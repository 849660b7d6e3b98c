"""`streamworker bench`: baselines, the executor (cold and warm) and the pipeline end to
end, interleaved in one process, with issue 6's targets checked from the same run.

Entry point: `streamworker.bench.runner.run_bench(settings, BenchOptions(...))`; the CLI's
arguments are in `cli_args`. Nothing is imported here, so `cli.py` can build its parser
from `cli_args` without loading Docker and Kafka clients. See docs/benchmarks.md.
"""
