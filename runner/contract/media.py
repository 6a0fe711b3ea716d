"""Media types of request and response bodies: JSON (the proto3 JSON mapping) or binary protobuf."""

from __future__ import annotations

from runner.errors import UnsupportedMedia

MEDIA_JSON = "application/json"
MEDIA_PROTOBUF = ("application/vnd.google.protobuf", "application/x-protobuf")


def normalize_media(media: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (media or "").split(";", 1)[0].strip().lower()


def is_json(media: str | None) -> bool:
    m = normalize_media(media)
    return m == MEDIA_JSON or m.endswith("+json")


def is_protobuf(media: str | None) -> bool:
    return normalize_media(media) in MEDIA_PROTOBUF


def unsupported_media(problem: str, media: str | None) -> UnsupportedMedia:
    """The error for a body of (or an answer asked in) another media type; ``problem`` starts the
    message, e.g. ``"cannot produce"``, and the supported types end it."""
    m = normalize_media(media)
    return UnsupportedMedia(
        f"{problem} {m!r}; use {MEDIA_JSON} or {MEDIA_PROTOBUF[0]}",
        detail={"media": m, "supported": [MEDIA_JSON, *MEDIA_PROTOBUF]},
    )
