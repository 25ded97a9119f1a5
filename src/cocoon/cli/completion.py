"""cocoon completion bash|zsh: a shell completion script made from the CLI's own parser.

The script knows every verb and flag (read from the parser when it is
made, so it never drifts from the CLI) and asks cocoon for container and
image names as you type:

    eval "$(cocoon completion bash)"      # in ~/.bashrc
    eval "$(cocoon completion zsh)"       # in ~/.zshrc (through bashcompinit)
"""

from __future__ import annotations

import argparse
import shlex

# Verbs whose operands are containers or images, completed with their names.
_CONTAINER_VERBS = frozenset({"start", "stop", "kill", "rm", "inspect", "logs", "exec", "stats",
                              "wait", "restart", "attach", "port", "top", "rename", "pause",
                              "unpause", "update"})  # fmt: skip
_IMAGE_VERBS = frozenset({"run", "create", "push", "rmi", "tag", "save"})

_SCRIPT = """\
# cocoon completion for bash (and zsh through bashcompinit)
_cocoon() {{
    local cur verb words
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    verb="${{COMP_WORDS[1]}}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W {verbs} -- "$cur"))
        return
    fi
    case "$verb" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    elif [[ " {containers} " == *" $verb "* ]]; then
        COMPREPLY=($(compgen -W "$(cocoon ls -a --format '{{{{.Names}}}}' 2>/dev/null)" -- "$cur"))
    elif [[ " {images} " == *" $verb "* ]]; then
        COMPREPLY=($(compgen -W "$(cocoon images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' \\
            2>/dev/null)" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}}
complete -o default -F _cocoon cocoon
"""


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("completion", help="Print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(handler=_completion)


def _words(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's flags and, for a verb with subcommands (image, network...), their names."""
    words = [s for action in parser._actions for s in action.option_strings]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words += list(action.choices)
    return words


def script(top: argparse.ArgumentParser) -> str:
    (sub,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    cases = "\n".join(
        f"        {name}) words={shlex.quote(' '.join(_words(p)))} ;;"
        for name, p in sorted(sub.choices.items())
    )
    return _SCRIPT.format(
        verbs=shlex.quote(" ".join(sorted(sub.choices))),
        cases=cases,
        containers=" ".join(sorted(_CONTAINER_VERBS)),
        images=" ".join(sorted(_IMAGE_VERBS)),
    )


def _completion(args: argparse.Namespace) -> int:
    from cocoon.cli.main import parser

    text = script(parser())
    if args.shell == "zsh":
        text = "autoload -U +X bashcompinit && bashcompinit\n" + text
    print(text, end="")
    return 0


__all__ = ["register", "script"]
