"""listend tray client (talks to the daemon over D-Bus only)."""
