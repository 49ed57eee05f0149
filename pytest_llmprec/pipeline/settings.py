"""``CompareSettings``: what a dump comparison is asked to do, from any front end (pytest, ``llmprec``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..standards import Rule, Threshold

DEFAULT_REPORT_DIR = "llmprec-report"
DEFAULT_BASELINE_TOLERANCE = 0.1
VERDICTS = ("local", "accumulated")
"""What dump items judge: ``local``, the error each node introduces (``verdict``); ``accumulated``,
the error as dumped."""
MATCH_LEVELS = ("layer", "module", "api", "logits")
"""Tree matching levels of torch vs ATB dumps (``matching.base.LEVELS``, spelled here so that front ends
read their options without importing the matchers)."""
ITEM_GRANULARITIES = ("tensor", "module", "layer", "token")
"""What one pytest item compares: ``tensor``: one pair; ``module``: a node's inputs and outputs;
``layer``: a decoder layer (nodes outside any layer: per node); ``token``: a token."""


@dataclass(frozen=True)
class CompareSettings:
    """The settings of one comparison; paths are absolute. ``golden``/``my`` are None when the front
    end was not asked to compare dumps (pytest without ``--llm-golden``/``--llm-my``)."""

    golden: Path | None = None
    my: Path | None = None
    report_dir: Path = field(default_factory=lambda: Path(DEFAULT_REPORT_DIR).absolute())
    ini_standard: str | None = None
    cli_standard: str | None = None
    cli_thresholds: tuple[Threshold, ...] = ()
    tokens: str | None = None
    select: tuple[str, ...] = ()
    mapping_file: Path | None = None
    baseline: Path | None = None
    baseline_tolerance: float = DEFAULT_BASELINE_TOLERANCE
    update_baseline: bool = False
    fail_on_unmatched: bool = False
    rules: tuple[Rule, ...] = ()
    html: bool = True
    plots_dir: Path | None = None
    level: str | None = None
    """Tree matching level of torch vs ATB dumps (``matching.base.LEVELS``); None: the most detailed."""
    op_mapping_file: Path | None = None
    stats: bool = False
    weights: bool = False
    explain_mapping: bool = False
    verdict: str = "local"
    """What items judge (``verdict.local.VERDICTS``): ``local``, the error each node introduces, or
    ``accumulated``, the error as dumped. Statistics and weights comparisons judge accumulated error."""
    max_introduced: float | None = None
    """The relative Euclidean distance one node may add, for every dtype (None: ``LOCAL_LIMITS``)."""
    logits_cosine: float = 0.999
    logits_kl: float = 0.0001
    logits_l1: float = 0.01
    logits_dtype: str | None = None
    """Logits dumps (``logits``): msit's ``-cs -kl -l1 -d``; dtype None takes the files' coarser dtype."""
    fork: bool = True
    """Whether forked child processes may evaluate pairs on other cores (Linux): half of a large
    token's pairs under the local verdict, a serial pytest run's pairs under the accumulated one."""
    item: str = "tensor"
    """What one pytest item compares (``ITEM_GRANULARITIES``)."""
    path_map: tuple[tuple[str, str], ...] = ()
    """``(old, new)`` path prefixes: a path starting with ``old`` is read at ``new`` (on xdist workers
    that see the dumps at another mount point)."""
    option_names: dict[str, str] = field(default_factory=dict, compare=False)
    """How the front end calls each setting in messages, e.g. ``{"golden": "--llm-golden"}``."""

    @property
    def compares_dumps(self) -> bool:
        return self.golden is not None and self.my is not None

    @property
    def match_mode(self) -> str:
        """What the dumps' pairs compare: ``tensors``, ``stats`` (statistics) or ``weights``."""
        return "stats" if self.stats else "weights" if self.weights else "tensors"

    @property
    def judges_locally(self) -> bool:
        return self.verdict == "local" and self.match_mode == "tensors"

    def named(self, setting: str) -> str:
        """The front end's name of ``setting`` for messages (the setting's own name by default)."""
        return self.option_names.get(setting, setting)

    def output_problems(self) -> list[str]:
        """Why the report folder, the plots folder or the baseline to update cannot be written
        (one line each, naming the setting); empty when they can."""
        outputs = [("report_dir", self.report_dir, True)]
        if self.plots_dir is not None:
            outputs.append(("plots_dir", self.plots_dir, True))
        if self.update_baseline and self.baseline is not None:
            outputs.append(("update_baseline", self.baseline, False))
        problems = []
        for setting, path, folder in outputs:
            problem = _output_problem(path, folder)
            if problem is not None:
                name = self.named("baseline") if setting == "update_baseline" else self.named(setting)
                problems.append(f"{name}={path}: {problem}")
        return problems


def _output_problem(path: Path, folder: bool) -> str | None:
    """Why ``path`` (a folder to create or fill, else a file to replace) cannot be written, or None."""
    if path.exists():
        if folder and not path.is_dir():
            return "exists and is not a folder"
        if not folder and path.is_dir():
            return "is a folder, not a file"
        writable = path if folder else path.parent
        return None if os.access(writable, os.W_OK | os.X_OK) else f"{writable} is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    return None
