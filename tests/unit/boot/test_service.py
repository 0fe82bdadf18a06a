"""The host side of a service: readiness checks against real local servers that behave
like QEMU's user network does before and after the guest's service is up, the ports of
forwards, the stop channel, and QEMU's network arguments."""

import socket
import threading
import time
from pathlib import Path

import pytest

from appliance.boot import qemu, service
from appliance.bundle import Bundle
from appliance.errors import BootError
from appliance.netspec import Forward, Ready
from tests.conftest import manifest_of


class Server:
    """A TCP server on a free loopback port whose behaviour a test changes while it runs:
    "close" (what QEMU does when the guest refuses: accept, then close at once),
    "silent" (accept and never answer: a SYN the guest dropped), or bytes to answer."""

    def __init__(self, behaviour: object = "close") -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests: list[bytes] = []
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            behaviour = self.behaviour
            if behaviour == "close":
                conn.close()
            elif behaviour == "silent":
                self.held.append(conn)
            else:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096) if behaviour != b"banner" else b"")
                    conn.sendall(behaviour if isinstance(behaviour, bytes) else b"")
                except OSError:
                    pass
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def wait_ready(waiter: service.AnswerWaiter, limit: float = 10) -> float:
    thread = threading.Thread(target=waiter.run, daemon=True)
    thread.start()
    thread.join(limit)
    waiter.stop.set()
    thread.join(2)
    assert waiter.ready_ns, f"never ready after {waiter.attempts} attempts"
    return waiter.ready_ns / 1e9


def test_http_check_ignores_accepted_and_closed_connections_until_a_2xx_answer():
    server = Server("close")
    flip_at = time.time() + 0.3

    def flip():
        time.sleep(0.3)
        server.behaviour = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"

    threading.Thread(target=flip, daemon=True).start()
    waiter = service.AnswerWaiter(Ready("http", 80, "/health"), ("127.0.0.1", server.port))
    ready = wait_ready(waiter)
    server.close()
    assert ready >= flip_at  # no answer before the service answered
    # and found soon after: a closed attempt is retried at once, not left to the attempt
    # limit (10 s); the bound leaves room for a busy host
    assert ready - flip_at < service.ATTEMPT_S / 5
    assert server.accepted > 5
    assert server.requests[-1].startswith(b"GET /health HTTP/1.0\r\n")


def test_http_check_waits_through_non_2xx_answers_and_remembers_the_last():
    server = Server(b"HTTP/1.0 503 Service Unavailable\r\n\r\n")
    waiter = service.AnswerWaiter(Ready("http", 80, "/"), ("127.0.0.1", server.port))
    thread = threading.Thread(target=waiter.run, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert not waiter.ready_ns and waiter.last_status == 503
    server.behaviour = b"HTTP/1.1 204 No Content\r\n\r\n"
    thread.join(5)
    server.close()
    assert waiter.ready_ns


def test_a_silent_connection_does_not_block_later_attempts():
    """A connection accepted and never answered (the guest dropped its SYN): a new
    attempt starts after STALL_S, and the first answer wins."""
    server = Server("silent")

    def answer_later():
        time.sleep(0.5)
        server.behaviour = b"HTTP/1.0 200 OK\r\n\r\n"

    threading.Thread(target=answer_later, daemon=True).start()
    waiter = service.AnswerWaiter(Ready("http", 80, "/"), ("127.0.0.1", server.port))
    wait_ready(waiter)
    server.close()
    assert len(server.held) >= 2  # several stalled attempts were left behind


def test_tcp_check_sends_its_bytes_and_takes_any_answer():
    server = Server(b"PONG\r\n")
    waiter = service.AnswerWaiter(Ready("tcp", 6379), ("127.0.0.1", server.port), send=b"PING\r\n")
    wait_ready(waiter)
    server.close()
    assert server.requests[0] == b"PING\r\n"


def test_attempts_wait_for_the_gate():
    server = Server(b"HTTP/1.0 200 OK\r\n\r\n")
    opened = threading.Event()
    waiter = service.AnswerWaiter(Ready("http", 80), ("127.0.0.1", server.port), gate=opened.is_set)
    thread = threading.Thread(target=waiter.run, daemon=True)
    thread.start()
    time.sleep(0.2)
    assert server.accepted == 0 and not waiter.ready_ns
    opened.set()
    thread.join(5)
    server.close()
    assert waiter.ready_ns and server.accepted >= 1


def test_console_gate_sees_a_line_split_across_reads(tmp_path):
    console = tmp_path / "console.log"
    gate = service.ConsoleGate(console, service.NET_UP_LINE)
    assert not gate()
    console.write_bytes(b"appliance-probe: init_start 1\nappliance-probe: init_ne")
    assert not gate()
    with open(console, "ab") as log:
        log.write(b"t_up 2\n")
    assert gate()


def test_probe_waiter_takes_qemus_timestamp_of_the_probe(tmp_path):
    trace = tmp_path / "trace.log"
    table = {(0xF4, 0x20): "listening"}
    line = ("2746@1795236580.{us:06d}:memory_region_ops_write cpu 0 mr 0x55570fe65800 addr 0xf4 value {code:#x} "
            "size 1 name 'isa-debugcon'\n")
    trace.write_text(line.format(us=100, code=0x10))
    waiter = service.ProbeWaiter(trace, "listening", table)
    waiter.poll()
    assert not waiter.ready_ns
    with open(trace, "a") as log:
        log.write(line.format(us=250, code=0x20))
    waiter.poll()
    assert waiter.ready_ns == 1795236580_000250_000


def test_host_ports_pick_free_ports_and_refuse_a_taken_one():
    holder = socket.create_server(("127.0.0.1", 0))
    taken = holder.getsockname()[1]
    try:
        picked = service.host_ports((Forward("tcp", 0, 80), Forward("udp", 0, 53)))
        assert all(port > 0 for port in picked.values())
        with pytest.raises(BootError, match=f"host port {taken} of forward tcp:127.0.0.1:{taken}-:80 is in use"):
            service.host_ports((Forward("tcp", taken, 80),))
    finally:
        holder.close()


def test_stop_channel_retries_until_the_guest_answers_ok():
    server = Server("close")
    threading.Timer(0.2, lambda: setattr(server, "behaviour", b"ok\n")).start()
    assert service.Control(("127.0.0.1", server.port)).stop_guest(within_s=5)
    assert server.requests[-1] == b"stop\n"
    server.close()


def test_stop_channel_gives_up_when_nothing_answers():
    server = Server("close")
    started = time.monotonic()
    assert not service.Control(("127.0.0.1", server.port)).stop_guest(within_s=0.3)
    assert time.monotonic() - started < 5  # its 0.3 s and a busy host's slack, never the default 5 s
    server.close()


def bundle(machine: str, network: dict | None, ready: str | None = None) -> Bundle:
    manifest = manifest_of(machine=machine, files={})
    if network is not None:
        manifest["network"] = network
    if ready:
        manifest["service"] = {"ready": ready}
    return Bundle(Path("/b"), manifest)


def test_qemu_gets_user_networking_on_the_machines_transport_with_the_stop_channel():
    files = qemu.BootFiles(Path("c"), Path("t"), Path("p"))
    web = bundle("microvm", {"forwards": ["tcp:127.0.0.1:0-:80"], "restrict": True}, "http:80/")
    own = web.forwards[0]
    args = qemu.argv(qemu.BootSpec(web, "tcg"), files, host_ports={own: 41001, qemu.CONTROL: 41002})
    netdev = args[args.index("-netdev") + 1]
    assert netdev == ("user,id=net0,hostfwd=tcp:127.0.0.1:41001-10.0.2.15:80,"
                      "hostfwd=tcp:127.0.0.1:41002-10.0.2.15:60999,restrict=on")
    assert "virtio-net-device,netdev=net0" in args
    q35 = bundle("pc-seabios", {"forwards": [], "restrict": False})
    args = qemu.argv(qemu.BootSpec(q35, "tcg"), files)
    assert args[args.index("-netdev") + 1] == "user,id=net0,hostfwd=tcp:127.0.0.1:0-10.0.2.15:60999"
    assert "virtio-net-pci,netdev=net0" in args
    assert "-netdev" not in qemu.argv(qemu.BootSpec(bundle("microvm", None), "tcg"), files)
