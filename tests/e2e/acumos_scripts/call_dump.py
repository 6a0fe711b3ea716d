"""Calls a dumped Acumos model directly with the Acumos client: the answers served ones are compared with.

Run under the Python that dumped it: ``python call_dump.py DUMP_DIR`` reads
``[{"method": ..., "request": HEX}, ...]`` on stdin and prints ``[{"response": HEX} | {"error": CLASS,
"message": ...}, ...]`` (protobuf bytes in, protobuf bytes out, as acumos.wrapped gives them).
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from acumos.wrapped import load_model

with tempfile.TemporaryDirectory() as scratch:
    shutil.copyfile(Path(sys.argv[1]) / "model.zip", Path(scratch) / "model.zip")
    model = load_model(scratch)  # unpacks model.zip beside it, as for a dump loaded in place
    answers = []
    for call in json.load(sys.stdin):
        try:
            response = model.methods[call["method"]].from_pb_bytes(bytes.fromhex(call["request"]))
            answers.append({"response": response.as_pb_bytes().hex()})
        except Exception as err:  # noqa: BLE001 (reported to the test)
            answers.append({"error": type(err).__name__, "message": str(err)})
print(json.dumps(answers))
