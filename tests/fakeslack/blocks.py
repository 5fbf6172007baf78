"""Block Kit validation, as strict as Slack's `invalid_blocks`.

Every block is parsed with `slack_sdk.models.blocks.Block.parse` and every object of the parsed tree is
checked with its `validate_json()` (the SDK's copy of Slack's limits: section text 3000, header text 150,
button text 75, button value 2000, action_id 255, block_id 255, context elements 10, actions elements 25, …).
On top of that:

* at most 50 blocks per message;
* round trip: every key of the input must survive `Block.parse(d).to_dict()` — an unknown key, an unknown
  element type, a string where Slack wants a text object, an empty string or an empty array is an error
  (Slack rejects all of these; the SDK would silently drop or coerce them);
* rules the SDK does not check: header and button text must be `plain_text`; `action_id`s unique within a
  block; `block_id`s unique within a message; context elements only image / plain_text / mrkdwn and at least
  one; actions at least one element; section fields at most 2000 characters each.

Errors read like Slack's: ``"<problem> [json-pointer:/blocks/3/text/text]"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
MAX_MARKDOWN_TEXT = 12_000
MAX_SECTION_FIELD_TEXT = 2_000
_CONTEXT_ELEMENT_TYPES = frozenset({"image", "plain_text", "mrkdwn"})


class BlocksFormatError(Exception):
    """`blocks` is not a JSON array (Slack: `invalid_blocks_format`)."""


def decode_json_arg(value: Any, name: str) -> Any:
    """Form-encoded calls carry `blocks`/`attachments`/`metadata` as JSON strings, JSON calls as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise BlocksFormatError(f"{name} is not valid JSON: {e}") from e
    return value


def validate_blocks(blocks: Any, *, pointer: str = "/blocks") -> list[str]:
    """Return the list of problems with `blocks` (empty when Slack would accept them)."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:{pointer}]")
    seen_block_ids: set[str] = set()
    for i, raw in enumerate(blocks):
        path = f"{pointer}/{i}"
        if not isinstance(raw, dict):
            errors.append(f"expected an object, got {type(raw).__name__} [json-pointer:{path}]")
            continue
        block_type = raw.get("type")
        if not isinstance(block_type, str):
            errors.append(f"missing required field: type [json-pointer:{path}]")
            continue
        try:
            parsed = Block.parse(raw)
        except Exception as e:  # constructor blew up on a wrong shape
            errors.append(f"invalid {block_type} block: {type(e).__name__}: {e} [json-pointer:{path}]")
            continue
        if parsed is None:
            errors.append(f"unsupported block type {block_type!r} [json-pointer:{path}/type]")
            continue
        errors.extend(_validate_tree(parsed, path))
        try:
            normalized = parsed.to_dict()
        except Exception:
            normalized = None
        if normalized is not None:
            errors.extend(_round_trip(raw, normalized, path))
        errors.extend(_extra_rules(raw, path))
        block_id = raw.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen_block_ids:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{path}/block_id]")
            seen_block_ids.add(block_id)
    return errors


def _validate_tree(obj: JsonObject, path: str) -> list[str]:
    errors: list[str] = []
    try:
        obj.validate_json()
    except SlackObjectFormationError as e:
        errors.append(f"{e} [json-pointer:{path}]")
    except Exception as e:
        errors.append(f"invalid {type(obj).__name__}: {type(e).__name__}: {e} [json-pointer:{path}]")
    for attr in sorted(obj.attributes):
        for sub_path, child in _children(getattr(obj, attr, None), f"{path}/{attr}"):
            errors.extend(_validate_tree(child, sub_path))
    return errors


def _children(value: Any, path: str) -> Iterator[tuple[str, JsonObject]]:
    if isinstance(value, JsonObject):
        yield path, value
    elif isinstance(value, list | tuple):
        for j, item in enumerate(value):
            yield from _children(item, f"{path}/{j}")


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _round_trip(given: Any, kept: Any, path: str) -> Iterator[str]:
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            what = "unsupported element type or invalid object" if kept is None else "invalid value"
            yield f"{what} [json-pointer:{path}]"
            return
        for key, value in given.items():
            if key not in kept:
                problem = "must not be empty" if _is_empty(value) else "unknown field or invalid value"
                yield f"{problem} [json-pointer:{path}/{key}]"
            else:
                yield from _round_trip(value, kept[key], f"{path}/{key}")
    elif isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            yield f"invalid array [json-pointer:{path}]"
            return
        for j, (a, b) in enumerate(zip(given, kept, strict=True)):
            yield from _round_trip(a, b, f"{path}/{j}")
    elif isinstance(kept, dict | list):
        yield f"expected an object, got {type(given).__name__} [json-pointer:{path}]"


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object below `node` with its pointer."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for j, item in enumerate(node):
            yield from _walk(item, f"{path}/{j}")


def _text_type(obj: Any) -> str | None:
    return obj.get("type") if isinstance(obj, dict) else None


def _extra_rules(block: dict[str, Any], path: str) -> Iterator[str]:
    btype = block.get("type")
    if btype == "header" and _text_type(block.get("text")) not in (None, "plain_text"):
        yield f"header text must be a plain_text object [json-pointer:{path}/text/type]"
    if btype == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            yield f"must provide at least 1 element [json-pointer:{path}/elements]"
    if btype == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            yield f"must provide at least 1 element [json-pointer:{path}/elements]"
        else:
            for j, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") not in _CONTEXT_ELEMENT_TYPES:
                    yield (
                        f"context elements must be image, plain_text or mrkdwn, not {el.get('type')!r} "
                        f"[json-pointer:{path}/elements/{j}/type]"
                    )
    if btype == "section" and isinstance(block.get("fields"), list):
        for j, fld in enumerate(block["fields"]):
            text = fld.get("text") if isinstance(fld, dict) else None
            if isinstance(text, str) and len(text) > MAX_SECTION_FIELD_TEXT:
                yield (
                    f"must be less than {MAX_SECTION_FIELD_TEXT + 1} characters "
                    f"[json-pointer:{path}/fields/{j}/text]"
                )
    action_ids: set[str] = set()
    for sub_path, obj in _walk(block, path):
        if obj.get("type") == "button" and _text_type(obj.get("text")) not in (None, "plain_text"):
            yield f"button text must be a plain_text object [json-pointer:{sub_path}/text/type]"
        action_id = obj.get("action_id")
        if isinstance(action_id, str):
            if action_id in action_ids:
                yield (
                    f"action_id {action_id!r} is not unique within the block "
                    f"[json-pointer:{sub_path}/action_id]"
                )
            action_ids.add(action_id)


def interactive_elements(
    blocks: list[dict[str, Any]] | None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(block, element) for every element with an action_id, in message order."""
    for block in blocks or []:
        for _path, obj in _walk(block, ""):
            if obj is not block and isinstance(obj.get("action_id"), str):
                yield block, obj
