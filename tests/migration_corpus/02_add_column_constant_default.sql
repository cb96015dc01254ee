-- expect:
ALTER TABLE products ADD COLUMN featured boolean NOT NULL DEFAULT false;
