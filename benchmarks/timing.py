"""Timing shared by the benchmarks: wall and CPU time of one call, and the machine's load.

CPU time is printed beside the wall time because on a shared machine the wall time also measures
the neighbours."""

import os
import time


def timed(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def load_average() -> float:
    return os.getloadavg()[0]
