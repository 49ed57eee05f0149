"""``CompareSettings``: what a dump comparison is asked to do, from any front end (pytest, ``llmprec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..standards import Rule, Threshold

DEFAULT_REPORT_DIR = "llmprec-report"
DEFAULT_BASELINE_TOLERANCE = 0.1


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
    option_names: dict[str, str] = field(default_factory=dict, compare=False)
    """How the front end calls each setting in messages, e.g. ``{"golden": "--llm-golden"}``."""

    @property
    def compares_dumps(self) -> bool:
        return self.golden is not None and self.my is not None

    def named(self, setting: str) -> str:
        """The front end's name of ``setting`` for messages (the setting's own name by default)."""
        return self.option_names.get(setting, setting)
