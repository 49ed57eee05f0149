"""The processes of a torch or ATB dump and which of them are ranks of one run (msit-spec §5.5 step 6).

A dump root can hold ``{device}_{pid}`` folders of several processes. Folders are ranks of one run
when they run the same model (same topology model names, or the same module tree) on different
devices; msit merges every folder under the root, which mixes unrelated runs. The largest run is
compared; the other processes are reported, not merged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..dumps.base import Dump, TensorRecord


@dataclass
class Process:
    """One ``{device}_{pid}`` folder of a dump and its records."""

    folder: str
    path: str
    device: int | None
    pid: str
    signature: str
    records: list[TensorRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.folder


def _signature(dump: Dump, entry: dict[str, Any], records: list[TensorRecord]) -> str:
    """What must be equal for two processes to be ranks of one run."""
    if dump.kind == "atb":
        models = (dump.info.get("topology") or {}).get(entry.get("pid"), [])
        names = [
            str((model.get("model") or {}).get("modelName")) for model in models if isinstance(model, dict)
        ]
        if names:
            return "models:" + ",".join(names)
    else:
        tree = entry.get("model_tree")
        if tree is not None:
            return "tree:" + json.dumps(tree, sort_keys=True)
    first = next((r.token for r in records if not isinstance(r.token, str)), None)
    return "nodes:" + ",".join(sorted({r.node.split("/", 1)[0] for r in records if r.token == first}))


def processes(dump: Dump) -> list[Process]:
    """The device folders of a torch or ATB dump with their records, ordered by device then pid."""
    entries: dict[str, dict[str, Any]] = dump.info.get("processes") or {}
    parents: dict[str, dict[str, str]] = {}
    for name, entry in entries.items():
        parent, folder = os.path.split(os.path.normpath(entry["path"]))
        parents.setdefault(parent + os.sep, {})[folder] = name
    grouped: dict[str, list[TensorRecord]] = {name: [] for name in entries}
    for record in dump:
        for parent, names in parents.items():
            if record.path.startswith(parent):
                name = names.get(record.path[len(parent) :].split(os.sep, 1)[0])
                if name is not None:
                    grouped[name].append(record)
                    break
    found = []
    for name, entry in entries.items():
        pid = entry.get("pid") or name.rsplit("_", 1)[-1]
        found.append(
            Process(
                name,
                entry["path"],
                entry.get("device"),
                str(pid),
                _signature(dump, entry, grouped[name]),
                grouped[name],
            )
        )
    found.sort(key=lambda p: (p.device is None, p.device or 0, _pid_key(p.pid)))
    return found


def _pid_key(pid: str) -> tuple[int, int | str]:
    return (0, int(pid)) if pid.isdigit() else (1, pid)


def runs(found: list[Process]) -> list[list[Process]]:
    """Processes grouped into runs: same signature, one process per device (a process with no
    device index is a run of its own)."""
    grouped: list[list[Process]] = []
    for process in sorted(found, key=lambda p: _pid_key(p.pid)):
        home = None
        if process.device is not None:
            home = next(
                (
                    run
                    for run in grouped
                    if run[0].signature == process.signature
                    and run[0].device is not None
                    and all(other.device != process.device for other in run)
                ),
                None,
            )
        if home is None:
            grouped.append([process])
        else:
            home.append(process)
    for run in grouped:
        run.sort(key=lambda p: (p.device or 0, _pid_key(p.pid)))
    return grouped


def compared_run(dump: Dump) -> tuple[list[Process], list[Process], str]:
    """The run to compare (the one with most processes, the first of equals), the other processes,
    and a note about them (empty when the dump holds one run)."""
    grouped = runs(processes(dump))
    if not grouped:
        return [], [], ""
    chosen = max(grouped, key=len)
    others = [p for run in grouped if run is not chosen for p in run]
    note = ""
    if others:
        note = (
            f"the {dump.kind} dump {dump.root} holds processes of more than one run: comparing "
            f"{', '.join(p.folder for p in chosen)}; not merged with them: "
            f"{', '.join(p.folder for p in others)} (another model or a second process on the same device; "
            "point the path at a device folder to compare it)"
        )
    return chosen, others, note
