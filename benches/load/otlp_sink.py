#!/usr/bin/env python3
"""An OTLP/HTTP sink for load runs: answers every POST /v1/traces with 200
and an empty ExportTraceServiceResponse, counting spans' bytes, so the
proxy's export path does its full work (batching, protobuf, HTTP) against
a collector that keeps up. Not a collector: nothing is decoded or kept.

usage: benches/load/otlp_sink.py PORT   (prints "bytes=N posts=M" on exit)
"""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"bytes": 0, "posts": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received["bytes"] += length
        received["posts"] += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(f"bytes={received['bytes']} posts={received['posts']}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
