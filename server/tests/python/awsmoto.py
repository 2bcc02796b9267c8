"""moto_server (a real AWS API on localhost) for the tests that talk to AWS
services: Secrets Manager, S3."""

import pathlib
import shutil
import socket
import subprocess
import sys

import httpx

from conftest import wait_until


class Moto:
    """moto_server on a free port, ready when it answers."""

    def __init__(self, tmp):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        exe = shutil.which("moto_server") or str(pathlib.Path(sys.executable).parent / "moto_server")
        self.log = open(tmp / "moto.log", "wb")
        self.p = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(self.url + "/moto-api/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        if not wait_until(up, timeout=30, every=0.2):
            self.stop()
            raise RuntimeError("moto_server did not start: " + (tmp / "moto.log").read_text(errors="replace"))

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
