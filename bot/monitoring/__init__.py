"""Monitoring: the incident state machine (pure), the alert messages it produces, the monitor loop that runs it."""
