"""Remediation: the approval state machine (pure), the fix plans, and the engine that proposes and runs them."""
