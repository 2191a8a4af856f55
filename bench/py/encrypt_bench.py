"""Issue 10 item 7's measurement: what encryption costs exports, backups, snapshot archives and restores.
200,000 x 384 float32 vectors (307 MB) with small metadata and documents are imported once; then each
operation runs with and without `--encrypt` (AES-256-GCM, 1 MiB chunks), alternating, ROUNDS times, in a
fresh `sextant` process each, and the medians are compared. Called by bench/run_encrypt.sh; run from the
repository root:

    bench/.venv/bin/python bench/py/encrypt_bench.py [--n 200000] [--rounds 3]

Benchmarks are not tests: nothing here fails on a figure.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
SEXTANT = ".build-bench/release/sextant"


def log(msg):
    print(f"[encrypt] {msg}", file=sys.stderr, flush=True)


RSS = {}
CPU = []


def run(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns the wall seconds, keeps the peak RSS by command name and
    the CPU seconds (user + system) of the last command in CPU[-1]. CPU time is the steadier figure on a
    shared machine: wall time there moves with the other processes."""
    tfile = "bench/data/.time-encrypt.txt"
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", tfile] + cmd, capture_output=True, text=True,
                       env={**os.environ, "SEXTANT_BACKUP_KEY": "", **(env or {})})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-3000:])
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    rss, user, system = open(tfile).read().split()[-3:]
    RSS[" ".join(cmd)] = int(rss) * 1024
    CPU.append(float(user) + float(system))
    return wall


def prepare(data, n, d):
    vec, rec = f"{data}/base.f32.npy", f"{data}/records.jsonl"
    if os.path.exists(vec) and os.path.exists(rec) and np.load(vec, mmap_mode="r").shape == (n, d):
        return vec, rec
    os.makedirs(data, exist_ok=True)
    log(f"generating {n} x {d} vectors and records")
    rng = np.random.default_rng(10)
    np.save(vec, rng.standard_normal((n, d), dtype=np.float32))
    with open(rec, "w") as f:
        for i in range(n):
            f.write(json.dumps({"metadata": {"group": "g%d" % (i % 50), "n": i}, "document": f"record {i} of the benchmark"}) + "\n")
    return vec, rec


def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = f"bench/data/encrypt-{args.n}x{args.d}"
    vec, rec = prepare(data, args.n, args.d)
    work = f"bench/data/encrypt-work-{args.n}x{args.d}"
    db = f"{work}/db"
    key = f"{work}/bench.key"
    if not os.path.exists(f"{work}/imported"):  # the database is kept between runs (the import is slow)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        run([SEXTANT, "keygen", key])
        log("importing")
        run([SEXTANT, "create", "b", "--db", db, "--dim", str(args.d), "--metric", "cosine"])
        # Waits for the graphs: a later open would otherwise build them in the background during the timings.
        run([SEXTANT, "import", "b", vec, "--db", db, "--records", rec, "--batch", "10000", "--progress", "none"])
        run([SEXTANT, "snapshot", "create", "s", "--db", db])
        open(f"{work}/imported", "w").close()
    for name in os.listdir(work):
        if name not in ("db", "bench.key", "imported"):
            shutil.rmtree(f"{work}/{name}") if os.path.isdir(f"{work}/{name}") else os.remove(f"{work}/{name}")

    ops = {
        "export (npy)": lambda out, k: [SEXTANT, "export", "b", out, "--db", db, "--progress", "none"] + k,
        "export (npy, gzip)": lambda out, k: [SEXTANT, "export", "b", out, "--db", db, "--compress", "gzip", "--progress", "none"] + k,
        "backup (full)": lambda out, k: [SEXTANT, "backup", out, "--db", db] + k,
        "snapshot archive": lambda out, k: [SEXTANT, "snapshot", "archive", "s", out, "--db", db] + k,
    }
    results = {}
    for name, make in ops.items():
        times = {"plain": [], "encrypted": []}
        cpu = {"plain": [], "encrypted": []}
        size = {}
        for r in range(args.rounds):
            for mode in ["plain", "encrypted"] if r % 2 == 0 else ["encrypted", "plain"]:
                out = f"{work}/out-{mode}" + (".sxa" if "archive" in name else "")
                shutil.rmtree(out, ignore_errors=True) if os.path.isdir(out) else (os.path.exists(out) and os.remove(out))
                times[mode].append(run(make(out, ["--encrypt", key] if mode == "encrypted" else [])))
                cpu[mode].append(CPU[-1])
                size[mode] = du(out)
        results[name] = {m: statistics.median(t) for m, t in times.items()} | {"bytes": size} | {
            "cpu": {m: statistics.median(t) for m, t in cpu.items()}} | {
            "rss": {m: RSS[" ".join(make(f"{work}/out-{m}" + (".sxa" if "archive" in name else ""), ["--encrypt", key] if m == "encrypted" else []))]
                    for m in times}}
        log(f"{name}: plain {results[name]['plain']:.2f} s, encrypted {results[name]['encrypted']:.2f} s")

    # Restores of the last exports, backups and archives written above.
    restores = {
        "restore (export, npy)": (f"{work}/ex-plain", f"{work}/ex-enc",
                                  lambda src, k, i: [SEXTANT, "restore", src, "--db", db, "--into", f"r{i}", "--progress", "none"] + k),
        "restore (backup)": (f"{work}/bk-plain", f"{work}/bk-enc",
                             lambda src, k, i: [SEXTANT, "restore", src, "--db", db, "--into", f"r{i}", "--collection", "b"] + k),
    }
    run([SEXTANT, "export", "b", f"{work}/ex-plain", "--db", db, "--progress", "none"])
    run([SEXTANT, "export", "b", f"{work}/ex-enc", "--db", db, "--progress", "none", "--encrypt", key])
    run([SEXTANT, "backup", f"{work}/bk-plain", "--db", db])
    run([SEXTANT, "backup", f"{work}/bk-enc", "--db", db, "--encrypt", key])
    i = 0
    for name, (plain, enc, make) in restores.items():
        times = {"plain": [], "encrypted": []}
        cpu = {"plain": [], "encrypted": []}
        for r in range(args.rounds):
            for mode in ["plain", "encrypted"] if r % 2 == 0 else ["encrypted", "plain"]:
                i += 1
                times[mode].append(run(make(plain if mode == "plain" else enc, ["--key", key] if mode == "encrypted" else [], i)))
                cpu[mode].append(CPU[-1])
                run([SEXTANT, "drop", f"r{i}", "--db", db])
        results[name] = {m: statistics.median(t) for m, t in times.items()} | {"cpu": {m: statistics.median(t) for m, t in cpu.items()}}
        log(f"{name}: plain {results[name]['plain']:.2f} s, encrypted {results[name]['encrypted']:.2f} s")

    mb = args.n * args.d * 4 / 1e6
    print(f"\n{args.n} x {args.d} float32 ({mb:.0f} MB of vectors), medians of {args.rounds}, wall seconds:\n")
    print("| operation | wall plain | wall encrypted | ratio | CPU plain | CPU encrypted | CPU added per GB | peak RSS plain / encrypted |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        rss = f"{r['rss']['plain'] / 1e6:.0f} / {r['rss']['encrypted'] / 1e6:.0f} MB" if "rss" in r else ""
        c = r["cpu"]
        gb = (r["bytes"]["encrypted"] if "bytes" in r else args.n * args.d * 4) / 1e9
        print(f"| {name} | {r['plain']:.2f} s | {r['encrypted']:.2f} s | {r['encrypted'] / r['plain']:.2f}× | {c['plain']:.2f} s "
              f"| {c['encrypted']:.2f} s | {(c['encrypted'] - c['plain']) / gb:.2f} s | {rss} |")
    os.makedirs("bench/results", exist_ok=True)
    json.dump(results, open("bench/results/encrypt.json", "w"), indent=1)


if __name__ == "__main__":
    main()
