"""Issue 5's benchmark: export / restore / snapshot of 1,000,000 x 384 records with metadata and documents,
side by side with numpy.save / numpy.load (with fsync) of the same vectors and a json.dumps export of the
same records. Called by bench/run_backup.sh; run from the repository root:

    bench/.venv/bin/python bench/py/backup_bench.py [--n 1000000] [--no-doc]

Every Sextant step is a fresh `sextant` process under /usr/bin/time -v (peak RSS). Throughput is bytes of
vectors (and records) per second of wall time; the export and restore rows include metadata and
documents, so they do more work than the numpy rows, which write and read the vectors only.
Benchmarks are not tests: nothing here fails on a figure.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

from common import du_bytes as du

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
PY = "bench/.venv/bin/python"
SEXTANT = ".build-bench/release/sextant"
DOC = "Docs/Benchmarks.md"
MB = 1e6
ROUNDS = 3
COMMANDS = []


def log(msg):
    print(f"[backup] {msg}", file=sys.stderr, flush=True)


def run(cmd, *, timed=True, check=True):
    shown = " ".join((["/usr/bin/time -v"] if timed else []) + cmd)
    if shown not in COMMANDS:
        COMMANDS.append(shown)
    tfile = "bench/data/.time-backup.txt"
    full = (["/usr/bin/time", "-v", "-o", tfile] if timed else []) + cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and p.returncode != 0:
        sys.stderr.write(p.stderr[-3000:])
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    info = {"wall_s": wall}
    if timed:
        text = open(tfile).read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        info["max_rss_bytes"] = int(m.group(1)) * 1024 if m else None
    return p.stdout, p.stderr, info


def prepare(data, n, d, seed):
    vec = f"{data}/base.f32.npy"
    rec = f"{data}/records.jsonl"
    if os.path.exists(vec) and os.path.exists(rec) and np.load(vec, mmap_mode="r").shape == (n, d):
        return vec, rec
    os.makedirs(data, exist_ok=True)
    log(f"generating {n} x {d} vectors and records (seed {seed})")
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(vec + ".tmp", mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - s), d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + len(x)] = x
    out.flush()
    del out
    os.replace(vec + ".tmp", vec)
    sections = ["games", "libs", "net", "doc", "admin", "sound", "utils", "web"]
    with open(rec + ".tmp", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "metadata": {"section": sections[i % 8], "size": (i * 7919) % 100000,
                                                      "tags": ["t%d" % (i % 13), "u%d" % (i % 7)], "ok": i % 3 == 0},
                                "document": f"package {i} provides tools for {sections[i % 8]} work, version {i % 97}"}) + "\n")
    os.replace(rec + ".tmp", rec)
    return vec, rec


def numpy_rows(vec, work):
    """numpy.save (+ fsync), numpy.load, and numpy.load + numpy.save + fsync (what a durable restore does:
    read the vectors, write them durably elsewhere) of the same vectors, in a fresh process each."""
    code_save = f"""
import numpy as np, os, time, json
x = np.load({vec!r})  # read into memory first: the timing is the write
t = time.perf_counter()
with open({work!r} + '/np.npy', 'wb') as f:
    np.save(f, x); f.flush(); os.fsync(f.fileno())
print(json.dumps({{"s": time.perf_counter() - t, "bytes": x.nbytes}}))
"""
    code_load = f"""
import numpy as np, time, json
t = time.perf_counter()
x = np.load({work!r} + '/np.npy')
s = float(x[::4096].sum())
print(json.dumps({{"s": time.perf_counter() - t, "bytes": x.nbytes}}))
"""
    code_copy = f"""
import numpy as np, os, time, json
t = time.perf_counter()
x = np.load({work!r} + '/np.npy')
with open({work!r} + '/np2.npy', 'wb') as f:
    np.save(f, x); f.flush(); os.fsync(f.fileno())
print(json.dumps({{"s": time.perf_counter() - t, "bytes": x.nbytes}}))
"""
    out = {}
    for name, code in [("numpy_save", code_save), ("numpy_load", code_load), ("numpy_copy", code_copy)]:
        text, _, info = run([PY, "-c", code])
        out[name] = json.loads(text)
        out[name]["max_rss_bytes"] = info["max_rss_bytes"]
    os.remove(f"{work}/np2.npy")
    return out


def merge_rounds(rounds):
    """The median time and the largest peak RSS of repeated runs of one row."""
    times = sorted(r["s"] for r in rounds)
    out = dict(rounds[0])
    out["s"] = times[len(times) // 2]
    out["all_s"] = [round(r["s"], 2) for r in rounds]
    out["max_rss_bytes"] = max(r["max_rss_bytes"] for r in rounds)
    return out


def json_export(vec, rec, work, n):
    """What tools do today: json.dumps of every record, vector as a list, one per line (+ fsync). Timed on
    the first `n` records (at ~1 ms a record the whole million would take a quarter of an hour); the rate
    is what is compared."""
    code = f"""
import numpy as np, json, os, time
x = np.load({vec!r}, mmap_mode='r')
t = time.perf_counter()
with open({rec!r}) as src, open({work!r} + '/dump.jsonl', 'w') as out:
    for i, line in enumerate(src):
        if i == {n}: break
        r = json.loads(line)
        r['vector'] = x[i].tolist()
        out.write(json.dumps(r) + '\\n')
    out.flush(); os.fsync(out.fileno())
print(json.dumps({{"s": time.perf_counter() - t}}))
"""
    out, _, info = run([PY, "-c", code])
    r = json.loads(out)
    r["max_rss_bytes"] = info["max_rss_bytes"]
    r["bytes"] = os.path.getsize(f"{work}/dump.jsonl")
    r["records"] = n
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    n, d = args.n, args.dim
    data = f"bench/data/backup-{n // 1000}k-{d}"
    vec, rec = prepare(data, n, d, 20261121)
    work = f"bench/data/backup-work"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    db = f"{work}/db"
    vector_bytes = n * d * 4
    results = {}

    log("import (not measured here: see bench/run.sh)")
    run([SEXTANT, "create", "b", "--db", db, "--dim", str(d), "--metric", "cosine", "--min-graph-rows", "1000000000"], timed=False)
    run([SEXTANT, "import", "b", vec, "--db", db, "--records", rec, "--batch", "10000"], timed=False)
    _, _, info = run([SEXTANT, "count", "b", "--db", db])
    results["open_footprint_rss"] = info["max_rss_bytes"]
    results["db_bytes"] = du(db)

    log("snapshot")
    out, _, info = run([SEXTANT, "snapshot", "create", "s1", "--db", db, "--json"])
    results["snapshot"] = {"ms": json.loads(out.strip().splitlines()[-1])["ms"], "process_wall_s": info["wall_s"], "max_rss_bytes": info["max_rss_bytes"]}

    def export(name, fmt, comp):
        target = f"{work}/export-{name}"
        shutil.rmtree(target, ignore_errors=True)
        out, _, info = run([SEXTANT, "export", "b", target, "--db", db, "--format", fmt, "--compress", comp, "--progress", "none", "--json"])
        e = json.loads(out.strip().splitlines()[-1])
        return target, {"s": e["seconds"], "bytes": e["bytes"], "max_rss_bytes": info["max_rss_bytes"], "process_wall_s": info["wall_s"]}

    def restore(name, target):
        out, _, info = run([SEXTANT, "restore", target, "--db", db, "--into", f"r-{name}", "--progress", "none", "--json"])
        run([SEXTANT, "drop", f"r-{name}", "--db", db], timed=False)
        r = json.loads(out.strip().splitlines()[-1])
        return {"s": r["seconds"], "max_rss_bytes": info["max_rss_bytes"], "process_wall_s": info["wall_s"]}

    # The rows the targets judge run ROUNDS times, alternating, and report the median: one disk, timings noisy.
    rounds = {k: [] for k in ["export-npy", "restore-npy", "numpy_save", "numpy_load", "numpy_copy"]}
    for i in range(ROUNDS):
        log(f"round {i + 1}/{ROUNDS}: export npy, restore npy, numpy.save / numpy.load / numpy.load + save")
        target, e = export("npy", "npy", "none")
        rounds["export-npy"].append(e)
        rounds["restore-npy"].append(restore("npy", target))
        for k, v in numpy_rows(vec, work).items():
            rounds[k].append(v)
        os.remove(f"{work}/np.npy")
        if i < ROUNDS - 1:
            shutil.rmtree(target, ignore_errors=True)
    for k, v in rounds.items():
        results[k] = merge_rounds(v)
    shutil.rmtree(f"{work}/export-npy", ignore_errors=True)

    for name, fmt, comp in [("npy-zstd", "npy", "zstd"), ("npy-gzip", "npy", "gzip"), ("jsonl", "jsonl", "none")]:
        log(f"export {name}")
        target, results[f"export-{name}"] = export(name, fmt, comp)
        if name != "npy-gzip":
            log(f"restore {name}")
            results[f"restore-{name}"] = restore(name, target)
        shutil.rmtree(target, ignore_errors=True)

    log("json.dumps export")
    results["json_dumps"] = json_export(vec, rec, work, min(n, 100_000))
    os.remove(f"{work}/dump.jsonl")

    # Report.
    machine = f"{platform.machine()}, {os.cpu_count()} vCPUs, Linux {platform.release()}; {subprocess.run(['swift', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}; numpy {np.__version__}"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    base = results["open_footprint_rss"]
    nps, npl, npc, jd = results["numpy_save"], results["numpy_load"], results["numpy_copy"], results["json_dumps"]
    rows = []
    def row(label, secs, rss, target="", met=""):
        vmbs = vector_bytes / secs / MB
        rows.append(f"| {label} | {secs:.2f} s | {vmbs:,.0f} MB/s | {n / secs:,.0f} | {rss / MB:,.0f} MB (+{(rss - base) / MB:,.0f}) | {target} | {met} |")
    def runs(r):
        return f" (runs: {', '.join(f'{x:.2f}' for x in r['all_s'])} s)" if "all_s" in r else ""
    row("numpy.save + fsync (vectors only)" + runs(nps), nps["s"], nps["max_rss_bytes"])
    row("numpy.load (vectors only)" + runs(npl), npl["s"], npl["max_rss_bytes"])
    row("numpy.load + numpy.save + fsync (vectors only: a durable copy)" + runs(npc), npc["s"], npc["max_rss_bytes"])
    for k in ["npy", "npy-zstd", "npy-gzip", "jsonl"]:
        r = results[f"export-{k}"]
        ratio = nps["s"] / r["s"]
        row(f"sextant export --format {k.split('-')[0]}{' --compress ' + k.split('-')[1] if '-' in k else ''} (vectors + metadata + documents)" + runs(r),
            r["s"], r["max_rss_bytes"], f"{ratio:.2f}× numpy.save" + (" (≥ 0.7×)" if k == "npy" else ""),
            ("**yes**" if ratio >= 0.7 else "**no**") if k == "npy" else "")
    for k in ["npy", "npy-zstd", "jsonl"]:
        r = results[f"restore-{k}"]
        ratio, ratio_copy = npl["s"] / r["s"], npc["s"] / r["s"]
        text = f"{ratio:.2f}× numpy.load; {ratio_copy:.2f}× numpy.load + save + fsync" + (" (≥ 0.7×)" if k == "npy" else "")
        met = (f"vs load: {'**yes**' if ratio >= 0.7 else '**no**'}; vs durable copy: {'**yes**' if ratio_copy >= 0.7 else '**no**'}") if k == "npy" else ""
        row(f"sextant restore of the {k} export (new collection, durable)" + runs(r), r["s"], r["max_rss_bytes"], text, met)
    jd_full = jd["s"] * n / jd["records"]  # the measured rate, over all the records
    jr = jd_full / results["export-npy"]["s"]
    row(f"json.dumps export of the same records (+ fsync; rate of the first {jd['records']:,}, scaled)", jd_full, jd["max_rss_bytes"],
        f"Sextant npy export is {jr:.1f}× faster (≥ 10×)", "**yes**" if jr >= 10 else "**no**")
    snap = results["snapshot"]
    max_extra = max(results[k]["max_rss_bytes"] for k in results if k.startswith(("export-", "restore-"))) - base
    table = "\n".join([
        "| operation | time | vector MB/s | records/s | peak RSS (above open) | ratio | met |",
        "|---|---:|---:|---:|---:|---|---|",
    ] + rows)
    summary = (f"Snapshot create of the {n:,}-record collection: {snap['ms']:.0f} ms inside the process "
               f"({snap['process_wall_s']:.2f} s with process start, open and close) — target ≤ 1 s: "
               f"{'**yes**' if snap['ms'] <= 1000 else '**no**'}. Peak RSS of any export or restore above the database's "
               f"open footprint ({base / MB:.0f} MB, `sextant count`): {max_extra / MB:.0f} MB — target ≤ 256 MB: "
               f"{'**yes**' if max_extra <= 256e6 else '**no**'}. Database on disk: {results['db_bytes'] / MB:,.0f} MB.")
    section = f"""
## {datetime.date.today().isoformat()} — issue 5, export / restore / snapshot: `bash bench/run_backup.sh`

Machine: {machine}. Sextant at commit {commit}. Data: {n:,} × {d} float32 (normalized Gaussian, seed 20261121) with
metadata (4 fields) and a one-line document per record; vectors alone are {vector_bytes / MB:,.0f} MB. Each row is one
fresh process under `/usr/bin/time -v` (peak RSS); times are measured inside the process (Sextant: the export or
restore call, after the database is open; numpy: after the interpreter starts), the judged rows as the median of
{ROUNDS} alternating runs. "vector MB/s" is vector bytes over the row's time, so the Sextant rows, which also write or
read metadata and documents (and a restore builds the BM25 index of the documents), are held to the numpy rows'
measure. A restore reads the export and writes a durable database, so besides numpy.load (which writes nothing) it is
compared with numpy.load + numpy.save + fsync, the same read-then-durably-write of the vectors.

{table}

{summary}

Commands:

```
{chr(10).join(COMMANDS)}
```
"""
    print(section)
    os.makedirs("bench/results", exist_ok=True)
    with open(f"bench/results/backup-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json", "w") as f:
        json.dump(results, f, indent=1)
    if not args.no_doc:
        with open(DOC, "a") as f:
            f.write(section)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
