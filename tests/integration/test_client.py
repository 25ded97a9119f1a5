"""The Python API (``lib.Client``) end to end: every container here is a real VM."""

from __future__ import annotations

import io

import pytest
from oci import busybox_layer, write_layout

import cocoon as lib

pytestmark = pytest.mark.vm


@pytest.fixture
def client(cocoon):
    """A client on the test's state dir; every container it left is removed after."""
    c = lib.Client()
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)


def test_public_names_are_exported():
    for name in lib.__all__:
        assert getattr(lib, name) is not None
    assert issubclass(lib.NotFound, lib.CocoonError)
    assert lib.Conflict is lib.AlreadyExists


def test_foreground_run_returns_output_and_raises_on_failure(client, busybox):
    assert client.containers.run(busybox, "echo hi there", remove=True) == b"hi there\n"
    out = client.containers.run(busybox, ["sh", "-c", "echo $A-$B"], remove=True,
                                environment={"A": "1", "B": "two"})  # fmt: skip
    assert out == b"1-two\n"
    with pytest.raises(lib.ContainerError) as failed:
        client.containers.run(busybox, ["sh", "-c", "echo bad >&2; exit 3"], name="failing")
    assert failed.value.exit_status == 3 and failed.value.stderr == b"bad\n"
    assert failed.value.container.status == "exited"


def test_module_run_splits_a_string_and_keeps_env(cocoon, busybox):
    result = lib.run(busybox, "sh -c 'echo $A'", env={"A": "from-dict"})
    assert (result.exit_code, result.stdout) == (0, b"from-dict\n")
    with pytest.raises(lib.InvalidArgument):
        lib.run(busybox, ["true"], env="A=1")
    with pytest.raises(lib.InvalidArgument):
        lib.run(busybox, ["true"], no_such_option=1)


def test_missing_image_is_not_found(client):
    with pytest.raises(lib.NotFound):
        client.containers.run("localhost/absent:1", "true", pull="never")
    with pytest.raises(lib.NotFound):
        client.images.get("localhost/absent:1")
    with pytest.raises(lib.NotFound):
        client.containers.get("no-such-container")


def test_detached_container_lifecycle(client, busybox):
    c = client.containers.run(busybox, ["sh", "-c", "echo started; sleep 1000"], detach=True,
                              name="api-web", labels={"tier": "web"})  # fmt: skip
    assert isinstance(c, lib.Container)
    assert (c.name, c.status, c.labels) == ("api-web", "running", {"tier": "web"})
    assert client.containers.get("api-web") == c
    assert [x.name for x in client.containers.list(filters={"label": "tier=web"})] == ["api-web"]
    assert client.containers.list(filters={"label": "tier=db"}) == []

    result = c.exec_run("sh -c 'echo out; echo err >&2; exit 4'", environment={"X": "y"})
    assert result.exit_code == 4 and b"out\n" in result.output and b"err\n" in result.output
    code, (out, err) = c.exec_run(["sh", "-c", "echo $X; echo e >&2"], demux=True,
                                  environment={"X": "y"})  # fmt: skip
    assert (code, out, err) == (0, b"y\n", b"e\n")
    assert c.exec_run(["nosuchcmd"]).exit_code == 127

    c.pause()
    assert c.status == "paused" and c.attrs["State"]["Paused"]
    c.unpause()
    assert c.status == "running"
    top = c.top()
    assert top["Titles"][0] == "PID" and any("sleep 1000" in p[-1] for p in top["Processes"])
    c.rename("api-web2")
    assert c.name == "api-web2"

    stream = c.logs(stream=True, follow=False)
    assert b"".join(stream) == b"started\n"
    with pytest.raises(lib.Timeout):
        c.wait(timeout=0.5)
    c.stop(timeout=0)
    assert c.status == "exited"
    assert c.wait()["StatusCode"] == 137
    c.remove()
    with pytest.raises(lib.NotFound):
        c.reload()


def test_kill_and_wait(client, busybox):
    c = client.containers.run(busybox, ["sleep", "1000"], detach=True)
    c.kill("SIGTERM")
    assert c.wait(timeout=120)["StatusCode"] == 143
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 143


def test_create_with_a_name_in_use_is_a_conflict(client, busybox):
    c = client.containers.create(busybox, "true", name="taken")
    assert c.status == "created"
    with pytest.raises(lib.Conflict):
        client.containers.create(busybox, "true", name="taken")


def test_images_save_load_tag_list_remove(client, busybox, tmp_path):
    image = client.images.get(busybox)
    assert busybox in image.tags
    assert image in client.images.list(name="localhost/busybox")
    assert image.tag("localhost/api-copy", "1")
    assert "localhost/api-copy:1" in client.images.get("localhost/api-copy:1").tags
    archive = client.images.save(["localhost/api-copy:1"])
    client.images.remove("localhost/api-copy:1")
    with pytest.raises(lib.NotFound):
        client.images.get("localhost/api-copy:1")
    (loaded,) = client.images.load(io.BytesIO(archive))
    assert "localhost/api-copy:1" in loaded.tags and loaded.id == image.id
    client.images.remove("localhost/api-copy:1")

    write_layout(tmp_path / "l", [busybox_layer()], ref="localhost/labelled:1",
                 config={"Labels": {"made-by": "test"}})  # fmt: skip
    (labelled,) = client.images.load(tmp_path / "l")
    assert client.images.list(filters={"label": "made-by=test"}) == [labelled]
    client.images.remove("localhost/labelled:1")


def test_networks_and_volumes(client):
    volume = client.volumes.create("api-vol", labels={"a": "b"})
    assert client.volumes.get("api-vol").attrs["labels"] == {"a": "b"}
    assert "api-vol" in [v.name for v in client.volumes.list()]
    volume.remove()
    with pytest.raises(lib.NotFound):
        client.volumes.get("api-vol")
    net = client.networks.create("apinet", subnet="10.99.7.0/24")
    try:
        assert client.networks.get("apinet").attrs["subnet"] == "10.99.7.0/24"
        assert "apinet" in [n.name for n in client.networks.list()]
        with pytest.raises(lib.AlreadyExists):
            client.networks.create("apinet")
    finally:
        net.remove()
    with pytest.raises(lib.NotFound):
        client.networks.get("apinet")


def test_network_connect_and_disconnect_change_a_created_container(client, busybox):
    front = client.networks.create("apifront", subnet="10.99.8.0/24")
    back = client.networks.create("apiback", subnet="10.99.9.0/24")
    box = client.containers.create(busybox, ["true"], network="apifront")
    try:
        back.connect(box, aliases=["db"])
        box.reload()
        cards = box.attrs["NetworkSettings"]["Networks"]
        assert set(cards) == {"apifront", "apiback"}
        assert cards["apiback"]["IPAddress"].startswith("10.99.9.")
        assert list(back.containers) == [box.name]
        with pytest.raises(lib.AlreadyExists):
            back.connect(box.id)
        back.disconnect(box)
        box.reload()
        assert set(box.attrs["NetworkSettings"]["Networks"]) == {"apifront"}
        assert back.containers == {}
    finally:
        box.remove(force=True)
        front.remove()
        back.remove()
