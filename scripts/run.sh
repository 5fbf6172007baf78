#!/usr/bin/env bash
# Set up and run the bot: Slack when SLACK_BOT_TOKEN is set (in the environment or .env), else console mode.
# With no wscheck.toml it checks this machine with the built-in defaults (see README 'Configuration').
# Extra arguments go to `wscheck run` (e.g. --config FILE, --http).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/wscheck run "$@"
