"""The one deadline rule: how long one model call may run.

Three limits may bound a call, and the call gets the smallest of those that are set:

- the client's: what the caller allows (a gRPC deadline's time remaining, an ``X-Timeout-Seconds``
  header). A client deadline already passed (0 or less) ends the call before the model is called;
- the service's: ``Settings.predict_timeout``;
- the bundle's: ``timeout_seconds`` in metadata.json.

None set: no limit (a runtime used on its own, in a test). Every path that calls a model reaches this
function: the data plane for every predict (HTTP, OIP, gRPC), validation for the examples, and each
runtime's ``invoke`` (so a model called directly still keeps its bundle's limit; taking the minimum
again there changes nothing).
"""

from __future__ import annotations

from runner.errors import DeadlineExceeded


def call_timeout(
    client: float | None = None, *, setting: float | None = None, bundle: float | None = None
) -> float | None:
    """Seconds the model call may run: the smallest limit set (None: unbounded).

    DeadlineExceeded when the client's deadline has already passed.
    """
    if client is not None and client <= 0:
        raise DeadlineExceeded(
            "the call's deadline passed before the model was called", {"client_timeout": client}
        )
    limit = client
    if setting is not None and (limit is None or setting < limit):
        limit = setting
    if bundle is not None and (limit is None or bundle < limit):
        limit = bundle
    return limit
