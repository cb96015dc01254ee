"""The schema-change checklist: revisions, review, rehearsal on a copy, apply, status, push, docs."""
