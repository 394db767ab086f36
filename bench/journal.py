"""What the journal's durability costs: appending N entries flushed per line, against fsync-ing every line.

    python bench/journal.py [--entries 2000] [--dir PATH]

The journal (search/journal.py) flushes every entry and fsyncs only the ones that end a trial, and the file on
close. This prints the time per entry both ways on the given folder's disk (default: a temporary folder), and
their ratio, so the choice can be checked on the machine that runs the experiments.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search import journal as journal_module  # noqa: E402
from search.journal import JOURNAL_FILE, Journal  # noqa: E402


def per_entry_s(folder: Path, entries: int, durable: frozenset[str]) -> float:
    """Seconds per ``result`` entry (a typical per-epoch line), with ``durable`` kinds fsync-ed as written."""
    journal_module.DURABLE_KINDS = durable
    path = folder / JOURNAL_FILE
    path.unlink(missing_ok=True)
    journal = Journal(path)
    started = time.perf_counter()
    for n in range(entries):
        journal.append("result", number=n % 8, epoch=n, metrics={"val_loss": 0.5, "val_accuracy": 0.5,
                                                                 "epoch_wall_s": 0.1}, node="node", device="cpu",
                       at=time.time())
    journal.close()
    return (time.perf_counter() - started) / entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    policy = journal_module.DURABLE_KINDS
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        flushed = per_entry_s(Path(tmp), args.entries, policy)  # per-epoch lines are not in DURABLE_KINDS
        synced = per_entry_s(Path(tmp), args.entries, frozenset({"result"}))
    journal_module.DURABLE_KINDS = policy
    print(f"entries: {args.entries}")
    print(f"flush per line (the policy for per-epoch lines): {flushed * 1e6:9.1f} µs/entry")
    print(f"fsync per line:                                  {synced * 1e6:9.1f} µs/entry")
    print(f"ratio fsync/flush: {synced / flushed:.1f}x")


if __name__ == "__main__":
    main()
