#!/usr/bin/env python3
"""A helloworld.Greeter client for `cargo run --example grpc`: calls SayHello and prints each
answer's gRPC status, as a user of the server would see it.

Needs grpcio and grpcio-tools (PyPI), which build the stubs from helloworld.proto beside this
file at run time (nothing generated is checked in):

    python3 -m venv .venv && .venv/bin/pip install grpcio grpcio-tools
    .venv/bin/python examples/greeter/client.py [--key KEY] [--count N] [--name NAME] HOST:PORT

Prints one line per call: `OK Hello you!`, or the status code's name and message, with the
`retry-after` metadata when the server sent it. Exits 0 when every call was answered (whatever
its status), 1 when the server could not be reached, 2 on a usage error.
"""
import argparse
import os
import sys

try:
    import grpc
    import grpc_tools  # noqa: F401  (grpc.protos_and_services needs it)
except ImportError as e:
    sys.exit(f"error: {e.name} is missing: pip install grpcio grpcio-tools (in a venv, see docs/grpc.md)")

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description="Calls helloworld.Greeter/SayHello.")
    parser.add_argument("target", metavar="HOST:PORT", help="the server, e.g. 127.0.0.1:50051")
    parser.add_argument("--key", help="the API key, sent as the x-api-key metadata (default: none)")
    parser.add_argument("--count", type=int, default=1, help="how many calls (default: 1)")
    parser.add_argument("--name", default="you", help="who to greet (default: you)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default: 5)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")

    sys.path.insert(0, HERE)
    protos, services = grpc.protos_and_services("helloworld.proto")
    metadata = [("x-api-key", args.key)] if args.key else []
    with grpc.insecure_channel(args.target) as channel:
        stub = services.GreeterStub(channel)
        for _ in range(args.count):
            try:
                reply = stub.SayHello(
                    protos.HelloRequest(name=args.name), metadata=metadata, timeout=args.timeout
                )
                print(f"OK {reply.message}")
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    print(f"error: cannot reach {args.target}: {e.code().name} {e.details()}",
                          file=sys.stderr)
                    return 1
                retry = dict(e.trailing_metadata() or ()).get("retry-after")
                line = f"{e.code().name} {e.details()}"
                print(line + (f" (retry-after {retry})" if retry else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
