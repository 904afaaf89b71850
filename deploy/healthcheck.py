"""The container's HEALTHCHECK: is `dbvitals serve` answering HTTP on its port?

Any answer from /-/healthy counts, 401 included (basic auth on), over plain HTTP or TLS (a web
config with tls_server_config; the certificate is not checked here, only that serve speaks).
Exit 0 when it answers, 1 when not. Standard library only: it runs with the image's Python.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys

PORT = int(os.environ.get("DBVITALS_HEALTHCHECK_PORT", "10187"))


def answers() -> bool:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    for connection in (http.client.HTTPConnection("127.0.0.1", PORT, timeout=3),
                       http.client.HTTPSConnection("127.0.0.1", PORT, timeout=3, context=insecure)):
        try:
            connection.request("GET", "/-/healthy")
            return connection.getresponse().status in (200, 401)
        except (OSError, http.client.HTTPException):
            continue
        finally:
            connection.close()
    return False


if __name__ == "__main__":
    sys.exit(0 if answers() else 1)
