"""Control-plane stand-ins for the lab: TCP listeners where a site's Keystone, RabbitMQ and MariaDB would be.

`steth lab up` starts this on the management bridge's address, which every node resolves as `controller`
(/etc/netns/<namespace>/hosts), so that a site plan's endpoints (`controller:5000` ...) have something to
answer, as docs/examples/site.yaml expects. Each listener accepts a connection and closes it: a TCP handshake
is all `steth tcp-check` asks of a service.

    python -m steth.lab.standins --host 10.99.0.1 --port 5000 --port 5672 --port 3306 --ready FILE
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
from pathlib import Path

# What a site plan names, on their usual ports (keystone public API, AMQP, MySQL protocol).
SERVICES = {"keystone": 5000, "rabbitmq": 5672, "mariadb": 3306}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, action="append", default=[])
    ap.add_argument("--ready", help="write the ports that are listening (JSON) here")
    args = ap.parse_args()
    sel = selectors.DefaultSelector()
    bound = []
    for port in args.port:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((args.host, port))
        except OSError as exc:  # a service of the host itself on every address: say so, serve the others
            print(f"standins: {args.host}:{port}: {exc.strerror}", file=sys.stderr, flush=True)
            s.close()
            continue
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bound.append(port)
    if args.ready:
        tmp = Path(args.ready + ".tmp")
        tmp.write_text(json.dumps(bound))
        os.replace(tmp, args.ready)
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    main()
