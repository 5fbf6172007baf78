"""Reports rendered for humans: plain text (console, CLI) and Slack Block Kit (blocks + notification fallback).

Pure functions of a TargetReport and the arguments given (the clock is an argument too); no I/O.


The package is bot/render.py split along its sections: text_report (the CLI/console table), limits (Slack's
limits and the caps), text, blocks, report, reports, messages, clamp. Everything is re-exported here.
"""

from __future__ import annotations

# The text-level markup helpers render.py took from bot.mrkdwn, re-exported as before (the fronts use them from here).
from bot.mrkdwn import _ZWSP as _ZWSP
from bot.mrkdwn import _clean as _clean
from bot.mrkdwn import _defang as _defang
from bot.mrkdwn import _escape as _escape
from bot.mrkdwn import _untrusted as _untrusted
from bot.mrkdwn import mention as mention
from bot.mrkdwn import untrusted as untrusted
from bot.render.blocks import _button as _button
from bot.render.blocks import _code_block as _code_block
from bot.render.blocks import _context as _context
from bot.render.blocks import _fit_lines as _fit_lines
from bot.render.blocks import _header as _header
from bot.render.blocks import _mrkdwn as _mrkdwn
from bot.render.blocks import _pack as _pack
from bot.render.blocks import _section as _section
from bot.render.clamp import _EMPHASIS as _EMPHASIS
from bot.render.clamp import _MENTION as _MENTION
from bot.render.clamp import _clamp_block as _clamp_block
from bot.render.clamp import _clamp_element as _clamp_element
from bot.render.clamp import _clamp_text as _clamp_text
from bot.render.clamp import _fits as _fits
from bot.render.clamp import _trim_middle as _trim_middle
from bot.render.clamp import clamp_blocks as clamp_blocks
from bot.render.clamp import fix_block as fix_block
from bot.render.clamp import plain as plain
from bot.render.limits import _BAD as _BAD
from bot.render.limits import _BARE_AMP as _BARE_AMP
from bot.render.limits import _CONTEXT_TYPES as _CONTEXT_TYPES
from bot.render.limits import _PARTIAL_ENTITY as _PARTIAL_ENTITY
from bot.render.limits import _SPACES as _SPACES
from bot.render.limits import _USER_ID as _USER_ID
from bot.render.limits import ACTION_RUN_AGAIN as ACTION_RUN_AGAIN
from bot.render.limits import ACTION_SHARE as ACTION_SHARE
from bot.render.limits import CAUSE_HEAD_CAP as CAUSE_HEAD_CAP
from bot.render.limits import CHECK_LINE_CAP as CHECK_LINE_CAP
from bot.render.limits import CHECK_LINE_CAP_TIGHT as CHECK_LINE_CAP_TIGHT
from bot.render.limits import EVIDENCE_CAP as EVIDENCE_CAP
from bot.render.limits import FIX_LINE_CAP as FIX_LINE_CAP
from bot.render.limits import HEALTHY as HEALTHY
from bot.render.limits import LOG_LINE_CAP as LOG_LINE_CAP
from bot.render.limits import MAX_ACTION_ID as MAX_ACTION_ID
from bot.render.limits import MAX_ACTIONS_ELEMENTS as MAX_ACTIONS_ELEMENTS
from bot.render.limits import MAX_BLOCK_ID as MAX_BLOCK_ID
from bot.render.limits import MAX_BLOCKS as MAX_BLOCKS
from bot.render.limits import MAX_BUTTON_TEXT as MAX_BUTTON_TEXT
from bot.render.limits import MAX_BUTTON_URL as MAX_BUTTON_URL
from bot.render.limits import MAX_BUTTON_VALUE as MAX_BUTTON_VALUE
from bot.render.limits import MAX_CONTEXT_ELEMENTS as MAX_CONTEXT_ELEMENTS
from bot.render.limits import MAX_CONTEXT_TEXT as MAX_CONTEXT_TEXT
from bot.render.limits import MAX_FALLBACK as MAX_FALLBACK
from bot.render.limits import MAX_FIELD_TEXT as MAX_FIELD_TEXT
from bot.render.limits import MAX_FIELDS as MAX_FIELDS
from bot.render.limits import MAX_HEADER_TEXT as MAX_HEADER_TEXT
from bot.render.limits import MAX_SECTION_TEXT as MAX_SECTION_TEXT
from bot.render.limits import BlockDict as BlockDict
from bot.render.messages import _trusted_sections as _trusted_sections
from bot.render.messages import error_blocks as error_blocks
from bot.render.messages import help_blocks as help_blocks
from bot.render.messages import progress_blocks as progress_blocks
from bot.render.messages import targets_blocks as targets_blocks
from bot.render.report import _cause_label as _cause_label
from bot.render.report import _cause_text as _cause_text
from bot.render.report import _check_line as _check_line
from bot.render.report import _check_sections as _check_sections
from bot.render.report import _diagnosis_sections as _diagnosis_sections
from bot.render.report import _footer as _footer
from bot.render.report import _log_section as _log_section
from bot.render.report import _report_body as _report_body
from bot.render.report import _report_header as _report_header
from bot.render.report import multi_report_fallback as multi_report_fallback
from bot.render.report import report_blocks as report_blocks
from bot.render.report import report_fallback as report_fallback
from bot.render.reports import _compact_body as _compact_body
from bot.render.reports import _compact_section as _compact_section
from bot.render.reports import multi_report_blocks as multi_report_blocks
from bot.render.text import _code as _code
from bot.render.text import _cut_plain as _cut_plain
from bot.render.text import _line as _line
from bot.render.text import _prefix as _prefix
from bot.render.text import _soft_escape as _soft_escape
from bot.render.text import _title as _title
from bot.render.text import _u16 as _u16
from bot.render.text import _user as _user
from bot.render.text import _utc as _utc
from bot.render.text import cut as cut
from bot.render.text import slack_date as slack_date
from bot.render.text_report import EMOJI as EMOJI
from bot.render.text_report import MARK as MARK
from bot.render.text_report import _table_timing as _table_timing
from bot.render.text_report import report_text as report_text
