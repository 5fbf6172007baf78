"""Running the bot itself: self-monitoring (health, metrics, heartbeat, retention), logging, tasks, host-key trust."""
