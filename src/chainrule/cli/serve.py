"""CLI: ``chainrule serve MODEL_DIR... [--port 8000] [--host 127.0.0.1] [--ladder DIR]``."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys

from chainrule.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="the playground: a local web page to look inside models (next word, surprisal, "
             "attention, BPE, generate, ladder)",
        description="Load the model directories once and serve the playground on "
        "http://HOST:PORT. Each view is also a JSON API (docs/playground.md). Needs the web "
        "extra: pip install 'chainrule[web]'.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL_DIR",
                   help="model directories (default with --ladder: its models/<rung>)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this computer only)")
    p.add_argument("--ladder", metavar="REPORT_DIR",
                   help="a `chainrule ladder`/`demo` report directory for the ladder view")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: where it loads)")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one sentence saying why the address cannot be used."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535, got {port}.")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on each connection; without it a
        # kept-alive connection waits ~40 ms for a delayed ACK on every response
        sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(128)
    except socket.gaierror:
        raise ConfigError(f"cannot resolve --host {host!r}; give an address such as "
                          "127.0.0.1.") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use; choose another with "
                              "--port.") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); choose another "
                          "--host or --port.") from None
    return sock


def run(args: argparse.Namespace) -> int:
    from chainrule.web.inspect import check_ladder_dir
    from chainrule.web.served import load_served

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the playground needs Starlette and uvicorn; install them with "
                          "pip install 'chainrule[web]'.") from None
    ladder = check_ladder_dir(args.ladder)
    dirs = list(args.models)
    if not dirs and ladder is not None and (ladder / "models").is_dir():
        dirs = sorted(str(d) for d in (ladder / "models").iterdir() if d.is_dir())
    if not dirs and ladder is None:
        raise ConfigError("give at least one model directory (or --ladder REPORT_DIR).")
    models = load_served(dirs, args.device)
    from chainrule.web import create_app

    loopback = ["127.0.0.1", "localhost", "[::1]", "::1"]
    app = create_app(models, ladder_dir=ladder,
                     allowed_hosts=loopback if is_loopback(args.host) else None)
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}, not only this computer: anyone who can reach "
              "it can use these models. The playground has no login; use 127.0.0.1 unless "
              "you mean it.", file=sys.stderr)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {', '.join(m.name for m in models) or 'the ladder'} on "
          f"http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
