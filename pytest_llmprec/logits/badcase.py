"""Bad cases of a dataset evaluation: which cases pass on one device and fail on the other.

``bcanalyze`` (msit-spec §8.1) joins two modeltest "debug_info" CSVs on ``key`` (and ``queries``
when the golden has it); ``Analyzer.analyze`` (§8.2) joins two CSVs keyed on ``queries``, such as
those a ``Synthesizer`` writes. The bad-case CSV feeds ``llmprec logitsdump -bcr``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import LlmprecError
from ..report.csv_files import write_csv
from ..report.rows import STAMP_FORMAT

BCANALYZE_DIR = Path("msit_bad_case") / "analyzer"
SYNTHESIZER_DIR = Path("msit_bad_case") / "synthesizer"
TOKEN_COLUMNS = ("input_token_ids", "output_token_ids")
SYNTHESIZER_COLUMNS = ("queries", "input_token_ids", "output_token_ids", "passed")
PASSED_VALUES = {"correct": "true", "wrong": "false"}


class BadCaseError(LlmprecError):
    """An evaluation CSV that cannot be analysed (unreadable, a required column missing)."""


def _stamp() -> str:
    return time.strftime(STAMP_FORMAT, time.gmtime())


def read_evaluation(path: str | os.PathLike[str], required: Iterable[str], normalise: bool) -> Any:
    """The CSV as text cells: ``pass`` renamed ``passed``, rows with any empty cell dropped, and with
    ``normalise`` the ``passed`` values lower-cased with ``correct``/``wrong`` → ``true``/``false``."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise BadCaseError(f"{path}: cannot read the CSV: {exc}") from None
    frame = frame.rename(columns={"pass": "passed"}).dropna(how="any")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise BadCaseError(
            f"{path}: no {', '.join(repr(c) for c in missing)} column (columns: {list(frame.columns)})"
        )
    if normalise:
        lowered = frame["passed"].str.strip().str.lower()
        frame["passed"] = lowered.map(lambda value: PASSED_VALUES.get(value, value))
    return frame


def _bad_rows(golden: Any, test: Any, keys: list[str]) -> Any:
    merged = golden.merge(test, how="left", on=keys, suffixes=("_golden", "_test"), indicator=True)
    unmatched = merged[merged["_merge"] == "left_only"]
    if len(unmatched):
        shown = ", ".join(str(value) for value in unmatched[keys[0]].head(5))
        warnings.warn(f"{len(unmatched)} golden cases have no test row, e.g. {shown}", stacklevel=3)
    both = merged[merged["_merge"] == "both"]
    return both[both["passed_golden"] != both["passed_test"]]


def bad_cases(golden_csv: str | os.PathLike[str], test_csv: str | os.PathLike[str]) -> Any:
    """The bad-case table of two dataset evaluations (msit bcanalyze), a pandas DataFrame."""
    golden = read_evaluation(golden_csv, ("key", "passed"), normalise=True)
    test = read_evaluation(test_csv, ("key", "passed"), normalise=True)
    keys = ["key", "queries"] if "queries" in golden.columns else ["key"]
    if "queries" in keys and "queries" not in test.columns:
        raise BadCaseError(f"{test_csv}: no 'queries' column, which the golden CSV has")
    bad = _bad_rows(golden, test, keys)
    columns = list(keys)
    if all(column in golden.columns for column in TOKEN_COLUMNS):
        columns += [f"{column}_{side}" for column in TOKEN_COLUMNS for side in ("golden", "test")]
    columns += ["passed_golden", "passed_test"]
    return bad.reindex(columns=columns)


def _write(frame: Any, path: Path) -> Path:
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return write_csv(path, list(frame.columns), rows)


def bcanalyze(
    golden_csv: str | os.PathLike[str],
    test_csv: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] = BCANALYZE_DIR,
) -> Path | None:
    """Write ``{output_dir}/msit_bad_case_result_{ts}.csv``; None (and a warning) when no case differs."""
    bad = bad_cases(golden_csv, test_csv)
    if bad.empty:
        warnings.warn("no bad cases: every case present in both files has the same result", stacklevel=2)
        return None
    return _write(bad, Path(output_dir) / f"msit_bad_case_result_{_stamp()}.csv")


class Synthesizer:
    """Rows of ``queries, input_token_ids, output_token_ids, passed`` built in code (msit's API):
    a string or a non-iterable value is one row, any other iterable one row per element; every
    cell is stringified."""

    def __init__(self, **columns: Any) -> None:
        self.columns: dict[str, list[str]] = {name: [] for name in SYNTHESIZER_COLUMNS}
        self.add(**columns)

    def add(self, **columns: Any) -> Synthesizer:
        for name, value in columns.items():
            if name not in self.columns:
                raise TypeError(f"unknown column {name!r}; expected {', '.join(SYNTHESIZER_COLUMNS)}")
            if isinstance(value, str) or not isinstance(value, Iterable):
                self.columns[name].append(str(value))
            else:
                self.columns[name].extend(str(element) for element in value)
        return self

    def to_dataframe(self, errors: str = "trunc") -> Any:
        """The table; ``errors``: ``trunc`` cuts the columns to the shortest, ``pad`` pads them with
        empty cells to the longest, ``strict`` raises ``ValueError`` when their lengths differ."""
        import pandas as pd

        lengths = {len(values) for values in self.columns.values()}
        if errors == "trunc":
            size = min(lengths)
        elif errors == "pad":
            size = max(lengths)
        elif errors == "strict":
            if len(lengths) > 1:
                counts = {name: len(values) for name, values in self.columns.items()}
                raise ValueError(f"the columns have different lengths: {counts}")
            size = lengths.pop()
        else:
            raise ValueError(f"errors must be trunc, pad or strict, got {errors!r}")
        data = {name: (values + [None] * size)[:size] for name, values in self.columns.items()}
        return pd.DataFrame(data, columns=list(SYNTHESIZER_COLUMNS))

    def to_csv(self, errors: str = "trunc", output_dir: str | os.PathLike[str] = SYNTHESIZER_DIR) -> Path:
        """Write ``{output_dir}/{ts}.csv``."""
        return _write(self.to_dataframe(errors), Path(output_dir) / f"{_stamp()}.csv")


class Analyzer:
    """msit's ``bc_analyze.Analyzer``: bad cases of two tables keyed on ``queries``."""

    @staticmethod
    def bad_cases(
        golden: str | os.PathLike[str] | Synthesizer, test: str | os.PathLike[str] | Synthesizer
    ) -> Any:
        frames = [
            _synthesized(side)
            if isinstance(side, Synthesizer)
            else read_evaluation(side, SYNTHESIZER_COLUMNS, False)
            for side in (golden, test)
        ]
        bad = _bad_rows(frames[0], frames[1], ["queries"])
        columns = ["queries"] + [f"{c}_{side}" for c in TOKEN_COLUMNS for side in ("golden", "test")]
        return bad.reindex(columns=[*columns, "passed_golden", "passed_test"])

    @classmethod
    def analyze(
        cls,
        golden: str | os.PathLike[str] | Synthesizer,
        test: str | os.PathLike[str] | Synthesizer,
        output_dir: str | os.PathLike[str] = BCANALYZE_DIR,
    ) -> Path | None:
        """Write ``{output_dir}/{ts}.csv``; None (and a warning) when no case differs."""
        bad = cls.bad_cases(golden, test)
        if bad.empty:
            warnings.warn(
                "no bad cases: every query present in both tables has the same result", stacklevel=2
            )
            return None
        return _write(bad, Path(output_dir) / f"{_stamp()}.csv")


def _synthesized(synthesizer: Synthesizer) -> Any:
    return synthesizer.to_dataframe("strict").dropna(how="any")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    bc = subparsers.add_parser(
        "bcanalyze",
        help="bad cases of two dataset evaluations (modeltest debug CSVs): input of logitsdump",
        description="Join two evaluation CSVs (columns key, passed or pass; queries, input_token_ids, "
        "output_token_ids optional) and write the cases whose result differs to "
        f"{BCANALYZE_DIR}/msit_bad_case_result_{{ts}}.csv.",
    )
    bc.add_argument("-gp", "--golden-path", required=True, metavar="CSV", help="golden evaluation CSV")
    bc.add_argument("-mp", "--my-path", required=True, metavar="CSV", help="evaluation CSV under test")
    bc.add_argument(
        "-o", "--output-dir", default=str(BCANALYZE_DIR), metavar="DIR", help=f"({BCANALYZE_DIR})"
    )
    bc.set_defaults(
        handler=lambda args: _run(bcanalyze, args.golden_path, args.my_path, args.output_dir, "bcanalyze")
    )
    an = subparsers.add_parser(
        "analyze",
        help="bad cases of two (queries, input_token_ids, output_token_ids, passed) CSVs",
        description="Join two CSVs on queries and write the rows whose passed differs to "
        f"{BCANALYZE_DIR}/{{ts}}.csv.",
    )
    an.add_argument("-g", "--golden", required=True, metavar="CSV", help="golden CSV")
    an.add_argument("-t", "--test", required=True, metavar="CSV", help="CSV under test")
    an.add_argument(
        "-o", "--output-dir", default=str(BCANALYZE_DIR), metavar="DIR", help=f"({BCANALYZE_DIR})"
    )
    an.set_defaults(
        handler=lambda args: _run(Analyzer.analyze, args.golden, args.test, args.output_dir, "analyze")
    )


def _run(analyze: Any, golden: str, test: str, output_dir: str, name: str) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            path = analyze(golden, test, output_dir)
        except BadCaseError as exc:
            print(f"llmprec {name}: error: {exc}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"llmprec {name}: warning: {warning.message}", file=sys.stderr)
    if path is not None:
        print(f"bad cases: {path}")
    return 0
