"""Small helpers the benchmark drivers share (imported as `common`: the drivers run as scripts from the
repository root, so bench/py is on sys.path)."""

import json
import os
import statistics


def last_json(text):
    """The last line of `text` that is a JSON object (the drivers' subprocesses print one)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON in output: {text[-500:]}")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def du_bytes(path):
    """Bytes of a file, or of every file below a directory (files vanishing meanwhile are skipped)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total
