"""The README's first command ends here: serve an index and show two queries answered.

Starts ``poshuk serve`` as a child process, waits until ``/readyz`` says ready, asks
one Ukrainian and one English question over HTTP and prints the top hits. Then it
keeps serving until Ctrl-C (or exits at once with ``--no-wait``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

QUERIES = (
    "переговори Росії та Північної Кореї про постачання боєприпасів",
    "Which country is Russia buying artillery shells from?",
)


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 180.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo: the server exited with code {server.returncode}")
        try:
            status, body = _get(f"{base}/readyz", timeout=2)
            if status == 200:
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"demo: the server was not ready within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-wait", action="store_true", help="stop the server after the two queries")
    args = parser.parse_args()
    base = f"http://{args.host}:{args.port}"
    poshuk = Path(sys.executable).with_name("poshuk")
    cmd = [str(poshuk), "serve", "--index", str(args.index), "--host", args.host, "--port", str(args.port)]
    server = subprocess.Popen(cmd)
    try:
        ready = wait_ready(base, server)
        print(f"\nPoshuk is serving {ready.get('documents')} articles ({ready.get('passages')} passages) at {base}")
        for query in QUERIES:
            result = _post(f"{base}/v1/search", {"query": query, "k": 3})
            print(f"\nPOST {base}/v1/search  query={query!r}  ({result['took_ms']} ms)")
            hits = result["hits"]
            assert isinstance(hits, list)
            for hit in hits:
                print(f"  {hit['rank']}. [{hit['score']:.3f}] {hit['title']}  ({hit['doc_id']}, {hit['lang']})")
                print(f"     {str(hit['text'])[:160]}")
        print(f"\nOpen {base}/schema for the API. ", end="")
        if args.no_wait:
            print("Stopping (--no-wait).")
            return 0
        print("Press Ctrl-C to stop.")
        server.wait()
        return server.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
