-- expect:
CREATE TABLE scratch_notes (id bigint PRIMARY KEY, body varchar(20));
ALTER TABLE scratch_notes ALTER COLUMN body TYPE text;
