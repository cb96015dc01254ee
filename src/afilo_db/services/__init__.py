"""What the application does. Plain functions taking a session; they raise afilo_db.errors and
never print or commit: the caller owns the transaction."""
