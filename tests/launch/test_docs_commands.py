"""Every megathink command line in the docs parses, so a doc example that would fail at once fails CI.

The commands come from README.md, docs/*.md and slurm/README.md: the shell code blocks (fenced,
with no language or bash/sh/shell/console) and the inline code spans that start with
`megathink <command>` and carry at least two arguments, one an override or a flag (`megathink
plot --compare` in a sentence names a feature; `megathink convert megatron-to-hf --ckpt C --out
D` is a command). A logical line is what a shell would run: `\\` continuations joined, `#`
comments dropped, cut at `;`, `&&`, `||` and `|`. Recognised forms:
`megathink CMD ...` (any path to it, e.g. `.venv/bin/megathink`), `torchrun/python ... -m
megathink.launch.cli CMD ...`, and `sbatch [options] slurm/RECIPE.sh OVERRIDES` (composed as the
job library runs it: `train experiment=<the recipe's EXPERIMENT> logger.run_name=... OVERRIDES`).

What "parses" means, with nothing trained, loaded or started (all in this process):
- Hydra commands (train, sft, eval, presample, and any other primary config): Hydra's compose
  API with the same overrides, then `to_run_config` (the dataclass validation the CLI runs).
  Hydra's own flags (`--cfg job`, `--resolve`, `--package P`, `--help`) are dropped; `-m` sweeps
  are composed once per point; `...` in a command stands for elided overrides, and `KEY=...`
  for a value left to the reader: both are dropped.
- argparse commands (convert, plot, serve, distill, sweep-report, leaderboard): their `build_parser()`
  parses the arguments (plus the checks that need no files: serve's `_check`, distill's
  settings); `shards` runs its own argument parsing and setting validation with the build
  itself replaced.

Shell variables: a block's own assignments (`OUT=...`, `for d in 0.1 0.2`: the first value) are
used; the variables the docs ask users to export come from `ENV_PLACEHOLDERS`; `<...>`
placeholders (`<time>`, `<sft job id>`) become `X`. An unknown variable fails the test, naming it.

Files the commands name (models, data, run folders) need not exist: composition and validation
never open them. A command that legitimately needs a real file to parse goes into
`NEEDS_REAL_FILES` with the reason; it must then fail with a missing-path error (any other
failure, or none, fails the test), so the allow-list cannot hide a broken command.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from megathink.launch.cli import COMMANDS, PLAIN_COMMANDS
from megathink.launch.schema import register_schema, to_run_config

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "slurm" / "README.md"]

ENV_PLACEHOLDERS = {
    "MEGATHINK_RUNS": "runs", "MEGATHINK_DATA": "data", "MEGATHINK_MODELS": "models", "USER": "user",
    "HOME": "home", "MEGATHINK_ROLLOUT_API_KEY": "key", "RUN_DIR": "runs/run", "EXPERIMENT": "thinkless_degrpo_7b",
}
"""Sample values of the environment variables the docs ask users to set (docs/CLUSTER.md) and of
the SLURM job library's settings (RUN_DIR, EXPERIMENT) that its documented command line uses."""

NEEDS_REAL_FILES: dict[tuple[str, str], str] = {}
"""(doc file relative to the repository, a substring of the command) -> why it needs a real file
to parse. Empty: no documented command needs one today."""

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "--config-dir", "--info"}
HYDRA_FLAGS = {"--resolve", "--help", "-h", "--hydra-help", "--run", "-r"}
SHELL_KEYWORDS = {"do", "then", "else", "time", "exec", "!"}
OPERATORS = {";", "&&", "||", "|", "&", ";;"}
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
RUNS_MEGATHINK = re.compile(r"(?:^|[\s/])megathink\s+[a-z]|megathink\.launch\.cli|\bsbatch\b")
INLINE_COMMAND = re.compile(r"(?<!`)`((?:\S*/)?megathink [a-z][a-z-]* [^`]+)`(?!`)")


@dataclass(frozen=True)
class DocCommand:
    """One megathink invocation written in a doc."""

    where: str
    """`file:line` of its first line."""

    text: str
    """The logical line as written (continuations joined)."""

    command: str
    """megathink's command: train, sft, eval, ..., plot, convert, ..."""

    args: tuple[str, ...]
    """Its arguments after variable substitution (an sbatch recipe's are already prefixed)."""

    problem: Optional[str] = None
    """Why its arguments could not be read (an unknown shell variable), reported by the test."""


def _blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of every shell code block, then of every inline command span."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fence, start, body = None, 0, []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence, start, body = stripped[3:].strip().lower(), number + 1, []
        elif fence is not None and stripped.startswith("```"):
            if fence in SHELL_LANGUAGES:
                yield start, body
            fence = None
        elif fence is not None:
            body.append(line)
    text = path.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for match in INLINE_COMMAND.finditer(prose):
        words = match.group(1).split()
        if len(words) >= 4 and any("=" in w or w.startswith("-") for w in words[2:]):  # a command, not a name
            yield prose.count("\n", 0, match.start()) + 1, [" ".join(words)]


def _logical_lines(start: int, body: list[str]) -> Iterator[tuple[int, str]]:
    pending, first = "", start
    for offset, line in enumerate(body):
        if not pending:
            first = start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _tokens(line: str) -> list[str]:
    line = re.sub(r"(?<!\S)<[A-Za-z][^<>]*>(?!\S)", "...", line)  # a whole argument: `<your overrides>`, elided
    line = re.sub(r"<[A-Za-z][^<>]*>", "X", line)  # inside one: multirun/train/<time>, afterok:<sft job id>
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _substitute(token: str, variables: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in variables:
            return variables[name]
        if name in ENV_PLACEHOLDERS:
            return ENV_PLACEHOLDERS[name]
        raise KeyError(f"${name} is neither set in the code block nor in ENV_PLACEHOLDERS; add it there")

    return VARIABLE.sub(value, token)


def _segments(tokens: list[str]) -> Iterator[list[str]]:
    segment: list[str] = []
    for token in tokens:
        if token in OPERATORS:
            yield segment
            segment = []
        else:
            segment.append(token)
    yield segment


def _recipe_experiment(root: Path, recipe: str) -> str:
    text = (root / recipe).read_text(encoding="utf-8")
    match = re.search(r'EXPERIMENT:=([\w.]+)', text)
    assert match, f"{recipe} sets no EXPERIMENT"
    return match.group(1)


def _invocation(words: list[str], root: Path) -> Optional[tuple[str, list[str]]]:
    """(command, arguments) when `words` run megathink, else None."""
    if not words:
        return None
    program = Path(words[0]).name
    if program == "megathink":  # (`megathink --help` alone lists the commands: nothing to parse)
        return (words[1], words[2:]) if len(words) > 1 and not words[1].startswith("-") else None
    if "megathink.launch.cli" in words and words[words.index("megathink.launch.cli") - 1] == "-m":
        rest = words[words.index("megathink.launch.cli") + 1:]
        return (rest[0], rest[1:]) if rest else None
    if program == "sbatch":
        recipe = next((i for i, w in enumerate(words) if re.fullmatch(r"(\S*/)?slurm/\w[\w.]*\.sh", w)), None)
        if recipe is None:
            return None
        path = words[recipe][words[recipe].index("slurm/"):]
        experiment = _recipe_experiment(root, path)
        return "train", [f"experiment={experiment}", f"logger.run_name={experiment}", *words[recipe + 1:]]
    return None


def doc_commands(path: Path, root: Path = REPO) -> list[DocCommand]:
    """Every megathink invocation in the doc at `path` (sbatch recipes are read under `root`)."""
    found: list[DocCommand] = []
    relative = path.relative_to(root).as_posix()
    for start, body in _blocks(path):
        variables: dict[str, str] = {}
        for number, line in _logical_lines(start, body):
            where = f"{relative}:{number}"
            try:
                tokens = _tokens(line)
            except ValueError as err:  # not shell (a folder tree, prose): fine unless it names megathink
                assert not RUNS_MEGATHINK.search(line), f"{where}: `{line.strip()}` is not valid shell: {err}"
                continue
            for words in _segments(tokens):
                while words and words[0] in SHELL_KEYWORDS:
                    words = words[1:]
                if len(words) >= 3 and words[0] == "for" and words[2] == "in":
                    variables[words[1]] = words[3] if len(words) > 3 else ""
                    continue
                assignments = [w for w in itertools.takewhile(lambda w: re.match(r"^[A-Za-z_]\w*=", w), words)]
                words = words[len(assignments):]
                if not words:  # a plain assignment: later lines of the block see it
                    for item in assignments:
                        name, _, value = item.partition("=")
                        with contextlib.suppress(KeyError):
                            variables[name] = _substitute(value, variables)
                    continue
                invocation = _invocation(words, root)
                if invocation is not None:
                    command, args = invocation
                    try:
                        found.append(DocCommand(where, line.strip(), command, tuple(_substitute(a, variables) for a in args)))
                    except KeyError as err:
                        found.append(DocCommand(where, line.strip(), command, tuple(args), problem=err.args[0]))
    return found


ALL_COMMANDS = [command for path in DOC_FILES for command in doc_commands(path)]


@pytest.fixture(scope="module")
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    register_schema()
    with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
        yield
    GlobalHydra.instance().clear()


def _hydra_overrides(args: tuple[str, ...]) -> tuple[list[list[str]], bool]:
    """The override lists to compose (one per sweep point) and whether this is a -m sweep."""
    overrides, multirun, skip = [], False, False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif arg in HYDRA_FLAGS_WITH_VALUE:
            skip = True
        elif arg in HYDRA_FLAGS or arg == "..." or arg.endswith("=..."):  # elided overrides / values
            continue
        else:
            overrides.append(arg)
    if not multirun:
        return [overrides], False
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
        for o in parsed
    ]
    return [list(point) for point in itertools.product(*choices)], True


def _parse_hydra(command: DocCommand) -> None:
    points, _ = _hydra_overrides(command.args)
    for overrides in points:
        to_run_config(compose(config_name=command.command, overrides=["output_dir=out", *overrides]))


def _parse_plain(command: DocCommand) -> None:
    args = list(command.args)
    if command.command == "shards":
        from megathink.data.shards import build as shards

        class Parsed(Exception):
            """Raised by the stand-in build: the arguments parsed and the settings validated."""

        def stand_in(*_args, **_kwargs):
            raise Parsed

        original = shards.build
        shards.build = stand_in
        try:
            status = shards.main(args, prog="megathink shards")
        except Parsed:
            return
        finally:
            shards.build = original
        raise AssertionError(f"megathink shards stopped with status {status} before building")
    module = {
        "convert": "megathink.launch.convert_command", "plot": "megathink.launch.plot_command",
        "serve": "megathink.launch.serve_command", "distill": "megathink.launch.distill_command",
        "sweep-report": "megathink.launch.sweep_report_command",
        "leaderboard": "megathink.launch.leaderboard_command",
    }[command.command]
    import importlib

    loaded = importlib.import_module(module)
    parsed = loaded.build_parser().parse_args(args)
    if command.command == "serve":
        loaded._check(parsed)
    if command.command == "distill":
        loaded.settings_from_args(parsed)


def _parse(command: DocCommand) -> None:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if command.command in PLAIN_COMMANDS:
                _parse_plain(command)
            elif command.command in COMMANDS:
                _parse_hydra(command)
            else:
                raise AssertionError(f"megathink {command.command} is not a megathink command")
    except SystemExit as stop:  # argparse: the message went to stderr
        raise AssertionError(f"exit {stop.code}: {stderr.getvalue().strip()}") from None


def _allowed(command: DocCommand) -> Optional[str]:
    file = command.where.rsplit(":", 1)[0]
    return next((why for (doc, part), why in NEEDS_REAL_FILES.items() if doc == file and part in command.text), None)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[f"{c.where}-{c.command}" for c in ALL_COMMANDS])
def test_doc_command_parses(command: DocCommand, hydra_context: None) -> None:
    assert command.problem is None, f"{command.where}: `{command.text}`: {command.problem}"
    reason = _allowed(command)
    if reason is None:
        try:
            _parse(command)
        except Exception as err:  # noqa: BLE001  (any failure: the doc's command is broken)
            pytest.fail(f"{command.where}: `{command.text}` does not parse:\n{type(err).__name__}: {err}")
        return
    with pytest.raises((FileNotFoundError, OSError)) as missing:  # the allow-list must stay true
        _parse(command)
    assert missing.value is not None, reason


def test_the_docs_hold_the_commands_this_test_reads() -> None:
    """The extractor finds each form (a silent miss would pass every test above)."""
    where = {(c.where.split(":")[0], c.command) for c in ALL_COMMANDS}
    for expected in [
        ("README.md", "train"), ("README.md", "sft"), ("README.md", "eval"), ("README.md", "convert"),
        ("README.md", "plot"), ("README.md", "serve"), ("README.md", "distill"), ("README.md", "sweep-report"),
        ("README.md", "shards"), ("docs/CLUSTER.md", "train"), ("docs/CLUSTER.md", "presample"),
        ("docs/ROLLOUT.md", "train"), ("docs/RESULTS.md", "plot"),
    ]:
        assert expected in where, expected
    torchrun = [c for c in ALL_COMMANDS if c.text.startswith("torchrun")]
    sweep = [c for c in ALL_COMMANDS if c.where.startswith("docs/CLUSTER.md") and "RUN_DIR=$MEGATHINK_RUNS/sweep_7b" in c.text]
    assert torchrun and torchrun[0].command == "sft"
    assert sweep and sweep[0].args[:2] == ("experiment=thinkless_degrpo_7b", "logger.run_name=thinkless_degrpo_7b")
    assert "algorithm.alpha=1e-3" in sweep[0].args  # the for loop's first value


def test_extraction_rules(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "Run `megathink eval eval.seeds=[0,1] eval.temperature=0.6` or just `megathink sft`.\n\n"
        "```bash\n"
        "OUT=outputs/x; for d in 0.1 0.2; do\n"
        "  megathink train a.b=$d \\\n"
        "    hydra.run.dir=$OUT/d_$d   # a comment\n"
        "done\n"
        "ROLLOUT_NODES=0 sbatch --nodes=2 slurm/sft_7b.sh sft.max_steps=3 | tee log\n"
        "git clone <your megathink remote> megathink && cd megathink\n"
        "```\n\n"
        "```yaml\nmegathink train not: shell\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "sft_7b.sh").write_text((REPO / "slurm" / "sft_7b.sh").read_text())
    found = [(c.where, c.command, c.args) for c in doc_commands(doc, root=tmp_path)]
    assert found == [
        ("x.md:5", "train", ("a.b=0.1", "hydra.run.dir=outputs/x/d_0.1")),
        ("x.md:8", "train", ("experiment=thinkless_sft_7b", "logger.run_name=thinkless_sft_7b", "sft.max_steps=3")),
        ("x.md:1", "eval", ("eval.seeds=[0,1]", "eval.temperature=0.6")),
    ]
