"""Forward and readiness specs, and [network] / [service] in templates."""

from pathlib import Path

import pytest

from appliance.assemble.initramfs import init_conf
from appliance.assemble.template import parse_template
from appliance.errors import TemplateError
from appliance.netspec import (
    CONTROL_PORT,
    Forward,
    Ready,
    SpecError,
    http_status,
    parse_forward,
    parse_ready,
)


@pytest.mark.parametrize(("spec", "expected"), [
    ("tcp:8080-:80", Forward("tcp", 8080, 80)),
    ("tcp:0-:80", Forward("tcp", 0, 80)),
    ("udp:0.0.0.0:5353-:53", Forward("udp", 5353, 53, "0.0.0.0")),
    ("tcp:8080-10.0.2.15:80", Forward("tcp", 8080, 80)),
])
def test_forwards_parse_like_qemu_hostfwd_with_a_loopback_default(spec, expected):
    forward = parse_forward(spec)
    assert forward == expected
    assert forward.hostfwd(41000) == f"{expected.proto}:{expected.host_address}:41000-10.0.2.15:{expected.guest_port}"


@pytest.mark.parametrize(("spec", "words"), [
    ("8080:80", "is not PROTO"),
    ("tcp:8080:80", "is not PROTO"),
    ("sctp:1-:2", "is not PROTO"),
    ("tcp:70000-:80", "host port 70000"),
    ("tcp:8080-:0", "guest port 0"),
    ("tcp:999.1.1.1:80-:80", "not an IPv4 address"),
    ("tcp:8080-10.0.2.16:80", "always 10.0.2.15"),
])
def test_malformed_forwards_say_what_a_good_one_looks_like(spec, words):
    with pytest.raises(SpecError, match=words):
        parse_forward(spec)


@pytest.mark.parametrize(("spec", "expected"), [
    ("tcp:22", Ready("tcp", 22)),
    ("http:80", Ready("http", 80, "/")),
    ("http:8000/health?x=1", Ready("http", 8000, "/health?x=1")),
    ("probe:listening", Ready("probe", probe="listening")),
])
def test_readiness_specs(spec, expected):
    assert parse_ready(spec) == expected
    assert parse_ready(expected.spec()) == expected


@pytest.mark.parametrize("spec", ["http", "tcp:80/x", "ftp:21", "http:0/", "probe:", "probe:9x", "tcp:80 junk"])
def test_malformed_readiness_specs_are_refused(spec):
    with pytest.raises(SpecError):
        parse_ready(spec)


def test_http_status_waits_for_a_whole_status_line():
    assert http_status(b"HTTP/1.") is None
    assert http_status(b"HTTP/1.0 200 OK\r\n") == 200
    assert http_status(b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n") == 503
    assert http_status(b"SSH-2.0-dropbear\r\n") == -1


WEB = """
[init]
payload = ["/bin/server"]
[[files]]
src = "server"
dst = "bin/server"
mode = 0o755
"""


def template(tmp_path: Path, extra: str, base: str = WEB):
    (tmp_path / "server").write_text("#!/bin/sh\n")
    return parse_template("svc", base + extra, tmp_path)


def test_service_template_gets_the_forward_its_check_needs(tmp_path):
    t = template(tmp_path, "[network]\nforward = ['tcp:8022-:22']\n[service]\nready = 'http:80/ok'\n")
    assert t.network and t.forwards == (Forward("tcp", 8022, 22), Forward("tcp", 0, 80))
    assert t.ready == Ready("http", 80, "/ok")
    conf = init_conf(t)
    assert "net eth0 10.0.2.15 255.255.255.0 10.0.2.2\n" in conf
    assert f"control {CONTROL_PORT}\n" in conf
    assert conf.index("net ") < conf.index("payload ")


def test_a_forward_of_the_ready_port_is_not_doubled(tmp_path):
    t = template(tmp_path, "[network]\nforward = ['tcp:8080-:80']\n[service]\nready = 'tcp:80'\nsend = 'PING'\n")
    assert t.forwards == (Forward("tcp", 8080, 80),) and t.send == "PING"


def test_network_on_the_minimal_kernel_adds_its_fragment(tmp_path):
    t = template(tmp_path, "[appliance]\nkernel = 'minimal'\n[network]\n")
    assert t.kernel_fragments == ("network",) and t.forwards == ()
    # every network has the stop channel: --serve powers a guest without [service] off too
    assert f"control {CONTROL_PORT}\n" in init_conf(t)


@pytest.mark.parametrize(("extra", "words"), [
    ("[network]\nforward = ['tcp:80']\n", "is not PROTO"),
    ("[network]\nforward = ['tcp:8080-:80', 'tcp:8080-:81']\n", "one host port twice"),
    (f"[network]\nforward = ['tcp:0-:{CONTROL_PORT}']\n", "stop channel"),
    ("[network]\n[service]\nready = 'http:80x'\n", "is not 'tcp:PORT'"),
    ("[service]\nready = 'http:80/'\n", "needs \\[network\\]"),
    ("[service]\nready = 'probe:up'\n[probes]\nup = 0x20\n", "needs \\[network\\]"),
    ("[network]\n[service]\nready = 'probe:up'\n", "no probe 'up'"),
    ("[network]\n[service]\nready = 'http:80/'\nsend = 'x'\n", "send is for a tcp check"),
    ("[network]\n[service]\nsend = 'x'\n", "needs ready"),
    ("[network]\nport = 1\n", "unknown key 'port'"),
])
def test_bad_network_and_service_settings_name_the_mistake(tmp_path, extra, words):
    with pytest.raises(TemplateError, match=words):
        template(tmp_path, extra)


def test_a_service_needs_a_payload_and_no_shell(tmp_path):
    with pytest.raises(TemplateError, match="needs \\[init\\] payload"):
        parse_template("svc", "[network]\n[service]\nready = 'tcp:80'\n", tmp_path)
    with pytest.raises(TemplateError, match="shell do not go together"):
        template(tmp_path, "[network]\n[service]\nready = 'tcp:80'\n",
                 base=WEB.replace('payload = ["/bin/server"]', 'payload = ["/bin/server"]\nshell = true'))
