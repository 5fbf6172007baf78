"""`MsgField`: a pydantic field holding a `Msg`, dumped as its JSON reference.

Models that are persisted (incident states with their causes, approval requests with their notes) keep message
references, never sentences. Reading accepts a `Msg`, a reference, or — for rows written before messages were
references — a plain string, which stays plain text (legacy English is shown as it was, never parsed back).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

from wsmsg.msg import Msg


def as_msg(value: Any) -> Msg:
    return value if isinstance(value, Msg) else Msg.from_ref(value)


MsgField = Annotated[Msg, PlainValidator(as_msg), PlainSerializer(lambda m: m.to_ref(), return_type=Any)]
