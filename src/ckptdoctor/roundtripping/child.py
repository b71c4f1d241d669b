"""The fresh process of ``roundtrip``: ``python -m ckptdoctor.roundtripping.child JOB.json RESULT.json``.

It starts without the training script's ``__main__`` (here ``__main__`` is this module), rebuilds the
model the way an inference program would, compares it with the reference the parent wrote, and writes
the result as JSON. Any exception is data for the report, never a crash of the parent.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    for entry in job.get("sys_path", []):  # the same installed environment and project folders
        if entry not in sys.path:
            sys.path.append(entry)
    try:
        if job["framework"] == "pytorch":
            from ckptdoctor.frameworks.torch_roundtrip import run_child
        else:
            from ckptdoctor.frameworks.keras_roundtrip import run_child
        result = run_child(job)
    except BaseException as exc:  # a crash of the reload itself is a finding, not a traceback
        result = {"loaded": False, "tensors": [], "output": None, "errors": [{
            "stage": "child", "type": type(exc).__name__, "message": str(exc).strip(),
            "text": "".join(traceback.format_exception(exc)).strip()[-4000:]}]}
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
