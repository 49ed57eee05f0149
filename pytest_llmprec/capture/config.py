"""``DumpConfig``: what a PyTorch dump captures (msit's parameters, defaults and semantics).

This module does not import torch at import time, so the ``llmprec`` command line can use the
token-range and name-pattern parsers without paying for it.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

MODES = ("module", "api")
DEFAULT_QUEUE_MB = 256
MAX_TOKENS = 1_000_000


def dump_timestamp(moment: _dt.datetime | None = None) -> str:
    """``YYYYmmdd_HHMMSS`` in UTC, the ``TS`` of ``msit_dump_{TS}``."""
    return (moment or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%d_%H%M%S")


def parse_token_range(text: str) -> list[int]:
    """``"0-3"`` → ``[0, 1, 2, 3]``; ``"0,2,5-7"`` → ``[0, 2, 5, 6, 7]`` (sorted, without repeats)."""
    tokens: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if match is None:
            raise ValueError(
                f"token range {text!r}: {part!r} is not a token id or a range like 0-3 "
                "(use non-negative integers, e.g. '0-3' or '0,2,5-7')"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"token range {text!r}: {part!r} ends before it starts")
        if last - first >= MAX_TOKENS:
            raise ValueError(f"token range {text!r}: {part!r} holds more than {MAX_TOKENS} tokens")
        tokens.update(range(first, last + 1))
    return sorted(tokens)


def wildcard_pattern(pattern: str) -> re.Pattern[str]:
    """A full-match regex for a name pattern where only ``*`` is special (any run of characters)."""
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")))


def _check_dump_path(dump_path: Any) -> str:
    if not isinstance(dump_path, (str, os.PathLike)) or not os.fspath(dump_path):
        raise ValueError(f"dump_path must be a non-empty path, got {dump_path!r}")
    path = os.path.abspath(os.fspath(dump_path))
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"dump_path {path!r}: {probe!r} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"dump_path {path!r}: directory {probe!r} is not writable")
    return path


def _check_int(name: str, value: Any, allowed: Iterable[int] | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value}")
    return value


def _check_token_range(token_range: Any) -> list[int]:
    if isinstance(token_range, (str, bytes)) or not isinstance(token_range, (list, tuple, range, set)):
        raise ValueError(
            f"token_range must be a list of token ids (forward-call indices), got {token_range!r}; "
            "use list(range(n)) for the first n tokens"
        )
    for token in token_range:
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise ValueError(f"token_range must hold non-negative ints, got {token!r} in {token_range!r}")
    return sorted(set(token_range))


def _check_module_list(module_list: Any) -> tuple[type, ...]:
    if not isinstance(module_list, (list, tuple)):
        raise ValueError(f"module_list must be a list of nn.Module classes, got {module_list!r}")
    if not module_list:
        return ()
    from torch import nn

    for item in module_list:
        if not (isinstance(item, type) and issubclass(item, nn.Module)):
            raise ValueError(f"module_list must hold nn.Module classes (e.g. torch.nn.Linear), got {item!r}")
    return tuple(module_list)


def _check_api_list(api_list: Any) -> tuple[Callable[..., Any], ...]:
    if not isinstance(api_list, (list, tuple)):
        raise ValueError(f"api_list must be a list of torch functions, got {api_list!r}")
    if not api_list:
        return ()
    import torch

    overridable = {func for funcs in torch.overrides.get_overridable_functions().values() for func in funcs}
    for item in api_list:
        if item not in overridable:
            raise ValueError(
                f"api_list: {item!r} cannot be intercepted; api mode sees torch functions that dispatch "
                "__torch_function__ (e.g. torch.matmul, torch.nn.functional.silu, torch.Tensor.softmax)"
            )
    return tuple(api_list)


def _check_mode(mode: Any) -> tuple[str, ...]:
    modes = [mode] if isinstance(mode, str) else mode
    if not isinstance(modes, (list, tuple)) or not modes or any(m not in MODES for m in modes):
        raise ValueError(f"mode must be 'module', 'api' or a list of both, got {mode!r}")
    return tuple(dict.fromkeys(modes))


class DumpConfig:
    """What ``register_hook`` dumps; msit's ``DumpConfig`` parameters, defaults and meaning.

    An ordinary object (msit's is a process-wide singleton): build as many as you like.
    Every invalid argument raises ``ValueError`` naming the argument and the reason.
    ``seed`` calls ``seed_all(seed)`` here, as msit does. ``writer_queue_mb`` (not in msit)
    bounds the memory held by tensors waiting for the background writer. ``replay`` (not in msit),
    a golden torch dump of the same run: each dumped module call is also run on golden's inputs of
    that call and its output saved as ``replay_output*.pth`` (``replay.py``); the golden dump is
    indexed here.
    """

    def __init__(
        self,
        dump_path: str | os.PathLike[str] = "./",
        token_range: list[int] | None = None,
        module_list: list[type] | None = None,
        api_list: list[Callable[..., Any]] | None = None,
        tensor_part: int = 2,
        device_id: int | None = None,
        dump_statistics_mode: int = 0,
        dump_last_logits: bool = False,
        mode: str | list[str] | None = None,
        dump_weight: bool = False,
        layer_name: str | None = None,
        seed: int | None = None,
        analyze: bool = False,
        *,
        writer_queue_mb: int = DEFAULT_QUEUE_MB,
        replay: str | os.PathLike[str] | None = None,
    ) -> None:
        self.dump_path = _check_dump_path(dump_path)
        self.token_range = _check_token_range([0] if token_range is None else token_range)
        self._tokens = frozenset(self.token_range)
        self.module_list = _check_module_list([] if module_list is None else module_list)
        self.api_list = _check_api_list([] if api_list is None else api_list)
        self.tensor_part = _check_int("tensor_part", tensor_part, (0, 1, 2))
        self.device_id = None if device_id is None else _check_int("device_id", device_id)
        if self.device_id is not None and self.device_id < 0:
            raise ValueError(f"device_id must be >= 0 or None, got {device_id}")
        self.dump_statistics_mode = _check_int("dump_statistics_mode", dump_statistics_mode, (0, 1, 2))
        self.dump_last_logits = _check_bool("dump_last_logits", dump_last_logits)
        self.mode = _check_mode(["module"] if mode is None else mode)
        self.dump_weight = _check_bool("dump_weight", dump_weight)
        if layer_name is not None and (not isinstance(layer_name, str) or not layer_name):
            raise ValueError(
                f"layer_name must be a non-empty string pattern (only * is special), got {layer_name!r}"
            )
        self.layer_name = layer_name
        self.layer_pattern = None if layer_name is None else wildcard_pattern(layer_name)
        self.analyze = _check_bool("analyze", analyze)
        self.writer_queue_mb = _check_int("writer_queue_mb", writer_queue_mb)
        if self.writer_queue_mb < 1:
            raise ValueError(f"writer_queue_mb must be >= 1, got {writer_queue_mb}")
        self.replay = None if replay is None else self._check_replay(replay)
        self.seed = seed
        if seed is not None:
            from .seed import seed_all

            seed_all(seed)

    def _check_replay(self, replay: Any) -> str:
        if not isinstance(replay, (str, os.PathLike)) or not os.fspath(replay):
            raise ValueError(f"replay must be the path of a golden torch dump, got {replay!r}")
        if self.dump_last_logits or "module" not in self.mode or not self.save_tensors:
            raise ValueError(
                "replay saves module outputs: it needs mode 'module', dump_last_logits=False and "
                "dump_statistics_mode 0 or 2"
            )
        from ..errors import DumpFormatError
        from .replay import GoldenInputs

        try:
            self._golden = GoldenInputs(replay)
        except DumpFormatError as error:
            raise ValueError(f"replay: {error}") from error
        return os.path.abspath(os.fspath(replay))

    @property
    def golden_inputs(self) -> Any:
        """The golden dump's inputs (``replay.GoldenInputs``) when ``replay`` is set, else None."""
        return getattr(self, "_golden", None)

    @property
    def save_tensors(self) -> bool:
        return self.dump_statistics_mode in (0, 2)

    @property
    def save_statistics(self) -> bool:
        return self.dump_statistics_mode in (1, 2)

    @property
    def save_inputs(self) -> bool:
        return self.tensor_part in (0, 2)

    @property
    def save_outputs(self) -> bool:
        return self.tensor_part in (1, 2)

    def selects_token(self, token: int) -> bool:
        return token in self._tokens

    def selects_name(self, name: str) -> bool:
        """True when ``layer_name`` is unset or matches the whole of ``name``."""
        return self.layer_pattern is None or self.layer_pattern.fullmatch(name) is not None

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{key}={value!r}"
            for key, value in vars(self).items()
            if not key.startswith(("_", "layer_pattern"))
        )
        return f"DumpConfig({fields})"


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
