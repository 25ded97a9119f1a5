"""A Docker Engine API (v1.41) on a unix socket: ``cocoon system service``.

A face over the library, like the CLI: containers it starts are ordinary
cocoon containers (``cocoon ls`` sees them, they outlive the service), and it
sees those the CLI made. ``DOCKER_HOST=unix://PATH`` points the docker CLI,
docker-py and docker-compose at it.

http        the HTTP layer: routes, JSON, errors, chunked streams, the hijack
api         the route table and the main loop
system      _ping, version, info
containers  containers; ``create`` translates the create body
execs       extra processes; ``exits`` remembers exit codes for wait
images      pull (progress lines), list, inspect, tag, remove
streams     dockerd's framing of stdout and stderr
"""
