#!/usr/bin/python3
"""Run every end-to-end test module; prints 'N passed, N failed'."""
import os
import sys

import harness
import test_attach  # noqa: F401  (registers its tests)
import test_requests  # noqa: F401
import test_export  # noqa: F401
import test_record  # noqa: F401
import test_report  # noqa: F401
import test_top  # noqa: F401
import test_otlp  # noqa: F401
import test_daemon  # noqa: F401
import test_dashboard  # noqa: F401
import test_hostile  # noqa: F401
import test_layercheck  # noqa: F401
import test_router  # noqa: F401
import test_compat  # noqa: F401
import test_finish  # noqa: F401
import test_kvmem  # noqa: F401
import test_stepsync  # noqa: F401
import test_review_r2  # noqa: F401

if __name__ == "__main__":
    for name, v in (("LLAMA_SERVER_SHARED", harness.SERVER_SHARED), ("LLMTAP_MODEL", harness.MODEL)):
        if not v or not os.path.exists(v):
            raise SystemExit(f"e2e: {name} is not set to an existing file ({v!r}); run tests/e2e/run.sh")
    if not os.access(harness.LLMTAP, os.X_OK):
        raise SystemExit(f"e2e: no llmtap binary at {harness.LLMTAP}")
    sys.exit(harness.run_all())
