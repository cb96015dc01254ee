-- expect:
CREATE SCHEMA reporting;
