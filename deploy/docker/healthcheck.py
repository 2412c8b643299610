"""The image's HEALTHCHECK: gRPC health of the Keel service this container runs.

One image runs all six services, so the probe finds out which one from PID 1's command line
(``python -m keel_<svc>``) and asks that service's gRPC port (``KEEL_<SVC>_GRPC_PORT`` or its
default) on loopback. Secured services accept only mutual TLS: the probe dials with the
service's own certificate from ``KEEL_TRUST_DIR`` (what a pod holds), or in plaintext under
``KEEL_TRUST_INSECURE_DEV=true``. Exit 0: SERVING; 1: anything else (one line on stderr).
Processes that are not a service (the one-shot ``trust``, the ``cli``) count as healthy.
The agents server (``python -m keel_agents_server``) serves HTTP, not gRPC: its probe reads
the public A2A card on ``KEEL_AGENTS_PORT`` (or 8790) on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

from keel_cli.stack import SERVICES
from keel_clients import CallOptions, ClientCredentials, HealthClient, open_channel
from keel_core.trust import TrustMaterial


def running_module(cmdline: Path = Path("/proc/1/cmdline")) -> str:
    args = cmdline.read_bytes().split(b"\0")
    if b"-m" in args:
        return args[args.index(b"-m") + 1].decode()
    return ""


AGENTS_SERVER = "keel_agents_server"


def probe_agents_server() -> int:
    """The card is public (no token needed) and answered only once the app is serving."""
    port = os.environ.get("KEEL_AGENTS_PORT", "8790")
    url = f"http://127.0.0.1:{port}/.well-known/agent-card.json"
    with urllib.request.urlopen(url, timeout=3) as reply:
        card = json.loads(reply.read())
    if not card.get("skills"):
        print(f"agents-server: no skills in the card at {url}", file=sys.stderr)
        return 1
    return 0


async def probe() -> int:
    if running_module() == AGENTS_SERVER:
        return probe_agents_server()
    spec = next((s for s in SERVICES if s.module == running_module()), None)
    if spec is None:
        return 0
    port = os.environ.get(f"{spec.env_prefix}GRPC_PORT", str(spec.grpc_port))
    target = f"127.0.0.1:{port}"
    credentials = None
    trust_dir = os.environ.get("KEEL_TRUST_DIR")
    if trust_dir and os.environ.get("KEEL_TRUST_INSECURE_DEV", "").lower() != "true":
        credentials = ClientCredentials(TrustMaterial(Path(trust_dir)).tls_identity(spec.name))
    async with open_channel(target, credentials) as channel:
        serving = await HealthClient(channel, CallOptions(timeout_s=3.0)).serving()
    if not serving:
        print(f"{spec.name}: not serving on {target}", file=sys.stderr)
    return 0 if serving else 1


def main() -> int:
    try:
        return asyncio.run(probe())
    except Exception as error:  # noqa: BLE001 - any failure is "unhealthy", said in one line
        print(f"unhealthy: {error!r}"[:300], file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
