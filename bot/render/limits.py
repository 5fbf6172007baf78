"""bot/render.py's section "limits" (split along its sections; see bot/render/__init__.py)."""

from __future__ import annotations

import re
from typing import Any

from checks.models import Status

# ---------------------------------------------------------------------------------------------------------------
# Slack Block Kit
#
# Every builder below returns JSON-ready block dicts and ends with `clamp_blocks`, the last line of defence that
# enforces Slack's limits, so no report (however long its logs or summaries) can earn an `invalid_blocks` error.
# Lengths are measured in UTF-16 code units, which is never less than Python's `len()` (what slack_sdk checks)
# and never less than what Slack counts, so a text that fits here fits everywhere.
#
# Everything that comes from a target (summaries, log lines, fix commands, cause texts, host names) is escaped
# (`&`, `<`, `>`) so it can never become a mention, a channel ping or a link, and triple backticks in it are
# broken up so it can never open or close a code block.
# ---------------------------------------------------------------------------------------------------------------

ACTION_SHARE = "wscheck_share"
ACTION_RUN_AGAIN = "wscheck_run_again"

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_FALLBACK = 3000

#: Caps that keep one item from crowding out the rest of a report (all in UTF-16 units).
CHECK_LINE_CAP = 1000
CHECK_LINE_CAP_TIGHT = 300
CAUSE_HEAD_CAP = 1200
EVIDENCE_CAP = 400
FIX_LINE_CAP = 300
LOG_LINE_CAP = 240

#: The healthy verdict in English (`t("render.healthy")` in the bot's language).
HEALTHY = "No known problem: the stack looks healthy."

_SPACES = re.compile(r"\s+")
_PARTIAL_ENTITY = re.compile(r"&[A-Za-z#0-9]{0,4}$")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")
_CONTEXT_TYPES = frozenset({"image", "plain_text", "mrkdwn"})
_BAD = (Status.FAIL, Status.ERROR, Status.WARN)

BlockDict = dict[str, Any]


