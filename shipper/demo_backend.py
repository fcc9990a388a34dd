"""A stand-in ECVI backend for the demo: requests and Celery-like tasks logging through logging_config."""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
import uuid

import logging_config


def main(path: str) -> None:
    with open(path, "a", buffering=1, encoding="utf-8") as out:
        logging_config.configure(service="ecvi-backend", environment="demo", version="1.0.0",
                                 fmt="json", stream=out)
        log = logging.getLogger("app.api.v1.companies")
        n = 0
        while True:
            n += 1
            company = str(uuid.UUID(int=random.getrandbits(128)))
            with logging_config.context(request_id=uuid.uuid4().hex, user_id=f"user-{n % 7}",
                                        company_id=company):
                log.info("Company created", extra={"seq": n, "plan": random.choice(["free", "pro"])})
                if n % 10 == 0:
                    try:
                        raise ValueError("registry lookup failed")
                    except ValueError:
                        log.exception("Verification failed")
            time.sleep(0.2)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        main(sys.argv[1])
