"""A free port on this machine, for the fake servers and Bedel processes of the tests and of bench/.

A plain module, not a fixture, so bench scripts import it too (after putting the repository on `sys.path`).
"""

import socket


def free_port() -> int:
    """A port nobody listens on now; the caller binds it soon after, so another process rarely takes it first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
