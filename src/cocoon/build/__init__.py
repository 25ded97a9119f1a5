"""``cocoon build``: Dockerfiles built into OCI images inside microVMs.

A face-level package, like ``cli/``: it may use image/, rootfs/, vm/, agent/
and container/; nothing below it imports it. The parser side is pure:

    dockerfile  the Dockerfile's text -> stages of instructions (Docker's syntax)
    expand      Docker's variable substitution and key=value words
    stage       one stage's non-filesystem semantics: its image config, ARG
                scoping, RUN's argv and environment, COPY/ADD operations
    ignore      .dockerignore patterns (moby's patternmatcher rules)
    context     the build context on the host: content hashes and COPY tars
"""
