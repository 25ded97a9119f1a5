"""One build stage's non-filesystem semantics, as ``docker build`` (BuildKit) has them.

:class:`StageState` starts from the base image's config and applies the
config-only instructions to it (ENV, LABEL, WORKDIR, USER, CMD, ...),
keeps ARG scoping (meta ARGs before FROM are usable in FROM only, unless
redeclared in the stage; ``--build-arg`` overrides a declared ARG's
default; the proxy args need no declaration; TARGETPLATFORM and friends are
``linux/amd64`` values), and turns RUN, COPY and ADD into what the executor
needs: RUN's argv and environment, COPY's expanded sources and resolved
destination. Variables are expanded only in the instructions Docker
expands them in (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME
WORKDIR, ARG defaults); RUN, CMD and ENTRYPOINT reach the shell as written.
"""

from __future__ import annotations

import contextlib
import copy
import posixpath
import re
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cocoon.builder import expand
from cocoon.builder.dockerfile import Dockerfile, Heredoc, Instruction, Stage, heredoc_word
from cocoon.builder.dockerfile import parse_line as _parse_line
from cocoon.errors import Corrupt, InvalidArgument

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Set without an ARG: usable in FROM, and in a stage once declared (`ARG TARGETARCH`).
PLATFORM_ARGS: Mapping[str, str] = {
    "TARGETPLATFORM": "linux/amd64",
    "TARGETOS": "linux",
    "TARGETARCH": "amd64",
    "TARGETVARIANT": "",
    "BUILDPLATFORM": "linux/amd64",
    "BUILDOS": "linux",
    "BUILDARCH": "amd64",
    "BUILDVARIANT": "",
}

# Given with --build-arg, these reach every RUN without an ARG, and stay out of
# the cache key and the history, as Docker keeps them.
PROXY_ARGS = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)

_CONFIG_ONLY = frozenset((
    "ARG", "ENV", "LABEL", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "EXPOSE", "VOLUME",
    "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "SHELL", "MAINTAINER",
))  # fmt: skip
_FILESYSTEM = frozenset(("RUN", "COPY", "ADD"))

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_HEALTH_DURATIONS = (
    ("interval", "Interval"),
    ("timeout", "Timeout"),
    ("start-period", "StartPeriod"),
    ("start-interval", "StartInterval"),
)


@dataclass(frozen=True)
class CopyOp:
    """A COPY or ADD with its words expanded.

    ``sources`` are context-relative as written (``..`` not yet refused:
    :class:`~cocoon.builder.context.Context` does that) or, with ``from_``,
    paths in that stage or image. ``heredocs`` are here-document sources,
    their bodies already expanded. ``dest`` is absolute, resolved against
    WORKDIR, with a trailing ``/`` kept when one was written.
    """

    add: bool
    sources: tuple[str, ...]
    dest: str
    from_: str | None
    chown: str | None
    chmod: int | None
    heredocs: tuple[Heredoc, ...]
    line: int


@contextlib.contextmanager
def _at(instr: Instruction) -> Iterator[None]:
    """Expansion errors gain the instruction's line."""
    try:
        yield
    except InvalidArgument as e:
        if str(e).startswith("Dockerfile:"):
            raise
        raise instr.error(f"{instr.keyword}: {e}") from None


def meta_values(df: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    """The values of the ARGs before the first FROM: a build arg, else the
    default (which may use earlier ones and the platform args); an ARG with
    neither is unset (absent)."""
    values: dict[str, str] = {}
    for instr in df.meta_args:
        with _at(instr):
            env = {**PLATFORM_ARGS, **values}
            for name, default in expand.pairs(
                instr.args, env, escape=df.escape, value_optional=True
            ):
                if name in build_args:
                    values[name] = build_args[name]
                elif default is not None:
                    values[name] = default
                else:
                    values.pop(name, None)
    return values


def _global_env(meta_args: Mapping[str, str], build_args: Mapping[str, str]) -> dict[str, str]:
    # A build arg overrides a meta ARG of its name; meta_values() has already
    # applied them, so passing its result with the build args changes nothing.
    overrides = {name: value for name, value in build_args.items() if name in meta_args}
    return {**PLATFORM_ARGS, **meta_args, **overrides}


def base_ref(stage: Stage, meta_args: Mapping[str, str], build_args: Mapping[str, str]) -> str:
    """The stage's FROM word expanded with the meta ARGs (see :func:`meta_values`)."""
    env = _global_env(meta_args, build_args)
    where = f"Dockerfile:{stage.line}"
    try:
        ref = expand.expand(stage.base, env)
    except InvalidArgument as e:
        raise InvalidArgument(f"{where}: FROM: {e}") from None
    if not ref:
        raise InvalidArgument(f"{where}: base name ({stage.base}) should not be blank")
    return ref


def base_platform(
    stage: Stage, meta_args: Mapping[str, str], build_args: Mapping[str, str]
) -> str | None:
    """The stage's ``FROM --platform`` expanded, or None."""
    if stage.platform is None:
        return None
    try:
        return expand.expand(stage.platform, _global_env(meta_args, build_args))
    except InvalidArgument as e:
        raise InvalidArgument(f"Dockerfile:{stage.line}: FROM --platform: {e}") from None


def unused_build_args(
    df: Dockerfile, stages: Sequence[Stage], build_args: Mapping[str, str]
) -> tuple[str, ...]:
    """Build args no ARG of the meta args or of ``stages`` declares (Docker warns of them)."""
    declared: set[str] = set()
    for instr in (*df.meta_args, *(i for s in stages for i in s.instructions)):
        if instr.keyword == "ARG":
            declared.update(word.partition("=")[0] for word in instr.args)
    return tuple(sorted(n for n in build_args if n not in declared and n not in PROXY_ARGS))


def parse_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``500ms``, ``0``) in nanoseconds."""
    body = text.lstrip("+-")
    if body == "0":
        return 0
    total = 0.0
    pos = 0
    for part in _DURATION_PART.finditer(body):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _NANOSECONDS[part.group(2)]
        pos = part.end()
    if not body or pos != len(body):
        raise InvalidArgument(f"invalid duration {text!r}: use e.g. 30s, 1m30s or 500ms")
    return -int(total) if text.startswith("-") else int(total)


def _check_signal(text: str) -> None:
    if text.isdigit():
        if 0 < int(text) <= 64:
            return
    else:
        name = text.upper().removeprefix("SIG")
        known = {s.name.removeprefix("SIG") for s in signal.Signals}
        if name in known or re.fullmatch(r"RTM(IN\+\d+|AX-\d+)", name):
            return
    raise InvalidArgument(f"invalid signal {text!r}")


def _ports(spec: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` -> ["80/tcp"], ... (EXPOSE)."""
    ports, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: use tcp, udp or sctp")
    first, dash, last = ports.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise InvalidArgument(f"invalid port {spec!r}: use PORT[-PORT][/PROTOCOL]")
    low, high = int(first), int(last) if dash else int(first)
    if not 0 <= low <= high <= 65535:
        raise InvalidArgument(f"invalid port range {spec!r}")
    return [f"{port}/{proto}" for port in range(low, high + 1)]


def _check_base(config: Mapping[str, Any]) -> None:
    """The base image's config is hostile: the fields a stage reads must have their types."""
    for key in ("Env", "Cmd", "Entrypoint", "Shell", "OnBuild"):
        value = config.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise Corrupt(f"the base image's config: {key} is not a list of strings")
    for key in ("Labels", "ExposedPorts", "Volumes"):
        value = config.get(key)
        if value is not None and not isinstance(value, dict):
            raise Corrupt(f"the base image's config: {key} is not an object")
    if not all(isinstance(v, str) for v in (config.get("Labels") or {}).values()):
        raise Corrupt("the base image's config: a label is not a string")
    for key in ("WorkingDir", "User", "StopSignal"):
        if not isinstance(config.get(key) or "", str):
            raise Corrupt(f"the base image's config: {key} is not a string")


class StageState:
    """The image config and variables of one stage as its instructions apply."""

    def __init__(
        self,
        base_config: Mapping[str, Any],
        meta_args: Mapping[str, str],
        build_args: Mapping[str, str],
        escape: str = "\\",
        *,
        line: int = 1,
    ) -> None:
        config: dict[str, Any] = copy.deepcopy(dict(base_config))
        if not base_config:  # scratch: BuildKit gives it a PATH and "/"
            config = {"Env": [f"PATH={DEFAULT_PATH}"], "WorkingDir": "/"}
        _check_base(config)
        # A base's ONBUILD triggers run in this stage, and are not inherited further.
        self._triggers: tuple[str, ...] = tuple(config.pop("OnBuild", None) or ())
        self.config = config
        self.meta_args = dict(meta_args)
        self.build_args = dict(build_args)
        self.escape = escape
        self.line = line
        self.args: dict[str, str | None] = {}  # declared in this stage: value or unset
        self.used_args: set[str] = set()
        self.author: str | None = None  # MAINTAINER: the image config's "author"
        self._cmd_set = False

    # -- the environment ------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The config's Env as a mapping."""
        out: dict[str, str] = {}
        for item in self.config.get("Env") or ():
            name, _, value = item.partition("=")
            out[name] = value
        return out

    def variables(self) -> dict[str, str]:
        """What an expansion sees: the ARGs in scope, overridden by ENV."""
        args = {name: value for name, value in self.args.items() if value is not None}
        return {**args, **self.env()}

    def _set_env(self, name: str, value: str) -> None:
        env = list(self.config.get("Env") or ())
        item = f"{name}={value}"
        for i, existing in enumerate(env):
            if existing.partition("=")[0] == name:
                env[i] = item
                break
        else:
            env.append(item)
        self.config["Env"] = env

    def _expand(self, word: str) -> str:
        return expand.expand(word, self.variables(), escape=self.escape)

    def _shell_argv(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    # -- config instructions ----------------------------------------------------

    def apply(self, instr: Instruction) -> None:
        """Apply a config instruction; RUN, COPY and ADD change no config (the
        executor runs them with :meth:`run_argv` and :meth:`copy_op`)."""
        if instr.keyword in _FILESYSTEM:
            return
        if instr.keyword not in _CONFIG_ONLY:
            raise instr.error(f"{instr.keyword} cannot be applied inside a stage")
        with _at(instr):
            getattr(self, "_" + instr.keyword.lower())(instr)

    def _arg(self, instr: Instruction) -> None:
        variables = self.variables()
        for name, default in expand.pairs(
            instr.args, variables, escape=self.escape, value_optional=True
        ):
            self.used_args.add(name)
            if name in self.build_args:
                value: str | None = self.build_args[name]
            elif default is not None:
                value = default
            elif name in self.meta_args:
                value = self.meta_args[name]
            else:
                value = PLATFORM_ARGS.get(name)
            self.args[name] = value

    def _env(self, instr: Instruction) -> None:
        for name, value in expand.pairs(instr.args, self.variables(), escape=self.escape):
            self._set_env(name, value or "")

    def _label(self, instr: Instruction) -> None:
        labels = dict(self.config.get("Labels") or {})
        for name, value in expand.pairs(instr.args, self.variables(), escape=self.escape):
            labels[name] = value or ""
        self.config["Labels"] = labels

    def _workdir(self, instr: Instruction) -> None:
        path = self._expand(instr.args[0])
        if not path:
            raise InvalidArgument("WORKDIR needs a path")
        path = posixpath.join(self.config.get("WorkingDir") or "/", path)
        self.config["WorkingDir"] = "/" + posixpath.normpath(path).lstrip("/")

    def _user(self, instr: Instruction) -> None:
        user = self._expand(instr.args[0])
        if not user:
            raise InvalidArgument("USER needs a user: USER NAME[:GROUP]")
        self.config["User"] = user

    def _command(self, instr: Instruction) -> list[str]:
        return list(instr.args) if instr.json_form else [*self._shell_argv(), instr.args[0]]

    def _entrypoint(self, instr: Instruction) -> None:
        self.config["Entrypoint"] = self._command(instr)
        if not self._cmd_set:  # a CMD inherited from the base no longer fits
            self.config.pop("Cmd", None)

    def _cmd(self, instr: Instruction) -> None:
        self.config["Cmd"] = self._command(instr)
        self._cmd_set = True

    def _expose(self, instr: Instruction) -> None:
        exposed = dict(self.config.get("ExposedPorts") or {})
        for word in instr.args:
            for spec in expand.expand_fields(word, self.variables(), escape=self.escape):
                if ":" in spec:
                    raise InvalidArgument(
                        f"{spec!r}: EXPOSE takes container ports only; publish with run -p"
                    )
                exposed.update((port, {}) for port in _ports(spec))
        self.config["ExposedPorts"] = exposed

    def _volume(self, instr: Instruction) -> None:
        volumes = dict(self.config.get("Volumes") or {})
        for word in instr.args:
            path = self._expand(word)
            if not path:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[path] = {}
        self.config["Volumes"] = volumes

    def _stopsignal(self, instr: Instruction) -> None:
        sig = self._expand(instr.args[0])
        _check_signal(sig)
        self.config["StopSignal"] = sig

    def _healthcheck(self, instr: Instruction) -> None:
        if instr.args[0] == "NONE":
            self.config["Healthcheck"] = {"Test": ["NONE"]}
            return
        test = ["CMD", *instr.args[1:]] if instr.json_form else ["CMD-SHELL", instr.args[1]]
        check: dict[str, Any] = {"Test": test}
        for flag, key in _HEALTH_DURATIONS:
            value = instr.flag(flag)
            if value is None:
                continue
            nanoseconds = parse_duration(value)
            if nanoseconds == 0:
                continue  # zero: inherit the default
            if nanoseconds < 1_000_000:
                raise InvalidArgument(f"--{flag}={value} cannot be less than 1ms")
            check[key] = nanoseconds
        retries = instr.flag("retries")
        if retries is not None:
            if not re.fullmatch(r"[+-]?\d+", retries):
                raise InvalidArgument(f"--retries={retries}: give a whole number")
            if int(retries) < 0:
                raise InvalidArgument("--retries cannot be negative")
            if int(retries):
                check["Retries"] = int(retries)
        self.config["Healthcheck"] = check

    def _onbuild(self, instr: Instruction) -> None:
        self.config["OnBuild"] = [*(self.config.get("OnBuild") or ()), instr.args[0]]

    def _shell(self, instr: Instruction) -> None:
        self.config["Shell"] = list(instr.args)

    def _maintainer(self, instr: Instruction) -> None:
        self.author = instr.args[0]

    # -- RUN --------------------------------------------------------------------

    def run_argv(self, instr: Instruction) -> list[str]:
        """RUN's argv: exec form as written; shell form through SHELL.

        A here-document that is the whole command is the script; one with a
        ``#!`` line is written to a file and run by that interpreter. Other
        here-documents (``RUN cat <<EOF``) go to the shell with the line.
        """
        if instr.keyword != "RUN":
            raise instr.error(f"{instr.keyword} is not RUN")
        _check_run_flags(instr)
        if instr.json_form:
            return list(instr.args)
        line = instr.args[0]
        docs = instr.heredocs
        if len(docs) == 1 and all(heredoc_word(w) for w in expand.split_words(line)):
            body = docs[0].body
            if body.startswith("#!"):
                return ["/bin/sh", "-c", _SHEBANG_RUNNER, "sh", body]
            return [*self._shell_argv(), body]
        if docs:
            line += "\n" + "".join(doc.body + doc.name + "\n" for doc in docs)
        return [*self._shell_argv(), line]

    def run_env(self) -> list[str]:
        """``K=V`` for a RUN: the config's Env, the ARGs in scope it does not
        override, the proxy build args, and a default PATH if none is set."""
        env = self.env()
        out = [f"{name}={value}" for name, value in env.items()]
        seen = set(env)
        for name, value in self.args.items():
            if value is not None and name not in seen:
                out.append(f"{name}={value}")
                seen.add(name)
        for name in sorted(PROXY_ARGS & self.build_args.keys() - seen):
            out.append(f"{name}={self.build_args[name]}")
            seen.add(name)
        if "PATH" not in seen:
            out.append(f"PATH={DEFAULT_PATH}")
        return out

    def cache_args(self) -> tuple[tuple[str, str], ...]:
        """The ARGs in scope with a value, in declaration order: part of a RUN's cache key."""
        return tuple((n, v) for n, v in self.args.items() if v is not None)

    # -- COPY / ADD ---------------------------------------------------------------

    def copy_op(self, instr: Instruction) -> CopyOp:
        if instr.keyword not in ("COPY", "ADD"):
            raise instr.error(f"{instr.keyword} is not COPY or ADD")
        with _at(instr):
            for flag in ("parents", "exclude", "checksum", "keep-git-dir"):
                if flag in instr.flags:
                    raise InvalidArgument(f"--{flag} is not supported yet")
            *raw_sources, raw_dest = instr.args
            sources: list[str] = []
            heredocs = {doc.name: doc for doc in instr.heredocs}
            used: list[Heredoc] = []
            variables = self.variables()
            for word in raw_sources:
                opened = None if instr.json_form else heredoc_word(word)
                if opened:
                    used.append(self._heredoc(heredocs[opened[0]], variables))
                else:
                    sources.append(self._expand(word))
            dest = self._dest(self._expand(raw_dest))
            from_ = instr.flag("from")
            chown = instr.flag("chown")
            chmod = instr.flag("chmod")
            return CopyOp(
                add=instr.keyword == "ADD",
                sources=tuple(sources),
                dest=dest,
                from_=self._expand(from_) if from_ is not None else None,
                chown=self._expand(chown) if chown is not None else None,
                chmod=_chmod(self._expand(chmod)) if chmod is not None else None,
                heredocs=tuple(used),
                line=instr.line,
            )

    def _heredoc(self, doc: Heredoc, variables: Mapping[str, str]) -> Heredoc:
        if not doc.expand:
            return doc
        return Heredoc(doc.name, expand.expand_heredoc(doc.body, variables), expand=False)

    def _dest(self, raw: str) -> str:
        if not raw:
            raise InvalidArgument("the destination can not be empty")
        is_dir = raw.endswith("/") or raw.endswith("/.") or raw in (".", "..")
        path = posixpath.join(self.config.get("WorkingDir") or "/", raw)
        path = "/" + posixpath.normpath(path).lstrip("/")
        return path + "/" if is_dir and path != "/" else path

    # -- ONBUILD ------------------------------------------------------------------

    def onbuild_triggers(self) -> tuple[Instruction, ...]:
        """The base image's ONBUILD instructions, to run right after FROM."""
        triggers = []
        for text in self._triggers:
            trigger = _parse_line(text, escape=self.escape, line=self.line)
            if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
                raise trigger.error(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
            triggers.append(trigger)
        return tuple(triggers)


def _check_run_flags(instr: Instruction) -> None:
    """RUN's flags cocoon can honour: a cache mount changes no result, so it is
    left out (the step is only slower); other mounts, a network or a security
    mode are refused rather than ignored."""
    for mount in instr.flags.get("mount", ()):
        fields = dict(field.partition("=")[::2] for field in mount.split(","))
        kind = fields.get("type", "bind")
        if kind != "cache":
            raise instr.error(f"RUN --mount=type={kind} is not supported yet")
    network = instr.flag("network")
    if network not in (None, "default"):
        raise instr.error(f"RUN --network={network} is not supported yet")
    security = instr.flag("security")
    if security not in (None, "sandbox"):
        raise instr.error(f"RUN --security={security} is not supported yet")


# Runs a here-document script that names its interpreter (#!): as a file, as
# Docker does, removed afterwards. $1 is the script.
_SHEBANG_RUNNER = (
    'f="/tmp/.cocoon-heredoc-$$" && printf "%s" "$1" > "$f" && chmod +x "$f" && "$f"; '
    's=$?; rm -f "$f"; exit $s'
)


def _chmod(text: str) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise InvalidArgument(f"invalid --chmod={text}: give octal permissions such as 755")
    return int(text, 8)


__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SHELL",
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    "CopyOp",
    "StageState",
    "base_platform",
    "base_ref",
    "meta_values",
    "parse_duration",
    "unused_build_args",
]
