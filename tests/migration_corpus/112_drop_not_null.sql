-- expect:
ALTER TABLE products ALTER COLUMN description DROP NOT NULL;
