"""The interactive console relay: keys to the guest, output to the terminal, the escape
key, the guest closing the console, and the terminal's settings put back."""

import os
import pty
import socket
import termios
import time

from appliance.boot import interactive


def wires():
    """(our end of the console, the guest's end, keys read, keys written, output read,
    output written): a socket pair for the console, pipes for the terminal."""
    ours, guest = socket.socketpair()
    return (ours, guest, *os.pipe(), *os.pipe())


def test_relay_copies_both_ways_until_the_guest_closes():
    ours, guest, keys_r, keys_w, out_r, out_w = wires()
    os.write(keys_w, b"ls\r")
    guest.sendall(b"/ # ")
    guest.shutdown(socket.SHUT_WR)
    assert interactive.relay(ours, keys_r, out_w, time.monotonic() + 10) == "exit"
    assert os.read(out_r, 100) == b"/ # "
    guest.settimeout(2)
    assert guest.recv(100) == b"ls\r"


def test_the_escape_key_ends_the_session_and_keeps_what_came_before():
    ours, guest, keys_r, keys_w, _, out_w = wires()
    os.write(keys_w, b"exit" + interactive.ESCAPE + b"ignored")
    assert interactive.relay(ours, keys_r, out_w, time.monotonic() + 10) == "escape"
    guest.settimeout(2)
    assert guest.recv(100) == b"exit"


def test_a_silent_guest_times_out():
    ours, _guest, keys_r, _keys_w, _, out_w = wires()
    assert interactive.relay(ours, keys_r, out_w, time.monotonic() + 0.3) == "timeout"


def test_the_terminal_is_restored_even_after_an_error():
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        try:
            with interactive.raw_terminal(slave):
                assert termios.tcgetattr(slave)[3] & termios.ECHO == 0  # raw: no echo, no signals
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_not_a_terminal_is_left_alone():
    read_end, write_end = os.pipe()
    with interactive.raw_terminal(read_end):
        pass
    os.close(read_end)
    os.close(write_end)
