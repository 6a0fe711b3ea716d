"""The Acumos generic runner's utility routes, for a single-model service: CSV or JSON files turned into
the protobuf input of an rpc (`/getBinary*`), or run through the served model (`/transform*Default`).

Each takes the multipart part Acumos names (`csvFile`, `jsonFile`; `proto` for `/getBinary` and
`/getBinaryJSON`) and the rpc in the `operation` parameter (query or form field; optional when the
contract has one rpc), and answers `application/octet-stream`. Where the Acumos runner answers an
empty 200, these answer the error of what is wrong (runner.serving.acumos_data names line and column).
`/transformCSV` and `/transformJSON`, which run a model sent with the request, are refused: this
service runs only the model it serves.
"""

from __future__ import annotations

from flask import Blueprint, Request, Response, request
from google.protobuf.message import Message

from runner.contract import MEDIA_PROTOBUF, Contract
from runner.errors import BadInput
from runner.serving import acumos_data, metrics
from runner.serving.dataplane import DataPlane
from runner.settings import Settings

OCTET_STREAM = "application/octet-stream"
CSV_MEDIA = ("text/csv", "application/vnd.ms-excel")


class AcumosRoutes:
    """`/getBinary`, `/getBinaryDefault`, `/getBinaryJSON`, `/getBinaryJSONDefault`, `/transformCSVDefault`,
    `/transformJSONDefault` (and the refused `/transformCSV`, `/transformJSON`)."""

    def __init__(self, dataplane: DataPlane, settings: Settings) -> None:
        self.dataplane = dataplane
        self.settings = settings

    def blueprint(self) -> Blueprint:
        routes = Blueprint("acumos", __name__)
        for path, view in (
            ("/getBinaryDefault", self.get_binary_default),
            ("/getBinary", self.get_binary),
            ("/getBinaryJSONDefault", self.get_binary_json_default),
            ("/getBinaryJSON", self.get_binary_json),
            ("/transformCSVDefault", self.transform_csv_default),
            ("/transformJSONDefault", self.transform_json_default),
            ("/transformCSV", self.transform_with_model),
            ("/transformJSON", self.transform_with_model),
        ):
            routes.add_url_rule(path, path.strip("/"), view, methods=["POST"])
        return routes

    # ---------------------------------------------------------------- getBinary*

    def get_binary_default(self) -> Response:
        return self._binary("csvFile", self._served_contract())

    def get_binary(self) -> Response:
        return self._binary("csvFile", _given_contract(request))

    def get_binary_json_default(self) -> Response:
        return self._binary("jsonFile", self._served_contract())

    def get_binary_json(self) -> Response:
        return self._binary("jsonFile", _given_contract(request))

    def _binary(self, part: str, contract: Contract) -> Response:
        data = _part(request, part)
        rpc = acumos_data.operation(contract, request.values.get("operation"))
        message = self._message(contract, rpc, data, csv=part == "csvFile")
        return Response(message.SerializeToString(), content_type=OCTET_STREAM)

    # ---------------------------------------------------------------- transform*

    def transform_csv_default(self) -> Response:
        return self._transform("csvFile")

    def transform_json_default(self) -> Response:
        return self._transform("jsonFile")

    def _transform(self, part: str) -> Response:
        with metrics.track("http"):
            data = _part(request, part)
            contract = self._served_contract()
            rpc = acumos_data.operation(contract, request.values.get("operation"))
            media = (request.files[part].mimetype or "").lower()
            # as the Acumos runner: the file's own type decides, else the route's
            csv = media in CSV_MEDIA or ("json" not in media and part == "csvFile")
            message = self._message(contract, rpc, data, csv=csv)
            result = self.dataplane.predict(
                None, rpc, message.SerializeToString(), MEDIA_PROTOBUF[0], MEDIA_PROTOBUF[0]
            )
        return Response(
            result.body,
            content_type=OCTET_STREAM,
            headers={"X-Model-Name": result.model, "X-Model-Version": str(result.version)},
        )

    def transform_with_model(self) -> Response:
        raise BadInput(
            f"POST {request.path} runs a model sent with the request; this service runs only the model "
            "it serves",
            {
                "hint": "upload the model (PUT /model, PUT /proto, PUT /model/configuration), then POST "
                + request.path
                + "Default with the same file",
            },
        )

    # ---------------------------------------------------------------- shared

    def _served_contract(self) -> Contract:
        return self.dataplane.current(self.dataplane.model_for(None)).contract

    def _message(self, contract: Contract, rpc: str, data: bytes, *, csv: bool) -> Message:
        if csv:
            return acumos_data.message_from_csv(contract, rpc, data)
        return acumos_data.message_from_json(contract, rpc, data, max_json_depth=self.settings.max_json_depth)


def _part(req: Request, name: str) -> bytes:
    """The bytes of the multipart part ``name`` (BadInput naming the parts sent when it is absent or empty)."""
    if req.mimetype != "multipart/form-data" or name not in req.files:
        raise BadInput(
            f"send the file as the multipart part {name!r}",
            {"parts": sorted(req.files), "hint": f"curl -F {name}=@FILE -F operation=RPC"},
        )
    data: bytes = req.files[name].read()
    if not data.strip():
        raise BadInput(f"the {name!r} part is empty", {"part": name})
    return data


def _given_contract(req: Request) -> Contract:
    """The contract of the request's `proto` part (compiled for this call; the served one is untouched)."""
    data = _part(req, "proto")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"the 'proto' part is not UTF-8 text (byte {err.start})", {"part": "proto"}) from None
    return Contract.compile(text)
