"""``CompareSettings``: what a dump comparison is asked to do, from any front end (pytest, ``llmprec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..standards import Rule, Threshold

DEFAULT_REPORT_DIR = "llmprec-report"
DEFAULT_BASELINE_TOLERANCE = 0.1
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

    def named(self, setting: str) -> str:
        """The front end's name of ``setting`` for messages (the setting's own name by default)."""
        return self.option_names.get(setting, setting)
