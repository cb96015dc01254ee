-- expect: grant-widened:error
GRANT ALL ON ledger_entries TO afilo_app;
