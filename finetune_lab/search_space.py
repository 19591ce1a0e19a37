"""Search-space files (experiments/search/*.yaml): which run options a search tries, and over what.

One key per run option (any option `run.py --help` lists, with the same name):

    learning_rate: {low: 1.0e-5, high: 3.0e-4, log: true}   # a range (log: sampled on a log scale)
    num_train_epochs: {choices: [2, 3, 4]}                  # a list of values
    per_device_train_batch_size: {low: 8, high: 32, step: 8}
    max_seq_length: 128                                     # fixed: every trial runs with it
    lr_scheduler_kwargs: {value: {power: 2.0}}              # fixed, spelled out (for a mapping option)

Every value is checked against its option's type and limits here, so a bad file is one line naming
the file and the key (exit code 2) before any trial trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from finetune_lab.arguments import check_experiment_values, field_types, load_experiment
from finetune_lab.errors import UsageError, did_you_mean

RANGE_KEYS = {"low", "high", "log", "step"}
SPEC_KEYS = RANGE_KEYS | {"choices", "value"}
# Options the search sets for every trial itself (the run folder and its name), or that would make
# a trial something other than a fresh run of its own.
MANAGED = {
    "task": "the search's --task",
    "experiment": "pass --experiment on the search's command line instead",
    "output_dir": "each trial's run folder lies under the study's folder",
    "run_name": "each trial is named <study>-trial-<number>",
    "resume": "an interrupted trial is re-run by the search",
    "overwrite_output_dir": "each trial has a fresh run folder",
}
# The objective itself: searching these would compare trials on different yardsticks.
OBJECTIVE = ("metric_for_best_model", "greater_is_better")


@dataclass
class SearchSpace:
    path: str
    fixed: dict[str, Any] = field(default_factory=dict)  # option -> value, the same in every trial
    params: dict[str, BaseDistribution] = field(default_factory=dict)  # option -> what Optuna samples

    def to_json(self) -> str:
        """A canonical form, stored with the study: a restart with a changed space is caught."""
        params = {name: json.loads(optuna.distributions.distribution_to_json(d)) for name, d in self.params.items()}
        return json.dumps({"fixed": self.fixed, "params": params}, sort_keys=True, default=str)


def _typed(path: str, key: str, value: Any, parser: Any) -> Any:
    """`value` as option `key`'s type, within its limits (arguments.check_experiment_values: file and key named)."""
    return check_experiment_values(path, {key: value}, parser)[key]


def _is_number(kind: Any) -> type | None:
    """int or float when the option takes that kind of number (`int`, `float`, `int | None`), else None."""
    import types
    import typing

    members = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    for number in (int, float):
        if number in members:
            return number
    return None


def _range(path: str, key: str, spec: dict[str, Any], kind: Any, parser: Any) -> BaseDistribution:
    where = f"{path}: {key}"
    number = _is_number(kind)
    if number is None:
        raise UsageError(f"{where}: a range needs a numeric option; give {{choices: [...]}} instead")
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise UsageError(f"{where}: a range needs low and high (missing {', '.join(missing)})")
    low, high = (_typed(path, key, spec[k], parser) for k in ("low", "high"))
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        raise UsageError(f"{where}: low and high must be finite numbers, got {spec['low']!r} and {spec['high']!r}")
    if not low < high:
        raise UsageError(f"{where}: low {low:g} must be below high {high:g} (for one value, write it without a range)")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{where}: log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs low > 0, got {low:g}")
    step = spec.get("step")
    if step is not None:
        if log:
            raise UsageError(f"{where}: step and log: true cannot be combined (Optuna samples one or the other)")
        if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:
            raise UsageError(f"{where}: step: expected a positive number, got {step!r}")
        if number is int and not isinstance(step, int):
            raise UsageError(f"{where}: step: {key} is an integer option, so step must be an integer, got {step!r}")
    if number is int:
        return IntDistribution(low, high, log=log, step=step or 1)
    return FloatDistribution(float(low), float(high), log=log, step=float(step) if step is not None else None)


def _choices(path: str, key: str, choices: Any, parser: Any) -> CategoricalDistribution:
    where = f"{path}: {key}"
    if not isinstance(choices, list) or not choices:
        raise UsageError(f"{where}: choices: expected a non-empty list ([a, b]), got {choices!r}")
    typed = []
    for choice in choices:
        if choice is None:
            raise UsageError(f"{where}: choices: null is not a value a run can be given; leave the option out instead")
        value = _typed(path, key, choice, parser)
        if not isinstance(value, bool | int | float | str):  # what Optuna can store as a categorical value
            raise UsageError(
                f"{where}: choices: {choice!r}: only single values (numbers, text, true/false) can be choices"
            )
        typed.append(value)
    if len(set(map(repr, typed))) != len(typed):
        raise UsageError(f"{where}: choices: {choices!r} lists a value twice")
    return CategoricalDistribution(typed)


def parse_space(path: str, task: str, parser: Any) -> SearchSpace:
    """The search space in `path` for `task`, checked against run.py's options (`parser`).

    Raises UsageError naming the file and key: an unknown option, a managed one, a bad range or a
    value of the wrong type. An empty file is an error too: a search needs something to search.
    """
    content = load_experiment(path)  # YAML or JSON; unreadable / malformed: one line with file and line
    if "task" in content:
        if content["task"] != task:
            raise UsageError(f"{path}: task: {content['task']!r}, but the search is for --task {task}")
        content = {k: v for k, v in content.items() if k != "task"}
    options = {action.dest for action in parser._actions} - {"help"}
    kinds = field_types(parser)
    space = SearchSpace(path)
    for key, spec in content.items():
        key = str(key)
        if key not in options:
            raise UsageError(f"{path}: {key}: not a run.py option{did_you_mean(key, options)}; see run.py --help")
        if key in MANAGED:
            raise UsageError(f"{path}: {key}: set by the search itself ({MANAGED[key]})")
        is_spec = isinstance(spec, dict) and spec and set(spec) <= SPEC_KEYS
        if isinstance(spec, dict) and not is_spec and _is_number(kinds.get(key)) is not None:
            unknown = sorted(set(spec) - SPEC_KEYS) or ["(empty)"]
            raise UsageError(
                f"{path}: {key}: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), SPEC_KEYS)}; "
                "expected {low, high[, log, step]}, {choices: [...]} or a fixed value"
            )
        if not is_spec:
            space.fixed[key] = _fixed(path, key, spec, parser)
            continue
        kinds_given = [group for group in (RANGE_KEYS, {"choices"}, {"value"}) if set(spec) & group]
        if len(kinds_given) > 1:
            raise UsageError(f"{path}: {key}: give a range (low/high), choices or a value, not several")
        if "value" in spec:
            space.fixed[key] = _fixed(path, key, spec["value"], parser)
        elif key in OBJECTIVE:
            raise UsageError(
                f"{path}: {key}: the objective cannot be searched (trials would be scored differently); give one value"
            )
        elif "choices" in spec:
            space.params[key] = _choices(path, key, spec["choices"], parser)
        else:
            space.params[key] = _range(path, key, spec, kinds.get(key), parser)
    if not space.params:
        raise UsageError(f"{path}: nothing to search: give at least one option a range ({{low, high}}) or choices")
    return space


def _fixed(path: str, key: str, value: Any, parser: Any) -> Any:
    if value is None:
        raise UsageError(f"{path}: {key}: null is not a value a run can be given; leave the option out instead")
    return _typed(path, key, value, parser)


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """The trial's values, sampled by Optuna (or replayed: an enqueued or retried trial)."""
    values: dict[str, Any] = {}
    for name, dist in space.params.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def as_cli(options: dict[str, Any]) -> list[str]:
    """Options as run.py command-line words: `--key value` (a list: `--key a b`, true/false spelled out)."""
    words: list[str] = []
    for key, value in options.items():
        words.append(f"--{key}")
        if isinstance(value, list):
            words.extend(_word(v) for v in value)
        elif isinstance(value, dict):
            words.append(json.dumps(value))
        else:
            words.append(_word(value))
    return words


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def cli_options(words: list[str], parser: Any, where: str = "the search's command line") -> dict[str, Any]:
    """run.py command-line words (`--key v`, `--key=v`, `--key a b`, a bare `--flag`) as typed options.

    Used to write the best trial as an experiment file; every value is checked like an experiment
    file's. An option given twice keeps its last value, as on the command line.
    """
    actions = {action.dest: action for action in parser._actions}
    options: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise UsageError(f"{where}: {word!r} is not an option (expected --name value)")
        name, eq, inline = word[2:].partition("=")
        values = [inline] if eq else []
        i += 1
        if not eq:
            while i < len(words) and not words[i].startswith("--"):
                values.append(words[i])
                i += 1
        if name not in actions:
            raise UsageError(f"{where}: unknown option --{name}{did_you_mean(name, actions)}; see run.py --help")
        nargs = actions[name].nargs
        if not values:
            if nargs != "?":
                raise UsageError(f"{where}: --{name} needs a value")
            value: Any = True  # a bare boolean flag
        elif nargs in ("+", "*"):
            value = values
        elif len(values) > 1:
            raise UsageError(f"{where}: --{name} takes one value, got {' '.join(values)}")
        else:
            value = values[0]
        if isinstance(value, str) and isinstance(actions[name].default, dict | type(None)):
            try:  # a mapping option given as JSON text
                parsed = json.loads(value)
                value = parsed if isinstance(parsed, dict) else value
            except ValueError:
                pass
        options[name] = check_experiment_values(where, {name: value}, parser)[name]
    return options
