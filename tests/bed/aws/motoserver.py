#!/usr/bin/env python3
"""Run moto's server (the same app and handler as the `moto_server` command)
on a kernel-chosen free port and write the port to a file once it listens.

Usage: motoserver.py --port-file FILE [--host 127.0.0.1]

`moto_server -p 0` cannot report the port it got; this wrapper binds first,
so two test beds on one machine never race for a port.
"""
import argparse
import os
import signal
import sys

from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server does
    srv = make_server(args.host, 0, app, threaded=True,
                      request_handler=MotoRequestHandler)
    port = srv.server_address[1]
    # moto builds some URLs from MOTO_PORT (read at call time).
    os.environ["MOTO_PORT"] = str(port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)
    sys.stderr.write("moto server listening on %s:%d\n" % (args.host, port))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
