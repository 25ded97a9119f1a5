"""The Go-template subset behind --format: output as Docker's, bad templates one error."""

from __future__ import annotations

import pytest

from cocoon.cli.template import render_all
from cocoon.errors import InvalidArgument

ROWS = [
    {"ID": "abc", "State": {"Status": "running"}, "Names": "web", "Labels": {"a": "1"},
     "Args": ["x", "y"], "Running": True},
    {"ID": "d", "State": {"Status": "exited"}, "Names": "db", "Labels": {}, "Args": [],
     "Running": False},
]  # fmt: skip


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("{{.State.Status}}", "running\nexited\n"),
        ("{{json .Labels}}", '{"a":"1"}\n{}\n'),
        ("{{.Names | upper}}:{{lower (upper .ID)}}", "WEB:abc\nDB:d\n"),
        ('{{if .Labels}}{{index .Labels "a"}}{{else}}none{{end}}', "1\nnone\n"),
        ("{{range .Args}}<{{.}}>{{end}}|{{len .Args}}", "<x><y>|2\n|0\n"),
        ('{{join .Args ","}} {{.Labels}} {{.Running}}', "x,y map[a:1] true\n map[] false\n"),
        ("{{with .State}}{{.Status}}{{end}} {{.Nope}}", "running <no value>\nexited <no value>\n"),
        ("  {{- .ID }}\\t{{truncate .Names 1 -}}  ", "abc\tw\nd\td\n"),
        ("{{/* a comment */}}{{.ID}}", "abc\nd\n"),
    ],
)
def test_renders_like_go(template, want):
    assert render_all(template, ROWS) == want


def test_json_of_the_whole_item():
    assert render_all("{{json .}}", ROWS[1:]).startswith('{"Args":[],"ID":"d","Labels":{}')


def test_table_has_headings_and_aligned_columns():
    out = render_all("table {{.ID}}\\t{{.State.Status}}", ROWS, {"ID": "CONTAINER ID"})
    assert out.splitlines() == ["CONTAINER ID   STATE", "abc            running",
                                "d              exited"]  # fmt: skip


@pytest.mark.parametrize(
    "template",
    ["{{.ID", "{{if .ID}}x", "{{end}}", "{{else}}", "{{nosuch .ID}}", "{{(.ID}}", "{{.ID)}}",
     "{{__import__ 'os'}}", "{{.ID | }}", "{{join .Args}}", "{{'x'}}", "{{.ID .Names}}"],
)  # fmt: skip
def test_bad_templates_are_one_invalid_argument(template):
    with pytest.raises(InvalidArgument, match="template"):
        render_all(template, ROWS)
