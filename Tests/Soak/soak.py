#!/usr/bin/env python3
"""A crash soak for the `sextant` CLI: a seeded, mixed workload with SIGKILL at random moments.

Each round runs one operation as a subprocess -- an import (JSON Lines or .npy) in batches, an upsert, a
delete (ids or filter), flush, compact, snapshot create / restore / delete, a full or incremental backup,
a restore from a backup or from an export, an export, dropping the second collection -- and kills it with
SIGKILL at a random moment: immediately, after a random delay, after k acknowledged import batches, or
never. Then it reads the database back with read-only commands and checks it against an exact model:

* every acknowledged write is present with its vector, metadata and document;
* the one unacknowledged import batch in flight is either wholly present or wholly absent;
* an interrupted whole-collection operation (snapshot restore, backup restore, export restore) leaves
  the old state or the new one, never a mix;
* snapshots, backups and exports appear complete or not at all;
* `sextant verify` exits 0.

The model keeps, per collection, a dict id -> (vector, metadata, document). An operation yields the
candidate states the collection may be in afterwards (old and new; for an import, the states after the
acknowledged batches and after one more). The check reads `collections` (count), then `get`s every id on
which the candidates differ plus a random sample, keeps the candidates that agree with everything read,
and requires exactly one. Every --full-every rounds (and at the end) a full `scroll` with vectors is
compared with the model.

Python 3 standard library only. Example:

    python3 Tests/Soak/soak.py --bin .build-release/release/sextant --rounds 1000 --seed 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

SOAK = "soak"  # the collection every write goes to
COPY = "copy"  # restores of backups, exports and snapshots under a new name land here
COLLECTIONS = (SOAK, COPY)

INT_IDS = 2000  # integer ids 0..1999
STRING_IDS = 200  # string ids k0..k199
GROUPS = 10  # metadata "g" in 0..9, for deletes by filter
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")

HANG_SECONDS = 300  # an operation running longer than this is a failure (a hang)

# A record as the model keeps it: (vector, canonical metadata JSON, document or None).
Record = tuple
State = dict  # id (int or str) -> Record


class SoakFailure(Exception):
    """The database disagrees with the model (or a command failed when it must not)."""


# --------------------------------------------------------------------------------------------------
# Running the CLI


@dataclass
class KillPlan:
    """When to SIGKILL an operation: after `delay` seconds, or after `after_acks` "committed" lines
    (then `delay` more seconds). `None` as the plan means never."""

    label: str
    delay: float = 0.0
    after_acks: Optional[int] = None


@dataclass
class RunResult:
    args: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    kill_sent: bool  # we sent SIGKILL while the process was running

    @property
    def killed(self) -> bool:
        """The kill landed: the process died of it, mid-operation."""
        return self.kill_sent and self.returncode == -signal.SIGKILL

    def committed(self) -> list[int]:
        return [int(line.split()[1]) for line in self.stdout.splitlines() if line.startswith("committed ")]

    def describe(self) -> str:
        status = "KILLED" if self.killed else f"exit {self.returncode}"
        text = f"$ sextant {' '.join(self.args)}\n  -> {status} after {self.seconds:.3f}s"
        if self.stdout.strip():
            text += "\n  stdout: " + _tail(self.stdout)
        if self.stderr.strip():
            text += "\n  stderr: " + _tail(self.stderr)
        return text


def _tail(text: str, limit: int = 600) -> str:
    text = text.strip().replace("\n", "\n          ")
    return text if len(text) <= limit else "…" + text[-limit:]


class Sextant:
    """Runs `sextant --db DB …`, optionally killing it by a KillPlan, and keeps a log of the commands."""

    def __init__(self, binary: str, db: str):
        self.binary = binary
        self.db = db
        self.env = dict(os.environ)
        self.log: list[str] = []  # the current round's commands and results

    def set_memtable_bytes(self, value: Optional[int]) -> None:
        if value is None:
            self.env.pop("SEXTANT_MEMTABLE_BYTES", None)
        else:
            self.env["SEXTANT_MEMTABLE_BYTES"] = str(value)

    def run(self, args: list, plan: Optional[KillPlan] = None) -> RunResult:
        started = time.monotonic()
        proc = subprocess.Popen(
            [self.binary, "--db", self.db, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        lines: queue.Queue = queue.Queue()
        out: list[str] = []
        err: list[str] = []

        def pump_stdout() -> None:
            for line in proc.stdout:
                out.append(line)
                lines.put(line)
            lines.put(None)  # end of stream

        def pump_stderr() -> None:
            err.append(proc.stderr.read())

        readers = [threading.Thread(target=pump_stdout, daemon=True), threading.Thread(target=pump_stderr, daemon=True)]
        for r in readers:
            r.start()

        kill_sent = False
        if plan is not None:
            if plan.after_acks is not None:
                if self._wait_for_acks(lines, plan.after_acks, started):
                    kill_sent = self._kill_after(proc, plan.delay)
            else:
                kill_sent = self._kill_after(proc, plan.delay)
        try:
            proc.wait(timeout=max(1.0, HANG_SECONDS - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise SoakFailure(f"sextant {' '.join(args)} hung for {HANG_SECONDS}s (killed)")
        for r in readers:
            r.join()
        result = RunResult(args, proc.returncode, "".join(out), "".join(err), time.monotonic() - started, kill_sent)
        self.log.append(result.describe())
        return result

    @staticmethod
    def _wait_for_acks(lines: queue.Queue, wanted: int, started: float) -> bool:
        """Blocks until `wanted` "committed" lines were printed; False if the output ended first."""
        seen = 0
        while seen < wanted:
            try:
                line = lines.get(timeout=max(0.1, HANG_SECONDS - (time.monotonic() - started)))
            except queue.Empty:
                return True  # hung: kill it, run() reports the hang if it still does not exit
            if line is None:
                return False
            if line.startswith("committed "):
                seen += 1
        return True

    @staticmethod
    def _kill_after(proc: subprocess.Popen, delay: float) -> bool:
        """SIGKILLs the process after `delay` seconds unless it has exited by then."""
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        return True

    def check(self, args: list, allowed: tuple = (0,)) -> RunResult:
        """Runs a command that must succeed (exit status in `allowed`)."""
        result = self.run(args)
        if result.returncode not in allowed:
            raise SoakFailure(f"`sextant {' '.join(args)}` failed: exit {result.returncode}: {result.stderr.strip()[:2000]}")
        return result


# --------------------------------------------------------------------------------------------------
# Records and their text forms


def id_arg(record_id) -> str:
    """The CLI spelling of an id: digits for integers, s:TEXT for strings."""
    return str(record_id) if isinstance(record_id, int) else "s:" + record_id


def canonical(metadata) -> str:
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"))


def record_from_json(obj: dict) -> tuple:
    """(id, Record) from a line of `get` / `scroll` output."""
    vector = tuple(obj["vector"]) if "vector" in obj else None
    return obj["id"], (vector, canonical(obj.get("metadata")), obj.get("document"))


def parse_records(text: str) -> State:
    found: State = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if "next" in obj and "id" not in obj:
            raise SoakFailure("scroll returned more than one page")
        record_id, record = record_from_json(obj)
        found[record_id] = record
    return found


def describe_record(record: Optional[Record]) -> str:
    if record is None:
        return "absent"
    vector, metadata, document = record
    return f"metadata {metadata} document {document!r} vector {list(vector) if vector else None}"


def write_npy(path: str, rows: list) -> None:
    """A float32 [n, d] NumPy .npy file (format 1.0), written with the standard library."""
    n, d = len(rows), len(rows[0])
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        for row in rows:
            f.write(struct.pack("<%df" % d, *row))


def backup_sequences(chain: str) -> set:
    """The complete backups of a chain directory (backup-NNNNNN with its BACKUP.json; Docs/FileFormat.md)."""
    if not os.path.isdir(chain):
        return set()
    return {int(n[len("backup-"):]) for n in os.listdir(chain)
            if n.startswith("backup-") and not n.endswith(".partial") and os.path.exists(os.path.join(chain, n, "BACKUP.json"))}


# --------------------------------------------------------------------------------------------------
# An operation: what to run, and what the database may hold afterwards


@dataclass
class Operation:
    name: str
    args: list
    describe: str
    # Collection -> the states it may be in if the operation was cut short, old state first. The last is
    # the state once it is acknowledged. Collections left out keep their state.
    outcomes: dict = field(default_factory=dict)
    # For imports: the state after each batch (index 0 = before the import); outcomes come from the
    # number of acknowledged batches instead.
    batch_states: Optional[list] = None
    batch_ends: Optional[list] = None  # cumulative record counts at each batch end
    acked_line: Optional[str] = None  # a stdout prefix that acknowledges the operation
    writes: bool = True  # acknowledged writes count towards "acknowledged batches checked"
    after: Optional[Callable[["RunResult"], None]] = None  # resolves artifacts (snapshots, backups, exports)


@dataclass
class Stats:
    rounds: int = 0
    kills_sent: int = 0
    kills_mid_operation: int = 0
    acked_batches_checked: int = 0
    inflight_batches: int = 0
    inflight_applied: int = 0
    interrupted_ops: int = 0  # other writes killed unacknowledged: the old or the new state, checked
    interrupted_ops_applied: int = 0
    full_checks: int = 0
    failures: int = 0
    operations: dict = field(default_factory=dict)
    kills_by_operation: dict = field(default_factory=dict)
    failure_rounds: list = field(default_factory=list)
    failure_messages: dict = field(default_factory=dict)  # round -> the first line of its failure


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)  # the workload
        self.probe_rng = random.Random(args.seed + 1)  # which ids the checks read back
        self.dim = args.dim
        self.work = args.dir
        self.db = os.path.join(self.work, "db")
        self.files = os.path.join(self.work, "files")
        self.cli = Sextant(os.path.abspath(args.bin), self.db)
        self.stats = Stats()
        self.round = 0
        self.model: dict = {SOAK: {}, COPY: None}  # None: the collection does not exist
        self.snapshots: dict = {}  # name -> state of SOAK
        self.chains: dict = {}  # chain dir -> {sequence: state of SOAK}
        self.exports: dict = {}  # export dir -> state of SOAK
        self.durations: dict = {}  # operation name -> running mean of its uninterrupted run time
        self.snapshots_disabled = ""  # why snapshot operations stopped (after a failure broke them)
        self.foreign_snapshots: set = set()  # listed snapshots the model forgot after a failure
        self.counter = 0

    # ---- the workload ---------------------------------------------------------------------------

    def random_id(self):
        if self.rng.random() < 0.85:
            return self.rng.randrange(INT_IDS)
        return f"k{self.rng.randrange(STRING_IDS)}"

    def random_record(self, batch: int) -> Record:
        while True:
            vector = tuple(self.rng.randint(-256, 256) / 128 for _ in range(self.dim))  # exact in float32
            if any(vector):
                break
        metadata = {"r": self.round, "b": batch, "g": self.rng.randrange(GROUPS), "w": self.rng.choice(WORDS)}
        document = self.rng.choice((None, f"round {self.round} batch {batch} {self.rng.choice(WORDS)}"))
        return vector, canonical(metadata), document

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.round}-{self.counter}"

    def op_import(self, npy: bool) -> Operation:
        n = self.rng.choice((1, 5, 20, 60, 150, 400))
        batch = self.rng.choice((1, 3, 10, 25, 100, 1000))
        rows = [(self.random_id(), self.random_record(i // batch)) for i in range(n)]
        states, ends = [dict(self.model[SOAK])], []
        for start in range(0, n, batch):
            state = dict(states[-1])
            state.update(rows[start:start + batch])  # in order: the last occurrence of an id wins
            states.append(state)
            ends.append(min(n, start + batch))
        base = os.path.join(self.files, self.fresh("import"))
        lines = []
        for record_id, (vector, metadata, document) in rows:
            obj = {"id": record_id, "metadata": json.loads(metadata)}
            if not npy:
                obj["vector"] = list(vector)
            if document is not None:
                obj["document"] = document
            lines.append(json.dumps(obj))
        with open(base + ".jsonl", "w") as f:
            f.write("\n".join(lines) + "\n")
        if npy:
            write_npy(base + ".npy", [vector for _, (vector, _, _) in rows])
            args = ["import", SOAK, base + ".npy", "--records", base + ".jsonl", "--batch", str(batch), "--progress", "none"]
        else:
            args = ["import", SOAK, base + ".jsonl", "--batch", str(batch), "--progress", "none"]
        if self.rng.random() < 0.3:
            args.append("--no-index-wait")
        return Operation("import-npy" if npy else "import-jsonl", args, f"{n} records in batches of {batch}",
                         batch_states=states, batch_ends=ends)

    def op_upsert(self) -> Operation:
        record_id = self.random_id()
        vector, metadata, document = record = self.random_record(0)
        args = ["upsert", SOAK, id_arg(record_id), "--vector", json.dumps(list(vector)), "--metadata", metadata]
        if document is not None:
            args += ["--document", document]
        new = dict(self.model[SOAK])
        new[record_id] = record
        return Operation("upsert", args, f"id {record_id!r}", {SOAK: [self.model[SOAK], new]}, acked_line="upserted ")

    def op_delete_ids(self) -> Operation:
        present = list(self.model[SOAK])
        ids = self.rng.sample(present, min(len(present), self.rng.randint(1, 40))) if present else []
        ids += [self.random_id() for _ in range(self.rng.randint(1, 3))]  # some possibly absent
        ids = list(dict.fromkeys(ids))
        new = {k: v for k, v in self.model[SOAK].items() if k not in set(ids)}
        return Operation("delete-ids", ["delete", SOAK, *map(id_arg, ids)], f"{len(ids)} ids",
                         {SOAK: [self.model[SOAK], new]}, acked_line="deleted ")

    def op_delete_filter(self) -> Operation:
        group = self.rng.randrange(GROUPS)
        keep_from = max(0, self.round - self.rng.randint(0, 40))  # only records written before keep_from
        flt = {"must": [{"key": "g", "match": {"value": group}}, {"key": "r", "range": {"lt": keep_from}}]}
        new = {}
        for k, v in self.model[SOAK].items():
            meta = json.loads(v[1])
            if not (meta["g"] == group and meta["r"] < keep_from):
                new[k] = v
        return Operation("delete-filter", ["delete", SOAK, "--filter", json.dumps(flt)], f"g={group} r<{keep_from}",
                         {SOAK: [self.model[SOAK], new]}, acked_line="deleted ")

    def op_flush(self) -> Operation:
        return Operation("flush", ["flush", SOAK], "", {SOAK: [self.model[SOAK]]}, writes=False)

    def op_compact(self) -> Operation:
        return Operation("compact", ["compact", SOAK], "", {SOAK: [self.model[SOAK]]}, writes=False)

    def op_snapshot_create(self) -> Operation:
        name = self.fresh("snap")
        state = self.model[SOAK]

        def after(result: RunResult) -> None:
            if name in self.snapshot_names(result, created=name):
                self.snapshots[name] = state

        return Operation("snapshot-create", ["snapshot", "create", name, "--collection", SOAK], name,
                         {SOAK: [state]}, acked_line="created snapshot", writes=False, after=after)

    def op_snapshot_delete(self) -> Operation:
        name = self.rng.choice(sorted(self.snapshots))

        def after(result: RunResult) -> None:
            if name not in self.snapshot_names(result, deleted=name):
                del self.snapshots[name]

        return Operation("snapshot-delete", ["snapshot", "delete", name], name, {}, acked_line="deleted snapshot",
                         writes=False, after=after)

    def op_snapshot_restore(self) -> Operation:
        name = self.rng.choice(sorted(self.snapshots))
        # --as makes a new collection (it refuses an existing name); without it the snapshot replaces SOAK.
        target = self.rng.choice(COLLECTIONS) if self.model[COPY] is None else SOAK
        args = ["snapshot", "restore", name, "--collection", SOAK] + (["--as", COPY] if target == COPY else [])
        return Operation("snapshot-restore", args, f"{name} into {target}",
                         {target: [self.model[target], self.snapshots[name]]}, acked_line="restored snapshot", writes=False)

    def op_backup(self) -> Operation:
        chains = list(self.chains)  # oldest first
        if chains and self.rng.random() < 0.8:
            chain = chains[-1]
        else:
            chain = os.path.join(self.work, "backups", self.fresh("chain"))
        known = self.chains.get(chain, {})
        incremental = bool(known) and self.rng.random() < 0.7
        sequence = max(known, default=0) + 1
        state = self.model[SOAK]

        def after(result: RunResult) -> None:
            done = sequence in backup_sequences(chain)
            if done:
                self.chains.setdefault(chain, {})[sequence] = state
            elif result.returncode == 0 and not result.killed:
                raise SoakFailure(f"backup {sequence} succeeded but {chain} does not hold it")
            elif result.stdout.startswith("backup "):
                raise SoakFailure(f"backup {sequence} was acknowledged but is not in {chain}")
            unknown = backup_sequences(chain) - set(self.chains.get(chain, {}))
            if unknown:
                raise SoakFailure(f"{chain} holds backups the model does not know: {sorted(unknown)}")
            if chain not in self.chains:
                shutil.rmtree(chain, ignore_errors=True)  # a first backup that never landed
            for old in list(self.chains)[:-2]:  # keep the two newest chains
                shutil.rmtree(old)
                del self.chains[old]

        args = ["backup", chain, "--collection", SOAK] + (["--incremental"] if incremental else [])
        return Operation("backup-incremental" if incremental else "backup-full", args, f"{os.path.basename(chain)} #{sequence}",
                         {SOAK: [state]}, acked_line="backup ", writes=False, after=after)

    def op_backup_restore(self) -> Operation:
        chain = self.rng.choice(sorted(self.chains))
        sequence = self.rng.choice(sorted(self.chains[chain]))
        target = self.rng.choice(COLLECTIONS)
        args = ["restore", chain, "--at", str(sequence), "--collection", SOAK] + (["--into", COPY] if target == COPY else [])
        return Operation("backup-restore", args, f"{os.path.basename(chain)} #{sequence} into {target}",
                         {target: [self.model[target], self.chains[chain][sequence]]}, acked_line="restored the backup", writes=False)

    def op_export(self) -> Operation:
        directory = os.path.join(self.work, "exports", self.fresh("export"))
        state = self.model[SOAK]
        fmt = self.rng.choice(("npy", "jsonl"))
        compress = self.rng.choice(("none", "gzip", "zstd"))
        chunk = self.rng.choice((7, 100, 100000))

        def after(result: RunResult) -> None:
            complete = os.path.exists(os.path.join(directory, "manifest.json"))
            if os.path.exists(directory) and not complete:
                raise SoakFailure(f"{directory} exists without its manifest: a half export is visible")
            if complete:
                self.exports[directory] = state
            elif result.returncode == 0 and not result.killed:
                raise SoakFailure(f"the export succeeded but {directory} has no manifest")
            shutil.rmtree(directory + ".partial", ignore_errors=True)  # a kill leaves it; the next export would remove it
            for old in list(self.exports)[:-3]:  # keep the three newest
                shutil.rmtree(old)
                del self.exports[old]

        args = ["export", SOAK, directory, "--format", fmt, "--compress", compress, "--chunk", str(chunk), "--progress", "none"]
        return Operation("export", args, f"{fmt}/{compress}/chunk {chunk}", {SOAK: [state]}, acked_line="exported ",
                         writes=False, after=after)

    def op_export_restore(self) -> Operation:
        directory = self.rng.choice(sorted(self.exports))
        exported = self.exports[directory]
        target = self.rng.choice(COLLECTIONS)
        old = self.model[target]
        if target == COPY or self.rng.random() < 0.4:
            mode = "new" if old is None else "override"
            new = exported
            args = ["restore", directory, "--into", target, "--mode", mode]
        else:
            policy = self.rng.choice(("skip", "overwrite"))
            mode = f"merge/{policy}"
            new = dict(old)
            for k, v in exported.items():
                if policy == "overwrite" or k not in new:
                    new[k] = v
            args = ["restore", directory, "--into", target, "--mode", "merge", "--on-conflict", policy]
        return Operation("export-restore", args + ["--progress", "none"], f"{os.path.basename(directory)} into {target} ({mode})",
                         {target: [old, new]}, acked_line="restored ", writes=False)

    def op_drop_copy(self) -> Operation:
        return Operation("drop-copy", ["drop", COPY], "", {COPY: [self.model[COPY], None]}, acked_line="dropped collection", writes=False)

    def choose_operation(self) -> Operation:
        choices = [
            (22, lambda: self.op_import(npy=False)), (6, lambda: self.op_import(npy=True)), (8, self.op_upsert),
            (10, self.op_delete_ids), (3, self.op_delete_filter), (7, self.op_flush), (6, self.op_compact),
            (6, self.op_backup), (5, self.op_export),
        ]
        if not self.snapshots_disabled:
            choices += [(6, self.op_snapshot_create)]
        if self.snapshots:
            choices += [(5, self.op_snapshot_restore)]
            if len(self.snapshots) > 3:
                choices += [(6, self.op_snapshot_delete)]
        if self.chains:
            choices += [(5, self.op_backup_restore)]
        if self.exports:
            choices += [(6, self.op_export_restore)]
        if self.model[COPY] is not None:
            choices += [(1, self.op_drop_copy)]
        weights, makers = zip(*choices)
        return self.rng.choices(makers, weights)[0]()

    def choose_kill(self, op: Operation) -> Optional[KillPlan]:
        roll = self.rng.random()
        expected = self.durations.get(op.name, 0.3)
        if roll < 0.35:
            return None
        if roll < 0.45:
            return KillPlan("immediately", delay=self.rng.uniform(0, 0.01))
        if op.batch_ends and len(op.batch_ends) > 1 and roll < 0.65:
            k = self.rng.randrange(len(op.batch_ends))
            # Right after the k-th ack, or a little later: into the next batch's write and fsync.
            delay = self.rng.choice((0.0, self.rng.uniform(0, 0.004), self.rng.uniform(0, 0.03)))
            return KillPlan(f"after {k} acks + {delay * 1000:.1f} ms", delay=delay, after_acks=k)
        delay = self.rng.uniform(0, 1.2 * expected)
        return KillPlan(f"after {delay * 1000:.0f} ms", delay=delay)

    # ---- artifacts --------------------------------------------------------------------------------

    def snapshot_names(self, result: RunResult, created: str = None, deleted: str = None) -> set:
        listing = self.cli.check(["snapshot", "list", "--json"])
        names = {s["name"] for s in json.loads(listing.stdout)}
        acknowledged = result.returncode == 0 and not result.killed
        if created and acknowledged and created not in names:
            raise SoakFailure(f"snapshot {created} was acknowledged but is not listed")
        if deleted and acknowledged and deleted in names:
            raise SoakFailure(f"the deletion of snapshot {deleted} was acknowledged but it is still listed")
        unknown = names - set(self.snapshots) - self.foreign_snapshots - {created}
        if unknown:
            raise SoakFailure(f"unknown snapshots listed: {sorted(unknown)}")
        return names

    # ---- checking ---------------------------------------------------------------------------------

    def outcomes_after(self, op: Operation, result: RunResult) -> dict:
        """Collection -> the candidate states, given what the run acknowledged."""
        clean = result.returncode == 0 and not result.killed
        if op.batch_states is not None:
            committed = result.committed()
            acked = 0
            if committed:
                if committed[-1] not in op.batch_ends:
                    raise SoakFailure(f"`committed {committed[-1]}` is not at a batch boundary {op.batch_ends}")
                acked = op.batch_ends.index(committed[-1]) + 1
            if clean and acked != len(op.batch_ends):
                raise SoakFailure(f"the import exited 0 after acknowledging {acked} of {len(op.batch_ends)} batches")
            self.stats.acked_batches_checked += acked
            if acked < len(op.batch_ends):
                self.stats.inflight_batches += 1
            return {SOAK: op.batch_states[acked:acked + 2]}
        acknowledged = clean or (op.acked_line is not None and any(
            line.startswith(op.acked_line) for line in result.stdout.splitlines()))
        outcomes = {}
        for name, states in op.outcomes.items():
            outcomes[name] = states[-1:] if acknowledged else states
        if acknowledged and op.writes:
            self.stats.acked_batches_checked += 1
        return outcomes

    def check(self, outcomes: dict, full: bool) -> dict:
        """Reads the database, picks the one candidate state per collection that agrees with it; returns
        collection -> (index of the chosen candidate, number of candidates)."""
        listing = self.cli.check(["collections", "--json"])
        if listing.stderr.strip():
            raise SoakFailure(f"`collections` warns: {listing.stderr.strip()}")
        counts = {row["name"]: int(row["count"]) for row in json.loads(listing.stdout)}
        unexpected = set(counts) - set(COLLECTIONS)
        if unexpected:
            raise SoakFailure(f"unexpected collections listed: {sorted(unexpected)}")
        chosen = {}
        for name in COLLECTIONS:
            candidates = outcomes.get(name, [self.model[name]])
            index = self.pick(name, candidates, counts.get(name))
            self.model[name] = candidates[index]
            chosen[name] = (index, len(candidates))
            if full and self.model[name] is not None:
                self.compare_full(name)
        return chosen

    def pick(self, name: str, candidates: list, count: Optional[int]) -> int:
        """The index of the one candidate that agrees with the database."""
        alive = [i for i, c in enumerate(candidates) if (c is None) == (count is None)]
        if count is None:
            if alive:
                return alive[0]
            raise SoakFailure(f"collection {name} is missing; the model expected it with {len(candidates[-1])} records")
        differing = set()
        for c in candidates:
            for other in candidates:
                if c is not None and other is not None and c is not other:
                    differing |= {k for k in c.keys() | other.keys() if c.get(k) != other.get(k)}
        universe = sorted({k for c in candidates if c for k in c}, key=repr)
        sample = self.probe_rng.sample(universe, min(len(universe), self.args.sample))
        strangers = [self.probe_rng.randrange(INT_IDS) for _ in range(3)] + [f"k{self.probe_rng.randrange(STRING_IDS)}" for _ in range(2)]
        probes = sorted(differing | set(sample) | set(strangers), key=repr)
        found = self.get(name, probes)
        agree = [i for i in alive if len(candidates[i]) == count
                 and all(candidates[i].get(k) == found.get(k) for k in probes)]
        if agree:
            return agree[-1]  # candidates that agree on every differing id are equal
        raise SoakFailure(self.explain_mismatch(name, candidates, count, probes, found))

    @staticmethod
    def explain_mismatch(name, candidates, count, probes, found) -> str:
        lines = [f"collection {name}: no candidate state matches the database (count {count})"]
        for i, c in enumerate(candidates):
            if c is None:
                lines.append(f"  candidate {i}: absent")
                continue
            wrong = [k for k in probes if c.get(k) != found.get(k)]
            lines.append(f"  candidate {i}: {len(c)} records; {len(wrong)} of {len(probes)} probed ids differ")
            for k in wrong[:8]:
                lines.append(f"    id {k!r}: expected {describe_record(c.get(k))}; found {describe_record(found.get(k))}")
        return "\n".join(lines)

    def get(self, name: str, ids: list) -> State:
        found: State = {}
        for start in range(0, len(ids), 2000):  # keep command lines reasonable
            chunk = ids[start:start + 2000]
            result = self.cli.check(["get", name, *map(id_arg, chunk)], allowed=(0, 1))
            if result.returncode == 1 and not all(l.startswith("not found") for l in result.stderr.splitlines()):
                raise SoakFailure(f"`get` failed: {result.stderr.strip()[:2000]}")
            found.update(parse_records(result.stdout))
        return found

    def compare_full(self, name: str) -> None:
        result = self.cli.check(["scroll", name, "--limit", "100000", "--with-vector"])
        actual = parse_records(result.stdout)
        expected = self.model[name]
        if actual != expected:
            wrong = sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))
            details = [f"  id {k!r}: expected {describe_record(expected.get(k))}; found {describe_record(actual.get(k))}" for k in wrong[:10]]
            raise SoakFailure(f"full scan of {name}: {len(wrong)} ids differ from the model\n" + "\n".join(details))

    def verify(self) -> None:
        result = self.cli.run(["verify"])
        if result.returncode != 0:
            raise SoakFailure(f"`sextant verify` exited {result.returncode}:\n{result.stdout.strip()[:3000]}")

    # ---- rounds -----------------------------------------------------------------------------------

    def setup(self) -> None:
        for directory in (self.files, os.path.join(self.work, "exports"), os.path.join(self.work, "backups")):
            os.makedirs(directory, exist_ok=True)
        self.cli.check(["create", SOAK, "--dim", str(self.dim), "--metric", "euclidean", "--min-graph-rows", "200"])

    def run_round(self) -> str:
        self.cli.log = []
        self.cli.set_memtable_bytes(self.rng.choice((None, 4096, 16384, 65536)))
        op = self.choose_operation()
        plan = self.choose_kill(op)
        self.cli.log.append(f"round {self.round}: {op.name} {op.describe}; kill {plan.label if plan else 'never'}; "
                            f"memtable {self.cli.env.get('SEXTANT_MEMTABLE_BYTES', 'default')}")
        self.stats.operations[op.name] = self.stats.operations.get(op.name, 0) + 1
        result = self.cli.run(op.args, plan)
        if result.kill_sent:
            self.stats.kills_sent += 1
        if result.killed:
            self.stats.kills_mid_operation += 1
            self.stats.kills_by_operation[op.name] = self.stats.kills_by_operation.get(op.name, 0) + 1
        elif result.returncode != 0:
            raise SoakFailure(f"{op.name} failed without being killed: exit {result.returncode}: {result.stderr.strip()[:2000]}")
        else:
            previous = self.durations.get(op.name, result.seconds)
            self.durations[op.name] = 0.8 * previous + 0.2 * result.seconds
        outcomes = self.outcomes_after(op, result)
        if op.after:
            op.after(result)
        full = self.round % self.args.full_every == 0 or self.round == self.args.rounds
        chosen = self.check(outcomes, full)
        self.verify()
        if full:
            self.stats.full_checks += 1

        notes = []
        for name, (index, n) in chosen.items():
            if n < 2:
                continue
            applied = index == n - 1
            if op.batch_states is not None:
                self.stats.inflight_applied += applied
                notes.append(f"in-flight batch {'applied' if applied else 'absent'}")
            else:
                self.stats.interrupted_ops += 1
                self.stats.interrupted_ops_applied += applied
                notes.append(f"{name} {'new' if applied else 'old'} state")
        status = "KILLED" if result.killed else "done"
        acks = f", {len(result.committed())} acks" if op.batch_states is not None else ""
        sizes = ", ".join(f"{n}={len(s) if s is not None else '-'}" for n, s in self.model.items())
        return (f"round {self.round}: {op.name} ({op.describe}) kill {plan.label if plan else 'never'}: {status} "
                f"{result.seconds:.2f}s{acks}{'; ' + '; '.join(notes) if notes else ''} -> ok [{sizes}]")

    def save_failure(self, message: str) -> str:
        target = os.path.join(self.args.failures_dir, f"seed{self.args.seed}-round{self.round}")
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        shutil.copytree(self.db, os.path.join(target, "db"), symlinks=True)
        with open(os.path.join(target, "round.log"), "w") as f:
            f.write("\n".join(self.cli.log) + "\n\nFAILURE: " + message + "\n")
        return target

    def resync(self) -> None:
        """After a failure: take what the database and the directories hold as the model, so the soak can
        go on and later failures are new ones, not echoes of this one. Artifacts whose contents the model
        cannot know are forgotten; if snapshots can no longer be listed, snapshot operations stop."""
        listing = json.loads(self.cli.run(["collections", "--json"]).stdout or "[]")
        present = {row["name"] for row in listing}
        for name in COLLECTIONS:
            if name in present:
                self.model[name] = parse_records(self.cli.run(["scroll", name, "--limit", "100000", "--with-vector"]).stdout)
            else:
                self.model[name] = None
        snapshots = self.cli.run(["snapshot", "list", "--json"])
        half_deleted = re.fullmatch(r"error: no snapshot named '([^']+)'", snapshots.stderr.strip())
        if snapshots.returncode != 0 and half_deleted:
            # A snapshot directory without its description (a delete cut short) breaks the listing;
            # deleting that snapshot again clears it. Do so, so the soak keeps exercising snapshots.
            name = half_deleted.group(1)
            self.cli.run(["snapshot", "delete", name])
            self.snapshots.pop(name, None)
            print(f"note: deleted the half-deleted snapshot {name} to carry on", flush=True)
            snapshots = self.cli.run(["snapshot", "list", "--json"])
        if snapshots.returncode != 0:
            self.snapshots.clear()
            if not self.snapshots_disabled:
                self.snapshots_disabled = snapshots.stderr.strip()
                print(f"note: snapshot operations stop here: `snapshot list` fails ({self.snapshots_disabled})", flush=True)
        else:
            names = {s["name"] for s in json.loads(snapshots.stdout)}
            self.snapshots = {n: state for n, state in self.snapshots.items() if n in names}
            self.foreign_snapshots |= names - set(self.snapshots)
        for chain, backups in list(self.chains.items()):
            if backup_sequences(chain) != set(backups):
                del self.chains[chain]  # a backup the model cannot describe: leave the chain alone from now on
        self.exports = {d: state for d, state in self.exports.items() if os.path.exists(os.path.join(d, "manifest.json"))}

    def leftovers(self) -> list:
        """Work directories a killed operation left in the database directory."""
        found = [n for n in os.listdir(self.db) if n.endswith(".tmp") or n.endswith(".partial")]
        snaps = os.path.join(self.db, "snapshots")
        if os.path.isdir(snaps):
            found += ["snapshots/" + n for n in os.listdir(snaps) if n.endswith(".tmp")]
        return sorted(found)

    def run(self) -> int:
        started = time.monotonic()
        try:
            self.setup()
        except SoakFailure as failure:
            print(f"soak: cannot start: {failure}", file=sys.stderr, flush=True)
            return 2
        for self.round in range(1, self.args.rounds + 1):
            if self.args.time_limit and time.monotonic() - started > self.args.time_limit:
                print(f"time limit of {self.args.time_limit}s reached after {self.round - 1} rounds", flush=True)
                break
            try:
                line = self.run_round()
                self.stats.rounds += 1
                print(line, flush=True)
            except SoakFailure as failure:
                self.stats.rounds += 1
                self.stats.failures += 1
                self.stats.failure_rounds.append(self.round)
                self.stats.failure_messages[self.round] = str(failure).splitlines()[0]
                saved = self.save_failure(str(failure))
                print("\n".join(self.cli.log), flush=True)
                print(f"FAILURE in round {self.round}: {failure}\n  saved to {saved}", flush=True)
                if self.args.stop_on_failure:
                    break
                self.resync()
        # One read-write open, so recovery has cleaned up whatever it cleans up, then look for leftovers.
        self.cli.run(["flush", SOAK])
        left = self.leftovers()
        seconds = time.monotonic() - started
        summary = {
            "rounds": self.stats.rounds, "seed": self.args.seed, "failures": self.stats.failures,
            "failure_rounds": self.stats.failure_rounds, "failure_messages": self.stats.failure_messages,
            "snapshots_disabled": self.snapshots_disabled, "kills_sent": self.stats.kills_sent,
            "kills_mid_operation": self.stats.kills_mid_operation, "acked_batches_checked": self.stats.acked_batches_checked,
            "inflight_batches": self.stats.inflight_batches, "inflight_applied": self.stats.inflight_applied,
            "interrupted_ops": self.stats.interrupted_ops,
            "interrupted_ops_applied": self.stats.interrupted_ops_applied,
            "full_checks": self.stats.full_checks, "wall_seconds": round(seconds, 1),
            "operations": dict(sorted(self.stats.operations.items())),
            "kills_by_operation": dict(sorted(self.stats.kills_by_operation.items())),
            "leftover_work_dirs": left,
        }
        print(f"{self.stats.rounds} rounds in {seconds:.0f}s: {self.stats.kills_mid_operation} kills mid-operation, "
              f"{self.stats.acked_batches_checked} acknowledged batches checked, {self.stats.inflight_batches} in-flight "
              f"batches ({self.stats.inflight_applied} applied), {self.stats.failures} failures", flush=True)
        if left:
            print(f"note: leftover work directories in the database after a read-write open: {left}", flush=True)
        if self.args.json:
            print(json.dumps(summary), flush=True)
        return 1 if self.stats.failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the sextant binary")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="work directory (default: a new temporary directory, removed if all is well)")
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--full-every", type=int, default=25, help="compare a full scan with the model every N rounds")
    parser.add_argument("--sample", type=int, default=30, help="random ids read back per collection per round")
    parser.add_argument("--time-limit", type=float, default=0, help="stop starting rounds after this many seconds")
    parser.add_argument("--failures-dir", help="where a failing round's database and log go (default: DIR/failures)")
    parser.add_argument("--stop-on-failure", action="store_true")
    args = parser.parse_args()

    temporary = args.dir is None
    if temporary:
        args.dir = tempfile.mkdtemp(prefix="sextant-soak-")
    elif os.path.exists(os.path.join(args.dir, "db")):
        parser.error(f"{args.dir} already holds a soak database; give an empty or new directory")
    os.makedirs(args.dir, exist_ok=True)
    args.failures_dir = args.failures_dir or os.path.join(args.dir, "failures")
    print(f"soak: {args.rounds} rounds, seed {args.seed}, work directory {args.dir}", flush=True)
    status = Soak(args).run()
    if temporary and status == 0:
        shutil.rmtree(args.dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
